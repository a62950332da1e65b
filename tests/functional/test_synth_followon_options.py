"""``synth --start`` and ``--id-prefix``: follow-on periods whose ids cannot collide.

The defaults keep their bytes (test_synth_command.py and the fixtures hold them); these tests check
that --start on a quarter's first day is --end-quarter spelled otherwise, that --id-prefix
changes the ids and nothing else, that dates follow a moved period, and the one-line refusals.
The load of two quarters into one warehouse is tests/functional/test_synth_followon.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import polars as pl
import pytest

from pipelines.cli import main
from pipelines.errors import UserError
from pipelines.synth import write_synthetic
from pipelines.synth.command import ID_PREFIX_PATTERN
from pipelines.synth.model import start_bounds

ID_COLUMNS = {"discharges.csv": ("episode_id", "person_id"), "followups.csv": ("followup_id", "episode_id")}


@pytest.fixture
def keep_umask():
    """main() sets the process umask (records are private); put it back for the other tests."""
    old = os.umask(0o077)
    os.umask(old)
    yield
    os.umask(old)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _text_frame(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


@pytest.mark.parametrize("start", ["2026-07-01", dt.date(2026, 7, 1)])
def test_start_on_the_first_day_of_a_quarter_is_end_quarter(tmp_path, start):
    write_synthetic(tmp_path / "a", 400, 5, quarters=1, end_quarter="2026Q3")
    write_synthetic(tmp_path / "b", 400, 5, quarters=1, start=start)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")


def test_id_prefix_changes_the_ids_and_nothing_else(tmp_path):
    plain = write_synthetic(tmp_path / "a", 400, 5, quarters=2)
    prefixed = write_synthetic(tmp_path / "b", 400, 5, quarters=2, id_prefix="q2-")
    for name, id_columns in ID_COLUMNS.items():
        a, b = _text_frame(tmp_path / "a" / name), _text_frame(tmp_path / "b" / name)
        assert a.columns == b.columns and a.height == b.height > 0
        for col in a.columns:
            expected = ("q2-" + a[col]) if col in id_columns else a[col]
            assert b[col].equals(expected), (name, col)
    assert prefixed.pop("id_prefix") == "q2-"
    assert prefixed == plain
    assert "id_prefix" not in json.loads((tmp_path / "a" / "truth.json").read_text())


def test_dates_follow_a_moved_period(tmp_path):
    truth = write_synthetic(tmp_path, 500, 9, quarters=2, start="2026-10-01", id_prefix="b7")
    first, last = dt.date(2026, 10, 1), dt.date(2027, 3, 31)
    assert truth["period"] == {"start": "2026-10-01", "end": "2027-03-31", "quarters": ["2026Q4", "2027Q1"],
                               "data_end_date": "2027-03-31"}
    d = _text_frame(tmp_path / "discharges.csv")
    f = _text_frame(tmp_path / "followups.csv")
    discharged = dict(zip(zip(d["site_id"], d["episode_id"], strict=True),
                          map(dt.date.fromisoformat, d["discharge_date"]), strict=True))
    assert all(first <= day <= last for day in discharged.values())
    # admissions may precede the period (episodes open at its start), never their discharge
    admits = [dt.date.fromisoformat(x) for x in d["admit_date"]]
    assert all(a <= day for a, day in zip(admits, discharged.values(), strict=True))
    assert f.height > 0
    for site, episode, contact in zip(f["site_id"], f["episode_id"], f["contact_date"], strict=True):
        assert discharged[(site, episode)] < dt.date.fromisoformat(contact) <= last
    assert d["episode_id"][0] == "b7E0000001" and all(p.startswith("b7P") for p in d["person_id"])
    assert f["followup_id"][0] == "b7F0000001"


@pytest.mark.parametrize(("start", "quarters", "end", "labels"), [
    ("2026-10-01", 1, "2026-12-31", ["2026Q4"]),
    ("2024-04-01", 10, "2026-09-30", ["2024Q2", "2024Q3", "2024Q4", "2025Q1", "2025Q2", "2025Q3", "2025Q4",
                                      "2026Q1", "2026Q2", "2026Q3"]),
    ("2026-02-15", 1, "2026-05-14", ["2026Q1", "2026Q2"]),
    ("2026-01-31", 1, "2026-04-30", ["2026Q1", "2026Q2"]),
    ("2025-11-01", 2, "2026-04-30", ["2025Q4", "2026Q1", "2026Q2"]),
])
def test_start_bounds(start, quarters, end, labels):
    assert start_bounds(dt.date.fromisoformat(start), quarters) == (
        dt.date.fromisoformat(start), dt.date.fromisoformat(end), labels)


@pytest.mark.parametrize(("args", "names"), [
    (["--id-prefix", "a b"], "--id-prefix"),
    (["--id-prefix", "x@y"], "--id-prefix"),
    (["--id-prefix=-x"], "--id-prefix"),
    (["--id-prefix", "q" * 21], "--id-prefix"),
    (["--id-prefix", "q2:"], "--id-prefix"),
    (["--id-prefix", "q2", "--format", "teds-d"], "--id-prefix"),
    (["--start", "2026-02-30"], "--start"),
    (["--start", "2026-10-1"], "--start"),
    (["--start", "2026-10-01", "--end-quarter", "2026Q3"], "--start"),
])
def test_bad_options_one_line_exit_2(tmp_path, capsys, keep_umask, args, names):
    code = main(["synth", "--out", str(tmp_path / "o"), "--records", "10", "--seed", "1", *args], environ={})
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and not out
    assert len(lines) == 1 and lines[0].startswith(f"levelcare: error: {names} "), err
    if names == "--id-prefix" and "teds-d" not in args:
        assert ID_PREFIX_PATTERN in lines[0]
    assert not (tmp_path / "o").exists()


def test_prefix_error_from_the_api_names_the_option(tmp_path):
    with pytest.raises(UserError, match=r"^--id-prefix must match "):
        write_synthetic(tmp_path / "o", 10, 1, id_prefix="")
    assert not (tmp_path / "o").exists()


def test_config_gives_start_and_prefix(tmp_path, capsys, keep_umask):
    cfg = tmp_path / "q.yaml"
    cfg.write_text("quarters: 1\nstart: 2026-10-01\nid_prefix: 2026q4-\n")  # YAML reads the start as a date
    assert main(["synth", "--out", str(tmp_path / "o"), "--records", "50", "--seed", "3", "--config", str(cfg)],
                environ={}) == 0, capsys.readouterr().err
    truth = json.loads((tmp_path / "o" / "truth.json").read_text())
    assert (truth["period"]["start"], truth["period"]["end"], truth["id_prefix"]) == (
        "2026-10-01", "2026-12-31", "2026q4-")
    assert _text_frame(tmp_path / "o" / "discharges.csv")["episode_id"][0] == "2026q4-E0000001"
