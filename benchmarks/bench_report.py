"""Benchmark: the report (HTML, PDF, XLSX), the board brief (brief.pdf) and the accreditation
export from a real analysis at production size (a script, not a test).

The results come from a real ``analyze`` of synthetic episodes (synth -> ingest -> analyze;
``--cache DIR`` keeps the warehouse and results between runs, ``--results DIR`` uses an
existing analysis). The documents read only results.json, so the timings are of the documents
alone. Targets at 1.7 million episodes: report, brief and workbook together < 30 s;
report + export < 60 s; HTML < 5 MB; the PDF at most 20 pages and the brief at most 2.

    uv run --frozen python benchmarks/bench_report.py [--episodes 1700000] [--cache DIR] [--results DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def build_results(root: Path, episodes: int, seed: int) -> Path:
    """synth -> ingest (no Data Docs) -> analyze, as ``levelcare run`` groups the rates."""
    from pipelines.analysis.command import analyze
    from pipelines.ingest.core import ingest_paths
    from pipelines.settings import Settings
    from pipelines.synth import write_synthetic

    out = root / "results"
    if (out / "results.json").exists():
        return out
    t0 = time.perf_counter()
    write_synthetic(root / "data", records=episodes, seed=seed)
    (root / "data" / "truth.json").unlink()
    settings = Settings(warehouse=root / "levelcare.duckdb")
    ingest_paths(settings, [root / "data"], docs=False)
    t1 = time.perf_counter()
    analyze(settings, out, None, ["level_of_care", "level_group", "site", "quarter"])
    print(f"setup: synth + ingest {t1 - t0:.1f} s, analyze {time.perf_counter() - t1:.1f} s "
          f"({episodes:,} episodes)")
    return out


def _pages(path: Path) -> int:
    import re
    import subprocess

    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"Pages:\s+(\d+)", info).group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=1_700_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", type=Path, help="folder kept between runs (warehouse and results)")
    ap.add_argument("--results", type=Path, help="an existing analysis folder (results.json)")
    args = ap.parse_args()
    from pipelines.export.command import write_accreditation_export
    from pipelines.report.command import write_report

    with tempfile.TemporaryDirectory() as tmp:
        if args.results:
            results = args.results
        else:
            root = args.cache or Path(tmp)
            root.mkdir(parents=True, exist_ok=True)
            results = build_results(root, args.episodes, args.seed)
        out = Path(tmp) / "out"
        out.mkdir()
        shutil.copy2(results / "results.json", out / "results.json")
        size = (out / "results.json").stat().st_size
        # CPU seconds beside wall seconds: on a shared machine the wall clock also counts waiting
        t0, c0 = time.perf_counter(), time.process_time()
        write_report(out, formats=("html",))
        t_html, c_html = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        paths = write_report(out)
        t_all, c_all = time.perf_counter() - t0, time.process_time() - c0
        t_each = {}
        for fmt in ("html", "pdf", "xlsx", "brief"):
            t0 = time.perf_counter()
            write_report(out, formats=(fmt,))
            t_each[fmt] = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        write_accreditation_export(out / "export", results_dir=out)
        t_exp, c_exp = time.perf_counter() - t0, time.process_time() - c0
        sizes = {p.suffix: p.stat().st_size for p in paths if p.stem == "report"}
        print(f"results.json: {size / 1e6:.2f} MB")
        print(f"report html only (first call, includes imports): {t_html:.1f} s wall, {c_html:.1f} s cpu")
        print(f"report html+pdf+xlsx+brief: {t_all:.1f} s wall, {c_all:.1f} s cpu (target < 30 s)")
        print("each alone (results read and report built each time): "
              + ", ".join(f"{k} {v:.1f} s" for k, v in t_each.items()))
        pages = {p.name: _pages(p) for p in paths if p.suffix == ".pdf"}
        print("pages: " + ", ".join(f"{k} {v}" for k, v in pages.items()) + " (report.pdf <= 20, brief.pdf <= 2)")
        print(f"export accreditation: {t_exp:.1f} s wall, {c_exp:.1f} s cpu")
        print(f"report + export: {t_all + t_exp:.1f} s wall (target < 60 s; 10 s + 20 % = 12 s before)")
        print(f"html size: {sizes['.html'] / 1e6:.2f} MB (target < 5 MB); pdf {sizes['.pdf'] / 1e6:.2f} MB; "
              f"xlsx {sizes['.xlsx'] / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
