"""Network studies at scale: packaging a large site, combining many packages.

Targets: packaging a 1.7 M-episode site under 2 minutes; combining 50 site packages under 10 s.

* package: ``levelcare network package`` (the default study: three definitions, IOP against
  residential) on ``--warehouse`` (e.g. /tmp/bench17/levelcare.duckdb, 1.7 M episodes), in its
  own process, timed with its peak memory;
* combine: that package copied as 50 sites (each relabelled, its manifest made consistent
  again), then ``levelcare network combine`` of all 50, timed.

    uv run --frozen python benchmarks/bench_network.py --warehouse /tmp/bench17/levelcare.duckdb
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1:])
    return time.perf_counter() - start


def relabel(src: Path, dst: Path, label: str) -> None:
    shutil.copytree(src, dst)
    info = json.loads((dst / "study.json").read_text(encoding="utf-8"))
    info["label"] = label
    (dst / "study.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    manifest = json.loads((dst / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"] = {n: hashlib.sha256((dst / n).read_bytes()).hexdigest() for n in manifest["files"]}
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True, type=Path)
    parser.add_argument("--sites", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wh = work / "site.duckdb"
        shutil.copy(args.warehouse, wh)
        seconds = cli("--warehouse", str(wh), "network", "package", "--out", str(work / "pkg"), "--label", "site-0")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
        print(f"package: {seconds:.1f} s, peak RSS {peak:.2f} GiB")
        for i in range(args.sites):
            relabel(work / "pkg", work / "many" / f"site-{i}", f"site-{i}")
        seconds = cli("network", "combine", *[str(p) for p in sorted((work / "many").iterdir())],
                      "--out", str(work / "pooled"))
        print(f"combine {args.sites} packages: {seconds:.1f} s (process start and imports included)")


if __name__ == "__main__":
    main()
