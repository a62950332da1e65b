"""The quarterly flow through a real local Prefect server, its state read back from the API.

Starting a server runs its database migrations, so this file's tests share one server (the
module-scoped ``prefect_server`` fixture of tests/support/plugin_prefect_server.py). The server
listens on 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path


def _post(url: str, body: dict) -> list[dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _ehr_shaped(path: Path, mapping: Path) -> Path:
    """Rewrite ``path`` with EHR headers and labels; write the mapping that reads it back."""
    import csv

    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rename = {"episode_id": "Episode Number", "level_of_care": "Service Setting", "sex": "Gender"}
    labels = {"iop": "Intensive Outpatient", "residential_short": "Residential Short-Term"}
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, [rename.get(k, k) for k in rows[0]])
        w.writeheader()
        for r in rows:
            r["level_of_care"] = labels.get(r["level_of_care"], r["level_of_care"])
            r["sex"] = {"female": "F", "male": "M"}.get(r["sex"], r["sex"])
            w.writerow({rename.get(k, k): v for k, v in r.items()})
    mapping.write_text("levelcare_mapping: 1\ncolumns:\n  Episode Number: episode_id\n  Service Setting: level_of_care\n"
                       "  Gender: sex\nvalues:\n  level_of_care: {Intensive Outpatient: iop, "
                       "Residential Short-Term: residential_short}\n  sex: {F: female, M: male}\n", encoding="utf-8")
    return mapping


def test_quarterly_flow_runs_through_a_server(prefect_server, tmp_path: Path):
    data, out = tmp_path / "data", tmp_path / "out"
    env = {**os.environ, "PREFECT_API_URL": prefect_server["url"], "PREFECT_HOME": prefect_server["home"],
           "PREFECT_LOGGING_LEVEL": "INFO"}  # as a user's: the session's WARNING would keep progress out
    synth = subprocess.run([sys.executable, "-m", "pipelines", "synth", "--out", str(data), "--records", "1500",
                            "--seed", "5"], capture_output=True, text=True, env=env, timeout=300)
    assert synth.returncode == 0, synth.stderr
    (data / "truth.json").unlink()
    spoiled = _spoil_admit_dates(data / "discharges.csv", 12)
    # an EHR-shaped discharge file (its own header and labels) read through a mapping, and a
    # note in the folder that the run skips
    mapping = _ehr_shaped(data / "discharges.csv", tmp_path / "mapping.yaml")
    (data / "README.txt").write_text("Q3 extracts, as agreed.\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "--input", str(data), "--out", str(out), "--format", "html",
         "--warehouse", str(tmp_path / "w.duckdb"), "--mapping", str(mapping)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "README.txt: skipped" in run.stderr
    assert "discharges.csv: partial (discharges)" in run.stderr
    results = json.loads((out / "results.json").read_text())
    run_id = results["run_id"]
    assert run_id in run.stdout
    # the run completed with quarantined rows, and says so: in its summary and in results.json
    orphans = _followups_of(data / "followups.csv", spoiled)
    quarantined = {i["kind"]: i["rows_quarantined"] for i in results["inputs"]}
    # counts 1-10 are not shown (the CMS rule): episodes left out are counted like any others
    assert quarantined == {"discharges": 12, "followups": None if 1 <= orphans <= 10 else orphans}
    assert {i["status"] for i in results["inputs"]} == ({"partial"} if orphans else {"partial", "loaded"})
    assert f"note: {12 + orphans} rows of " in run.stdout
    assert "Traceback" not in run.stderr and all(line.startswith("[") for line in run.stderr.splitlines())
    manifest = json.loads((out / "manifest.json").read_text())
    sha = hashlib.sha256(mapping.read_bytes()).hexdigest()
    assert manifest["parameters"]["mapping"] == {"file": str(mapping.resolve()), "sha256": sha}
    assert {i["kind"]: i["mapping_sha256"] for i in manifest["inputs"]} == {"discharges": sha, "followups": sha}
    flows = _post(f"{prefect_server['url']}/flows/filter", {"flows": {"name": {"any_": ["quarterly"]}}})
    assert len(flows) == 1
    runs = _post(f"{prefect_server['url']}/flow_runs/filter",
                 {"flows": {"id": {"any_": [flows[0]["id"]]}}})
    assert [r["state"]["type"] for r in runs] == ["COMPLETED"]
    # the sub-flows ran through the same server
    names = {f["name"] for f in _post(f"{prefect_server['url']}/flows/filter", {})}
    assert {"ingest", "validate", "analyze", "report", "quarterly"} <= names
    _named_tagged_logged_with_artifacts(prefect_server["url"], run_id, runs[0], results)


def test_strict_fails_a_run_with_quarantined_rows_in_one_line(prefect_server, tmp_path: Path):
    """A user error deep in the flow (the validate gate's, under --strict) is one line, exit 4;
    run through this module's server (no temporary server to start)."""
    env = {**os.environ, "PREFECT_API_URL": prefect_server["url"], "PREFECT_HOME": prefect_server["home"]}
    data = tmp_path / "data"
    made = subprocess.run([sys.executable, "-m", "pipelines", "synth", "--out", str(data), "--records", "400",
                           "--seed", "29"], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert made.returncode == 0, made.stderr
    (data / "truth.json").unlink()
    (data / "followups.csv").unlink()
    _spoil_admit_dates(data / "discharges.csv", 12)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("from before\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "--input", str(data), "--out", str(out),
         "--warehouse", str(tmp_path / "w.duckdb"), "--strict"],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 4, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if not line.startswith("[")]  # progress lines
    assert errors == [("levelcare: error: --strict: 12 rows of 1 file(s) were quarantined (first: discharges.csv); "
                       "see `levelcare quarantine`; nothing was analyzed")], result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "prefect" not in result.stderr.lower()
    # nothing that looks like results: the folder holds what it held
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def _named_tagged_logged_with_artifacts(api: str, run_id: str, top: dict, results: dict) -> None:
    """What Prefect's UI shows of the run, read back from its API."""
    assert top["name"] == f"levelcare-{run_id}"
    assert {run_id, "period:all"} <= set(top["tags"])
    tagged = _post(f"{api}/flow_runs/filter", {"flow_runs": {"tags": {"all_": [run_id]}}})
    assert sorted(r["name"] for r in tagged) == sorted(
        [f"levelcare-{run_id}"] + [f"levelcare-{run_id}-{sub}" for sub in ("ingest", "validate", "analyze", "report")])
    # levelcare's progress lines are in the runs' logs
    logs = _post(f"{api}/logs/filter", {"logs": {"flow_run_id": {"any_": [r["id"] for r in tagged]}}, "limit": 200})
    messages = [entry["message"] for entry in logs]
    assert any(m.startswith("validate ") and "quarantined" in m for m in messages), messages[:20]
    assert any(m.startswith("ingest ") and "discharges.csv: partial" in m for m in messages)
    assert any(m.startswith("report ") for m in messages)
    # artifacts: the ledger, headline rates and comparisons, a link to the report
    key = f"levelcare-{run_id}".lower()
    artifacts = {a["key"]: a for a in _post(f"{api}/artifacts/filter",
                                            {"artifacts": {"key": {"like_": key}}})}
    assert set(artifacts) == {f"{key}-{part}" for part in ("ledger", "rates", "comparisons", "report")}
    ledger = json.loads(artifacts[f"{key}-ledger"]["data"])
    assert sorted((r["file"], r["status"]) for r in ledger) == sorted(
        (i["file_name"], i["status"]) for i in results["inputs"])
    rates = json.loads(artifacts[f"{key}-rates"]["data"])
    assert len(rates) == sum(1 for r in results["rates"] if r["group_by"] in ("all", "level_group"))
    comparisons = json.loads(artifacts[f"{key}-comparisons"]["data"])
    assert {c["method"] for c in comparisons} == {"crude", "aipw"}
    assert artifacts[f"{key}-report"]["data"].endswith("report.html)")


def _spoil_admit_dates(path: Path, n: int) -> list[str]:
    """The first ``n`` discharges get an unreadable admit date; returns their episode ids."""
    import csv

    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows[:n]:
        r["admit_date"] = "13/45/2024"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return [r["episode_id"] for r in rows[:n]]


def _followups_of(path: Path, episodes: list[str]) -> int:
    import csv

    with path.open(newline="", encoding="utf-8") as fh:
        return sum(1 for r in csv.DictReader(fh) if r["episode_id"] in set(episodes))
