"""``levelcare report``: the report of an analysis, from its results model alone.

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

FORMATS = ("html", "pdf", "xlsx", "brief", "sheet")
FILE_STEM = "report"
BRIEF_FILE = "brief.pdf"  # the board brief: the report's first section on at most 2 pages


def configure_report(parser: argparse.ArgumentParser) -> None:
    from pipelines.analysis.command import add_period_arguments

    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="folder for report.html/.pdf/.xlsx and brief.pdf; its results.json is used when present")
    add_period_arguments(parser)
    parser.add_argument("--format", default=",".join(FORMATS), metavar="LIST",
                        help="comma-separated: html, pdf, xlsx, brief (the 2-page board brief, brief.pdf), sheet "
                             "(the one-page success-rate disclosure sheet, success-sheet.pdf) (default: all)")
    parser.add_argument("--results", type=Path, metavar="DIR",
                        help="folder holding results.json when --out has none (the analyze --out folder)")
    parser.add_argument("--disclosure", default=None, choices=("cms", "opensafely"),
                        help="check that the results were disclosed under this rule (the analysis applies it)")


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.results.periods import parse_period

    formats = parse_formats(args.format)
    paths = write_report(args.out, results_dir=args.results, period=parse_period(args.period, args.quarter),
                         formats=formats, rule=args.disclosure)
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
    out_dir: Path,
    results_dir: Path | None = None,
    *,
    period=None,
    formats: Sequence[str] = FORMATS,
    rule: str | None = None,
) -> list[Path]:
    """Write the report of the results model in ``out_dir`` (or ``results_dir``) into
    ``out_dir`` and return the files written. Reads the results only, never the warehouse."""
    import os

    from pipelines.report import build

    out_dir = Path(out_dir)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UserError(f"unknown report format {', '.join(bad)} (choose from {', '.join(FORMATS)})")
    from pipelines.results.model import load_checked

    _, results = load_checked(out_dir, results_dir, period, rule)
    docs = [(f["file_name"], os.path.relpath(f["data_docs"], out_dir.resolve()))
            for f in results["data_quality"]["validation"]["files"] if f.get("data_docs")]
    report = build.build_report(results, data_docs=docs)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = out_dir / f"{FILE_STEM}.{fmt}"
        if fmt == "brief":
            from pipelines.report.pdf import write_brief_pdf

            written.append(write_brief_pdf(report, out_dir / BRIEF_FILE))
        elif fmt == "sheet":
            written.append(_write_sheet(report, results, out_dir))
        elif fmt == "html":
            from pipelines.report.html import write_html

            written.append(write_html(report, path))
        elif fmt == "pdf":
            from pipelines.report.pdf import write_pdf

            written.append(write_pdf(report, path))
        else:
            from pipelines.report.xlsx import write_report_xlsx

            written.append(write_report_xlsx(report, path, definitions=results["definitions"]))
    log.info("report: %d sections, %d tables, %d charts", len(report.sections), len(report.tables()),
             len(report.charts()))
    return written


def _write_sheet(report, results, out_dir: Path) -> Path:
    """The success-rate disclosure sheet (success-sheet.pdf): how success is measured, on one
    page, the page a family can ask for; its own document, not a section of the report."""
    import dataclasses

    from pipelines.definitions import HEADLINE
    from pipelines.report.pdf import write_brief_pdf
    from pipelines.report.sheet import SHEET_ID, SHEET_KIND, SHEET_PDF, success_sheet_from_results

    sheet = success_sheet_from_results(results, HEADLINE, title=report.title)
    alone = dataclasses.replace(report, sections=[sheet])
    return write_brief_pdf(alone, out_dir / SHEET_PDF, section_id=SHEET_ID, kind=SHEET_KIND, max_pages=1)
