"""Rates of every definition by group, with confidence intervals.

Counting happens in DuckDB (one ``GROUPING SETS`` query over the analysis frame); Python only
turns the per-group counts into rates and intervals.

Interval rule (95%): the Wilson score interval, except Clopper-Pearson (exact) when the
denominator is small — n < 30, or fewer than 5 successes or fewer than 5 failures — where the
Wilson interval's coverage is least reliable. ``ci_method`` names the one used.

``suppressed`` is always False here: small-cell suppression belongs to
``pipelines/disclosure.py``, which rewrites these rows before anything leaves the warehouse
(see ``pipelines.analysis.command.analyze(disclose=...)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipelines.definitions.evaluate import frame_sql, not_applicable
from pipelines.definitions.registry import Definition

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import polars as pl

CONFIDENCE = 0.95
# group_by label -> mart_episodes column ("all" = overall, no column)
GROUP_COLUMNS: dict[str, str] = {
    "level_of_care": "level_of_care",
    "level_group": "level_group",
    "site": "site_id",
    "quarter": "discharge_quarter",
}
DEFAULT_BY = ("level_of_care", "level_group")
RATE_COLUMNS = (
    "definition_id", "definition_version", "group_by", "group", "numerator", "denominator",
    "rate", "ci_low", "ci_high", "ci_method", "suppressed", "note",
)
WILSON, EXACT = "wilson", "clopper-pearson"
EXACT_BELOW_N, EXACT_BELOW_CELL = 30, 5


def uses_exact(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    import numpy as np

    x, n = np.asarray(x), np.asarray(n)
    return (n < EXACT_BELOW_N) | (x < EXACT_BELOW_CELL) | (n - x < EXACT_BELOW_CELL)


def intervals(x: Sequence[int], n: Sequence[int]) -> tuple[list, list, list, list]:
    """(rate, ci_low, ci_high, ci_method) lists; None where the denominator is 0."""
    import numpy as np

    from pipelines.stats.proportions import clopper_pearson_interval, wilson_interval

    x_arr, n_arr = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    ok = n_arr > 0
    safe_n = np.where(ok, n_arr, 1.0)
    exact = uses_exact(x_arr, n_arr)
    w_lo, w_hi = wilson_interval(x_arr, safe_n, CONFIDENCE)
    e_lo, e_hi = clopper_pearson_interval(x_arr, safe_n, CONFIDENCE)
    lo, hi = np.where(exact, e_lo, w_lo), np.where(exact, e_hi, w_hi)
    rate = x_arr / safe_n
    method = np.where(exact, EXACT, WILSON)

    def keep(values):
        return [v.item() if good else None for v, good in zip(values, ok, strict=True)]

    return keep(rate), keep(lo), keep(hi), keep(method)


def _validate_by(by: Sequence[str]) -> list[str]:
    """Grouping labels: one of GROUP_COLUMNS, or several joined by commas
    (``level_group,quarter``: one row per combination, its group ``iop|2026Q3``)."""
    from pipelines.errors import UserError

    labels = []
    for label in by:
        for part in label.split(","):
            if part not in GROUP_COLUMNS:
                raise UserError(f"--by: unknown grouping {part!r} (choose from {', '.join(GROUP_COLUMNS)})")
        if label not in labels:
            labels.append(label)
    return labels


def _label_columns(label: str) -> list[str]:
    return [GROUP_COLUMNS[part] for part in label.split(",")]


def rates(
    con: duckdb.DuckDBPyConnection,
    definitions: Sequence[Definition],
    by: Sequence[str] = DEFAULT_BY,
    *,
    frame: pl.DataFrame | None = None,
    where: str = "",
    where_params: Sequence[object] = (),
) -> pl.DataFrame:
    """Rates of ``definitions`` overall (group_by "all") and by each grouping in ``by``.

    Counts come from ``frame`` (an analysis frame from ``evaluate``) when given, otherwise
    from the analysis-frame query run inside DuckDB (nothing row-level reaches Python) over
    the mart's rows that meet ``where`` (a condition with ``where_params``; the reporting
    period), and applicability is judged on those rows.
    Definitions that are not applicable to the data give one "all" row with denominator 0,
    rate null and a note naming the missing fields.
    """
    import polars as pl

    labels = _validate_by(by)
    inapplicable = not_applicable(con, definitions, where=where, where_params=where_params)
    applicable = [d for d in definitions if not inapplicable.get(d.id)]
    rows: list[dict[str, Any]] = []
    if applicable:
        counts = _group_counts(con, applicable, labels, inapplicable, frame, where, where_params)
        rows.extend(_rate_rows(counts, applicable, labels))
    for d in definitions:
        if inapplicable.get(d.id):
            rows.append({
                "definition_id": d.id, "definition_version": d.version, "group_by": "all",
                "group": None, "numerator": 0, "denominator": 0, "rate": None, "ci_low": None,
                "ci_high": None, "ci_method": None, "suppressed": False,
                "note": "not applicable: no data for " + ", ".join(inapplicable[d.id]),
            })
    order = {d.id: i for i, d in enumerate(definitions)}
    by_order = {label: i for i, label in enumerate(["all", *labels])}
    rows.sort(key=lambda r: (order[r["definition_id"]], by_order[r["group_by"]], r["group"] is None,
                             str(r["group"])))
    schema = {
        "definition_id": pl.Utf8, "definition_version": pl.Int64, "group_by": pl.Utf8,
        "group": pl.Utf8, "numerator": pl.Int64, "denominator": pl.Int64, "rate": pl.Float64,
        "ci_low": pl.Float64, "ci_high": pl.Float64, "ci_method": pl.Utf8, "suppressed": pl.Boolean,
        "note": pl.Utf8,
    }
    return pl.DataFrame(rows, schema=schema)


def _group_counts(
    con: duckdb.DuckDBPyConnection,
    definitions: Sequence[Definition],
    labels: Sequence[str],
    inapplicable: Mapping[str, Sequence[str]],
    frame: pl.DataFrame | None,
    where: str = "",
    where_params: Sequence[object] = (),
) -> list[tuple]:
    if frame is not None:
        source_sql, params = "select * from _levelcare_frame", []
        con.register("_levelcare_frame", frame)
        if where:
            source_sql += f" where {where}"
            params = list(where_params)
    else:
        source_sql, params = frame_sql(definitions, inapplicable, where=where, where_params=where_params)
    cols = list(dict.fromkeys(c for label in labels for c in _label_columns(label)))
    sets = ", ".join(["()"] + ["(" + ", ".join(f'"{c}"' for c in _label_columns(label)) + ")" for label in labels])
    flags = [f'grouping("{c}") AS "_g_{c}"' for c in cols]
    groups = [f'"{c}"' for c in cols]
    aggs = [f'sum("{d.id}")::BIGINT, count("{d.id}")' for d in definitions]
    # all identifiers are constants above or registry-checked ids
    sql = (
        f"with frame as ({source_sql}) "
        f"select {', '.join(flags + groups + aggs)} from frame "
        f"group by grouping sets ({sets})"
    )
    try:
        return con.execute(sql, params).fetchall()
    finally:
        if frame is not None:
            con.unregister("_levelcare_frame")


def _rate_rows(counts: list[tuple], definitions: Sequence[Definition], labels: Sequence[str]) -> list[dict]:
    cols = list(dict.fromkeys(c for label in labels for c in _label_columns(label)))
    by_columns = {frozenset(_label_columns(label)): label for label in labels}
    k = len(cols)
    keyed: list[tuple[str, Any, Definition, int, int]] = []
    for row in counts:
        flags, groups, aggs = row[:k], row[k:2 * k], row[2 * k:]
        # grouping() is 0 for the columns this grouping set groups by
        active = frozenset(cols[i] for i, f in enumerate(flags) if f == 0)
        if not active:
            group_by, group = "all", None
        else:
            group_by = by_columns[active]
            values = [groups[cols.index(c)] for c in _label_columns(group_by)]
            group = None if any(v is None for v in values) else "|".join(str(v) for v in values)
        for j, d in enumerate(definitions):
            keyed.append((group_by, group, d, int(aggs[2 * j] or 0), int(aggs[2 * j + 1])))
    rate, lo, hi, method = intervals([r[3] for r in keyed], [r[4] for r in keyed])
    rows = []
    for i, (group_by, group, d, x, n) in enumerate(keyed):
        rows.append({
            "definition_id": d.id, "definition_version": d.version, "group_by": group_by,
            "group": None if group is None else str(group), "numerator": x, "denominator": n,
            "rate": rate[i], "ci_low": lo[i], "ci_high": hi[i], "ci_method": method[i],
            "suppressed": False, "note": None if n else "denominator 0: empty population, or all excluded as missing",
        })
    return rows
