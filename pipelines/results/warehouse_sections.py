"""The parts of the results model read from the warehouse at analysis time, disclosed here.

Who was served (cohort), Table 1, the standardized instruments and the data quality evidence
(ledger, quarantine, validation reports) are aggregates of the warehouse for the period. They
are computed by ``analyze`` and disclosed once, here, so that the report and the exports
never open the warehouse (docs/results.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import disclosure
from pipelines.results import model as m
from pipelines.results.periods import Period, parse_quarter

if TYPE_CHECKING:
    import duckdb

# Baseline covariates of Table 1, in display order (those missing from the mart are skipped).
CATEGORICAL = (
    "age_band", "sex", "race", "ethnicity", "primary_substance", "co_occurring_mh",
    "has_prior_episodes", "employed_admit", "homeless_admit", "payer", "referral_source", "mat",
)
CONTINUOUS = ("prior_episodes", "use_days_admit", "phq9_admit", "gad7_admit")
INSTRUMENTS = ("phq9", "gad7")
ALL_LEVELS = "all levels"


def _dicts(cur) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _columns(con, table: str) -> set[str]:
    rows = con.execute("select column_name from information_schema.columns where table_name = ?", [table]).fetchall()
    return {r[0] for r in rows}


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}


# --------------------------------------------------------------------------- the period
def period_where(period: Period) -> tuple[str, list[Any]]:
    """The condition on ``mart_episodes`` rows of the period, and its parameters ("" = all)."""
    if not period.asked:
        return "", []
    y1, q1 = parse_quarter(period.first)
    y2, q2 = parse_quarter(period.last)
    teds_first, teds_last = (y1 if q1 == 1 else y1 + 1), (y2 if q2 == 4 else y2 - 1)
    sql = ("(discharge_quarter between ? and ? or (discharge_quarter is null and source = 'teds-d' "
           "and discharge_year between ? and ?))")
    return sql, [period.first, period.last, teds_first, teds_last]


def _and(where: str, extra: str) -> str:
    return f"where ({where}) and {extra}" if where else f"where {extra}"


def period_info(con: duckdb.DuckDBPyConnection, period: Period, where: str, params: list[Any],
                data_end_quarter: str | None) -> m.PeriodInfo:
    from pipelines.results.periods import quarters_between, trend_window

    first, last = con.execute(
        f"select min(discharge_quarter), max(discharge_quarter) from mart_episodes "
        f"{_and(where, 'discharge_quarter is not null')}", params).fetchone()
    years = [int(r[0]) for r in con.execute(
        f"select distinct discharge_year from mart_episodes {_and(where, 'source = ' + chr(39) + 'teds-d' + chr(39))} "
        "and discharge_year is not null order by 1", params).fetchall()]
    if period.asked:
        quarters = period.quarters()
    else:
        quarters = quarters_between(first, last) if first else []
    trend = trend_window(quarters, last)
    return m.PeriodInfo(
        asked=period.text(), first_quarter=quarters[0] if quarters else None,
        last_quarter=quarters[-1] if quarters else None, quarters=quarters, first_data_quarter=first,
        last_data_quarter=last, data_end_quarter=data_end_quarter, teds_years=years, trend_quarters=trend,
        label=period_label(quarters, first, last, years, period.asked))


def period_label(quarters: Sequence[str], first: str | None, last: str | None, teds_years: Sequence[int],
                 asked: bool) -> str:
    """The period in words, saying where the data are shorter than the period asked."""
    def span(a: str | None, b: str | None) -> str:
        return "no quarter" if a is None else a if a == b else f"{a} to {b}"

    parts = []
    if quarters:
        text = span(quarters[0], quarters[-1])
        if asked and (first, last) != (quarters[0], quarters[-1]):
            text += f" (discharges with dates: {span(first, last)})" if first else " (no dated discharges)"
        parts.append(text)
    if teds_years:
        y = teds_years
        parts.append(f"TEDS-D discharge years {y[0]}" + (f"-{y[-1]}" if y[-1] != y[0] else ""))
    return "; ".join(parts) if parts else "no discharges"


# --------------------------------------------------------------------------- who was served
def cohort(con, where: str, params: list[Any], rule: disclosure.Rule) -> m.Cohort:
    import pandas as pd

    cols = _columns(con, "mart_episodes")
    base = f"from mart_episodes {_and(where, 'level_group is not null')}"
    sources = [r[0] for r in con.execute(f"select distinct source {base} order by 1", params).fetchall()]
    sites = con.execute(f"select count(distinct site_id) {base}", params).fetchone()[0]
    persons = "count(distinct person_id)" if "person_id" in cols else "null"
    rows = _dicts(con.execute(
        f"select level_group, count(*) as episodes, {persons} as persons, count(distinct site_id) as sites "
        f"{base} group by level_group order by level_group", params))
    if not rows:
        return m.Cohort(rows=[], sources=sources, sites=int(sites or 0))
    rows.sort(key=lambda r: level_order(r["level_group"]))
    df = pd.DataFrame({"level_group": [r["level_group"] for r in rows], "episodes": [r["episodes"] for r in rows]})
    shown, reasons = disclosure.suppress_table_reasons(df, ["episodes"], margins="cols", total_label=ALL_LEVELS,
                                                       rule=rule)
    out = []
    for i in range(len(shown)):
        raw = rows[i] if i < len(rows) else None
        why = reasons.loc[i, "episodes"]
        episodes = shown.loc[i, "episodes"]
        # people per level are nearly the episodes: hidden wherever the episodes are
        if raw is None:
            persons_n, persons_why = None, None
        elif why:
            persons_n, persons_why = None, why
        else:
            persons_n = disclosure.shown_count(raw["persons"], rule)
            persons_why = "small" if persons_n is None and raw["persons"] else None
        out.append(m.CohortRow(level_group=str(shown.loc[i, "level_group"]),
                               episodes=None if episodes is None else int(episodes), persons=persons_n,
                               sites=raw["sites"] if raw is not None else int(sites or 0),
                               suppression={k: v for k, v in (("episodes", why), ("persons", persons_why)) if v}))
    return m.Cohort(rows=out, sources=sources, sites=int(sites or 0))


_LEVEL_RANK = {k: i for i, k in enumerate(
    ("outpatient", "iop", "php", "residential", "residential_short", "residential_long", "residential_hospital",
     "inpatient", "detox"))}


def level_order(v: Any) -> tuple:
    return (_LEVEL_RANK.get(v, 99), str(v))


def smd_binary(p1: float, p2: float) -> float | None:
    v = (p1 * (1 - p1) + p2 * (1 - p2)) / 2
    return (p1 - p2) / v ** 0.5 if v > 0 else None


def smd_continuous(m1: float, s1: float, m2: float, s2: float) -> float | None:
    v = (s1 * s1 + s2 * s2) / 2
    return (m1 - m2) / v ** 0.5 if v > 0 else None


def table_one(con, where: str, params: list[Any], rule: disclosure.Rule, arm: str, reference: str
              ) -> m.TableOne | None:
    """Table 1: counts and column shares by level group (and all), means (SD); SMD arm vs
    reference computed from the shown cells only."""
    import pandas as pd

    cols = _columns(con, "mart_episodes")
    base = f"from mart_episodes {_and(where, 'level_group is not null')}"
    categorical, continuous = [], []
    for cov in CATEGORICAL:
        if cov in cols:
            categorical += [{"covariate": cov, **row} for row in _dicts(con.execute(
                f'select coalesce(cast("{cov}" as varchar), \'missing\') as category, level_group, '
                f"count(*) as n {base} group by 1, 2 order by 1, 2", params))]
    for cov in CONTINUOUS:
        if cov in cols:
            continuous += [{"covariate": cov, **row} for row in _dicts(con.execute(
                f'select level_group, count("{cov}") as n, avg("{cov}") as mean, stddev_samp("{cov}") as sd '
                f"{base} group by 1 order by 1", params))]
    if not categorical and not continuous:
        return None
    levels = sorted({r["level_group"] for r in [*categorical, *continuous]}, key=level_order)
    cells: list[m.TableOneCell] = []
    smds: list[m.TableOneSmd] = []
    if categorical:
        wide = (pd.DataFrame(categorical).pivot_table(index=["covariate", "category"], columns="level_group",
                                                      values="n", aggfunc="sum", fill_value=0, sort=False)
                .reindex(columns=levels, fill_value=0).reset_index())
        wide.columns.name = None
        shown, reasons = disclosure.suppress_table_reasons(wide, levels, groups="covariate", total_col="all",
                                                           total_label="total", rule=rule)
        for cov, sub in shown.groupby("covariate", sort=False):
            idx = list(sub.index)
            total_i = idx[-1]
            for i in idx:
                share = {}
                for lv in [*levels, "all"]:
                    n, tot = shown.loc[i, lv], shown.loc[total_i, lv]
                    n_why = reasons.loc[i, lv] or None
                    is_total = i == total_i
                    share[lv] = n / tot if not is_total and n is not None and tot not in (None, 0) else None
                    stat_why = None
                    if not is_total and share[lv] is None and (n_why or reasons.loc[total_i, lv]):
                        stat_why = n_why or reasons.loc[total_i, lv]
                    cells.append(m.TableOneCell(covariate=cov, category=str(shown.loc[i, "category"]),
                                                level_group=lv, n=None if n is None else int(n), share=share[lv],
                                                n_suppression=n_why, stat_suppression=stat_why))
                if i != total_i:
                    ok = share.get(arm) is not None and share.get(reference) is not None
                    smds.append(m.TableOneSmd(covariate=cov, category=str(shown.loc[i, "category"]),
                                              smd=smd_binary(share[arm], share[reference]) if ok else None))
    for cov in dict.fromkeys(r["covariate"] for r in continuous):
        rows = {r["level_group"]: r for r in continuous if r["covariate"] == cov}
        for lv in levels:
            r = rows.get(lv, {})
            n = disclosure.shown_count(r.get("n"), rule)
            ok = n is not None and disclosure.statistic_allowed(r.get("n"), rule) and r.get("mean") is not None
            cells.append(m.TableOneCell(
                covariate=cov, category="mean (SD)", level_group=lv, n=n, share=None,
                mean=r["mean"] if ok else None, sd=(r.get("sd") if ok else None),
                n_suppression="small" if n is None and r.get("n") else None,
                stat_suppression="small" if not ok and r.get("n") else None))
        a, b = rows.get(arm, {}), rows.get(reference, {})
        ok = all(disclosure.statistic_allowed(x.get("n"), rule) and x.get("sd") is not None for x in (a, b))
        smds.append(m.TableOneSmd(covariate=cov, category="mean (SD)",
                                  smd=smd_continuous(a["mean"], a["sd"], b["mean"], b["sd"]) if ok else None))
    return m.TableOne(arm=arm, reference=reference, cells=cells, smd=smds)


def instruments(con, where: str, params: list[Any], rule: disclosure.Rule) -> list[m.InstrumentRow]:
    """Standardized instruments by level group: people with both an admission and a discharge
    score, and the two means (Joint Commission CTS.03.01.09 EP3)."""
    import pandas as pd

    cols = _columns(con, "mart_episodes")
    rows: list[dict[str, Any]] = []
    for inst in INSTRUMENTS:
        a, d = f"{inst}_admit", f"{inst}_discharge"
        if a in cols and d in cols:
            rows += [{"instrument": inst, **r} for r in _dicts(con.execute(
                f'select level_group, count(*) as n, avg("{a}") as mean_admit, avg("{d}") as mean_discharge '
                f'from mart_episodes {_and(where, "level_group is not null")} and "{a}" is not null '
                f'and "{d}" is not null group by 1 order by 1', params))]
    if not rows:
        return []
    rows.sort(key=lambda r: (r["instrument"], level_order(r["level_group"])))
    # n by level adds up to a total that other outputs show: protect it like any cross-table
    df = pd.DataFrame({"instrument": [x["instrument"] for x in rows],
                       "level_group": [x["level_group"] for x in rows], "n": [x["n"] for x in rows]})
    shown, reasons = disclosure.suppress_table_reasons(df, ["n"], groups="instrument", margins="cols",
                                                       total_label="\0total", rule=rule)
    keep = shown["level_group"] != "\0total"
    out = []
    for x, n, why in zip(rows, list(shown.loc[keep, "n"]), list(reasons.loc[keep, "n"]), strict=True):
        ok = n is not None and disclosure.statistic_allowed(x["n"], rule)
        out.append(m.InstrumentRow(instrument=x["instrument"], level_group=x["level_group"],
                                   n=None if n is None else int(n), mean_admit=x["mean_admit"] if ok else None,
                                   mean_discharge=x["mean_discharge"] if ok else None,
                                   suppression=(why or None) if n is None else (None if ok else "small")))
    return out


# --------------------------------------------------------------------------- data quality
def data_quality(con, docs_root: Path, rule: disclosure.Rule) -> m.DataQuality:
    """The ledger (every file seen), quarantine reasons by check, and each loaded file's
    validation report (levelcare's checks and great-expectations) with its Data Docs."""
    import pandas as pd

    from pipelines.ingest.core import current_relation

    have = _tables(con)
    if "ingest_ledger" not in have:
        return m.DataQuality()
    ledger = _dicts(con.execute(
        "select file_sha256, file_name, kind, status, rows_read, rows_loaded, rows_quarantined, contract_version, "
        "cast(cast(ingested_at as date) as varchar) as ingested_on from ingest_ledger order by ingested_at, file_name"))
    ledger_rows: list[m.LedgerRow] = []
    if ledger:
        df = pd.DataFrame({"_key": range(len(ledger)), "rows_loaded": [x["rows_loaded"] for x in ledger],
                           "rows_quarantined": [x["rows_quarantined"] for x in ledger]})
        shown, reasons = disclosure.suppress_table_reasons(df, ["rows_loaded", "rows_quarantined"], groups="_key",
                                                           margins="rows", total_col="rows_read", rule=rule)
        for i, x in enumerate(ledger):
            counts = {c: shown.loc[i, c] for c in ("rows_read", "rows_loaded", "rows_quarantined")}
            ledger_rows.append(m.LedgerRow(
                file_name=x["file_name"], file_sha256=x["file_sha256"], kind=x["kind"], status=x["status"],
                **{c: None if v is None else int(v) for c, v in counts.items()},
                contract_version=x["contract_version"], ingested_on=x["ingested_on"],
                suppression={c: reasons.loc[i, c] for c in counts if reasons.loc[i, c]}))
    quarantine = []
    if "ingest_quarantine" in have:
        # grouped by check: never a row number, never a value
        for q in _dicts(con.execute(
                "select check_id, field, min(reason) as reason, count(*) as n_rows, count(distinct file_sha256) "
                f"as files from {current_relation(con, 'ingest_quarantine')} where superseded_by is null "
                "group by check_id, field order by n_rows desc, check_id, field")):
            n = disclosure.shown_count(q["n_rows"], rule)
            quarantine.append(m.QuarantineRow(check_id=q["check_id"], field=q["field"],
                                              reason=str(q["reason"] or "")[:200], n_rows=n, files=q["files"],
                                              suppression="small" if n is None and q["n_rows"] else None))
    validation = _validation([x for x in ledger if x["status"] in ("loaded", "partial")], docs_root, rule)
    return m.DataQuality(ledger=ledger_rows, quarantine=quarantine, validation=validation)


def _validation(files: Sequence[dict[str, Any]], docs_root: Path, rule: disclosure.Rule) -> m.Validation:
    out = m.Validation()
    for f in files:
        folder = Path(docs_root) / str(f["file_sha256"])[:16]
        try:
            doc = json.loads((folder / "validation.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            out.missing.append(str(f["file_name"]))
            continue
        ge = doc.get("great_expectations") or {}
        docs = folder / "index.html"
        out.files.append(m.ValidationFile(
            file_name=f["file_name"], file_sha256=f["file_sha256"], suite=ge.get("suite"),
            rows_validated=disclosure.shown_count(ge.get("rows_validated"), rule), sampled=ge.get("sampled"),
            success=ge.get("success"),
            data_docs=str(docs.resolve()) if docs.is_file() else None))
        found = [("levelcare", c.get("check_id"), c.get("category"), c.get("severity"), c.get("status"),
                  c.get("failing_rows")) for c in doc.get("checks") or []]
        found += [("great_expectations", e.get("check_id"), e.get("category"), e.get("severity"), e.get("status"),
                   e.get("unexpected_count")) for e in ge.get("expectations") or []]
        for source, check_id, category, severity, status, failing in found:
            n = disclosure.shown_count(failing, rule)
            out.checks.append(m.ValidationCheck(
                file_name=f["file_name"], file_sha256=f["file_sha256"], source=source, check_id=str(check_id),
                category=category, severity=severity, status=str(status), failing_rows=n,
                suppression="small" if n is None and failing else None))
    return out
