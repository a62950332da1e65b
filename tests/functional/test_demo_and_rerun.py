"""The main job as a user runs it: `levelcare demo`, then `runs list`, `runs show`, `rerun`.

One demo (a real embedded Prefect run, a real DuckDB file) is shared by the tests here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def levelcare(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        check=False, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("demo")
    result = levelcare("demo", "--out", str(out), "--records", "3000", "--seed", "11")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="module")
def demo(demo_run) -> Path:
    return demo_run[0]


def test_demo_prints_progress_and_no_library_noise(demo_run):
    out, result = demo_run
    lines = result.stderr.splitlines()
    # levelcare's progress lines only: no Prefect log records, tracebacks or nanobind reports
    assert lines and all(line.startswith("[") for line in lines), result.stderr[-3000:]
    steps = [line.split()[1] for line in lines]
    assert {"run", "ingest", "validate", "analyze", "report"} <= set(steps)
    # the staging folder of the run's outputs is gone once they moved into --out
    assert not [p.name for p in out.iterdir() if p.name.startswith(".levelcare-")]


def _strip_run(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in ("run_id", "created_at")}


def test_demo_leaves_report_results_and_manifest(demo: Path):
    for name in ("report.html", "report.pdf", "brief.pdf", "success-sheet.pdf", "report.xlsx", "results.json", "rates.csv",
                 "dose.csv", "costs.csv", "cost_effectiveness.csv", "manifest.json"):
        assert (demo / name).is_file(), name
    results = json.loads((demo / "results.json").read_text())
    manifest = json.loads((demo / "manifest.json").read_text())
    assert manifest["run_id"] == results["run_id"]
    # the manifest names every loaded input by sha256 and every definition with its text
    assert {i["file_name"] for i in manifest["inputs"]} == {"discharges.csv", "followups.csv"}
    assert all(len(i["file_sha256"]) == 64 for i in manifest["inputs"])
    assert {d["id"] for d in manifest["definitions"]} == {d["id"] for d in results["definitions"]}
    assert all(d["text"] for d in manifest["definitions"])
    # the warehouse and outputs are readable by their owner only
    assert (demo / "levelcare.duckdb").stat().st_mode & 0o077 == 0
    assert (demo / "results.json").stat().st_mode & 0o077 == 0


def test_runs_list_and_show(demo: Path):
    wh = str(demo / "levelcare.duckdb")
    listing = levelcare("runs", "list", "--warehouse", wh)
    assert listing.returncode == 0, listing.stderr
    run_id = json.loads((demo / "results.json").read_text())["run_id"]
    assert run_id in listing.stdout
    shown = levelcare("runs", "show", run_id, "--warehouse", wh)
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["run_id"] == run_id
    missing = levelcare("runs", "show", "run-nope", "--warehouse", wh)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.count("\n") == 1


def test_rerun_reproduces_results_after_new_data(demo: Path, tmp_path: Path):
    wh = str(demo / "levelcare.duckdb")
    original = json.loads((demo / "results.json").read_text())
    # newer data arrive: a second synthetic extract with another seed (other ids, other sites' rows)
    newer = tmp_path / "newer"
    synth = levelcare("synth", "--out", str(newer), "--records", "500", "--seed", "99")
    assert synth.returncode == 0, synth.stderr
    (newer / "truth.json").unlink()
    loaded = levelcare("ingest", str(newer), "--warehouse", wh)
    assert loaded.returncode in (0, 4), loaded.stderr  # 4 would be a refused file; none expected
    again = levelcare("rerun", original["run_id"], "--out", str(tmp_path / "again"), "--warehouse", wh)
    assert again.returncode == 0, again.stderr[-2000:]
    reproduced = json.loads((tmp_path / "again" / "results.json").read_text())
    assert reproduced["run_id"] != original["run_id"]
    assert _strip_run(reproduced) == _strip_run(original)
    assert (tmp_path / "again" / "rates.csv").read_bytes() == (demo / "rates.csv").read_bytes()
    # a rerun is a run of its own: in the registry, linked to the run it reproduces, with a
    # manifest and the outputs the original wrote (the report included)
    new_id = reproduced["run_id"]
    assert new_id in again.stdout
    listed = {r["run_id"]: r for r in json.loads(levelcare("runs", "list", "--json", "--warehouse", wh).stdout)}
    assert listed[new_id]["command"] == "rerun" and listed[new_id]["rerun_of"] == original["run_id"]
    assert listed[new_id]["out_dir"] == str((tmp_path / "again").resolve())
    shown = json.loads(levelcare("runs", "show", new_id, "--json", "--warehouse", wh).stdout)
    manifest = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert shown["manifest"] == manifest and manifest["rerun_of"] == original["run_id"]
    first = json.loads((demo / "manifest.json").read_text())
    assert manifest["inputs"] == first["inputs"] and manifest["definitions"] == first["definitions"]
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == sorted(
        p.name for p in demo.iterdir() if p.is_file() and p.suffix in (".html", ".pdf", ".xlsx", ".csv", ".json")
        and p.name != "truth.json")
