"""``levelcare report``: the quarterly report from the latest analysis and the warehouse.

``write_report`` is the plain function the demo and the Prefect flow call.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from pipelines.errors import UserError
from pipelines.settings import Settings

log = logging.getLogger(__name__)

FORMATS = ("html", "pdf", "xlsx")
FILE_STEM = "report"


def configure_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="folder for report.html/.pdf/.xlsx; its results.json is used when present")
    parser.add_argument("--quarter", metavar="YYYYQn", help="reporting quarter (default: the data's last)")
    parser.add_argument("--format", default=",".join(FORMATS), metavar="LIST",
                        help="comma-separated: html, pdf, xlsx (default: all)")
    parser.add_argument("--results", type=Path, metavar="DIR",
                        help="folder holding results.json when --out has none (the analyze --out folder)")
    parser.add_argument("--disclosure", default="cms", choices=("cms", "opensafely"),
                        help="small-number rule (default cms: no count 1-10, complementary suppression)")


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    formats = parse_formats(args.format)
    paths = write_report(settings, args.out, results_dir=args.results, quarter=args.quarter, formats=formats,
                         rule=args.disclosure)
    for p in paths:
        print(p)
    return 0


def parse_formats(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in str(text).split(",") if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise UserError(f"--format: unknown format {', '.join(bad) or '(none)'} (choose from {', '.join(FORMATS)})")
    return chosen


def write_report(
    settings: Settings,
    out_dir: Path,
    results_dir: Path | None = None,
    quarter: str | None = None,
    formats: Sequence[str] = FORMATS,
    *,
    rule: str = "cms",
) -> list[Path]:
    """Write the report into ``out_dir`` and return the files written."""
    from pipelines.report import build, inputs

    out_dir = Path(out_dir)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UserError(f"unknown report format {', '.join(bad)} (choose from {', '.join(FORMATS)})")
    results_path = inputs.find_results(out_dir, results_dir)
    results = inputs.load_results(results_path)
    if quarter:
        build.parse_quarter(quarter)
    q = quarter or build.report_quarter(results, inputs.WarehouseAggregates(), None)
    agg = inputs.read_warehouse(settings.warehouse, build.last_quarters(q) if q else None)
    docs = build.find_data_docs(results_path.parent, out_dir)
    report = build.build_report(results, agg, quarter=quarter or q, rule=rule, data_docs=_relative(docs, out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = out_dir / f"{FILE_STEM}.{fmt}"
        if fmt == "html":
            from pipelines.report.html import write_html

            written.append(write_html(report, path))
        elif fmt == "pdf":
            from pipelines.report.pdf import write_pdf

            written.append(write_pdf(report, path))
        else:
            from pipelines.report.xlsx import write_report_xlsx

            written.append(write_report_xlsx(report, path))
    log.info("report: %d sections, %d tables, %d charts", len(report.sections), len(report.tables()),
             len(report.charts()))
    return written


def _relative(path: str | None, start: Path) -> str | None:
    if path is None:
        return None
    import os

    return os.path.relpath(path, start)
