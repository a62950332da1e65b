"""Benchmark suite: every stage of levelcare against the DuckDB floor and a pandas peer.

    uv run --frozen python benchmarks/bench_suite.py [--records 200000] [--seed 1]
        [--cache DIR] [--results PATH] [--skip run,demo,peer,baseline] [--keep DIR]

Data: ``levelcare synth --records N --seed S`` (native discharges.csv + followups.csv, about
1.65 follow-up attempts per episode), reused from ``--cache`` (default
``~/.cache/levelcare-bench``) when already written. ``--records 1700000`` is the scale of the
performance targets.

Each stage runs in a fresh process (``benchmarks/suite_children.py``); the parent samples the
resident memory of the child's whole process tree (psutil) and takes its CPU seconds from
``getrusage(RUSAGE_CHILDREN)``. Children time their work after their imports; the imports
and the great-expectations context, which every levelcare process pays once, are the
``start-up`` row. Stages:

* ``ingest+validate``, split into ingest (read, load) and validate (identifier gate, typed
  batch, row and cross-record checks, great-expectations) from the validation.json phases;
* ``marts``, ``definitions (crude rates)``, ``adjusted statistics`` (the analysis frame,
  ``compare()``, survival, effect modification, multinomial weights) and ``report``;
  ``analyze`` runs them as ``levelcare run`` does, in one process;
* ``compare()`` against the same models fitted by statsmodels ``Logit`` on in-memory arrays;
* the whole ``levelcare run`` (Prefect flow, temporary server), ``levelcare --help`` and a
  cold ``levelcare demo --records 20000``;
* the floor (``suite_floor.py``: DuckDB SQL over the CSVs, crude rates only), the same floor
  with the files first stored as tables of a DuckDB file (information: what keeping the rows
  costs before anything levelcare adds), and the peer (``suite_peer.py``: pandas,
  great-expectations on pandas, statsmodels formula IPTW).

The crude rates of both floors and of the peer are checked against levelcare's (numerator and
denominator by level of care for five definitions). The load average is printed with the
table: on a shared machine wall seconds include waiting for the cores; CPU seconds do not.
Prints a table and writes it as JSON to ``--results``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
CHILDREN = HERE / "suite_children.py"
DATA_STAGES = ("ingest+validate", "marts", "definitions (crude rates)")


def _children_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def child_env(cache: Path) -> dict:
    """The environment of every measured process: this one's, with a bytecode cache.

    A session that sets PYTHONDONTWRITEBYTECODE makes every process compile numpy, scipy,
    pandas, great-expectations and Prefect from source again (tens of seconds); a user's
    Python writes the bytecode once. The cache lives beside the data (PYTHONPYCACHEPREFIX),
    so nothing is written into the virtual environment.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache / "pycache")
    return env


ENV: dict | None = None


def run(cmd: list[str], *, env: dict | None = None, timeout: float = 7200) -> dict:
    """Run ``cmd``; wall seconds, CPU seconds, peak RSS of its process tree, stdout, stderr."""
    import psutil

    cpu0, t0 = _children_cpu(), time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env or ENV, cwd=ROOT, text=True)
        peak = [0]

        def sample() -> None:
            try:
                root = psutil.Process(proc.pid)
            except psutil.NoSuchProcess:
                return
            while proc.poll() is None:
                total = 0
                try:
                    for p in [root, *root.children(recursive=True)]:
                        try:
                            total += p.memory_info().rss
                        except psutil.Error:
                            pass
                except psutil.Error:
                    break
                peak[0] = max(peak[0], total)
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        sampler.join()
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return {"cmd": " ".join(cmd), "rc": rc, "wall": wall, "cpu": _children_cpu() - cpu0,
            "peak_mib": peak[0] / 2**20, "stdout": stdout, "stderr": stderr}


def child(role: str, *args: str) -> tuple[dict, dict]:
    """Run a suite child; (process measurement, the child's JSON)."""
    r = run([sys.executable, str(CHILDREN), role, *args])
    if r["rc"]:
        raise SystemExit(f"child {role} failed ({r['rc']}):\n{r['stderr'][-4000:]}")
    return r, json.loads(r["stdout"].strip().splitlines()[-1])


def levelcare(*args: str) -> dict:
    r = run([str(BIN / "levelcare"), *args])
    if r["rc"]:
        raise SystemExit(f"levelcare {' '.join(args)} failed ({r['rc']}):\n{r['stderr'][-4000:]}")
    return r


def synth(cache: Path, records: int, seed: int) -> tuple[Path, float | None]:
    data = cache / f"native-{records}-seed{seed}"
    if (data / "discharges.csv").exists() and (data / "followups.csv").exists():
        return data, None
    tmp = cache / f".tmp-{records}-{seed}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    r = levelcare("synth", "--out", str(tmp), "--records", str(records), "--seed", str(seed),
                  "--warehouse", str(tmp / "unused.duckdb"))
    (tmp / "truth.json").rename(cache / f"truth-{records}-seed{seed}.json")  # not an extract
    for extra in tmp.glob("unused.duckdb*"):
        extra.unlink()
    tmp.rename(data)
    return data, r["wall"]


def _progress_times(stderr: str, started: dt.datetime) -> dict[str, float]:
    """Seconds from launch to each progress line of ``levelcare run`` ([HH:MM:SS] step ...)."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        m = re.match(r"\[(\d\d):(\d\d):(\d\d)\] (\w+)", line)
        if m:
            h, mi, s, step = int(m[1]), int(m[2]), int(m[3]), m[4]
            t = started.replace(hour=h, minute=mi, second=s, microsecond=0)
            if t < started.replace(microsecond=0):
                t += dt.timedelta(days=1)
            out[step] = max(out.get(step, 0.0), (t - started).total_seconds())
    return out


def _rate_check(ours: dict, other: dict) -> dict:
    """Numerator/denominator pairs of levelcare vs a baseline, per definition x level of care."""
    keys = [k for k in other if not k.endswith("|None")]
    same = sum(1 for k in keys if ours.get(k) == other[k])
    diff = max((abs(ours[k][0] / ours[k][1] - other[k][0] / other[k][1]) for k in keys
                if k in ours and ours[k][1] and other[k][1]), default=None)
    return {"cells": len(keys), "identical": same, "max_abs_rate_difference": diff}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000, help="episodes (default 200000; target 1700000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "levelcare-bench")
    ap.add_argument("--results", type=Path, default=None, help="JSON output (default bench-suite-N-seedS.json)")
    ap.add_argument("--skip", default="", help="comma-separated: run, demo, peer, baseline, report")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    global ENV
    ENV = child_env(args.cache)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    args.cache.mkdir(parents=True, exist_ok=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="lc-suite-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load = {"start": os.getloadavg()}
    started = time.perf_counter()

    data, synth_s = synth(args.cache, args.records, args.seed)
    episodes = sum(1 for _ in (data / "discharges.csv").open("rb")) - 1
    followups = sum(1 for _ in (data / "followups.csv").open("rb")) - 1
    size_mib = sum((data / f).stat().st_size for f in ("discharges.csv", "followups.csv")) / 2**20
    print(f"data: {episodes:,} episodes, {followups:,} follow-up attempts, {size_mib:.0f} MiB CSV, seed {args.seed} "
          f"({data}; {f'synthesized in {synth_s:.1f} s' if synth_s else 'from the cache'})", flush=True)

    rows: list[dict] = []

    def row(stage, seconds, cpu, peak, *, target=None, met=None, **extra):
        rows.append({"stage": stage, "seconds": seconds, "cpu_seconds": cpu, "peak_mib": peak,
                     "target": target, "met": met, **extra})
        print(f"  {stage:34} {seconds:9.2f} s  {peak:8.0f} MiB", flush=True)

    wh = work / "levelcare.duckdb"
    # --help, three times: the first may find cold files
    helps = [levelcare("--help")["wall"] for _ in range(3)]
    row("levelcare --help", min(helps), None, 0.0, target="< 0.5 s", met=min(helps) < 0.5,
        all_seconds=helps)

    first = child("startup")[0]  # writes the bytecode cache if it is not there yet
    r, j = child("startup")
    row("start-up, first run after install (no bytecode yet)", first["wall"], first["cpu"], first["peak_mib"])
    row("start-up (process + imports + GE context)", r["wall"], r["cpu"], r["peak_mib"],
        target="< 15 s", met=r["wall"] < 15)
    startup_s = r["wall"]

    r, floor = child("floor", str(data))
    f = floor["floor"]
    row("floor: DuckDB SQL, crude rates", f["seconds"], f["cpu_seconds"], f["peak_mib"], process_seconds=r["wall"])
    floor_s = f["seconds"]
    store = work / "floor-stored"
    store.mkdir(exist_ok=True)
    r, stored = child("floor", str(data), str(store))
    fs = stored["floor, stored"]
    row("floor, files stored first (DuckDB file)", fs["seconds"], fs["cpu_seconds"], fs["peak_mib"],
        process_seconds=r["wall"], store_seconds=stored["store_seconds"])

    r, j = child("ingest", str(data), str(wh))
    s = j["ingest+validate"]
    ph = j["phases"]
    validate_keys = ("identifier_gate", "typed_batch", "row_checks", "cross_checks", "great_expectations")
    row("ingest+validate", s["seconds"], s["cpu_seconds"], r["peak_mib"], phases=ph, files=j["files"],
        process_seconds=r["wall"])
    row("  ingest (read, load)", ph.get("read", 0) + ph.get("load", 0), None, r["peak_mib"])
    row("  validate (checks, great-expectations)", sum(ph.get(k, 0) for k in validate_keys), None, r["peak_mib"])

    out = work / "out"
    r, an = child("analyze", str(wh), str(out))
    for stage in ("marts", "definitions (crude rates)", "adjusted statistics", "compare()", "analyze (total)"):
        s = an[stage]
        row(stage if stage != "compare()" else "  of which compare()", s["seconds"], s["cpu_seconds"],
            s["peak_mib"])
    compare_s = an["compare()"]["seconds"]
    data_s = sum(x["seconds"] for x in rows if x["stage"] in DATA_STAGES)
    data_cpu = sum(x["cpu_seconds"] for x in rows if x["stage"] in DATA_STAGES)
    for x in rows:
        if x["stage"] in DATA_STAGES:
            x["ratio_vs_floor"] = x["seconds"] / floor_s
    row("data stages (ingest..crude rates)", data_s, None, max(x["peak_mib"] for x in rows
                                                                if x["stage"] in DATA_STAGES),
        target="<= 3x floor (start-up apart)", met=data_s <= 3 * floor_s, ratio_vs_floor=data_s / floor_s,
        cpu_ratio_vs_floor=data_cpu / f["cpu_seconds"], ratio_vs_stored_floor=data_s / fs["seconds"])

    if "baseline" not in skip:
        r, b = child("baseline", str(wh))
        s = b["statsmodels baseline"]
        s["seconds"], s["cpu_seconds"] = b["fit_seconds"], b["fit_cpu_seconds"]  # the fits, not the design
        row(f"statsmodels Logit, same {b['fits']} fits", s["seconds"], s["cpu_seconds"], s["peak_mib"])
        rows[-1]["ratio_compare_vs_baseline"] = compare_s / s["seconds"]
        next(x for x in rows if x["stage"] == "  of which compare()").update(
            target="<= 1.5x statsmodels", met=compare_s <= 1.5 * s["seconds"],
            ratio_vs_statsmodels=compare_s / s["seconds"],
            cpu_ratio_vs_statsmodels=an["compare()"]["cpu_seconds"] / s["cpu_seconds"])

    if "report" not in skip:
        r, rep = child("report", str(wh), str(out))
        s = rep["report"]
        row("report (html, pdf, xlsx)", s["seconds"], s["cpu_seconds"], s["peak_mib"])

    peer = None
    if "peer" not in skip:
        r, peer = child("peer", str(data))
        row("peer: pandas + GE + statsmodels", r["wall"], r["cpu"], r["peak_mib"], timings=peer["timings"],
            iptw_completion_rd=peer["iptw_completion_rd"])

    if "run" not in skip:
        wh2, out2 = work / "run.duckdb", work / "run-out"
        # the first Prefect run of a machine creates Prefect's database (7-8 s, once), as the first
        # start-up after an install compiles the bytecode: said in the start-up row when it happens
        prefect_db = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect") / "prefect.db"
        prefect_first = not prefect_db.exists()
        launched = dt.datetime.now()
        r = levelcare("run", "--input", str(data), "--out", str(out2), "--warehouse", str(wh2))
        marks = _progress_times(r["stderr"], launched)
        rr = {"progress_seconds": marks}
        met_peer = None
        if peer is not None:
            p = next(x for x in rows if x["stage"].startswith("peer"))
            rr.update(ratio_vs_peer=p["seconds"] / r["wall"], memory_vs_peer=r["peak_mib"] / p["peak_mib"])
            met_peer = r["wall"] * 3 <= p["seconds"] and r["peak_mib"] * 2 <= p["peak_mib"]
        row("levelcare run (whole)", r["wall"], r["cpu"], r["peak_mib"], ratio_vs_floor=r["wall"] / floor_s,
            target="< 300 s; >= 3x faster than peer, <= 1/2 its memory",
            met=r["wall"] < 300 and (met_peer if met_peer is not None else True), **rr)
        if "run" in marks:
            first = ", Prefect's database created by this run" if prefect_first else ""
            row(f"  run start-up (to first progress line{first})", marks["run"], None, 0.0, target="< 15 s",
                met=marks["run"] < 15)

    if "demo" not in skip:
        r = levelcare("demo", "--records", "20000", "--out", str(work / "demo"))
        row("levelcare demo --records 20000 (cold)", r["wall"], r["cpu"], r["peak_mib"], target="< 45 s",
            met=r["wall"] < 45)

    checks = {"floor": _rate_check(an["rates"], floor["rates"]),
              "floor, stored": _rate_check(an["rates"], stored["rates"])}
    if peer is not None:
        checks["peer"] = _rate_check(an["rates"], peer["rates"])
    load["end"] = os.getloadavg()

    print()
    print(f"levelcare benchmark suite - {episodes:,} episodes, {followups:,} follow-ups, seed {args.seed}, "
          f"{os.cpu_count()} cores, {dt.datetime.now():%Y-%m-%d %H:%M}")
    print(f"load average at start {' '.join(f'{x:.2f}' for x in load['start'])}, "
          f"at end {' '.join(f'{x:.2f}' for x in load['end'])} (1, 5, 15 min; other processes share the cores)")
    head = f"{'stage':44} {'wall s':>9} {'cpu s':>8} {'peak MiB':>9} {'x floor':>8} {'x peer':>7}  target"
    print(head)
    print("-" * len(head))
    peer_s = next((x["seconds"] for x in rows if x["stage"].startswith("peer")), None)
    for x in rows:
        cpu = f"{x['cpu_seconds']:8.1f}" if x["cpu_seconds"] is not None else f"{'':8}"
        xf = f"{x['ratio_vs_floor']:8.2f}" if x.get("ratio_vs_floor") is not None else f"{'':8}"
        xp = f"{x['seconds'] / peer_s:7.2f}" if peer_s and not x["stage"].startswith(("peer", " ")) else f"{'':7}"
        tgt = ""
        if x["target"]:
            tgt = f"{x['target']}: {'met' if x['met'] else 'NOT met'}"
        extra = ""
        if "ratio_vs_statsmodels" in x:
            extra = (f" (compare / statsmodels = {x['ratio_vs_statsmodels']:.2f} wall, "
                     f"{x['cpu_ratio_vs_statsmodels']:.2f} cpu)")
        if "cpu_ratio_vs_floor" in x:
            extra = (f" (cpu: {x['cpu_ratio_vs_floor']:.2f}x floor; wall {x['ratio_vs_stored_floor']:.2f}x the "
                     "stored floor)")
        if "store_seconds" in x:
            extra = f" (storing the two files: {x['store_seconds']:.2f} s)"
        if "ratio_vs_peer" in x:
            extra = f" (peer / run = {x['ratio_vs_peer']:.2f}x, memory run / peer = {x['memory_vs_peer']:.2f})"
        print(f"{x['stage']:44} {x['seconds']:9.2f} {cpu} {x['peak_mib']:9.0f} {xf} {xp}  {tgt}{extra}")
    for name, c in checks.items():
        print(f"crude rates vs {name}: {c['identical']}/{c['cells']} (definition, level) cells identical, "
              f"max |rate difference| {c['max_abs_rate_difference']}")
    print(f"suite wall time {time.perf_counter() - started:.0f} s; start-up (paid once per process) "
          f"{startup_s:.1f} s is not counted in the data stages")

    results = {
        "records": args.records, "seed": args.seed, "episodes": episodes, "followups": followups,
        "csv_mib": size_mib, "data": str(data), "cores": os.cpu_count(), "load_average": load,
        "python": platform.python_version(), "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "created": dt.datetime.now().isoformat(timespec="seconds"), "rows": rows, "rate_checks": checks,
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                              cwd=ROOT).stdout.strip(),
    }
    path = args.results or Path(f"bench-suite-{args.records}-seed{args.seed}.json")
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results: {path}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
