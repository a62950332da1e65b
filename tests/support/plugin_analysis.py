"""Fixtures of the report and export tests (a plugin of tests/conftest.py): results from a real
analysis (synthetic extracts, real ingest with great-expectations, real ``analyze``), built once
per test run; the builders live in report_fixtures.py."""

from __future__ import annotations

import pytest
from report_fixtures import analyzed, benchmarked, copy_results
from xdist_shared import built_once


@pytest.fixture(scope="session")
def analysis(tmp_path_factory):
    """(results folder, extracts folder) of one analysis of 3,000 synthetic episodes."""
    def build(root):
        return analyzed(root), root / "data"

    return built_once(tmp_path_factory, "report-analysis", build)  # once, also under pytest-xdist


@pytest.fixture(scope="session")
def written(tmp_path_factory, analysis):
    """The report written once per session in all formats: {suffix: path} for report.*, and
    {"brief": path} for brief.pdf, {"success-sheet": path} for success-sheet.pdf."""
    from pipelines.report.command import write_report

    def build(root):
        out = copy_results(analysis[0], root / "out")
        return {(p.suffix if p.stem == "report" else p.stem): p for p in write_report(out)}

    return built_once(tmp_path_factory, "report-written", build)


@pytest.fixture(scope="session")
def html(written) -> str:
    return written[".html"].read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def report_model(analysis):
    """(results, Report) of the analysis, built once per process as write_report builds it
    (Data Docs links relative to the results folder): the report tests that read the model share it."""
    import os

    from pipelines.report import build
    from pipelines.results.model import load_checked

    _, results = load_checked(analysis[0], None, None, None)
    docs = [(f["file_name"], os.path.relpath(f["data_docs"], analysis[0].resolve()))
            for f in results["data_quality"]["validation"]["files"] if f.get("data_docs")]
    return results, build.build_report(results, data_docs=docs)


@pytest.fixture(scope="session")
def benchmark_analysis(tmp_path_factory):
    """The results folder of one analysis with a benchmark against TEDS-D (a small native set and
    a TEDS-D set in one warehouse; no adjusted comparisons)."""
    return built_once(tmp_path_factory, "report-benchmark", benchmarked)


@pytest.fixture(scope="session")
def benchmark_model(benchmark_analysis):
    """(results, Report) of the benchmark analysis, as write_report builds it."""
    from pipelines.report import build
    from pipelines.results.model import load_checked

    _, results = load_checked(benchmark_analysis, None, None, None)
    return results, build.build_report(results)
