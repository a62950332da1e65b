"""Data contracts: ``data_contracts/{discharges,followups,teds_d}.yaml`` loaded and compiled.

Each field is declared once in its contract; from it this package derives the DuckDB DDL of
the raw tables, the great-expectations suite specs (built into GE objects lazily by
``pipelines.validation``), the row-level check SQL used by ingestion, and the Markdown record
spec (``docs/records.md`` = ``data_contracts/DICTIONARY.md``: formats, level-of-care table,
field and check tables with examples, the TEDS-D mapping). Only the standard library and PyYAML
are imported here. The marts' contracts (``data_contracts/marts/``) are :mod:`pipelines.contracts.marts`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pipelines.resources import contracts_dir

CONTRACT_FILES = {"discharges": "discharges.yaml", "followups": "followups.yaml", "teds-d": "teds_d.yaml"}
KINDS = tuple(CONTRACT_FILES)
CATEGORIES = ("conformance", "completeness", "plausibility")
SEVERITIES = ("error", "warn")
FIELD_TYPES = {"text": "VARCHAR", "enum": "VARCHAR", "date": "DATE", "bool": "BOOLEAN",
               "int": "INTEGER", "number": "DOUBLE"}
SENSITIVITIES = ("none", "pseudonym", "quasi_identifier", "date", "clinical")
LINEAGE_COLUMNS = (("_file_sha256", "VARCHAR"), ("_row_number", "BIGINT"))
GENERIC_ATTRIBUTES = ("type", "values", "required", "range")


class ContractError(ValueError):
    """A contract file is malformed (a bug in data_contracts/, not in user input)."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    description: str
    required: bool = False
    alternative: str | None = None
    values: tuple[Any, ...] | None = None
    range: tuple[float, float] | None = None
    sensitivity: str = "none"
    stored: bool = True
    # the value in the docs' example rows: one value for every row, or a tuple with one per row
    example: Any = None

    @property
    def sql_type(self) -> str:
        return FIELD_TYPES[self.type]

    @property
    def examples(self) -> tuple[Any, ...]:
        """The example values as a tuple (a single value is one item; None when there is none)."""
        return self.example if isinstance(self.example, tuple) else (self.example,)


@dataclass(frozen=True)
class Check:
    id: str
    category: str
    severity: str
    description: str
    applies_to: str | None = None
    sql: str | None = None
    field: str | None = None
    tolerance: float | None = None


@dataclass(frozen=True)
class Contract:
    name: str
    version: str
    kind: str
    table: str
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    checks: tuple[Check, ...]
    detect: dict[str, list[str]]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stored_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.stored)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def check(self, check_id: str) -> Check:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(check_id)

    def has_check(self, check_id: str) -> bool:
        return any(c.id == check_id for c in self.checks)

    def columns(self) -> list[tuple[str, str]]:
        """(name, DuckDB type) of the raw table, lineage columns last."""
        return [(f.name, f.sql_type) for f in self.stored_fields] + list(LINEAGE_COLUMNS)

    def ddl(self) -> str:
        cols = ",\n    ".join(f"{n} {t}" for n, t in self.columns())
        return f"CREATE TABLE IF NOT EXISTS {self.table} (\n    {cols}\n)"


def _parse(path: Path) -> Contract:
    import yaml

    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    where = path.name
    for key in ("contract", "version", "kind", "table", "fields", "checks"):
        if key not in doc:
            raise ContractError(f"{where}: missing {key!r}")
    fields = []
    seen: set[str] = set()
    for raw in doc["fields"]:
        name = raw["name"]
        if name in seen:
            raise ContractError(f"{where}: field {name!r} declared twice")
        seen.add(name)
        if raw.get("type") not in FIELD_TYPES:
            raise ContractError(f"{where}: field {name!r} has unknown type {raw.get('type')!r}")
        if raw.get("sensitivity", "none") not in SENSITIVITIES:
            raise ContractError(f"{where}: field {name!r} has unknown sensitivity")
        if not raw.get("description"):
            raise ContractError(f"{where}: field {name!r} has no description")
        rng = raw.get("range")
        example = raw.get("example")
        if isinstance(example, list):
            if not example:
                raise ContractError(f"{where}: field {name!r} has an empty example list")
            example = tuple(example)
        fields.append(Field(
            name=name, type=raw["type"], description=raw["description"],
            required=bool(raw.get("required", False)), alternative=raw.get("alternative"),
            values=tuple(raw["values"]) if raw.get("values") is not None else None,
            range=(rng[0], rng[1]) if rng else None, sensitivity=raw.get("sensitivity", "none"),
            stored=bool(raw.get("stored", True)), example=example,
        ))
    for f in fields:
        if f.alternative and f.alternative not in seen:
            raise ContractError(f"{where}: field {f.name!r} names unknown alternative {f.alternative!r}")
        for value in f.examples:
            problem = _example_problem(f, value)
            if problem:
                raise ContractError(f"{where}: field {f.name!r} example {value!r} {problem}")
    if len({len(f.example) for f in fields if isinstance(f.example, tuple)}) > 1:
        raise ContractError(f"{where}: example lists of different lengths")
    checks = []
    for category, items in doc["checks"].items():
        if category not in CATEGORIES:
            raise ContractError(f"{where}: unknown check category {category!r}")
        for raw in items:
            if raw.get("severity") not in SEVERITIES:
                raise ContractError(f"{where}: check {raw.get('id')!r} has no valid severity")
            if raw.get("applies_to") and raw["applies_to"] not in GENERIC_ATTRIBUTES:
                raise ContractError(f"{where}: check {raw['id']!r} applies to unknown attribute")
            if raw.get("field") and raw["field"] not in seen:
                raise ContractError(f"{where}: check {raw['id']!r} names unknown field")
            tol = raw.get("tolerance")
            if tol is not None and not 0 <= float(tol) <= 1:
                raise ContractError(f"{where}: check {raw['id']!r} tolerance outside 0..1")
            checks.append(Check(
                id=raw["id"], category=category, severity=raw["severity"],
                description=raw["description"], applies_to=raw.get("applies_to"), sql=raw.get("sql"),
                field=raw.get("field"), tolerance=float(tol) if tol is not None else None,
            ))
    ids = [c.id for c in checks]
    if len(ids) != len(set(ids)):
        raise ContractError(f"{where}: duplicate check id")
    known = {"contract", "version", "kind", "table", "fields", "checks", "key", "detect"}
    return Contract(
        name=doc["contract"], version=str(doc["version"]), kind=doc["kind"], table=doc["table"],
        key=tuple(doc.get("key", ())), fields=tuple(fields), checks=tuple(checks),
        detect=doc.get("detect", {}), extra={k: v for k, v in doc.items() if k not in known},
    )


def _example_problem(f: Field, value: Any) -> str | None:
    """Why ``value`` cannot be an example of ``f`` (None when it can, or when it is None)."""
    if value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if f.type == "date" and isinstance(value, str):
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return "is not an ISO date"
    elif not {"text": isinstance(value, str), "enum": isinstance(value, str),
              "date": isinstance(value, dt.date), "bool": isinstance(value, bool),
              "int": number and isinstance(value, int), "number": number}[f.type]:
        return f"is not of type {f.type}"
    if f.values is not None and value not in f.values:
        return "is not one of the field's values"
    if f.range is not None and not f.range[0] <= value <= f.range[1]:
        return "is outside the field's range"
    return None


@cache
def load(kind: str) -> Contract:
    """The contract of ``kind`` (discharges, followups, teds-d)."""
    try:
        name = CONTRACT_FILES[kind]
    except KeyError:
        raise KeyError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}") from None
    contract = _parse(contracts_dir() / name)
    if contract.kind != kind:
        raise ContractError(f"{name}: declares kind {contract.kind!r}, expected {kind!r}")
    return contract


def all_contracts() -> list[Contract]:
    return [load(k) for k in KINDS]


def followup_windows() -> tuple[int, ...]:
    """The follow-up windows, in days: the values of the followups contract's ``window_days``
    (the SQL models' and the mart contracts' per-window columns are repeated for each)."""
    return tuple(int(w) for w in load("followups").field("window_days").values or ())


@cache
def teds_codes() -> dict[str, Any]:
    """The TEDS-D era and code tables (data_contracts/teds_d_codes.yaml)."""
    import yaml

    return yaml.safe_load((contracts_dir() / "teds_d_codes.yaml").read_text(encoding="utf-8"))


def ddl_statements() -> list[str]:
    """CREATE TABLE IF NOT EXISTS for every raw table, generated from the contracts."""
    return [c.ddl() for c in all_contracts()]


def suite_spec(contract: Contract) -> list[dict[str, Any]]:
    """Expectations (as plain dicts) generated from the contract's generic checks.

    Each item: ``{"type": <GE expectation class name>, "kwargs": {...}, "check_id", "field",
    "category", "severity"}``. ``mostly`` is 1 - tolerance for warn checks; error checks expect
    every row to pass, so any failing row fails the expectation (and is quarantined by SQL).
    """
    by_attr = {c.applies_to: c for c in contract.checks if c.applies_to}
    spec: list[dict[str, Any]] = [{
        "type": "ExpectTableColumnsToMatchOrderedList",
        "kwargs": {"column_list": [f.name for f in contract.stored_fields]},
        "check_id": "columns", "field": None, "category": "conformance", "severity": "error",
    }]

    def add(check: Check, f: Field, ge_type: str, **kwargs: Any) -> None:
        if check.severity == "warn" and check.tolerance:
            kwargs["mostly"] = 1.0 - check.tolerance
        spec.append({"type": ge_type, "kwargs": {"column": f.name, **kwargs},
                     "check_id": f"{check.id}:{f.name}", "field": f.name,
                     "category": check.category, "severity": check.severity})

    for f in contract.stored_fields:
        if "required" in by_attr and f.required and not f.alternative:
            add(by_attr["required"], f, "ExpectColumnValuesToNotBeNull")
        if "values" in by_attr and f.values is not None:
            add(by_attr["values"], f, "ExpectColumnValuesToBeInSet", value_set=list(f.values))
        if "range" in by_attr and f.range is not None:
            add(by_attr["range"], f, "ExpectColumnValuesToBeBetween",
                min_value=f.range[0], max_value=f.range[1])
    return spec


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _words(items: Any, sep: str = ", ", last: str | None = None) -> str:
    """``a``, ``b`` and ``c`` as Markdown code spans joined by ``sep`` (``last`` before the last)."""
    items = [f"`{i}`" for i in items]
    if last and len(items) > 1:
        return sep.join(items[:-1]) + last + items[-1]
    return sep.join(items)


# --------------------------------------------------------------------------- examples
def example_rows(contract: Contract) -> list[dict[str, Any]]:
    """The contract's example records (fields' ``example``): one dict per row, field -> value or None."""
    lengths = [len(f.example) for f in contract.fields if isinstance(f.example, tuple)]
    n = lengths[0] if lengths else int(any(f.example is not None for f in contract.fields))
    return [{f.name: f.examples[i] if isinstance(f.example, tuple) else f.example for f in contract.fields}
            for i in range(n)]


def example_text(value: Any) -> str:
    """An example value as a file carries it (ISO dates, true/false, empty for None)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def example_csv(contract: Contract) -> str:
    """The example rows as CSV text: a header of every field some row fills, then the rows."""
    import csv
    import io

    rows = example_rows(contract)
    columns = [f.name for f in contract.fields if any(r[f.name] is not None for r in rows)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([example_text(r[c]) for c in columns])
    return buf.getvalue()


# --------------------------------------------------------------------------- level of care
def _asam_cell(levels: list[str], order: list[str]) -> str:
    if not levels:
        return "—"
    if all(lv.endswith("-wm") for lv in levels):
        return "WM levels"
    idx = sorted(order.index(lv) for lv in levels)
    if len(idx) >= 3 and idx == list(range(idx[0], idx[-1] + 1)):
        return f"{order[idx[0]]}–{order[idx[-1]]}"
    return ", ".join(order[i] for i in idx)


def level_of_care_table() -> list[dict[str, str]]:
    """Rows of the harmonized level-of-care table, from discharges.yaml (``level_of_care`` values,
    ``level_meanings``, ``asam_map``, ``asam_planned_stay``) and the TEDS-D ``services`` table."""
    d = load("discharges")
    levels = list(d.field("level_of_care").values or ())
    meanings = d.extra.get("level_meanings") or {}
    if set(meanings) != set(levels):
        raise ContractError("discharges.yaml: level_meanings must name every level_of_care value once")
    labels = level_labels()
    order = [str(v) for v in d.field("asam_level").values or ()]
    asam_map = {str(k): v for k, v in (d.extra.get("asam_map") or {}).items()}
    planned = d.extra.get("asam_planned_stay") or {}
    services = teds_codes()["tables"]["services"]
    rows = []
    for level in levels:
        asam = [k for k, v in asam_map.items() if v == level]
        if planned.get("to") == level:
            asam += [k for k, v in asam_map.items() if v == planned["from"]]
        codes = [str(k) for k, v in services.items() if k != "missing" and v[0] == level]
        rows.append({"level_of_care": level, "label": labels[level], "meaning": str(meanings[level]),
                     "asam": _asam_cell(asam, order),
                     "services_d": ", ".join(codes) or "—"})
    return rows


def level_labels() -> dict[str, str]:
    """How a level of care (or the ``residential`` group) is named to a reader: discharges.yaml's
    ``level_labels``, which must name every ``level_of_care`` value."""
    d = load("discharges")
    labels = {str(k): str(v) for k, v in (d.extra.get("level_labels") or {}).items()}
    missing = [v for v in d.field("level_of_care").values or () if v not in labels]
    if missing:
        raise ContractError(f"discharges.yaml: level_labels must name every level_of_care value (missing: "
                            f"{', '.join(missing)})")
    return labels


def _asam_sentence(d: Contract) -> str:
    """asam_level -> level_of_care, consecutive levels with the same target grouped."""
    planned = d.extra.get("asam_planned_stay") or {}
    groups: list[tuple[list[str], Any]] = []
    for k, v in (d.extra.get("asam_map") or {}).items():
        if groups and groups[-1][1] == v:
            groups[-1][0].append(str(k))
        else:
            groups.append(([str(k)], v))
    parts = []
    for keys, v in groups:
        if v is None:
            target = "no harmonized level (the row is quarantined, check `asam_unmapped`)"
        else:
            target = f"`{v}`"
            if planned.get("from") == v:
                target += f", or `{planned['to']}` when `planned_los_days` > {planned['over_days']}"
        parts.append(f"{_words(keys, last=' and ')} → {target}")
    return "; ".join(parts)


def _levels_section() -> list[str]:
    d = load("discharges")
    rows = level_of_care_table()
    out = ["## Harmonized level of care", "",
           "Every record carries one of these words in `level_of_care`; TEDS-D codes are translated to them.", "",
           "| `level_of_care` | shown as | meaning | ASAM (3rd ed.) | TEDS-D `SERVICES_D` |", "|---|---|---|---|---|"]
    out += [f"| `{r['level_of_care']}` | {_md_escape(r['label'])} | {_md_escape(r['meaning'])} | {r['asam']} | "
            f"{r['services_d']} |" for r in rows]
    # the group is the levels named residential* (int_episodes.sql: level_of_care like 'residential%')
    residential = [r["level_of_care"] for r in rows if r["level_of_care"].startswith("residential")]
    no_teds = [r["level_of_care"] for r in rows if r["services_d"] == "—"]
    out += ["", (f"Group `residential` (shown as {level_labels().get('residential', 'residential')}) = "
                 f"{' + '.join(f'`{x}`' for x in residential)}."), "",
            ("A file may give `asam_level` instead of `level_of_care` (when both are given, `level_of_care` is "
             f"used): {_asam_sentence(d)}. Trailing zeros and case do not matter (`3.50` is `3.5`, "
             "`3.7-WM` is `3.7-wm`).")]
    if no_teds:
        out += ["", f"TEDS-D has no `SERVICES_D` code for {_words(no_teds, last=' or ')}."]
    return out + [""]


# --------------------------------------------------------------------------- preamble
SENSITIVITY_MEANINGS = {
    "none": "not about the person",
    "pseudonym": "an id assigned by the sender that names no one",
    "quasi_identifier": "could single someone out in combination with other fields",
    "date": "an exact date: stays in the warehouse, never leaves it finer than a calendar quarter",
    "clinical": "about the person's health, use or circumstances",
}


def _preamble(contracts: list[Contract]) -> list[str]:
    if set(SENSITIVITY_MEANINGS) != set(SENSITIVITIES):
        raise ContractError("SENSITIVITY_MEANINGS must describe every sensitivity")
    native = [c for c in contracts if c.kind != "teds-d"]
    versions = ", ".join(f"{c.kind} {c.version}" for c in contracts)

    def detect(c: Contract) -> str:
        rule = f"has {_words(c.detect.get('all_of', []), last=' and ')}"
        if c.detect.get("any_of"):
            rule += f" and {_words(c.detect['any_of'], last=' or ')}"
        return f"`{c.kind}` when the header {rule}"

    def by_sensitivity(s: str) -> str:
        names = dict.fromkeys(f.name for c in native for f in c.fields if f.sensitivity == s)
        return _words(names)

    return [
        "# levelcare record formats (records-v1) and data dictionary",
        "",
        ("Generated from `data_contracts/*.yaml` by `levelcare ingest --write-dictionary` "
         "(pipelines.contracts.dictionary_markdown); the same text is `docs/records.md` and "
         "`data_contracts/DICTIONARY.md`. Do not edit by hand."),
        "",
        ("This is the interface programs, states and researchers deliver data in: record formats "
         f"version 1 (contracts {versions}). It is a public promise: a file written to this spec today "
         "loads in every later release. Later contract versions may add optional fields, never rename or "
         "drop these."),
        "",
        "## Files",
        "",
        ("- **Formats.** CSV in any common dialect: UTF-8 (with or without BOM) or Latin-1 (Windows-1252), "
         "comma, semicolon, tab or `|` as delimiter, LF or CRLF line ends, double quotes around a field "
         "that needs them, one header row (title rows and blank lines above it are skipped). Parquet. "
         "XLSX: the first sheet whose header names a record format (or `--sheet NAME`), title rows above "
         "the header skipped."),
        "- **Columns.** Column names are case-insensitive, surrounding spaces ignored, and runs of spaces "
        "and hyphens inside read as `_` (`Level of Care` is `level_of_care`), in any order; "
        "optional fields may be left out. The record kind is detected from the header: "
        + "; ".join(detect(c) for c in contracts) + " (or give `levelcare ingest --kind`).",
        ("- **Values.** Dates are ISO 8601 (`2026-07-15`); booleans are `true`/`false` (also `yes`/`no`, "
         "`y`/`n`, `1`/`0`, any case); an empty field is missing; surrounding spaces are ignored; "
         "enumerations are the lower-case words listed below (compared case-insensitively); integers are "
         "whole numbers."),
        ("- **Other column names or codes.** An export that names its columns or codes differently is read "
         "through a mapping file: see [docs/mapping.md](../docs/mapping.md)."),
        "",
        "## Anonymization",
        "",
        ("Records are *anonymized*: no direct identifiers (names, SSN, MRN, phone, e-mail, street address, "
         "full ZIP, exact birth date). A file that shows any, by a column name or by values shaped like "
         f"one, is refused whole. {by_sensitivity('pseudonym')} are pseudonyms assigned by the sender. "
         "Dates are allowed (a HIPAA limited data set): "
         f"{by_sensitivity('date')} stay inside the warehouse and never leave it finer than a calendar "
         "quarter."),
        "",
        "The `sensitivity` column of the field tables:",
        "",
        *[f"- `{s}`: {SENSITIVITY_MEANINGS[s]}." for s in SENSITIVITIES],
        "",
    ]


# --------------------------------------------------------------------------- per contract
def _field_table(c: Contract) -> list[str]:
    with_examples = any(f.example is not None for f in c.fields)
    head = ["field", "type", "required", "values / range", *(["example"] if with_examples else []),
            "sensitivity", "stored", "description"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in c.fields:
        req = "yes" if f.required else "no"
        if f.required and f.alternative:
            req = f"yes (or `{f.alternative}`)"
        if f.values is not None:
            allowed = ", ".join(str(v) for v in f.values)
        elif f.range is not None:
            allowed = f"{f.range[0]} to {f.range[1]}"
        else:
            allowed = ""
        cells = [f"`{f.name}`", f.type, req, _md_escape(allowed)]
        if with_examples:
            shown = next((v for v in f.examples if v is not None), None)
            cells.append(f"`{_md_escape(example_text(shown))}`" if shown is not None else "")
        cells += [f.sensitivity, "yes" if f.stored else "no (input only)", _md_escape(f.description)]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _check_table(c: Contract) -> list[str]:
    out = ["| check | category | severity | tolerance | applies to | description |", "|---|---|---|---|---|---|"]
    for ch in c.checks:
        target = (f"every field with `{ch.applies_to}`" if ch.applies_to
                  else f"`{ch.field}`" if ch.field else "")
        if ch.sql:
            target += f" (sql/checks/{ch.sql}.sql)"
        tol = "" if ch.tolerance is None else f"{ch.tolerance:g}"
        out.append(f"| `{ch.id}` | {ch.category} | {ch.severity} | {tol} | {target} | "
                   f"{_md_escape(ch.description)} |")
    return out


def _example_section(c: Contract) -> list[str]:
    rows = example_rows(c)
    if not rows:
        return []
    notes = []
    for i, r in enumerate(rows, start=1):
        alts = [f"`{f.alternative}` instead of `{f.name}`" for f in c.fields
                if f.alternative and r[f.name] is None and r[f.alternative] is not None]
        if alts:
            notes.append(f"row {i} gives {', '.join(alts)}")
    return ["", "### Example", "",
            f"A {c.kind} file of {len(rows)} rows" + (f" ({'; '.join(notes)})" if notes else "") + ":",
            "", "```csv", example_csv(c).rstrip("\n"), "```"]


def _window_section(c: Contract) -> list[str]:
    tol = c.extra.get("window_tolerance")
    if not tol:
        return []
    out = ["", "A contact counts for its window when it falls this many days after discharge (inclusive):", "",
           "| `window_days` | days after discharge |", "|---|---|"]
    out += [f"| {w} | {lo} to {hi} |" for w, (lo, hi) in tol.items()]
    return out


def _contract_heading(c: Contract) -> list[str]:
    title = f"## {c.kind}"
    if c.extra.get("one_row_per"):
        title += f" — one row per {c.extra['one_row_per']}"
    heading = f"Table `{c.table}`, contract `{c.name}` version {c.version}; key ({', '.join(c.key)})."
    return [title, "", heading, ""]


# --------------------------------------------------------------------------- TEDS-D
OUTPUT_MEANINGS = {
    "text": "the value as text",
    "year": "the year",
    "state": "`state-` and the two-digit code",
    "code": "the code itself",
    "word": "the table's word",
    "bool": "the table's true/false",
    "int": "the table's number",
}


def _teds_source(spec: dict[str, Any]) -> str:
    src = spec.get("source")
    text = " or ".join(f"`{s.upper()}`" for s in ([src] if isinstance(src, str) else src or []))
    for era, other in (spec.get("source_by_era") or {}).items():
        text += f" (`{other.upper()}` in {era})" if other else f" (not published in {era})"
    return text


def _teds_table_name(spec: dict[str, Any]) -> str:
    if not spec.get("table"):
        return "—"
    text = f"`{spec['table']}`"
    for era, other in (spec.get("table_by_era") or {}).items():
        text += f" (`{other}` in {era})"
    return text


def _code_rows(table: dict[Any, Any], value_head: str, prefix: str = "") -> list[str]:
    out = [f"| code | label | {value_head} |", "|---|---|---|"]
    for k, v in table.items():
        if k != "missing":
            out.append(f"| {k} | {_md_escape(v[1])} | `{prefix}{example_text(v[0])}` |")
    if table.get("missing") is not None:
        out.append(f"| -9 | (missing) | `{table['missing']}` |")
    return out


def _los_sentence(table: dict[Any, Any]) -> str:
    days = [k for k, v in table.items() if k != "missing" and v[0] == k
            and str(v[1]) in (f"{k} day", f"{k} days")]
    bands = [(k, v[1]) for k, v in table.items() if k != "missing" and k not in days]
    last_day = max(days)
    return (f"`LOS` codes {min(days)}–{last_day} are days; above {last_day} the code is an ordinal band: "
            + ", ".join(f"{k} = {str(label).lower()}" for k, label in bands)
            + f". `los_code` keeps the code: it is ordinal above {last_day} and must never be averaged as days.")


def _teds_section(c: Contract) -> list[str]:
    codes = teds_codes()
    targets = codes["targets"]
    tables = codes["tables"]
    native = {f.name: f for f in load("discharges").fields}
    shared = [f.name for f in c.fields if f.name in native]
    own = [f.name for f in c.fields if f.name not in native]
    differences = []
    for f in c.fields:
        n = native.get(f.name)
        if n is None:
            continue
        more = [v for v in f.values or () if n.values is not None and v not in n.values]
        if more:
            differences.append(f"`{f.name}` also takes {_words(more, last=' and ')}")
        if f.range is not None and n.range is not None and f.range != n.range:
            differences.append(f"`{f.name}` ranges {f.range[0]} to {f.range[1]} "
                               f"(not {n.range[0]} to {n.range[1]})")
    required = [" or ".join(f"`{s.upper()}`" for s in alt.split("|"))
                for alt in c.extra.get("required_source_columns", [])]
    out = _contract_heading(c) + [
        ("The public use files of SAMHSA's Treatment Episode Data Set – Discharges load as they are "
         "published, in every era, without a mapping file. A TEDS-D record is a discharge; TEDS-D has no "
         "follow-ups."),
        "",
        f"- **Shared with `discharges`** (same names and words): {_words(shared)}."
        + (f" Except: {'; '.join(differences)}." if differences else ""),
        f"- **TEDS-D's own:** {_words(own)}.",
        ("- **Columns.** A file is read as TEDS-D when its header has "
         f"{_words([x.upper() for x in c.detect.get('all_of', [])], last=' and ')}; it must carry "
         f"{', '.join(required)}. Column names are case-insensitive."),
        "",
        "### Eras",
        "",
        ("The first era (in this order) whose rule matches the file decides how it is read; a file with "
         "none of the marker columns is placed by its largest `DISYR` (or `YEAR`)."),
        "",
        "| era | discharge years | recognised by |", "|---|---|---|",
    ]
    for era in codes["eras"]:
        lo, hi = era["years"]
        years = f"{lo}" if lo == hi else f"{lo}–{hi}" if hi < 2100 else f"{lo} and later"
        if era.get("labels"):
            rule = "text labels instead of codes in its coded columns"
        else:
            rule = f"a {' or '.join(f'`{h.upper()}`' for h in era.get('header_any', []))} column"
        out.append(f"| `{era['id']}` | {years} | {rule} |")
    out += ["", ("A 2021 file is read label by label with the same code tables (labels compared "
                 "case-insensitively), so one record given as codes or as 2021 labels lands as the same row."),
            "", "### Columns", "",
            "| field | TEDS-D column | code table | value |", "|---|---|---|---|"]
    for name, spec in targets.items():
        out.append(f"| `{name}` | {_teds_source(spec)} | {_teds_table_name(spec)} | "
                   f"{OUTPUT_MEANINGS[spec['output']]} |")
    out.append("| `teds_era` | — | — | the era the file was read as |")
    by_table: dict[str, list[str]] = {}
    missing_words: dict[str, list[str]] = {}  # word -> fields whose -9 becomes it
    for name, spec in targets.items():
        for t in [spec.get("table"), *(spec.get("table_by_era") or {}).values()]:
            if t:
                by_table.setdefault(t, []).append(name)
                word = tables[t].get("missing")
                if word is not None and name not in missing_words.get(word, []):
                    missing_words.setdefault(word, []).append(name)

    def coded(field_name: str, title: str) -> list[str]:
        spec = targets[field_name]
        return ["", f"### {title}: {_teds_source(spec)} → `{field_name}`", "",
                *_code_rows(tables[spec["table"]], f"`{field_name}`")]

    out += [*coded("level_of_care", "Level of care"), *coded("discharge_reason", "Discharge reason"),
            "", f"### Length of stay: {_teds_source(targets['los_code'])} → `los_code`", "",
            _los_sentence(tables[targets["los_code"]["table"]]),
            "", "### Missing values", "",
            "`-9` is missing in every coded column; in a 2021 file so are the labels "
            f"{_words(codes.get('missing_labels', []))}. A missing code leaves the field empty, except in "
            + "; ".join(f"{_words(names, last=' and ')}, where it is `{w}`" for w, names in missing_words.items())
            + ". A required field left empty quarantines the row (check `required`).",
            "", "### Fields", "", *_field_table(c), "", "### Checks", "", *_check_table(c),
            "", "### Code tables", "",
            ("The other codes a TEDS-D file may carry and the value each becomes. The label is the "
             "codebook's text, which the 2021 file carries instead of the code."), ""]
    shown = [targets[n]["table"] for n in ("level_of_care", "discharge_reason", "los_code")]
    for t, table in tables.items():
        if t in shown:
            continue
        state = any(targets[n]["output"] == "state" for n in by_table.get(t, []))
        out += [f"#### `{t}`", "", f"Used for {_words(by_table.get(t, []), last=' and ')}.", "",
                *_code_rows(table, "value", "state-" if state else ""), ""]
    return out


def dictionary_markdown() -> str:
    """The record spec (docs/records.md = data_contracts/DICTIONARY.md), generated from the contracts."""
    contracts = all_contracts()
    out = _preamble(contracts) + _levels_section() + [
        "## Checks",
        "",
        ("Every row is checked against its contract. Severity `error`: the row is quarantined (the whole "
         "file is refused when the failing share exceeds the tolerance). Severity `warn`: reported in the "
         "validation report; the check fails when the failing share exceeds the tolerance."),
        "",
    ]
    for c in contracts:
        if c.kind == "teds-d":
            out += _teds_section(c)
            continue
        out += [*_contract_heading(c), "### Fields", "", *_field_table(c), *_window_section(c),
                "", "### Checks", "", *_check_table(c), *_example_section(c), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def write_dictionary(path: Path | None = None) -> Path:
    path = path or contracts_dir() / "DICTIONARY.md"
    path.write_text(dictionary_markdown(), encoding="utf-8")
    return path
