"""Synthetic data from pipelines.synth loads with no error-severity quarantine."""

from __future__ import annotations

import datetime as dt

import pytest
from ingest_helpers import ingest, query

synth = pytest.importorskip("pipelines.synth")


def test_synthetic_native_files_load_clean(tmp_path):
    synth.write_synthetic(tmp_path / "syn", records=400, seed=11)
    rows = ingest(tmp_path, tmp_path / "syn", today=dt.date(2100, 1, 1))
    by_kind = {r.kind: r for r in rows}
    assert len(rows) == 2 and set(by_kind) == {"discharges", "followups"}, rows  # truth.json is skipped
    for r in by_kind.values():
        assert (r.status, r.rows_quarantined) == ("loaded", 0), r.message
        assert r.rows_read == r.rows_loaded > 0
    assert query(tmp_path, "select count(*) from raw_discharges")[0][0] == by_kind["discharges"].rows_loaded


def test_synthetic_teds_file_loads_clean(tmp_path):
    synth.write_synthetic(tmp_path / "syn", records=400, seed=11, fmt="teds-d")
    (row,) = ingest(tmp_path, tmp_path / "syn" / "tedsd_puf.csv")
    assert (row.kind, row.status, row.rows_quarantined) == ("teds-d", "loaded", 0), row.message
