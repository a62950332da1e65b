"""Data contracts: ``data_contracts/{discharges,followups,teds_d}.yaml`` loaded and compiled.

Each field is declared once in its contract; from it this package derives the DuckDB DDL of
the raw tables, the great-expectations suite specs (built into GE objects lazily by
``pipelines.validation``), the row-level check SQL used by ingestion, and the Markdown data
dictionary. Only the standard library and PyYAML are imported here.
"""

from __future__ import annotations

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

    @property
    def sql_type(self) -> str:
        return FIELD_TYPES[self.type]


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
        fields.append(Field(
            name=name, type=raw["type"], description=raw["description"],
            required=bool(raw.get("required", False)), alternative=raw.get("alternative"),
            values=tuple(raw["values"]) if raw.get("values") is not None else None,
            range=(rng[0], rng[1]) if rng else None, sensitivity=raw.get("sensitivity", "none"),
            stored=bool(raw.get("stored", True)),
        ))
    for f in fields:
        if f.alternative and f.alternative not in seen:
            raise ContractError(f"{where}: field {f.name!r} names unknown alternative {f.alternative!r}")
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


def dictionary_markdown() -> str:
    """The data dictionary (data_contracts/DICTIONARY.md), generated from the contracts."""
    out = [
        "# levelcare data dictionary",
        "",
        "Generated from `data_contracts/*.yaml` by `levelcare ingest --write-dictionary` "
        "(pipelines.contracts.dictionary_markdown). Do not edit by hand.",
        "",
        "Severity `error`: the row is quarantined (the whole file is refused when the failing share "
        "exceeds the tolerance). Severity `warn`: reported in the validation report; the check fails "
        "when the failing share exceeds the tolerance.",
        "",
    ]
    for c in all_contracts():
        out += [f"## {c.name} (`{c.table}`, contract version {c.version})", "",
                f"Kind `{c.kind}`; key ({', '.join(c.key)}).", "",
                "| field | type | required | values / range | sensitivity | stored | description |",
                "|---|---|---|---|---|---|---|"]
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
            out.append(f"| `{f.name}` | {f.type} | {req} | {_md_escape(allowed)} | {f.sensitivity} | "
                       f"{'yes' if f.stored else 'no (input only)'} | {_md_escape(f.description)} |")
        out += ["", "| check | category | severity | tolerance | applies to | description |",
                "|---|---|---|---|---|---|"]
        for ch in c.checks:
            target = (f"every field with `{ch.applies_to}`" if ch.applies_to
                      else f"`{ch.field}`" if ch.field else "")
            if ch.sql:
                target += f" (sql/checks/{ch.sql}.sql)"
            tol = "" if ch.tolerance is None else f"{ch.tolerance:g}"
            out.append(f"| `{ch.id}` | {ch.category} | {ch.severity} | {tol} | {target} | "
                       f"{_md_escape(ch.description)} |")
        out.append("")
    return "\n".join(out)


def write_dictionary(path: Path | None = None) -> Path:
    path = path or contracts_dir() / "DICTIONARY.md"
    path.write_text(dictionary_markdown(), encoding="utf-8")
    return path
