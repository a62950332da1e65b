"""Benchmark: every built-in definition by level of care and quarter over N episodes.

    uv run --frozen python benchmarks/bench_definitions.py [--episodes 1700000] [--threads 2]

Raw tables are generated directly in DuckDB (``range()`` and hash-based pseudo-random values),
so the benchmark depends on no other module's data generator: N discharges of ~N/1.5 people,
~1.8 x N follow-up attempts. Timed: building every SQL model (staging -> marts) and computing
the rates of all built-in definitions overall, by level_of_care and by quarter. Prints seconds
and peak RSS. Target: < 30 s at 1.7M episodes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GENERATE_DISCHARGES = """
insert into raw_discharges
with base as (
    select
        i,
        hash(i, 1) as h1, hash(i, 2) as h2, hash(i, 3) as h3, hash(i, 4) as h4, hash(i, 5) as h5,
        hash(i, 6) as h6, hash(i, 7) as h7
    from range($episodes) as r(i)
),
shaped as (
    select
        *,
        ['outpatient', 'iop', 'iop', 'php', 'residential_short', 'residential_long',
         'residential_hospital', 'inpatient', 'detox'][1 + (h1 % 9)::integer] as level_of_care,
        date '2023-01-01' + (h2 % 1000)::integer as admit_date
    from base
)
select
    'e' || i as episode_id,
    'p' || (h3 % ($episodes * 2 // 3)) as person_id,
    's' || (h4 % 20) as site_id,
    null as program_id,
    level_of_care,
    null as asam_level,
    admit_date,
    admit_date + case
        when level_of_care = 'detox' then (h5 % 7)::integer
        when level_of_care like 'residential%' or level_of_care = 'inpatient' then (h5 % 60)::integer
        else (h5 % 150)::integer
    end as discharge_date,
    ['completed', 'completed', 'transferred', 'dropped_out', 'terminated', 'incarcerated', 'death',
     'other'][1 + (h6 % 8)::integer] as discharge_reason,
    ['18-20', '21-24', '25-29', '30-34', '35-39', '40-44', '45-49', '50-54'][1 + (h7 % 8)::integer] as age_band,
    ['female', 'male'][1 + (h1 // 7 % 2)::integer] as sex,
    'white' as race, 'not_hispanic' as ethnicity,
    ['alcohol', 'opioids', 'stimulants', 'cannabis'][1 + (h2 // 11 % 4)::integer] as primary_substance,
    h3 // 13 % 2 = 0 as co_occurring_mh,
    (h4 // 17 % 4)::integer as prior_episodes,
    (h5 // 19 % 30)::integer as days_waiting,
    (h6 // 23 % 31)::integer as use_days_admit,
    case when h6 // 29 % 10 = 0 then null else (h7 // 31 % 31)::integer end as use_days_discharge,
    (h1 // 37 % 28)::integer as phq9_admit,
    case when h1 // 41 % 4 = 0 then null else (h2 // 43 % 28)::integer end as phq9_discharge,
    (h3 // 47 % 22)::integer as gad7_admit,
    case when h3 // 53 % 4 = 0 then null else (h4 // 59 % 22)::integer end as gad7_discharge,
    h5 // 61 % 2 = 0 as employed_admit,
    h5 // 67 % 3 = 0 as employed_discharge,
    h6 // 71 % 8 = 0 as homeless_admit,
    h6 // 73 % 10 = 0 as homeless_discharge,
    (h7 // 79 % 3)::integer as arrests_admit,
    (h7 // 83 % 2)::integer as arrests_discharge,
    'medicaid' as payer, 'self' as referral_source, h1 // 89 % 3 = 0 as mat,
    12.0 as hours_per_week, 10 as sessions_attended, false as family_involved, 4 as satisfaction,
    1000.0 as episode_cost, 'bench' as _file_sha256, i as _row_number
from shaped
"""

GENERATE_FOLLOWUPS = """
insert into raw_followups
with base as (
    select j, j % $episodes as i, hash(j, 11) as g1, hash(j, 12) as g2, hash(j, 13) as g3
    from range(($episodes * 9) // 5) as r(j)
)
select
    'f' || j as followup_id,
    'e' || i as episode_id,
    's' || (hash(i, 4) % 20) as site_id,
    [30, 90, 180, 365][1 + (g1 % 4)::integer] as window_days,
    null as contact_date,
    [30, 90, 180, 365][1 + (g1 % 4)::integer] + (g2 % 20)::integer as days_after_discharge,
    ['reached', 'reached', 'reached', 'unreachable', 'refused', 'deceased'][1 + (g3 % 6)::integer] as status,
    g2 // 7 % 2 = 0 as abstinent_30d,
    (g2 // 11 % 31)::integer as use_days_30,
    g3 // 13 % 5 = 0 as readmitted,
    g3 // 17 % 20 = 0 as overdose,
    g1 // 19 % 2 = 0 as employed,
    g1 // 23 % 10 = 0 as homeless,
    (g2 // 29 % 2)::integer as arrests_30,
    (g3 // 31 % 28)::integer as phq9,
    (g1 // 37 % 22)::integer as gad7,
    (g2 // 41 % 3)::integer as er_visits_30,
    'bench' as _file_sha256, j as _row_number
from base
"""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1_700_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import duckdb
    import polars  # noqa: F401  imported before timing: a one-off cost, not a cost per episode
    import scipy.stats  # noqa: F401

    from pipelines import marts
    from pipelines.analysis.rates import rates
    from pipelines.definitions import registry

    with tempfile.TemporaryDirectory(prefix="levelcare-bench-") as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        con.execute(f"set threads = {int(args.threads)}")
        con.execute("set enable_progress_bar = false")
        marts.ensure_raw_tables(con)
        t0 = time.perf_counter()
        con.execute(GENERATE_DISCHARGES, {"episodes": args.episodes})
        con.execute(GENERATE_FOLLOWUPS, {"episodes": args.episodes})
        followups = con.execute("select count(*) from raw_followups").fetchall()[0][0]
        t_gen = time.perf_counter() - t0

        definitions = list(registry.load_registry(None).values())
        t1, cpu1 = time.perf_counter(), cpu_seconds()
        marts.build(con)
        t_build = time.perf_counter() - t1
        t2 = time.perf_counter()
        table = rates(con, definitions, ["level_of_care", "quarter"])
        t_rates = time.perf_counter() - t2
        cpu = cpu_seconds() - cpu1
        con.close()

    applicable = table.filter(table["denominator"] > 0)["definition_id"].n_unique()
    print(f"episodes            {args.episodes:>12,}")
    print(f"follow-up attempts  {followups:>12,}")
    print(f"threads             {args.threads:>12}")
    print(f"definitions         {len(definitions):>12} ({applicable} with a non-empty denominator)")
    print(f"rate rows           {table.height:>12,}")
    print(f"generate raw (s)    {t_gen:>12.2f}  (not part of the target)")
    print(f"build marts (s)     {t_build:>12.2f}")
    print(f"rates (s)           {t_rates:>12.2f}")
    print(f"build + rates (s)   {t_build + t_rates:>12.2f}  (target < 30)")
    print(f"CPU time (s)        {cpu:>12.2f}  (build + rates, all threads; wall >= CPU / threads)")
    print(f"peak RSS (MB)       {peak_rss_mb():>12.0f}")
    print(f"load average        {' '.join(f'{x:.1f}' for x in os.getloadavg()):>12}  (other processes share the cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
