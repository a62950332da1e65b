"""Where the adjusted statistics' memory goes: the process's resident size beside the C heap.

    uv run --frozen python benchmarks/bench_heap.py WAREHOUSE.duckdb [--out RESULTS.json] [--every 0.1]
        [--after-marts] [--trace SAMPLES.csv]

Runs ``comparative_results`` (as ``levelcare run``'s analyze step calls it, with its arms) on a
warehouse whose marts are built (``--after-marts``: builds them and the crude rates first, in
the same process, as the analyze step does), and samples every ``--every`` seconds the
resident size of the process and glibc's ``mallinfo2``: the heap's size, the bytes in use and
the bytes free in it (holes between live blocks; ``pipelines.heap.trimmed`` hands their pages
back past 1 GiB). Prints the wall, user and system seconds of ``comparative_results``, the peak
and the heap at the peak, and the most the heap held free; ``--trace`` writes every sample
(CSV). glibc only (``mallinfo2``, glibc 2.33 and later).

Compare two versions of the code on the same warehouse with ``PYTHONPATH=<checkout>``; the
results written with ``--out`` are byte-identical when only the memory handling differs.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipelines import heap

heap.configure()  # as the levelcare command does, before any thread (importing pipelines does not)
GIB = 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--out", type=Path, help="write the comparative results here (JSON)")
    parser.add_argument("--every", type=float, default=0.1, help="seconds between samples")
    parser.add_argument("--after-marts", action="store_true",
                        help="build the marts and the crude rates first, in this process, as levelcare run's analyze step does")
    parser.add_argument("--trace", type=Path, help="write every sample here (CSV)")
    args = parser.parse_args()

    from suite_children import RUN_BY, statistics_inputs

    from pipelines import heap

    if heap.mallinfo() is None:
        sys.exit("bench_heap.py needs glibc 2.33 or later (mallinfo2)")
    page = resource.getpagesize()
    samples: list[tuple[float, int, int, int, int]] = []
    stop = threading.Event()

    start = [time.perf_counter()]  # when comparative_results began (reset after --after-marts)

    def sample() -> None:
        while True:
            m = heap.mallinfo()
            with open("/proc/self/statm") as fh:
                rss = int(fh.read().split()[1]) * page
            samples.append((time.perf_counter() - start[0], rss, m.arena, m.uordblks, m.fordblks))
            if stop.wait(args.every):
                return

    from pipelines.analysis.comparative import comparative_results
    from pipelines.warehouse import connect

    settings, definitions, arms = statistics_inputs(args.warehouse)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    before = resource.getrusage(resource.RUSAGE_SELF)
    with connect(settings.warehouse) as con:
        if args.after_marts:
            from pipelines import marts
            from pipelines.analysis import rates

            marts.build(con)
            rates.rates(con, definitions, RUN_BY)  # levelcare run's groupings
            before = resource.getrusage(resource.RUSAGE_SELF)
            peak_before = max(s[1] for s in samples)
            print(f"marts and crude rates: {time.perf_counter() - start[0]:.1f} s, peak resident "
                  f"{peak_before / GIB:.2f} GiB, {samples[-1][1] / GIB:.2f} GiB at their end", flush=True)
            samples.clear()
            start[0] = time.perf_counter()
        results = comparative_results(con, definitions, arms=arms)
    wall = time.perf_counter() - start[0]
    stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    if args.out:
        args.out.write_text(json.dumps(results, default=str), encoding="utf-8")
    if args.trace:
        args.trace.write_text("seconds,rss,heap,in_use,free\n" + "".join(",".join(map(str, x)) + "\n" for x in samples))
    at, rss, arena, used, free = max(samples, key=lambda s: s[1])
    most = max(samples, key=lambda s: s[4])
    print(f"comparative_results: {wall:.1f} s wall, {user:.0f} s user, {system:.0f} s system; "
          f"{len(results.get('comparisons', []))} comparison rows")
    print(f"peak resident {rss / GIB:.2f} GiB at {at:.0f} s: heap {arena / GIB:.2f} GiB, "
          f"in use {used / GIB:.2f}, free {free / GIB:.2f}")
    print(f"most free in the heap: {most[4] / GIB:.2f} GiB at {most[0]:.0f} s "
          f"(resident {most[1] / GIB:.2f} GiB, in use {most[3] / GIB:.2f})")


if __name__ == "__main__":
    main()
