"""Mapping files: a sender's columns, labels and date formats onto the contract (docs/mapping.md).

``load_mapping(path)`` reads and checks a mapping against the native contracts before any data
is read, and refuses it with one line per problem (:class:`pipelines.errors.Problems`).
``Mapping.select(columns, contract)`` gives the SQL projection that renames, recodes and
re-formats the source columns (all text), which the reader's view ``_lc_src`` then is: the
typed batch and every check downstream see contract names and codes only.

Saved mappings (``levelcare map save --site S FILE``) live in the warehouse table
``ingest_mappings``, one current mapping per site; ``site_mapping`` finds it.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import contracts
from pipelines.errors import Problems, UserError, parse_yaml
from pipelines.ingest import identifiers
from pipelines.ingest.readers import header_name, quote_ident, quote_lit, trimmed

if TYPE_CHECKING:
    import duckdb

FORMAT_VERSION = 1
NATIVE_KINDS = ("discharges", "followups")
TOP_KEYS = ("levelcare_mapping", "kind", "columns", "values", "dates", "constants", "ignore")
BOOL_WORDS = ("true", "false")
# strptime directives a date format may use (DuckDB's names; each must parse in DuckDB too)
DATE_DIRECTIVES = set("YymdbBHMSIpjaAeu") | {"-m", "-d", "-H", "-M", "-S", "-I", "-j"}
MAPPINGS_DDL = """CREATE TABLE IF NOT EXISTS ingest_mappings (
    site_id VARCHAR NOT NULL,
    mapping_sha256 VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    body VARCHAR NOT NULL,
    saved_at TIMESTAMP NOT NULL
)"""


def norm_header(name: str) -> str:
    """A header as the readers give it (pipelines.ingest.readers.header_name)."""
    return header_name(name)


def norm_label(label: Any) -> str:
    if isinstance(label, bool):  # YAML reads Y/N/yes/no unquoted as booleans
        return "true" if label else "false"
    return str(label).strip().lower()


@dataclass(frozen=True)
class Mapping:
    """A checked mapping. Headers and labels are kept normalised (see norm_header/norm_label)."""

    name: str  # the mapping file's name, for messages
    sha256: str
    body: str  # the YAML text, as saved and hashed
    kind: str | None
    columns: dict[str, str] = field(default_factory=dict)  # source header -> field
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> label -> code
    dates: dict[str, str] = field(default_factory=dict)  # field or "*" -> strptime format
    constants: dict[str, str] = field(default_factory=dict)  # field -> value
    ignore: frozenset[str] = frozenset()

    def field_of(self, column: str) -> str:
        """The contract field a source column gives (itself when not mapped)."""
        return self.columns.get(column, column)

    def date_format(self, field_name: str) -> str | None:
        return self.dates.get(field_name, self.dates.get("*"))

    def file_problems(self, columns: list[str], contract: contracts.Contract) -> list[str]:
        """What this mapping cannot do with a file of ``columns`` (two sources for one field)."""
        problems = []
        given: dict[str, list[str]] = {}
        for c in columns:
            if c not in self.ignore:
                given.setdefault(self.field_of(c), []).append(c)
        for f, sources in given.items():
            if len(sources) > 1:
                problems.append(f"columns {', '.join(repr(s) for s in sources)} all give field {f}; "
                                "map one, ignore the others")
            if f in self.constants:
                problems.append(f"column {sources[0]!r} gives field {f}, which the mapping's constants "
                                "also set; remove one")
        missing_kind = [f for f in self.constants if f not in {x.name for x in contract.fields}]
        problems += [f"constant {f} is not a field of {contract.kind}" for f in missing_kind]
        return problems

    def output_columns(self, columns: list[str]) -> list[str]:
        """The column names the mapped view has (contract names where mapped)."""
        return [self.field_of(c) for c in columns if c not in self.ignore] + list(self.constants)

    def select(self, columns: list[str], contract: contracts.Contract) -> list[str]:
        """SQL select items (over the raw text columns) giving the mapped columns."""
        fields = {f.name for f in contract.fields}
        items = []
        for c in columns:
            if c in self.ignore:
                continue
            target = self.field_of(c)
            expr = quote_ident(c)
            # (dates stay text here: the typed batch reads them with the mapping's format)
            recode = self.values.get(target) if target in fields else None
            if recode:
                whens = " ".join(f"WHEN {quote_lit(k)} THEN {quote_lit(v)}" for k, v in recode.items())
                expr = f"CASE lower({trimmed(expr)}) {whens} ELSE {expr} END"
            items.append(f"{expr} AS {quote_ident(target)}")
        items += [f"CAST({quote_lit(v)} AS VARCHAR) AS {quote_ident(f)}" for f, v in self.constants.items()]
        return items


def _native_fields(kind: str | None) -> dict[str, list[contracts.Field]]:
    kinds = (kind,) if kind else NATIVE_KINDS
    out: dict[str, list[contracts.Field]] = {}
    for k in kinds:
        for f in contracts.load(k).fields:
            out.setdefault(f.name, []).append(f)
    return out


def codes_of(fields: list[contracts.Field]) -> list[str] | None:
    """The codes a label of these fields may be recoded to (None: the field takes any text)."""
    codes: list[str] = []
    for f in fields:
        if f.type == "bool":
            codes += [w for w in BOOL_WORDS if w not in codes]
        elif f.values is not None:
            codes += [str(v) for v in f.values if str(v) not in codes]
    return codes or None


def did_you_mean(word: str, choices: list[str], n: int = 1) -> str:
    """" (did you mean X?)" naming up to ``n`` close choices, or ""."""
    close = closest(word, choices, n)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def closest(word: str, choices: list[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` choices most like ``word`` (difflib's ratio, the better of both orders: it is
    not symmetric, and 'phq9_intake' is 0.57 from 'phq9_admit' one way and 0.67 the other)."""
    def score(c: str) -> float:
        return max(difflib.SequenceMatcher(None, word, c).ratio(), difflib.SequenceMatcher(None, c, word).ratio())

    scored = sorted(((score(c), c) for c in choices), key=lambda t: -t[0])
    return [c for r, c in scored[:n] if r >= cutoff]


def _bad_date_format(fmt: str) -> str | None:
    directives = re.findall(r"%(-?.)", fmt)
    unknown = [d for d in directives if d not in DATE_DIRECTIVES and d != "%"]
    if unknown:
        return f"unknown directive %{unknown[0]}"
    have = {d.lstrip("-") for d in directives}
    if not have & {"Y", "y"} or not (have & {"m", "b", "B"} and have & {"d", "e"} or "j" in have):
        return "it must read a year (%Y or %y), a month (%m, %b or %B) and a day (%d)"
    return None


def parse_mapping(text: str, name: str) -> Mapping:
    """Check ``text`` (a mapping file's YAML) against the contracts; Problems when it is wrong."""
    doc = parse_yaml(text, name)
    if not isinstance(doc, dict):
        raise UserError(f"{name}: a mapping file is a YAML mapping with levelcare_mapping: 1 (docs/mapping.md)")
    problems: list[str] = []
    if doc.get("levelcare_mapping") != FORMAT_VERSION:
        problems.append(f"levelcare_mapping must be {FORMAT_VERSION} (the format version), "
                        f"not {doc.get('levelcare_mapping')!r}")
    for key in doc:
        if key not in TOP_KEYS:
            problems.append(f"unknown key {key!r}{did_you_mean(str(key), list(TOP_KEYS))}; "
                            f"allowed: {', '.join(TOP_KEYS)}")
    kind = doc.get("kind")
    if kind is not None and kind not in NATIVE_KINDS:
        problems.append(f"kind {kind!r} is not one of {', '.join(NATIVE_KINDS)} (TEDS-D files load unmapped)")
        kind = None
    fields = _native_fields(kind)
    names = sorted(fields)

    def section(key: str, want: type) -> Any:
        value = doc.get(key)
        if value is None:
            return want()
        if not isinstance(value, want):
            problems.append(f"{key} must be a {'list' if want is list else 'mapping'}")
            return want()
        return value

    def known_field(f: Any, where: str) -> bool:
        if not isinstance(f, str) or f not in fields:
            kind_words = f"a field of {kind}" if kind else "a discharges or followups field"
            problems.append(f"{where}: {f!r} is not {kind_words}{did_you_mean(str(f), names)}")
            return False
        return True

    columns: dict[str, str] = {}
    by_field: dict[str, list[str]] = {}
    for src, target in section("columns", dict).items():
        header = norm_header(src)
        if not header:
            problems.append("columns: an empty header name")
            continue
        if header in columns:
            problems.append(f"columns: {src!r} appears twice (headers are case-insensitive)")
        if not known_field(target, f"columns: {src!r}"):
            continue
        for finding in identifiers.by_name([header]):
            problems.append(f"columns: {src!r} looks like a direct identifier (its name says it holds "
                            f"{finding.what}); it cannot be mapped, and a file carrying it is refused")
        columns[header] = target
        by_field.setdefault(target, []).append(str(src))
    for target, sources in by_field.items():
        if len(sources) > 1:
            problems.append(f"columns: {', '.join(repr(s) for s in sources)} are all mapped to {target}; "
                            "a field takes one column")

    constants: dict[str, str] = {}
    for f, value in section("constants", dict).items():
        if not known_field(f, "constants"):
            continue
        if f in by_field:
            problems.append(f"constants: {f} is also mapped from column {by_field[f][0]!r}; keep one")
        codes = codes_of(fields[f])
        text = norm_label(value) if codes else str(value).strip()
        if value is None or not text:
            problems.append(f"constants: {f} has no value")
        elif codes and text not in codes:
            problems.append(f"constants: {f}: {value!r} is not one of {', '.join(codes)}")
        constants[f] = text

    values: dict[str, dict[str, str]] = {}
    for f, table in section("values", dict).items():
        if not known_field(f, "values"):
            continue
        codes = codes_of(fields[f])
        if codes is None:
            problems.append(f"values: {f} is free text (type {fields[f][0].type}); only enumerations, "
                            "booleans and asam_level are recoded")
            continue
        if not isinstance(table, dict):
            problems.append(f"values: {f} must map labels to codes")
            continue
        recode: dict[str, str] = {}
        for label, code in table.items():
            key, target = norm_label(label), norm_label(code) if code is not None else ""
            if key in recode and recode[key] != target:
                problems.append(f"values: {f}: label {label!r} is given twice with different codes")
            if target not in codes:
                problems.append(f"values: {f}: {label!r} -> {code!r}, which is not one of "
                                f"{', '.join(codes)}{did_you_mean(target, codes)}")
                continue
            recode[key] = target
        values[f] = recode

    dates: dict[str, str] = {}
    date_fields = sorted(n for n, fs in fields.items() if any(x.type == "date" for x in fs))
    dates_doc = doc.get("dates")
    if isinstance(dates_doc, str):  # one format for every date field
        dates_doc = {"*": dates_doc}
    for f, fmt in (dates_doc or {}).items() if isinstance(dates_doc, dict) else []:
        if f != "*" and f not in date_fields:
            problems.append(f"dates: {f!r} is not a date field ({', '.join(date_fields)} or \"*\")"
                            f"{did_you_mean(str(f), date_fields)}")
            continue
        why = _bad_date_format(fmt) if isinstance(fmt, str) else "it must be text such as \"%m/%d/%Y\""
        if why:
            problems.append(f"dates: {f}: format {fmt!r} cannot read a date ({why})")
            continue
        dates[f] = fmt
    if dates_doc is not None and not isinstance(dates_doc, dict):
        problems.append("dates must be a format (\"%m/%d/%Y\") or a mapping of date fields to formats")

    ignore: set[str] = set()
    for src in section("ignore", list):
        header = norm_header(src)
        if header in columns:
            problems.append(f"ignore: {src!r} is also mapped under columns; keep one")
        ignore.add(header)

    if problems:
        raise Problems(f"{name}: mapping refused ({len(problems)} problem{'s' * (len(problems) > 1)}; "
                       "nothing read, see docs/mapping.md)", problems)
    return Mapping(name=name, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), body=text, kind=kind,
                   columns=columns, values=values, dates=dates, constants=constants, ignore=frozenset(ignore))


def load_mapping(path: str | Path) -> Mapping:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such mapping file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the mapping file ({type(exc).__name__})") from None
    return parse_mapping(text, path.name)


def save_site_mapping(con: duckdb.DuckDBPyConnection, site: str, mapping: Mapping) -> None:
    """Keep ``mapping`` as site ``site``'s (replacing an earlier one; the history stays)."""
    con.execute(MAPPINGS_DDL)
    con.execute("INSERT INTO ingest_mappings VALUES (?, ?, ?, ?, current_timestamp)",
                [site, mapping.sha256, mapping.name, mapping.body])


def site_mapping(con: duckdb.DuckDBPyConnection, site: str) -> Mapping | None:
    """The mapping last saved for ``site``, or None."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'ingest_mappings'"
                         ).fetchone()[0]
    if not exists:
        return None
    row = con.execute("SELECT file_name, body FROM ingest_mappings WHERE site_id = ? "
                      "ORDER BY saved_at DESC, rowid DESC LIMIT 1", [site]).fetchone()
    return parse_mapping(row[1], f"{row[0]} (saved for site {site})") if row else None


__all__ = ["Mapping", "load_mapping", "parse_mapping", "save_site_mapping", "site_mapping"]
