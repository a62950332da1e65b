"""Reproducibility and the command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.synth import write_synthetic

REPO = Path(__file__).resolve().parents[2]


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("fmt", ["native", "teds-d"])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, fmt):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_synthetic(a, 3000, 5, fmt=fmt)
    write_synthetic(b, 3000, 5, fmt=fmt)
    write_synthetic(c, 3000, 6, fmt=fmt)
    da, db, dc = _digests(a), _digests(b), _digests(c)
    assert da == db
    assert set(da) == set(dc)
    for name in da:
        assert da[name] != dc[name], name


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})


def test_cli_writes_files(tmp_path):
    proc = _run("synth", "--out", "tmp", "--records", "2000", "--seed", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "tmp"
    assert sorted(p.name for p in out.iterdir()) == ["discharges.csv", "followups.csv", "truth.json"]
    lines = (out / "discharges.csv").read_text().splitlines()
    assert len(lines) == 2001
    assert lines[0].startswith("episode_id,person_id,site_id,")
    summary = proc.stdout.strip().splitlines()
    assert len(summary) == 1 and "2000 episodes" in summary[0]
    truth = json.loads((out / "truth.json").read_text())
    assert truth["records"] == 2000 and truth["seed"] == 3
    fu_rows = len((out / "followups.csv").read_text().splitlines()) - 1
    assert truth["followup_rows"] == fu_rows and str(fu_rows) in summary[0]


def test_cli_effect_and_config(tmp_path):
    cfg = tmp_path / "effects.yaml"
    cfg.write_text("effects:\n  completion: -20\nsites: 5\n")
    proc = _run("synth", "--out", "o", "--records", "1500", "--seed", "2", "--config", str(cfg),
                "--effect", "abstinent_90d=3", "--format", "teds-d", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    truth = json.loads((tmp_path / "o" / "truth.json").read_text())
    assert truth["parameters"]["effects"]["completion"] == pytest.approx(-0.20)
    assert truth["parameters"]["effects"]["abstinent_90d"] == pytest.approx(0.03)
    assert truth["parameters"]["sites"] == 5


@pytest.mark.parametrize("args", [
    ["--records", "0", "--seed", "1"],
    ["--records", "10", "--seed", "1", "--effect", "nonsense=3"],
    ["--records", "10", "--seed", "1", "--effect", "completion=abc"],
    ["--records", "10", "--seed", "1", "--sites", "0"],
    ["--records", "10", "--seed", "1", "--end-quarter", "2026-09"],
    ["--records", "10", "--seed", "1", "--config", "missing.yaml"],
])
def test_bad_arguments_one_line_exit_2(tmp_path, args):
    proc = _run("synth", "--out", "o", *args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("levelcare: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "discharges.csv").exists()
