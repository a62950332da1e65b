"""The national benchmark at scale: fit on TEDS-D rows, score the program's episodes.

Target: fitting on 1.5 million national rows and scoring 1.7 million program episodes in under
60 s and 4 GiB on 2 cores. The warehouse must hold both (e.g. /tmp/bench17's 1.7 M native
episodes plus ``levelcare synth --format teds-d --records 1500000`` ingested). The marts are
built first, apart (``analyze`` builds them once for everything); then ``levelcare benchmark``
(the three default definitions, by site and quarter) runs in its own process, timed, with its
peak resident memory.

    uv run --frozen python benchmarks/bench_benchmark.py --warehouse /tmp/bench32/levelcare.duckdb
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True, type=Path)
    parser.add_argument("--shrink", action="store_true")
    args = parser.parse_args()

    from pipelines import marts
    from pipelines.warehouse import connect

    start = time.perf_counter()
    with connect(args.warehouse) as con:
        marts.build(con)
        counts = dict(con.execute("select source, count(*) from mart_episodes group by 1").fetchall())
    print(f"marts (apart): {time.perf_counter() - start:.1f} s; episodes: "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "pipelines", "--warehouse", str(args.warehouse), "benchmark",
               "--out", out, "--by", "site,quarter", *(["--shrink"] if args.shrink else [])]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(done.stderr.strip().splitlines()[-1:])
        rows = (Path(out) / "benchmark.csv").read_text(encoding="utf-8").count("\n") - 1
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024  # KiB -> GiB
    print(f"levelcare benchmark: {seconds:.1f} s, peak RSS {peak:.2f} GiB, {rows} rows in benchmark.csv")
    print(done.stdout.strip())


if __name__ == "__main__":
    main()
