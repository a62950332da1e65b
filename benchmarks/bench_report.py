"""Benchmark: the quarterly report at production size (a script, not a test).

A results dict shaped like an analysis of 1.7 million episodes (25 definitions x 8 levels of
care and 6 level groups x 8 quarters x 50 sites, with level-by-quarter trends) and a
warehouse whose mart_episodes holds 1.7 million rows, generated in DuckDB. Prints the seconds
taken by each format and the HTML size. Targets: < 60 s for all three, HTML < 5 MB.

    uv run --frozen python benchmarks/bench_report.py [--episodes 1700000]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from pathlib import Path

LEVELS = {"outpatient": "outpatient", "iop": "iop", "php": "php", "residential_short": "residential",
          "residential_long": "residential", "residential_hospital": "residential", "inpatient": "inpatient",
          "detox": "detox"}
QUARTERS = ["2024Q4", "2025Q1", "2025Q2", "2025Q3", "2025Q4", "2026Q1", "2026Q2", "2026Q3"]


def _row(d, by, group, k, n):
    p = k / n if n else None
    z = 1.96
    lo = hi = None
    if n:
        c = (p + z * z / (2 * n)) / (1 + z * z / n)
        h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        lo, hi = c - h, c + h
    return {"definition_id": d, "definition_version": 1, "group_by": by, "group": group, "numerator": k,
            "denominator": n, "rate": p, "ci_low": lo, "ci_high": hi, "ci_method": "wilson", "suppressed": False,
            "note": None}


def make_results(episodes: int, n_defs: int = 25, n_sites: int = 50, seed: int = 1) -> dict:
    rnd = random.Random(seed)
    defs = [f"definition_{i:02d}" for i in range(n_defs)]
    level_share = [0.25, 0.25, 0.08, 0.12, 0.08, 0.04, 0.03, 0.15]
    site_weights = [rnd.paretovariate(1.5) for _ in range(n_sites)]
    site_share = [w / sum(site_weights) for w in site_weights]
    rates = []
    for d in defs:
        base = rnd.uniform(0.2, 0.85)
        coverage = rnd.uniform(0.3, 1.0)  # share of episodes in the definition's population
        n_all = int(episodes * coverage)
        rate_of = {loc: min(0.97, max(0.02, base + rnd.uniform(-0.1, 0.1))) for loc in LEVELS}
        by_loc = {loc: (int(n_all * s * rate_of[loc]), int(n_all * s)) for loc, s in zip(LEVELS, level_share)}
        rates.append(_row(d, "all", None, sum(k for k, _ in by_loc.values()), sum(n for _, n in by_loc.values())))
        groups: dict[str, list[int]] = {}
        for loc, (k, n) in by_loc.items():
            rates.append(_row(d, "level_of_care", loc, k, n))
            g = groups.setdefault(LEVELS[loc], [0, 0])
            g[0] += k
            g[1] += n
        for g, (k, n) in groups.items():
            rates.append(_row(d, "level_group", g, k, n))
        for q in QUARTERS:
            rates.append(_row(d, "quarter", q, int(n_all / 8 * base), n_all // 8))
            for g, (k, n) in groups.items():
                rates.append(_row(d, "level_group,quarter", f"{g}|{q}", k // 8, n // 8))
        for i, s in enumerate(site_share):
            n = int(n_all * s)
            rates.append(_row(d, "site", f"site-{i:02d}", int(n * min(0.97, base + rnd.gauss(0, 0.05))), n))
    comparisons = []
    for d in defs:
        for m in ("crude", "iptw", "overlap", "aipw"):
            e = rnd.uniform(-0.08, 0.08)
            comparisons.append({"definition_id": d, "arm": "iop", "reference": "residential", "method": m,
                                "measure": "risk_difference", "estimate": e, "ci_low": e - 0.02, "ci_high": e + 0.02})
    covs = ["age_band", "sex", "race", "ethnicity", "primary_substance", "co_occurring_mh", "prior_episodes",
            "use_days_admit", "phq9_admit", "gad7_admit", "employed_admit", "homeless_admit", "payer",
            "referral_source", "mat"]
    balance = [{"covariate": c, "smd_unadjusted": rnd.uniform(-0.4, 0.4), "smd_adjusted": rnd.uniform(-0.05, 0.05)}
               for c in covs]
    survival_groups = {}
    for g, hz, n0 in (("iop", 0.0012, 400_000), ("residential", 0.0018, 410_000)):
        t = list(range(1, 366))
        survival_groups[g] = {"time": t, "survival": [math.exp(-hz * x) for x in t],
                              "ci_low": [math.exp(-hz * x) - 0.002 for x in t],
                              "ci_high": [math.exp(-hz * x) + 0.002 for x in t],
                              "at_risk": [int(n0 * math.exp(-0.003 * x)) for x in t]}
    times = [0, 90, 180, 270, 365]
    return {
        "run_id": "bench", "created_at": "2026-10-01T00:00:00+00:00", "levelcare_version": "bench",
        "inputs": [{"file_name": f"discharges_{i}.csv", "file_sha256": f"{i:064x}", "kind": "discharges",
                    "rows_loaded": episodes // 50} for i in range(50)],
        "definitions": [{"id": d, "version": 1, "label": f"Definition {i}", "description": "Benchmark definition.",
                         "references": ["Reference."]} for i, d in enumerate(defs)],
        "rates": rates, "comparisons": comparisons, "balance": balance,
        "diagnostics": {"data_end_quarter": "2026Q3", "equipoise": 0.41,
                        "propensity": {"bin_edges": [i / 50 for i in range(51)],
                                       "counts": {"iop": [int(20000 * math.exp(-((i - 20) / 8) ** 2)) for i in range(50)],
                                                  "residential": [int(20000 * math.exp(-((i - 28) / 8) ** 2)) for i in range(50)]}}},
        "survival": {"readmission": {"groups": survival_groups,
                                     "risk_table": {"times": times, "at_risk": {g: [c["at_risk"][max(0, t - 1)] for t in times]
                                                                              for g, c in survival_groups.items()}}}},
        "noninferiority": [{"definition_id": defs[0], "arm": "iop", "reference": "residential", "margin": 0.05,
                            "measure": "risk_difference", "method": "aipw", "estimate": 0.01, "ci_low": -0.01,
                            "ci_high": 0.03, "conclusion": "non-inferior"}],
    }


def make_warehouse(path: Path, episodes: int) -> None:
    import duckdb

    con = duckdb.connect(str(path))
    levels = list(LEVELS.items())
    case_loc = "case (i % 8) " + " ".join(f"when {k} then '{loc}'" for k, (loc, _) in enumerate(levels)) + " end"
    case_grp = "case (i % 8) " + " ".join(f"when {k} then '{g}'" for k, (_, g) in enumerate(levels)) + " end"
    quarters = "[" + ", ".join(f"'{q}'" for q in QUARTERS) + "]"
    con.execute(f"""
        create table mart_episodes as
        select 's' || (i % 50) || ':' || i as episode_key, cast(i as varchar) as episode_id,
               'p' || (i // 2) as person_id, 's' || (i % 50) as site_id, 'native' as source,
               {case_loc} as level_of_care, {case_grp} as level_group,
               date '2024-10-01' + cast((i * 7919) % 720 as integer) as discharge_date,
               {quarters}[1 + ((i * 7919) % 720) // 90] as discharge_quarter,
               (['18-20','21-24','25-29','30-34','35-39','40-44','45-49','50-54','55-64','65+'])[1 + (i * 31) % 10] as age_band,
               (['female','male','other','unknown'])[1 + (i * 17) % 4] as sex,
               (['white','black','asian','multiple','other','unknown'])[1 + (i * 13) % 6] as race,
               (['alcohol','opioids','stimulants','cannabis'])[1 + (i * 7) % 4] as primary_substance,
               (i * 11) % 10 < 4 as co_occurring_mh, (i * 3) % 10 < 5 as has_prior_episodes,
               (i * 5) % 6 as prior_episodes, (i * 7) % 31 as use_days_admit,
               (i * 13) % 28 as phq9_admit, (i * 17) % 20 as phq9_discharge,
               (i * 19) % 22 as gad7_admit, (i * 23) % 15 as gad7_discharge,
               (['medicaid','private','medicare','self'])[1 + (i * 29) % 4] as payer,
               (i * 37) % 10 < 8 as fu30_reached, (i * 41) % 10 < 7 as fu90_reached,
               (i * 43) % 10 < 6 as fu180_reached, (i * 47) % 10 < 5 as fu365_reached,
               case when (i % 8) in (3, 4, 5) then (i * 53) % 10 < 4 end as stepdown_iop_14d
        from range({episodes}) t(i)
    """)
    con.execute("""create table ingest_ledger as select lpad(cast(i as varchar), 64, '0') as file_sha256,
        'discharges_' || i || '.csv' as file_name, 'discharges' as kind, 'loaded' as status,
        34000 as rows_read, 33990 as rows_loaded, 10 as rows_quarantined, null as message,
        '1' as contract_version, 's' || i as site_id, timestamp '2026-10-01' as ingested_at, null as run_id
        from range(50) t(i)""")
    con.execute("""create table ingest_quarantine as select lpad(cast(i % 50 as varchar), 64, '0') as file_sha256,
        'discharges_' || (i % 50) || '.csv' as file_name, i as row_number, 'phq9_admit' as field,
        'range_' || (i % 7) as check_id, 'value outside the allowed range' as reason from range(500) t(i)""")
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=1_700_000)
    args = ap.parse_args()
    from pipelines.report.command import write_report
    from pipelines.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        make_warehouse(root / "w.duckdb", args.episodes)
        results = make_results(args.episodes)
        out = root / "out"
        out.mkdir()
        (out / "results.json").write_text(json.dumps(results), encoding="utf-8")
        print(f"setup: {time.perf_counter() - t0:.1f} s ({args.episodes:,} episodes, {len(results['rates']):,} rate rows)")
        settings = Settings(warehouse=root / "w.duckdb")
        # CPU seconds beside wall seconds: on a shared machine the wall clock also counts waiting
        t0, c0 = time.perf_counter(), time.process_time()
        write_report(settings, out, formats=("html",))
        t_html, c_html = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        paths = write_report(settings, out)
        t_all, c_all = time.perf_counter() - t0, time.process_time() - c0
        sizes = {p.suffix: p.stat().st_size for p in paths}
        print(f"report html only (first call, includes imports): {t_html:.1f} s wall, {c_html:.1f} s cpu")
        print(f"report html+pdf+xlsx: {t_all:.1f} s wall, {c_all:.1f} s cpu (target < 60 s)")
        print(f"html size: {sizes['.html'] / 1e6:.2f} MB (target < 5 MB); pdf {sizes['.pdf'] / 1e6:.2f} MB; "
              f"xlsx {sizes['.xlsx'] / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
