"""A small real warehouse for the build's whole-pipeline tests: synthetic native and TEDS-D files
(``levelcare synth``) through the real ingest, raw tables only (no marts built yet)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from xdist_shared import built_once


def _ingested(root: Path) -> Path:
    from pipelines.ingest.core import ingest_paths
    from pipelines.settings import Settings
    from pipelines.synth.command import write_files

    write_files(root / "in" / "native", 1500, 5)
    write_files(root / "in" / "teds", 600, 5, fmt="teds-d")
    settings = Settings.from_options(warehouse=root / "raw.duckdb", environ={})
    ledger = ingest_paths(settings, [root / "in"], today=dt.date(2026, 12, 31), docs=False)
    assert all(r.status == "loaded" for r in ledger), [(r.kind, r.status) for r in ledger]
    return root / "raw.duckdb"


@pytest.fixture
def synth_warehouse(tmp_path_factory, tmp_path) -> Path:
    """A copy of the ingested warehouse, this test's own to build in."""
    source = built_once(tmp_path_factory, "sql-synth-raw", _ingested)
    return Path(shutil.copy(source, tmp_path / "warehouse.duckdb"))
