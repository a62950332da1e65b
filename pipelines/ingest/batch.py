"""Typed batch and row-level checks, as SQL generated from the contracts.

``build_native`` turns ``_lc_src`` (text) into ``_lc_batch``: one typed column per contract
field, a ``_bad_<field>`` flag where the text did not parse, ``_row_number``. Each row check is
a SQL condition on a batch row; ``collect_row_failures`` evaluates all of them in one scan
(a list of failing check indexes per row, unnested) into ``_lc_failures``. Cross-record
checks (``sql/checks/*.sql``) then run on ``_lc_ok``, the rows without error failures.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.contracts import Contract
from pipelines.ingest.readers import SRC_VIEW, quote_ident, quote_lit, trimmed
from pipelines.warehouse import load_sql

if TYPE_CHECKING:
    import duckdb

BATCH = "_lc_batch"
FAILURES = "_lc_failures"
AGE_BANDS = ((12, 14, "12-14"), (15, 17, "15-17"), (18, 20, "18-20"), (21, 24, "21-24"), (25, 29, "25-29"),
             (30, 34, "30-34"), (35, 39, "35-39"), (40, 44, "40-44"), (45, 49, "45-49"), (50, 54, "50-54"),
             (55, 64, "55-64"), (65, 200, "65+"))
TYPE_WORDS = {"date": "a date (YYYY-MM-DD)", "int": "an integer", "number": "a number",
              "bool": "a boolean (true/false/yes/no/y/n/1/0)"}


@dataclass(frozen=True)
class RowCheck:
    check_id: str
    field: str
    severity: str
    category: str
    reason: str
    condition: str  # SQL boolean over a row of _lc_batch


def literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return quote_lit(str(value))


def typed_expr(ftype: str, s: str, date_format: str | None = None) -> str:
    """SQL turning trimmed text ``s`` (NULL when empty) into the field type; NULL if it does not
    parse. ``date_format``: a mapping's strptime format, read besides ISO dates."""
    if ftype == "text":
        return s
    if ftype == "enum":
        return f"lower({s})"
    if ftype == "date":
        # ISO 8601 (a Parquet/XLSX midnight timestamp is accepted as its date)
        iso = (f"CASE WHEN regexp_full_match({s}, '\\d{{4}}-\\d{{2}}-\\d{{2}}([ T]00:00(:00(\\.0+)?)?)?') "
               f"THEN TRY_CAST(left({s}, 10) AS DATE) END")
        if date_format is None:
            return iso
        # the mapping's format first: a file written that way pays one parse per value
        return f"coalesce(CAST(try_strptime({s}, {quote_lit(date_format)}) AS DATE), {iso})"
    if ftype == "bool":
        return (f"CASE WHEN lower({s}) IN ('true', 'yes', 'y', '1') THEN true "
                f"WHEN lower({s}) IN ('false', 'no', 'n', '0') THEN false END")
    if ftype == "int":
        d = f"TRY_CAST({s} AS DOUBLE)"
        # DuckDB would round '3.5' to 4 on a direct cast; only whole numbers are integers
        return f"CASE WHEN {d} = trunc({d}) AND abs({d}) < 2e9 THEN CAST({d} AS INTEGER) END"
    if ftype == "number":
        d = f"TRY_CAST({s} AS DOUBLE)"
        return f"CASE WHEN isfinite({d}) THEN {d} END"
    raise ValueError(ftype)


def _src(columns: set[str], name: str) -> str:
    return trimmed(quote_ident(name)) if name in columns else "CAST(NULL AS VARCHAR)"


def generic_checks(contract: Contract, present: set[str], skip_required: set[str],
                    date_formats: dict[str, str] | None = None) -> list[RowCheck]:
    """type / allowed_values / range / required checks for every field that declares them
    (``date_formats``: a mapping's format per date field, named in the type failure's reason)."""
    date_formats = date_formats or {}
    checks: list[RowCheck] = []
    by_attr = {c.applies_to: c for c in contract.checks if c.applies_to}
    for f in contract.fields:
        col = f.name
        if "type" in by_attr and f.type in TYPE_WORDS and f.name in present:
            c = by_attr["type"]
            words = TYPE_WORDS[f.type]
            if f.name in date_formats:
                words = f"a date (YYYY-MM-DD or {date_formats[f.name]}, the mapping's format)"
            checks.append(RowCheck(c.id, f.name, c.severity, c.category,
                                   f"{f.name} is not {words}", f"_bad_{col}"))
        if "values" in by_attr and f.values is not None:
            c = by_attr["values"]
            allowed = ", ".join(literal(v) for v in f.values)
            checks.append(RowCheck(c.id, f.name, c.severity, c.category,
                                   f"{f.name} is not one of the allowed values ("
                                   f"{', '.join(str(v) for v in f.values)})",
                                   f"{quote_ident(col)} IS NOT NULL AND {quote_ident(col)} NOT IN ({allowed})"))
        if "range" in by_attr and f.range is not None:
            c = by_attr["range"]
            lo, hi = f.range
            checks.append(RowCheck(c.id, f.name, c.severity, c.category,
                                   f"{f.name} outside {lo:g} to {hi:g}",
                                   f"{quote_ident(col)} IS NOT NULL AND {quote_ident(col)} NOT BETWEEN {lo} AND {hi}"))
        if "required" in by_attr and f.required and f.name not in skip_required:
            c = by_attr["required"]
            cond = f"{quote_ident(col)} IS NULL AND NOT coalesce(_bad_{col}, false)"
            reason = f"{f.name} is missing"
            if f.alternative:
                # the alternative's own checks report a bad alternative; this one reports both empty
                cond += f" AND _src_{f.alternative} IS NULL"
                reason = f"{f.name} is missing (and so is {f.alternative})"
            checks.append(RowCheck(c.id, f.name, c.severity, c.category, reason, cond))
    return checks


def build_native(con: duckdb.DuckDBPyConnection, contract: Contract, columns: list[str],
                 site: str | None, date_formats: dict[str, str] | None = None) -> list[RowCheck]:
    """Create ``_lc_batch`` from ``_lc_src`` for discharges/followups; return its row checks."""
    present = set(columns)
    select = ["_row_number", "_line"]
    for f in contract.fields:
        s = _src(present, f.name)
        select.append(f"{s} AS _src_{f.name}")
    # first projection: trimmed text per field; second: typed values and parse flags
    inner = f"SELECT {', '.join(select)} FROM {SRC_VIEW}"
    typed: list[str] = ["_row_number", "_line"]
    for f in contract.fields:
        s = f"_src_{f.name}"
        expr = typed_expr(f.type, s, (date_formats or {}).get(f.name))
        if f.name == "asam_level":
            # '3.5', '3.50', '4.0' and 'WM' spellings compare as the contract's words
            expr = f"regexp_replace(regexp_replace(lower({s}), '^(\\d)\\.0+(-wm)?$', '\\1\\2'), '^(\\d\\.\\d)0+', '\\1')"
        typed.append(f"{expr} AS _t_{f.name}")
        typed.append(f"{s} IS NOT NULL AND {expr} IS NULL AS _bad_{f.name}")
        typed.append(s)
    mid = f"SELECT {', '.join(typed)} FROM ({inner})"

    final: list[str] = ["_row_number", "_line"]
    names = {f.name for f in contract.fields}
    # the text itself is kept only where a check reads it: an alternative's (see generic_checks)
    alternatives = {f.alternative for f in contract.fields if f.alternative}
    for f in contract.fields:
        value = f"_t_{f.name}"
        if f.name == "site_id" and site is not None:
            value = f"coalesce(_t_site_id, {quote_lit(site)})"
        elif f.name == "level_of_care" and "asam_level" in names:
            asam = contract.extra.get("asam_map", {})
            whens = " ".join(f"WHEN {quote_lit(k)} THEN {quote_lit(v) if v else 'NULL'}" for k, v in asam.items())
            planned = "_t_planned_los_days" if "planned_los_days" in names else "NULL"
            # asam_planned_stay: the ASAM levels of one level of care move to another for a long planned stay
            stay = contract.extra["asam_planned_stay"]
            levels = ", ".join(quote_lit(k) for k, v in asam.items() if v == stay["from"])
            value = (f"coalesce(_t_level_of_care, CASE WHEN _t_asam_level IN ({levels}) AND {planned} > "
                     f"{int(stay['over_days'])} THEN {quote_lit(stay['to'])} ELSE CASE _t_asam_level {whens} END END)")
        elif f.name == "age_band" and "age" in names:
            bands = " ".join(f"WHEN _t_age BETWEEN {lo} AND {hi} THEN '{b}'" for lo, hi, b in AGE_BANDS)
            value = f"coalesce(_t_age_band, CASE {bands} END)"
        final.append(f"{value} AS {quote_ident(f.name)}")
        final.append(f"_bad_{f.name}")
        if f.name in alternatives:
            final.append(f"_src_{f.name}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {BATCH} AS SELECT {', '.join(final)} FROM ({mid})")

    skip_required = set()
    if site is not None:
        skip_required.add("site_id")
    checks = generic_checks(contract, present, skip_required, date_formats)
    if contract.has_check("asam_unmapped") and "asam_level" in names:
        c = contract.check("asam_unmapped")
        checks.append(RowCheck(c.id, "level_of_care", c.severity, c.category,
                               "asam_level has no harmonized level_of_care",
                               "level_of_care IS NULL AND asam_level IS NOT NULL AND NOT _bad_asam_level "
                               f"AND asam_level IN ({', '.join(literal(v) for v in contract.field('asam_level').values)})"))
    if site is not None and contract.has_check("site_mismatch"):
        c = contract.check("site_mismatch")
        checks.append(RowCheck(c.id, "site_id", c.severity, c.category,
                               "site_id differs from the --site given", f"site_id <> {quote_lit(site)}"))
    return checks


def collect_row_failures(con: duckdb.DuckDBPyConnection, checks: list[RowCheck]) -> None:
    """Evaluate every row check in one scan of ``_lc_batch`` into ``_lc_failures``."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {FAILURES} (_row_number BIGINT, field VARCHAR, check_id VARCHAR, "
                "severity VARCHAR, category VARCHAR, reason VARCHAR)")
    if not checks:
        return
    con.execute("CREATE OR REPLACE TEMP TABLE _lc_checks (idx INTEGER, field VARCHAR, check_id VARCHAR, "
                "severity VARCHAR, category VARCHAR, reason VARCHAR)")
    con.executemany("INSERT INTO _lc_checks VALUES (?, ?, ?, ?, ?, ?)",
                    [[i, c.field, c.check_id, c.severity, c.category, c.reason] for i, c in enumerate(checks)])
    items = ", ".join(f"CASE WHEN coalesce({c.condition}, false) THEN {i} END" for i, c in enumerate(checks))
    # the list is built only for rows that fail something (most rows fail nothing, and the
    # filter first costs less than a list of every check for each row)
    failing = " OR ".join(f"coalesce({c.condition}, false)" for c in checks)
    con.execute(
        f"INSERT INTO {FAILURES} SELECT f._row_number, c.field, c.check_id, c.severity, c.category, c.reason "
        f"FROM (SELECT _row_number, unnest(list_filter([{items}], lambda x: x IS NOT NULL)) AS idx FROM {BATCH} "
        f"WHERE {failing}) AS f JOIN _lc_checks AS c USING (idx)"
    )


def row_hash_expr(contract: Contract, alias: str = "") -> str:
    """md5 of the stored fields as a JSON array: quoted strings and null, so that no two different
    rows give the same text (joined with '|' and '\\N' for null, 'a|b', 'c' read as 'a', 'b|c'
    and a null as the text '\\N')."""
    p = f"{alias}." if alias else ""
    parts = ", ".join(f"CAST({p}{quote_ident(f.name)} AS VARCHAR)" for f in contract.stored_fields)
    return f"md5(CAST(to_json([{parts}]) AS VARCHAR))"


def key_expr(contract: Contract, alias: str = "") -> str:
    """The record's key as text: each field but the last preceded by its length, so that no two
    different keys give the same text (the fields only joined with ':' made site 'a:b' with
    episode 'c' the key of site 'a' with episode 'b:c'). Null is ''. Text rather than a list of
    the fields: the checks join and group on it, and are several times slower on a list key."""
    p = f"{alias}." if alias else ""
    parts = [f"coalesce(CAST({p}{quote_ident(k)} AS VARCHAR), '')" for k in contract.key]
    return " || ':' || ".join([f"strlen({x}) || ':' || {x}" for x in parts[:-1]] + parts[-1:])


def run_cross_checks(con: duckdb.DuckDBPyConnection, contract: Contract, today: dt.date) -> None:
    """Run the contract's sql/checks queries on the rows without error failures."""
    # Row hashes (md5 over every stored field) are costly on a 1.7M-row file and only matter for
    # keys that repeat in the file or are already loaded, so only those rows get one.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _lc_okkeys AS SELECT _row_number, {key_expr(contract)} AS _key "
        f"FROM {BATCH} AS b WHERE NOT EXISTS "
        f"(SELECT 1 FROM {FAILURES} AS x WHERE x._row_number = b._row_number AND x.severity = 'error')"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _lc_existing AS SELECT {key_expr(contract, 'r')} AS _key, "
        f"{row_hash_expr(contract, 'r')} AS _row_hash FROM {contract.table} AS r "
        f"WHERE {key_expr(contract, 'r')} IN (SELECT _key FROM _lc_okkeys)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _lc_hashkeys AS SELECT _key FROM _lc_okkeys GROUP BY _key "
        "HAVING count(*) > 1 UNION SELECT _key FROM _lc_existing"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW _lc_ok AS SELECT b.*, k._key, CASE WHEN h._key IS NOT NULL "
        f"THEN {row_hash_expr(contract, 'b')} END AS _row_hash "
        f"FROM {BATCH} AS b JOIN _lc_okkeys AS k ON k._row_number = b._row_number "
        "LEFT JOIN _lc_hashkeys AS h ON h._key = k._key"
    )
    tol = contract.extra.get("window_tolerance")
    if tol:
        con.execute("CREATE OR REPLACE TEMP TABLE _lc_window_tolerance (window_days INTEGER, min_days INTEGER, "
                    "max_days INTEGER)")
        con.executemany("INSERT INTO _lc_window_tolerance VALUES (?, ?, ?)",
                        [[int(w), int(r[0]), int(r[1])] for w, r in tol.items()])
    for c in contract.checks:
        if not c.sql:
            continue
        sql = load_sql(c.sql)
        params = {"today": today} if "$today" in sql else None
        query = (f"INSERT INTO {FAILURES} SELECT DISTINCT q._row_number, ?, ?, ?, ?, "
                 f"coalesce(q.detail, ?) FROM ({sql}) AS q")
        head = [c.field or "", c.id, c.severity, c.category, c.description]
        if params:
            # named $today and positional ? cannot mix: inline the date as a typed literal
            query = query.replace("$today", f"DATE '{today.isoformat()}'")
        con.execute(query, head)
