"""Fixtures of the report and export tests (the builders live in report_fixtures.py, a
uniquely named module, so that no other test folder's ``conftest`` can shadow them)."""

from __future__ import annotations

import pytest
from report_fixtures import make_results, make_warehouse
from xdist_shared import built_once


@pytest.fixture(scope="session")
def written(tmp_path_factory):
    """The report written once per session in all formats: {suffix: path}."""
    import json

    from pipelines.report.command import write_report
    from pipelines.settings import Settings

    def build(root):
        wh = make_warehouse(root / "w.duckdb")
        out = root / "out"
        out.mkdir()
        (out / "results.json").write_text(json.dumps(make_results()), encoding="utf-8")
        paths = write_report(Settings(warehouse=wh), out)
        return {p.suffix: p for p in paths}

    return built_once(tmp_path_factory, "report-written", build)  # once, also under pytest-xdist


@pytest.fixture(scope="session")
def html(written) -> str:
    return written[".html"].read_text(encoding="utf-8")
