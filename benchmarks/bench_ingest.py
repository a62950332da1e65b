"""Benchmark: levelcare ingest + validation of a TEDS-D-shaped CSV vs DuckDB alone reading it.

    uv run --frozen python benchmarks/bench_ingest.py [ROWS] [--keep DIR]

Writes a 76-column TEDS-D 2017-2020-layout CSV of ROWS rows (default 1,700,000, codes drawn
deterministically from each variable's code list), then runs, each in a fresh subprocess:

1. DuckDB alone: ``CREATE TABLE t AS SELECT * FROM read_csv(file)`` into a new database file;
2. ``pipelines.ingest.ingest_paths`` on the same file into a new warehouse (identifier gate,
   era mapping, row and cross-record checks, great-expectations on the batch or its sample,
   Data Docs, load, ledger). great-expectations is imported and its context built before the
   clock starts (a flow worker pays that once); the cold import is printed separately.

Prints seconds, the ratio ingest / DuckDB, and each process's peak RSS. A script, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (variable, low, high) for coded columns; others get -9. CASEID/DISYR/STFIPS are set apart.
CODES = {
    "AGE": (1, 12), "ARRESTS": (0, 2), "ARRESTS_D": (0, 2), "EMPLOY": (1, 4), "EMPLOY_D": (1, 4),
    "ETHNIC": (1, 5), "FREQ1": (1, 3), "FREQ1_D": (1, 3), "GENDER": (1, 2), "LIVARAG": (1, 3),
    "LIVARAG_D": (1, 3), "LOS": (1, 37), "METHUSE": (1, 2), "NOPRIOR": (0, 1), "PRIMPAY": (1, 7),
    "PSOURCE": (1, 7), "PSYPROB": (1, 2), "RACE": (1, 9), "REASON": (1, 7), "SERVICES": (1, 8),
    "SERVICES_D": (1, 8), "SUB1": (1, 19), "SUB2": (1, 19), "SUB3": (1, 19), "EDUC": (1, 5),
    "MARSTAT": (1, 4), "VET": (1, 2), "REGION": (0, 4), "DIVISION": (0, 9), "DAYWAIT": (0, 4),
    "HLTHINS": (1, 4), "PRIMINC": (1, 5), "ROUTE1": (1, 5), "FRSTUSE1": (1, 7), "DSMCRIT": (1, 19),
    "CBSA2010": (10000, 49999),
}
STATES = [1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
          31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 42, 44, 45, 46, 47, 48, 49, 50, 51, 55, 56, 72]


def make_csv(path: Path, rows: int) -> None:
    import duckdb

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
    from teds_fixtures import VARS_2017

    exprs = []
    for j, var in enumerate(VARS_2017):
        if var == "CASEID":
            exprs.append(f"(2019000000000 + i)::VARCHAR AS {var}")
        elif var == "DISYR":
            exprs.append(f"'2019' AS {var}")
        elif var == "STFIPS":
            exprs.append(f"list_extract({STATES}, (hash(i, {j}) % {len(STATES)})::INTEGER + 1) AS {var}")
        elif var in CODES:
            lo, hi = CODES[var]
            exprs.append(f"({lo} + hash(i, {j}) % {hi - lo + 1})::INTEGER AS {var}")
        else:
            exprs.append(f"(CASE WHEN hash(i, {j}) % 5 = 0 THEN -9 ELSE 1 + hash(i, {j}) % 2 END)::INTEGER AS {var}")
    con = duckdb.connect()
    con.execute(f"COPY (SELECT {', '.join(exprs)} FROM range({rows}) AS t(i)) TO '{path}' (HEADER, DELIMITER ',')")
    con.close()


CHILD_DUCKDB = """
import sys, time, resource, json, duckdb
csv, db = sys.argv[1], sys.argv[2]
con = duckdb.connect(db)
t = time.perf_counter()
con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{csv}')")
n = con.execute("select count(*) from t").fetchone()[0]
con.close()
print(json.dumps({"seconds": time.perf_counter() - t, "rows": n,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHILD_INGEST = """
import sys, time, resource, json
t0 = time.perf_counter()
from pipelines.validation import _context
_context()
cold = time.perf_counter() - t0
from pipelines.ingest import ingest_paths
from pipelines.settings import Settings
csv, wh = sys.argv[1], sys.argv[2]
t = time.perf_counter()
(row,) = ingest_paths(Settings.from_options(warehouse=wh, environ={}), [csv])
print(json.dumps({"seconds": time.perf_counter() - t, "ge_import_seconds": cold, "status": row.status,
                  "rows_loaded": row.rows_loaded, "rows_quarantined": row.rows_quarantined,
                  "message": row.message, "phases": json.load(open(row.docs.replace("index.html", "validation.json")))["seconds"],
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="?", type=int, default=1_700_000)
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lc-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    csv = work / f"tedsd_puf_2019_{args.rows}.csv"
    t = time.perf_counter()
    if not csv.exists():
        make_csv(csv, args.rows)
    print(f"file: {csv.name}, {csv.stat().st_size / 2**20:.0f} MiB, written in {time.perf_counter() - t:.1f} s")
    for p in (work / "duck.duckdb", work / "w.duckdb"):
        p.unlink(missing_ok=True)
    duck = _child(CHILD_DUCKDB, str(csv), str(work / "duck.duckdb"))
    ing = _child(CHILD_INGEST, str(csv), str(work / "w.duckdb"))
    print(f"duckdb read_csv -> table : {duck['seconds']:7.2f} s   peak RSS {duck['peak_rss_mib']:7.0f} MiB   "
          f"({duck['rows']} rows)")
    print(f"levelcare ingest+validate: {ing['seconds']:7.2f} s   peak RSS {ing['peak_rss_mib']:7.0f} MiB   "
          f"({ing['status']}, loaded {ing['rows_loaded']}, quarantined {ing['rows_quarantined']})")
    print(f"ratio ingest / duckdb    : {ing['seconds'] / duck['seconds']:7.2f}x   "
          f"(great_expectations import + context, paid once per process: {ing['ge_import_seconds']:.1f} s)")
    print(f"ingest phases (s): {ing['phases']}")
    print(f"ledger message: {ing['message']}")


if __name__ == "__main__":
    main()
