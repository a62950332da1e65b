"""Report tables: disclosed rows of the results model in, :class:`Table` objects out.

Disclosure was applied once, when the analysis wrote the results model; a hidden cell is
None with its reason ("small" or "complementary"). Anything derived here (control limits,
funnel limits) is computed from cells that are shown, so it can never give a hidden cell back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipelines.report.model import Table
from pipelines.results.warehouse_sections import level_order


def row_reason(row: Mapping[str, Any]) -> str | None:
    """Why a disclosed row (a rate, a comparison) is hidden: its ``suppression`` ("small" when
    the row does not say); None when it is shown."""
    return (row.get("suppression") or "small") if row.get("suppressed") else None


def _reasons(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> pd.DataFrame:
    """Why each empty cell of disclosed rate-like rows is empty (None where the cell is shown or
    has no value)."""
    return pd.DataFrame(
        [{c: row_reason(r) if r.get(c) is None else None for c in cols} for r in rows],
        columns=list(cols), dtype=object,
    )


def definition_labels(definitions: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {str(d.get("id")): str(d.get("label") or d.get("id")) for d in definitions}


def rates_table(
    shown: Sequence[Mapping[str, Any]], labels: Mapping[str, str],
    *, id: str, title: str, group_title: str = "level of care", note: str = "",
) -> Table:
    """One row per (definition, group) with counts, rate and interval, from disclosed rate rows."""
    cols = ["definition", "definition_id", "definition_version", "group", "numerator", "denominator",
            "rate", "ci_low", "ci_high", "ci_method"]
    order = {d: i for i, d in enumerate(labels)}
    idx = sorted(range(len(shown)), key=lambda i: (order.get(str(shown[i].get("definition_id")), 999),
                                                   str(shown[i].get("definition_id")),
                                                   level_order(shown[i].get("group"))))
    recs = [{**{c: shown[i].get(c) for c in cols},
             "definition": labels.get(str(shown[i].get("definition_id")), shown[i].get("definition_id"))}
            for i in idx]
    frame = pd.DataFrame(recs, columns=cols)
    hidden = _reasons([shown[i] for i in idx], ["numerator", "denominator", "rate", "ci_low", "ci_high"])
    return Table(
        id=id, title=title, frame=frame, count_cols=("numerator", "denominator"), hidden=hidden,
        formats={"numerator": "int", "denominator": "int", "rate": "pct", "ci_low": "pct", "ci_high": "pct"},
        headers={"group": group_title, "definition_id": "id", "definition_version": "version",
                 "ci_low": "95% CI low", "ci_high": "95% CI high", "ci_method": "interval"},
        note=note,
    )


def _cell_reasons(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> pd.DataFrame:
    """Hidden cells of rows whose ``suppression`` maps a column to its reason."""
    return pd.DataFrame([{c: (r.get("suppression") or {}).get(c) for c in cols} for r in rows],
                        columns=list(cols), dtype=object)


def ledger_table(ledger: Sequence[Mapping[str, Any]]) -> Table:
    """Files seen, with row counts (rows are episodes or follow-ups: person-level counts)."""
    cols = ["file_name", "kind", "status", "rows_read", "rows_loaded", "rows_quarantined", "contract_version",
            "ingested_on"]
    frame = pd.DataFrame([{c: x.get(c) for c in cols} for x in ledger], columns=cols)
    frame = frame.astype(object).where(frame.notna(), None)
    return Table(id="table-ledger", title="Files received (ingest ledger)", frame=frame,
                 count_cols=("rows_read", "rows_loaded", "rows_quarantined"),
                 hidden=_cell_reasons(ledger, ["rows_read", "rows_loaded", "rows_quarantined"]),
                 formats={c: "int" for c in ("rows_read", "rows_loaded", "rows_quarantined")})


def quarantine_table(quarantine: Sequence[Mapping[str, Any]]) -> Table:
    cols = ["check_id", "field", "reason", "n_rows", "files"]
    frame = pd.DataFrame([{c: q.get(c) for c in cols} for q in quarantine], columns=cols)
    frame = frame.astype(object).where(frame.notna(), None)
    hidden = pd.DataFrame({"n_rows": [q.get("suppression") for q in quarantine]}, dtype=object)
    return Table(id="table-quarantine", title="Quarantined rows by check", frame=frame,
                 count_cols=("n_rows",), hidden=hidden, formats={"n_rows": "int", "files": "int"},
                 headers={"n_rows": "rows", "files": "files (count of files)"})


def cohort_table(cohort: Sequence[Mapping[str, Any]]) -> Table:
    cols = ["level_group", "episodes", "persons", "sites"]
    frame = pd.DataFrame([{c: x.get(c) for c in cols} for x in cohort], columns=cols)
    frame = frame.astype(object).where(frame.notna(), None)
    return Table(id="table-cohort", title="Who was served: discharges by level of care", frame=frame,
                 count_cols=("episodes", "persons"), hidden=_cell_reasons(cohort, ["episodes", "persons"]),
                 formats={"episodes": "int", "persons": "int", "sites": "int"},
                 headers={"level_group": "level of care", "persons": "people (distinct)",
                          "sites": "sites (programs)"})


def table_one(one: Mapping[str, Any] | None) -> Table | None:
    """Table 1 (disclosed cells of the results model): n and column % by level of care, mean
    (SD) for continuous covariates, SMD arm vs reference before adjustment."""
    if not one or not one.get("cells"):
        return None
    arm, reference = one["arm"], one["reference"]
    cells = one["cells"]
    levels = list(dict.fromkeys(c["level_group"] for c in cells if c["level_group"] != "all"))
    levels.sort(key=level_order)
    if any(c["level_group"] == "all" for c in cells):
        levels.append("all")
    smd = {(x["covariate"], x["category"]): x["smd"] for x in one.get("smd") or []}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    hid: dict[tuple[str, str], dict[str, Any]] = {}
    for c in cells:
        key = (c["covariate"], c["category"])
        rec = rows.setdefault(key, {"covariate": c["covariate"], "category": c["category"], "smd": smd.get(key)})
        h = hid.setdefault(key, {})
        lv = c["level_group"]
        rec[f"n_{lv}"] = c["n"]
        h[f"n_{lv}"] = c.get("n_suppression")
        if c["category"] == "mean (SD)":
            ok = c.get("mean") is not None
            rec[f"pct_{lv}"] = f"{c['mean']:.1f} ({(c.get('sd') or 0):.1f})" if ok else None
        else:
            rec[f"pct_{lv}"] = c.get("share")
        h[f"pct_{lv}"] = c.get("stat_suppression")
    cols = ["covariate", "category"]
    for lv in levels:
        cols += [f"n_{lv}", f"pct_{lv}"]
    cols.append("smd")
    frame = pd.DataFrame(list(rows.values())).reindex(columns=cols)
    frame = frame.astype(object).where(frame.notna(), None)
    hidden = pd.DataFrame([{c: h.get(c) for c in cols} for h in hid.values()], columns=cols, dtype=object)
    headers = {f"n_{lv}": f"{lv} n" for lv in levels}
    headers.update({f"pct_{lv}": f"{lv} %" for lv in levels})
    headers["smd"] = f"SMD {arm} vs {reference}"
    return Table(
        id="table-one", title="Table 1: baseline characteristics by level of care", frame=frame,
        count_cols=tuple(c for c in cols if c.startswith("n_")), hidden=hidden,
        formats={**{c: "int" for c in cols if c.startswith("n_")},
                 **{c: "pct" for c in cols if c.startswith("pct_")}, "smd": "num2"},
        headers=headers,
        note="Percentages are of the level's discharges; continuous rows show mean (SD) and n with a value. "
             "SMD: standardized mean difference before any adjustment (|SMD| > 0.1 = imbalance).",
    )


def comparisons_table(rows: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> Table:
    cols = ["definition", "definition_id", "arm", "reference", "estimand", "method", "estimate", "ci_low", "ci_high"]
    recs = [{**{c: r.get(c) for c in cols}, "definition": labels.get(str(r.get("definition_id")),
                                                                     r.get("definition_id"))} for r in rows]
    frame = pd.DataFrame(recs, columns=cols)
    hidden = pd.DataFrame({c: [row_reason(r) for r in rows] for c in ("estimate", "ci_low", "ci_high")},
                          dtype=object)
    return Table(id="table-comparisons", title="IOP vs residential: crude and adjusted", frame=frame,
                 hidden=hidden, formats={"estimate": "num3", "ci_low": "num3", "ci_high": "num3"},
                 headers={"definition_id": "id", "ci_low": "95% CI low", "ci_high": "95% CI high"},
                 note="Risk differences are arm minus reference on the 0-1 scale (0.05 = 5 percentage points).")


def simple_table(id: str, title: str, records: Sequence[Mapping[str, Any]], columns: Sequence[str],
                 formats: Mapping[str, str] | None = None, note: str = "",
                 headers: Mapping[str, str] | None = None) -> Table:
    """A table without person counts (statistics, definitions, methods)."""
    frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in records], columns=list(columns))
    frame = frame.astype(object).where(frame.notna(), None)
    return Table(id=id, title=title, frame=frame, formats=dict(formats or {}), note=note,
                 headers=dict(headers or {}))


def p_chart_limits(rows: Sequence[Mapping[str, Any]]) -> tuple[float | None, list[tuple[float, float] | None]]:
    """Centre line and 3-sigma limits of a p-chart from the *shown* rows (Montgomery, SQC ch. 7)."""
    shown = [r for r in rows if r.get("numerator") is not None and r.get("denominator")]
    if not shown:
        return None, [None] * len(rows)
    pbar = sum(r["numerator"] for r in shown) / sum(r["denominator"] for r in shown)
    limits = []
    for r in rows:
        n = r.get("denominator")
        if not n:
            limits.append(None)
            continue
        half = 3 * math.sqrt(pbar * (1 - pbar) / n)
        limits.append((max(0.0, pbar - half), min(1.0, pbar + half)))
    return pbar, limits


def funnel_limits(pbar: float, n: float, z: float) -> tuple[float, float]:
    half = z * math.sqrt(pbar * (1 - pbar) / n)
    return max(0.0, pbar - half), min(1.0, pbar + half)
