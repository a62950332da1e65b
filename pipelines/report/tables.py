"""Report tables: disclosed rows of the results model in, :class:`Table` objects out.

Disclosure was applied once, when the analysis wrote the results model; a hidden cell is
None with its reason ("small" or "complementary"). Anything derived here (control limits,
funnel limits) is computed from cells that are shown, so it can never give a hidden cell back.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipelines.report.model import Table
from pipelines.results.warehouse_sections import ALL_LEVELS, level_order


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


@functools.cache
def _level_labels() -> dict[str, str]:
    from pipelines import contracts

    return {**contracts.level_labels(), ALL_LEVELS: "All levels"}


def level_label(v: Any) -> Any:
    """A level of care (or group) as the contract names it to readers ("IOP", "Residential
    (short-term)"); any other value (a site, a quarter) unchanged."""
    return _level_labels().get(v, v) if isinstance(v, str) else v


_SENTENCE_END = re.compile(r"(?<=[a-z0-9)'])\. (?=[A-Z(])")


def first_sentence(text: str | None, limit: int | None = None) -> str:
    """A description's first sentence, with its full stop; with ``limit``, cut at a word to at
    most that many characters and ended with ' …' (the full text is elsewhere)."""
    text = " ".join(str(text or "").split())
    if not text:
        return ""
    m = _SENTENCE_END.search(text)
    first = text[:m.start() + 1] if m else text
    first = first if first.endswith((".", "!", "?")) else first + "."
    if limit is not None and len(first) > limit:
        first = first[:limit].rsplit(" ", 1)[0].rstrip(",;:(") + " …"
    return first


def definition_labels(definitions: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {str(d.get("id")): str(d.get("label") or d.get("id")) for d in definitions}


def rates_table(
    shown: Sequence[Mapping[str, Any]], labels: Mapping[str, str],
    *, id: str, title: str, group_title: str = "level of care", note: str = "", level_labels: bool = True,
) -> Table:
    """One row per (definition, group) with counts, rate and interval, from disclosed rate rows;
    a level named by its contract label unless ``level_labels`` is False (machine-read files)."""
    cols = ["definition", "definition_id", "definition_version", "group", "numerator", "denominator",
            "rate", "ci_low", "ci_high", "ci_method"]
    order = {d: i for i, d in enumerate(labels)}
    idx = sorted(range(len(shown)), key=lambda i: (order.get(str(shown[i].get("definition_id")), 999),
                                                   str(shown[i].get("definition_id")),
                                                   level_order(shown[i].get("group"))))
    recs = [{**{c: shown[i].get(c) for c in cols},
             "definition": labels.get(str(shown[i].get("definition_id")), shown[i].get("definition_id")),
             "group": level_label(shown[i].get("group")) if level_labels else shown[i].get("group")}
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


def rate_text(r: Mapping[str, Any]) -> str | None:
    """A shown rate with its interval, as one cell: '43.1% (41.8% to 44.3%)'; None when hidden."""
    from pipelines.report import numbers

    if r.get("rate") is None:
        return None
    if r.get("ci_low") is None:
        return numbers.pct(r["rate"])
    return f"{numbers.pct(r['rate'])} ({numbers.pct_range(r['ci_low'], r['ci_high'])})"


def rate_grid(
    rows: Sequence[Mapping[str, Any]], row_of, col_of, *, id: str, title: str,
    row_columns: Mapping[str, str], note: str = "", col_order=None,
) -> Table:
    """Rates as a grid a reader compares across: one row per ``row_of(r)`` -> (sort key, {row
    column: value}), and per ``col_of(r)`` two columns, the rate with its 95% interval and the
    denominator ``n`` (a count, checked by the guard). A hidden rate shows the rule's marker; a
    rate over no one shows "–"."""
    grid: dict[Any, dict[str, Any]] = {}
    why: dict[Any, dict[str, Any]] = {}
    cols: list[str] = []
    for r in rows:
        key, rec = row_of(r)
        c = str(col_of(r))
        if c not in cols:
            cols.append(c)
        grid.setdefault(key, dict(rec))
        w = why.setdefault(key, {})
        grid[key][f"{c}|rate"] = rate_text(r)
        grid[key][f"{c}|n"] = r.get("denominator")
        reason = row_reason(r) if r.get("denominator") != 0 else None
        w[f"{c}|rate"] = reason if r.get("rate") is None else None
        w[f"{c}|n"] = reason if r.get("denominator") is None else None
    if col_order is not None:
        cols.sort(key=col_order)
    columns = [*row_columns, *(f"{c}|{k}" for c in cols for k in ("rate", "n"))]
    keys = sorted(grid)
    frame = pd.DataFrame([{c: grid[k].get(c) for c in columns} for k in keys], columns=columns)
    frame = frame.astype(object).where(frame.notna(), None)
    hidden = pd.DataFrame([{c: why[k].get(c) for c in columns} for k in keys], columns=columns, dtype=object)
    headers = dict(row_columns)
    for c in cols:
        headers[f"{c}|rate"] = f"{c}: rate (95% CI)"
        headers[f"{c}|n"] = f"{c}: n"
    n_cols = tuple(f"{c}|n" for c in cols)
    return Table(id=id, title=title, frame=frame, count_cols=n_cols, hidden=hidden,
                 formats={c: "int" for c in n_cols}, headers=headers, note=note, compact=True)


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
    frame = pd.DataFrame([{**{c: x.get(c) for c in cols}, "level_group": level_label(x.get("level_group"))}
                          for x in cohort], columns=cols)
    frame = frame.astype(object).where(frame.notna(), None)
    return Table(id="table-cohort", title="Who was served: discharges by level of care", frame=frame,
                 count_cols=("episodes", "persons"), hidden=_cell_reasons(cohort, ["episodes", "persons"]),
                 formats={"episodes": "int", "persons": "int", "sites": "int"},
                 headers={"level_group": "level of care", "persons": "people (distinct)",
                          "sites": "sites (programs)"})


def table_one(one: Mapping[str, Any] | None, *, compared_only: bool = False) -> Table | None:
    """Table 1 (disclosed cells of the results model): n and column % by level of care, mean
    (SD) for continuous covariates, SMD arm vs reference before adjustment. ``compared_only``:
    the two levels compared and all levels only (the PDF's table; the full one is a detail)."""
    if not one or not one.get("cells"):
        return None
    arm, reference = one["arm"], one["reference"]
    cells = one["cells"]
    levels = list(dict.fromkeys(c["level_group"] for c in cells if c["level_group"] != "all"))
    levels.sort(key=level_order)
    if compared_only:
        levels = [lv for lv in levels if lv in (arm, reference)]
    if any(c["level_group"] == "all" for c in cells):
        levels.append("all")
    cells = [c for c in cells if c["level_group"] in levels]
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
    name = {lv: "All levels" if lv == "all" else str(level_label(lv)) for lv in levels}
    headers = {f"n_{lv}": f"{name[lv]} n" for lv in levels}
    headers.update({f"pct_{lv}": f"{name[lv]} %" for lv in levels})
    headers["smd"] = f"SMD {level_label(arm)} vs {level_label(reference)}"
    return Table(
        id="table-one-compared" if compared_only else "table-one",
        title=(f"Table 1: baseline characteristics, {level_label(arm)} and {level_label(reference)}" if compared_only
               else "Table 1: baseline characteristics by level of care"), frame=frame, detail=not compared_only, compact=compared_only,
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
                                                                     r.get("definition_id")),
             "arm": level_label(r.get("arm")), "reference": level_label(r.get("reference"))} for r in rows]
    frame = pd.DataFrame(recs, columns=cols)
    hidden = pd.DataFrame({c: [row_reason(r) for r in rows] for c in ("estimate", "ci_low", "ci_high")},
                          dtype=object)
    return Table(id="table-comparisons", title="IOP vs residential: crude and adjusted", frame=frame,
                 hidden=hidden, formats={"estimate": "rd", "ci_low": "rd", "ci_high": "rd"},
                 headers={"definition_id": "id", "ci_low": "95% CI low", "ci_high": "95% CI high"},
                 note="Risk differences, arm minus reference, in percentage points (pp).")


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
