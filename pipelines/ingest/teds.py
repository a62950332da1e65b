"""TEDS-D public use files of every era, harmonised onto raw_teds_d.

All code lists and era rules are data (``data_contracts/teds_d_codes.yaml``); this module only
turns them into SQL. A 2021 file (text labels) is first mapped label -> code with the same
tables, then code -> word exactly like a numeric file, so one record given as 2019 codes or
as 2021 labels lands as the same row. Labels compare case-insensitively after trimming; the
label "None" is a value (no substance, no arrests), never a missing marker: the reader keeps
it as text and only ``missing_labels`` map to -9.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.contracts import Contract, teds_codes
from pipelines.ingest.batch import BATCH, RowCheck, generic_checks, literal
from pipelines.ingest.readers import SRC_TABLE, SRC_VIEW, ReadRefused, quote_ident, quote_lit, trimmed

if TYPE_CHECKING:
    import duckdb

_LABEL_PROBES = ("reason", "services_d", "servsetd", "gender")
BAD = -99999  # parse-failure sentinel for a code (no TEDS code is negative except -9)


def _labelled(con: duckdb.DuckDBPyConnection, columns: set[str]) -> bool:
    """True when most filled values of a coded column are words, not numbers (the 2021 file)."""
    probe = next((c for c in _LABEL_PROBES if c in columns), None)
    if probe is None:
        return False
    q = quote_ident(probe)
    words, filled = con.execute(
        f"SELECT count_if(TRY_CAST(trim({q}) AS DOUBLE) IS NULL AND NULLIF(trim({q}), '') IS NOT NULL), "
        f"count(NULLIF(trim({q}), '')) FROM (SELECT {q} FROM {SRC_TABLE} LIMIT 10000)"
    ).fetchone()
    return filled > 0 and words * 2 > filled


def detect_era(con: duckdb.DuckDBPyConnection, columns: list[str], file_name: str) -> str:
    cols = set(columns)
    eras = teds_codes()["eras"]
    labelled = _labelled(con, cols)
    for era in eras:
        if era.get("labels"):
            if labelled:
                return era["id"]
            continue
        if any(h in cols for h in era.get("header_any", ())):
            return era["id"]
    year_col = next((c for c in ("disyr", "year") if c in cols), None)
    if year_col is not None:
        (year,) = con.execute(
            f"SELECT max(TRY_CAST(trim({quote_ident(year_col)}) AS INTEGER)) FROM {SRC_TABLE}").fetchone()
        if year is not None:
            for era in eras:
                lo, hi = era["years"]
                if lo <= year <= hi and (not era.get("labels") or labelled):
                    return era["id"]
    raise ReadRefused(f"{file_name}: cannot tell the TEDS-D era from the header or DISYR", check_id="teds_era")


def _source(spec: dict[str, Any], era: str, cols: set[str]) -> str | None:
    by_era = spec.get("source_by_era") or {}
    source = by_era[era] if era in by_era else spec.get("source")
    if source is None:
        return None
    for s in [source] if isinstance(source, str) else source:
        if s in cols:
            return s
    return None


def code_int(src: str) -> str:
    """A TEDS code as INTEGER. Cheaper than the native int parse (one cast per cell matters on
    1.7M x 25 cells); a fraction is refused rather than rounded as DuckDB's cast would."""
    return f"CASE WHEN NOT contains({src}, '.') THEN TRY_CAST({src} AS INTEGER) END"


def _code_expr(src: str, table: dict[Any, Any], labelled: bool, missing_labels: list[str]) -> str:
    number = code_int(src)
    if not labelled:
        return number
    whens = [f"WHEN {quote_lit(str(v[1]).strip().lower())} THEN {int(k)}"
             for k, v in table.items() if k != "missing"]
    whens += [f"WHEN {quote_lit(m.strip().lower())} THEN -9" for m in missing_labels]
    # a 2021 file that kept some numeric codes still reads
    return f"CASE lower({src}) {' '.join(whens)} ELSE {number} END"


def _value_expr(code: str, table: dict[Any, Any], output: str) -> str:
    missing = table.get("missing")
    whens = []
    for k, v in table.items():
        if k == "missing":
            continue
        value = v[0]
        if output == "state":
            value = f"state-{value}"
        whens.append(f"WHEN {int(k)} THEN {literal(value)}")
    missing_sql = literal(missing) if missing is not None else "NULL"
    cast = {"word": "VARCHAR", "state": "VARCHAR", "int": "INTEGER", "bool": "BOOLEAN"}[output]
    return f"CAST(CASE {code} {' '.join(whens)} WHEN -9 THEN {missing_sql} END AS {cast})"


def required_source_columns(contract: Contract) -> list[list[str]]:
    return [alt.split("|") for alt in contract.extra.get("required_source_columns", [])]


def build_teds(con: duckdb.DuckDBPyConnection, contract: Contract, columns: list[str],
               era: str) -> list[RowCheck]:
    """Create ``_lc_batch`` (raw_teds_d columns) from a TEDS-D file of ``era``; return row checks."""
    codes = teds_codes()
    cols = set(columns)
    labelled = any(e["id"] == era and e.get("labels") for e in codes["eras"])
    missing_labels = list(codes.get("missing_labels", []))
    inner = ["_row_number", "_line"]
    outer = ["_row_number", "_line"]
    checks: list[RowCheck] = []
    seen_sources: set[str] = set()
    conformance = {c.id: c for c in contract.checks if c.category == "conformance"}
    for target, spec in codes["targets"].items():
        src_col = _source(spec, era, cols)
        src = trimmed(quote_ident(src_col)) if src_col else "CAST(NULL AS VARCHAR)"
        output = spec["output"]
        if output == "text":
            inner.append(f"{src} AS _c_{target}")
            outer.append(f"_c_{target} AS {target}")
            outer.append(f"false AS _bad_{target}")
            continue
        if output == "year":
            inner.append(f"coalesce({code_int(src)}, CASE WHEN {src} IS NOT NULL THEN {BAD} END) AS _c_{target}")
            outer.append(f"CASE WHEN _c_{target} <> {BAD} THEN _c_{target} END AS {target}")
            outer.append(f"coalesce(_c_{target} = {BAD}, false) AS _bad_{target}")
            if src_col and "type" in conformance:
                c = conformance["type"]
                checks.append(RowCheck(c.id, target, c.severity, c.category,
                                       f"{src_col.upper()} is not a year", f"_bad_{target}"))
            continue
        by_era = spec.get("table_by_era") or {}
        table = codes["tables"][by_era.get(era, spec["table"])]
        keys = [int(k) for k in table if k != "missing"]
        code = _code_expr(src, table, labelled, missing_labels)
        # one evaluation of the parse per cell: text that does not parse becomes the BAD sentinel
        inner.append(f"coalesce({code}, CASE WHEN {src} IS NOT NULL THEN {BAD} END) AS _c_{target}")
        value = f"CASE WHEN _c_{target} IN ({', '.join(map(str, keys))}) THEN _c_{target} END" \
            if output == "code" else _value_expr(f"_c_{target}", table, output)
        outer.append(f"{value} AS {target}")
        outer.append(f"coalesce(_c_{target} = {BAD}, false) AS _bad_{target}")
        outer.append(f"coalesce(_c_{target} NOT IN ({', '.join(map(str, [*keys, -9, BAD]))}), false) "
                     f"AS _unk_{target}")
        if src_col and src_col not in seen_sources:
            seen_sources.add(src_col)
            what = "a known label" if labelled else "a code"
            if "type" in conformance:
                c = conformance["type"]
                checks.append(RowCheck(c.id, target, c.severity, c.category,
                                       f"{src_col.upper()} is not {what}", f"_bad_{target}"))
            if "unknown_code" in conformance:
                c = conformance["unknown_code"]
                checks.append(RowCheck(c.id, target, c.severity, c.category,
                                       f"{src_col.upper()} code is not in the {era} code table",
                                       f"_unk_{target}"))
    outer.append(f"{quote_lit(era)} AS teds_era")
    outer.append("false AS _bad_teds_era")
    stored = [f.name for f in contract.stored_fields]
    missing = [n for n in stored if n not in codes["targets"] and n != "teds_era"]
    if missing:
        raise ValueError(f"teds_d_codes.yaml has no target for {missing}")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {BATCH} AS SELECT {', '.join(outer)} "
        f"FROM (SELECT {', '.join(inner)} FROM {SRC_VIEW})"
    )
    checks += generic_checks(contract, set(), set())
    return checks
