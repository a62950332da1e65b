"""Report tables: raw aggregates in, disclosure-controlled :class:`Table` objects out.

Anything derived (percentages, SMDs, control limits) is computed from cells that are already
shown, so a derived number can never give a hidden cell back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipelines import disclosure
from pipelines.report.model import Table

# group_by spellings: the analysis writes short labels, the mart has column names
SITE_KEYS = ("site", "site_id")
QUARTER_KEYS = ("quarter", "discharge_quarter")
LEVEL_KEYS = ("level_group", "level_of_care")


_LEVEL_RANK = {k: i for i, k in enumerate(dict.fromkeys(
    ("outpatient", "iop", "php", "residential", "residential_short", "residential_long", "residential_hospital",
     "inpatient", "detox")))}


def level_order(v: Any) -> tuple:
    return (_LEVEL_RANK.get(v, 99), str(v))


def _hidden_mask(before: Sequence[Mapping], after: Sequence[Mapping], cols: Sequence[str]) -> pd.DataFrame:
    """True where disclosure emptied a cell that had a value."""
    return pd.DataFrame(
        # hidden here, or hidden upstream (the analysis may have disclosed the rows already)
        [{c: a.get(c) is None and (b.get(c) is not None or bool(a.get("suppressed")))
          for c in cols} for b, a in zip(before, after)],
        columns=list(cols),
    )


def definition_labels(definitions: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {str(d.get("id")): str(d.get("label") or d.get("id")) for d in definitions}


def rates_table(
    raw: Sequence[Mapping[str, Any]], shown: Sequence[Mapping[str, Any]], labels: Mapping[str, str],
    *, id: str, title: str, group_title: str = "level of care", note: str = "",
) -> Table:
    """One row per (definition, group) with counts, rate and interval; ``raw`` and ``shown``
    are the same rows before and after disclosure."""
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
    hidden = _hidden_mask([raw[i] for i in idx], [shown[i] for i in idx],
                          ["numerator", "denominator", "rate", "ci_low", "ci_high"])
    return Table(
        id=id, title=title, frame=frame, count_cols=("numerator", "denominator"), hidden=hidden,
        formats={"numerator": "int", "denominator": "int", "rate": "pct", "ci_low": "pct", "ci_high": "pct"},
        headers={"group": group_title, "definition_id": "id", "definition_version": "version",
                 "ci_low": "95% CI low", "ci_high": "95% CI high", "ci_method": "interval"},
        note=note,
    )


def ledger_table(ledger: Sequence[Mapping[str, Any]], rule: str) -> Table:
    """Files seen, with row counts (rows are episodes or follow-ups: person-level counts)."""
    df = pd.DataFrame(ledger, columns=["file_name", "kind", "status", "rows_loaded", "rows_quarantined",
                                       "contract_version", "ingested_on"])
    df["ingested_on"] = df["ingested_on"].astype(str)
    df["_key"] = range(len(df))
    shown, hidden = disclosure.suppress_table(
        df, ["rows_loaded", "rows_quarantined"], groups="_key", margins="rows", total_col="rows_read", rule=rule)
    shown = shown.drop(columns="_key")
    cols = ["file_name", "kind", "status", "rows_read", "rows_loaded", "rows_quarantined", "contract_version",
            "ingested_on"]
    return Table(id="table-ledger", title="Files received (ingest ledger)", frame=shown[cols],
                 count_cols=("rows_read", "rows_loaded", "rows_quarantined"), hidden=hidden,
                 formats={c: "int" for c in ("rows_read", "rows_loaded", "rows_quarantined")})


def quarantine_table(quarantine: Sequence[Mapping[str, Any]], rule: str) -> Table:
    recs = [{"check_id": q["check_id"], "field": q["field"], "reason": str(q.get("reason") or "")[:200],
             "n_rows": disclosure.shown_count(q["n_rows"], rule), "files": q.get("files")} for q in quarantine]
    frame = pd.DataFrame(recs, columns=["check_id", "field", "reason", "n_rows", "files"])
    hidden = pd.DataFrame({"n_rows": [r["n_rows"] is None for r in recs]})
    return Table(id="table-quarantine", title="Quarantined rows by check", frame=frame,
                 count_cols=("n_rows",), hidden=hidden, formats={"n_rows": "int", "files": "int"},
                 headers={"n_rows": "rows", "files": "files (count of files)"})


def cohort_table(cohort: Sequence[Mapping[str, Any]], rule: str) -> Table:
    df = pd.DataFrame(sorted(cohort, key=lambda r: level_order(r["level_group"])),
                      columns=["level_group", "episodes", "persons", "sites"])
    shown, hidden = disclosure.suppress_table(df[["level_group", "episodes"]], ["episodes"], margins="cols",
                                              total_label="all levels", rule=rule)
    # people per level are nearly the episodes: hidden wherever the episodes are
    persons = [None if hidden.loc[i, "episodes"] else disclosure.shown_count(v, rule)
               for i, v in enumerate(df["persons"])] + [None]
    shown["persons"] = pd.Series(persons, dtype="object")
    hidden["persons"] = [p is None and v is not None for p, v in zip(persons, list(df["persons"]) + [None])]
    shown["sites"] = pd.Series(list(df["sites"]) + [None], dtype="object")  # sites are programs, not people
    return Table(id="table-cohort", title="Who was served: discharges by level of care", frame=shown,
                 count_cols=("episodes", "persons"), hidden=hidden,
                 formats={"episodes": "int", "persons": "int", "sites": "int"},
                 headers={"level_group": "level of care", "persons": "people (distinct)",
                          "sites": "sites (programs)"})


def smd_binary(p1: float, p2: float) -> float | None:
    v = (p1 * (1 - p1) + p2 * (1 - p2)) / 2
    return (p1 - p2) / math.sqrt(v) if v > 0 else None


def smd_continuous(m1: float, s1: float, m2: float, s2: float) -> float | None:
    v = (s1 * s1 + s2 * s2) / 2
    return (m1 - m2) / math.sqrt(v) if v > 0 else None


def table_one(
    categorical: Sequence[Mapping[str, Any]], continuous: Sequence[Mapping[str, Any]], rule: str,
    arm: str = "iop", reference: str = "residential",
) -> Table | None:
    """Table 1: counts and column percentages by level of care; SMD ``arm`` vs ``reference``."""
    if not categorical and not continuous:
        return None
    levels = sorted({r["level_group"] for r in [*categorical, *continuous]}, key=level_order)
    recs: list[dict[str, Any]] = []
    hid: list[dict[str, bool]] = []
    if categorical:
        wide = (pd.DataFrame(categorical).pivot_table(index=["covariate", "category"], columns="level_group",
                                                      values="n", aggfunc="sum", fill_value=0, sort=False)
                .reindex(columns=levels, fill_value=0).reset_index())
        wide.columns.name = None
        shown, hidden = disclosure.suppress_table(wide, levels, groups="covariate", total_col="all", rule=rule)
        for cov, sub in shown.groupby("covariate", sort=False):
            idx = list(sub.index)
            totals = shown.loc[idx[-1]]
            for i in idx:
                row = shown.loc[i]
                rec: dict[str, Any] = {"covariate": cov, "category": row["category"]}
                h: dict[str, bool] = {}
                pct = {}
                for lv in levels + ["all"]:
                    n, tot = row[lv], totals[lv]
                    rec[f"n_{lv}"] = n
                    h[f"n_{lv}"] = bool(hidden.loc[i, lv])
                    pct[lv] = n / tot if n is not None and tot not in (None, 0) else None
                    rec[f"pct_{lv}"] = pct[lv] if i != idx[-1] else None
                    h[f"pct_{lv}"] = bool(hidden.loc[i, lv] or hidden.loc[idx[-1], lv]) and i != idx[-1]
                ok = i != idx[-1] and pct.get(arm) is not None and pct.get(reference) is not None
                rec["smd"] = smd_binary(pct[arm], pct[reference]) if ok else None
                recs.append(rec)
                hid.append(h)
    for cov in dict.fromkeys(r["covariate"] for r in continuous):
        rows = {r["level_group"]: r for r in continuous if r["covariate"] == cov}
        rec = {"covariate": cov, "category": "mean (SD)"}
        h = {}
        for lv in levels:
            r = rows.get(lv, {})
            n = disclosure.shown_count(r.get("n"), rule)
            ok = n is not None and disclosure.statistic_allowed(r.get("n"), rule) and r.get("mean") is not None
            rec[f"n_{lv}"] = n
            rec[f"pct_{lv}"] = f"{r['mean']:.1f} ({(r.get('sd') or 0):.1f})" if ok else None
            h[f"n_{lv}"] = n is None and bool(r.get("n"))
            h[f"pct_{lv}"] = not ok and bool(r.get("n"))
        a, b = rows.get(arm, {}), rows.get(reference, {})
        ok = all(disclosure.statistic_allowed(x.get("n"), rule) and x.get("sd") is not None for x in (a, b))
        rec["smd"] = smd_continuous(a["mean"], a["sd"], b["mean"], b["sd"]) if ok else None
        recs.append(rec)
        hid.append(h)
    cols = ["covariate", "category"]
    for lv in levels + (["all"] if categorical else []):
        cols += [f"n_{lv}", f"pct_{lv}"]
    cols.append("smd")
    frame = pd.DataFrame(recs).reindex(columns=cols)
    frame = frame.astype(object).where(frame.notna(), None)
    hidden = pd.DataFrame([{c: bool(h.get(c, False)) for c in cols} for h in hid], columns=cols)
    headers = {f"n_{lv}": f"{lv} n" for lv in levels + ["all"]}
    headers.update({f"pct_{lv}": f"{lv} %" for lv in levels + ["all"]})
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
    hidden = pd.DataFrame({c: [bool(r.get("suppressed")) for r in rows] for c in ("estimate", "ci_low", "ci_high")})
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
