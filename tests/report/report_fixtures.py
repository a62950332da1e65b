"""A small results.json (docs/interfaces.md) and warehouse built from first principles.

Counts are chosen by hand; rates and Wilson intervals are computed here with the textbook
formula, independently of the package. Some cells are deliberately small (1-10) so that
disclosure control has work to do.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path

QUARTERS = ["2024Q4", "2025Q1", "2025Q2", "2025Q3", "2025Q4", "2026Q1", "2026Q2", "2026Q3"]
# (successes, episodes) per definition and level group; detox's 3 of 9 and php's 76 of 80
# (4 failures) must not be shown.
COUNTS = {
    "completion": {"iop": (120, 200), "php": (40, 80), "residential": (150, 300), "detox": (3, 9)},
    "retention_90d": {"iop": (90, 200), "php": (76, 80), "residential": (210, 300), "detox": (0, 9)},
    "abstinent_90d_itt": {"iop": (80, 180), "php": (30, 70), "residential": (110, 280), "detox": (2, 9)},
    "no_readmission_30d": {"iop": (170, 200), "php": (60, 80), "residential": (250, 300), "detox": (6, 9)},
    "phq9_response": {"iop": (90, 190), "php": (30, 66), "residential": (70, 125), "detox": (1, 6)},
}
LABELS = {"completion": "Treatment completed", "retention_90d": "Retained 90 days",
          "abstinent_90d_itt": "Abstinent at 90 days (missing = failure)",
          # formula-like on purpose: spreadsheets must get it as text
          "no_readmission_30d": "=HYPERLINK(\"x\") not readmitted in 30 days",
          "phq9_response": "PHQ-9 response (50% drop)"}
SITE_COUNTS = [(30, 50), (45, 80), (20, 60), (5, 8), (70, 100), (12, 40), (33, 55), (60, 90), (25, 45),
               (50, 70), (15, 30), (40, 62)]


def wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return c - h, c + h


def rate_row(d: str, group_by: str, group, k: int, n: int) -> dict:
    lo, hi = wilson(k, n) if n else (None, None)
    return {"definition_id": d, "definition_version": 1, "group_by": group_by, "group": group,
            "numerator": k, "denominator": n, "rate": k / n if n else None, "ci_low": lo, "ci_high": hi,
            "ci_method": "wilson", "suppressed": False, "note": None}


def make_results() -> dict:
    rates = []
    for d, by_level in COUNTS.items():
        rates.append(rate_row(d, "all", None, sum(k for k, _ in by_level.values()),
                              sum(n for _, n in by_level.values())))
        for g, (k, n) in by_level.items():
            rates.append(rate_row(d, "level_group", g, k, n))
        for qi, q in enumerate(QUARTERS):
            k, n = 30 + 2 * qi, 60 + qi
            rates.append(rate_row(d, "quarter", q, k, n))
            for g, share in (("iop", 0.4), ("residential", 0.6)):
                rates.append(rate_row(d, "level_group,quarter", f"{g}|{q}", round(k * share), round(n * share)))
    for i, (k, n) in enumerate(SITE_COUNTS):
        rates.append(rate_row("completion", "site", f"site-{i + 1:02d}", k, n))
    comparisons = []
    for d, by_level in COUNTS.items():
        (k1, n1), (k0, n0) = by_level["iop"], by_level["residential"]
        crude = k1 / n1 - k0 / n0
        se = math.sqrt(k1 / n1 * (1 - k1 / n1) / n1 + k0 / n0 * (1 - k0 / n0) / n0)
        common = {"definition_id": d, "definition_version": "1", "arm": "iop", "reference": "residential",
                  "missing_data": "as_defined", "n_arm": n1, "n_reference": n0, "population": "p1",
                  "risk_arm": k1 / n1, "risk_reference": k0 / n0}
        comparisons.append({**common, "method": "crude", "estimand": "rd", "estimate": crude,
                            "ci_low": crude - 1.96 * se, "ci_high": crude + 1.96 * se})
        comparisons.append({**common, "method": "iptw", "estimand": "rd", "estimate": crude + 0.02,
                            "ci_low": crude + 0.02 - 2.2 * se, "ci_high": crude + 0.02 + 2.2 * se})
        # a risk ratio row: not on the forest plot's risk-difference scale
        comparisons.append({**common, "method": "iptw", "estimand": "rr", "estimate": 1.3, "ci_low": 1.1,
                            "ci_high": 1.5})
    balance = [{"population": "p1", "covariate": c, "smd_before": u, "smd_after": a, "method": m}
               for c, u, a in (("age_band", 0.25, 0.04), ("co_occurring_mh", -0.31, 0.02),
                               ("phq9_admit", 0.42, -0.06), ("primary_substance", 0.12, 0.03))
               for m in ("iptw", "overlap")]
    survival = {}
    groups = {}
    for g, hazard, n0 in (("iop", 0.0012, 200), ("residential", 0.0018, 300)):
        t = list(range(1, 366))
        s = [math.exp(-hazard * x) for x in t]
        at_risk = [round(n0 * math.exp(-0.004 * x)) for x in t]
        groups[g] = {"time": t, "survival": s, "ci_low": [x - 0.03 for x in s], "ci_high": [min(1, x + 0.03) for x in s],
                     "at_risk": at_risk}
    survival["readmission"] = {"method": "kaplan-meier", "groups": groups,
                               "risk_table": {"times": [0, 90, 180, 270, 365],
                                              "at_risk": {g: [groups[g]["at_risk"][max(0, t - 1)] for t in (0, 90, 180, 270, 365)]
                                                          for g in groups}}}
    survival["readmission"]["risk_table"]["at_risk"]["residential"][-1] = 7  # small: must not be shown
    return {
        "run_id": "20261001T000000Z-test0001", "created_at": "2026-10-01T00:00:00+00:00",
        "levelcare_version": "0.1.0",
        "inputs": [{"file_name": "discharges_2026q3.csv", "file_sha256": "ab" * 32, "kind": "discharges",
                    "rows_loaded": 589}],
        "definitions": [{"id": d, "version": 1, "label": LABELS[d], "description": f"Description of {d}.",
                         "population": None, "success": "x", "missing": "failure", "window_days": None,
                         "references": [f"Reference for {d}."]} for d in COUNTS],
        "rates": rates, "comparisons": comparisons, "balance": balance,
        "diagnostics": {"data_end_quarter": "2026Q3",
                        "adjusted": [{"population": "p1", "method": "iptw", "n_arm": 200, "n_reference": 300,
                                      "c_statistic": 0.71, "equipoise": 0.46, "ess_arm": 180.5,
                                      "ess_reference": 270.2, "share_truncated": 0.004,
                                      "max_abs_smd_after": 0.06, "passed": True}],
                        "propensity": {"bin_edges": [i / 10 for i in range(11)],
                                       "counts": {"iop": [2, 15, 30, 40, 45, 30, 20, 12, 4, 2],
                                                  "residential": [3, 40, 60, 70, 55, 40, 20, 6, 4, 2]}}},
        "survival": survival,
        "noninferiority": [{"definition_id": "abstinent_90d_itt", "arm": "iop", "reference": "residential",
                            "method": m, "margin_pp": 10.0, "estimate": 0.05, "ci95_low": -0.04,
                            "ci95_high": 0.14, "ci90_low": -0.03, "ci90_high": 0.13, "noninferior": True,
                            "equivalent": False, "conclusion": f"non-inferior ({m})"} for m in ("iptw", "crude")],
        "validation": {"checks": [{"check_id": "discharge_after_admit", "category": "plausibility",
                                   "status": "passed", "failing_rows": 0},
                                  {"check_id": "phq9_range", "category": "conformance", "status": "failed",
                                   "failing_rows": 4}]},
    }


LEVELS = [("iop", "iop"), ("php", "php"), ("residential_short", "residential"),
          ("residential_long", "residential"), ("detox", "detox")]


def make_warehouse(path: Path, source: str = "native", n: int = 400, seed: int = 7) -> Path:
    import duckdb

    rnd = random.Random(seed)
    con = duckdb.connect(str(path))
    con.execute("""create table ingest_ledger (file_sha256 varchar, file_name varchar, kind varchar,
        status varchar, rows_read integer, rows_loaded integer, rows_quarantined integer, message varchar,
        contract_version varchar, site_id varchar, ingested_at timestamp, run_id varchar)""")
    con.executemany("insert into ingest_ledger values (?,?,?,?,?,?,?,?,?,?,?,?)", [
        ("a" * 64, "discharges_site1.csv", "discharges", "loaded", 250, 250, 0, None, "1", "s1",
         dt.datetime(2026, 10, 1, 8), None),
        ("b" * 64, "discharges_site2.csv", "discharges", "partial", 160, 154, 6, None, "1", "s2",
         dt.datetime(2026, 10, 1, 9), None),
        ("c" * 64, "followups_site1.csv", "followups", "refused", 40, 0, 40, "identifier column", "1", "s1",
         dt.datetime(2026, 10, 1, 10), None),
    ])
    con.execute("""create table ingest_quarantine (file_sha256 varchar, file_name varchar, row_number bigint,
        field varchar, check_id varchar, reason varchar)""")
    con.executemany("insert into ingest_quarantine values (?,?,?,?,?,?)",
                    [("b" * 64, "discharges_site2.csv", i, "phq9_admit", "range", "phq9_admit outside 0-27")
                     for i in range(1, 5)]
                    + [("b" * 64, "discharges_site2.csv", i, "discharge_date", "date_order",
                        "discharge_date before admit_date") for i in range(5, 7)]
                    + [("c" * 64, "followups_site1.csv", i, "*", "identifier", "file holds an identifier column")
                       for i in range(1, 41)])
    rows = []
    for i in range(n):
        loc, group = LEVELS[0] if i % 2 == 0 else LEVELS[1 + (i // 2) % 3] if i < n - 6 else LEVELS[4]
        q = QUARTERS[i % len(QUARTERS)]
        year, quarter = int(q[:4]), int(q[-1])
        discharge = dt.date(year, 3 * quarter - 2, 1) + dt.timedelta(days=rnd.randrange(85))
        native = source == "native"
        rec = {
            "episode_key": f"s{i % 3}:{i}", "episode_id": str(i), "person_id": f"p{i}" if native else None,
            "site_id": f"s{i % 3}", "source": source, "level_of_care": loc, "level_group": group,
            "admit_date": discharge - dt.timedelta(days=30), "discharge_date": discharge,
            "discharge_quarter": q, "age_band": rnd.choice(["18-20", "21-24", "25-29", "30-34", "65+"]),
            "sex": rnd.choice(["female", "male"]), "race": rnd.choice(["white", "black", "asian", None]),
            "primary_substance": rnd.choice(["alcohol", "opioids", "stimulants"]),
            "co_occurring_mh": rnd.random() < 0.4, "has_prior_episodes": rnd.random() < 0.5,
            "prior_episodes": rnd.randrange(5), "phq9_admit": rnd.randrange(28) if native else None,
            "gad7_admit": rnd.randrange(22) if native else None,
            "phq9_discharge": rnd.randrange(20) if native else None,
            "gad7_discharge": rnd.randrange(15) if native else None, "payer": rnd.choice(["medicaid", "private"]),
            "stepdown_iop_14d": (rnd.random() < 0.45) if group == "residential" and native else None,
        }
        for w in (30, 90, 180, 365):
            reached = native and rnd.random() < 0.75
            rec[f"fu{w}_status"] = ("reached" if reached else "unreachable") if native else None
            rec[f"fu{w}_reached"] = reached
        rows.append(rec)
    cols = list(rows[0])
    types = {"admit_date": "date", "discharge_date": "date", "co_occurring_mh": "boolean",
             "has_prior_episodes": "boolean", "stepdown_iop_14d": "boolean", "prior_episodes": "integer",
             "phq9_admit": "integer", "gad7_admit": "integer", "phq9_discharge": "integer",
             "gad7_discharge": "integer",
             **{f"fu{w}_reached": "boolean" for w in (30, 90, 180, 365)}}
    con.execute("create table mart_episodes (" + ", ".join(f'"{c}" {types.get(c, "varchar")}' for c in cols) + ")")
    con.executemany(f"insert into mart_episodes values ({', '.join('?' * len(cols))})",
                    [[r[c] for c in cols] for r in rows])
    con.close()
    return path
