"""The quarterly flow through a real local Prefect server, its state read back from the API.

Starting a server costs ~30 s on first migration, so this file holds one server for all its
tests. The server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_URL": ""}
    env.pop("PREFECT_API_URL")
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("Prefect server did not start: " + (home / "server.log").read_text()[-2000:])
    yield {"url": url, "home": str(home)}
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)
    log.close()


def _post(url: str, body: dict) -> list[dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_quarterly_flow_runs_through_a_server(prefect_server, tmp_path: Path):
    data, out = tmp_path / "data", tmp_path / "out"
    env = {**os.environ, "PREFECT_API_URL": prefect_server["url"], "PREFECT_HOME": prefect_server["home"]}
    synth = subprocess.run([sys.executable, "-m", "pipelines", "synth", "--out", str(data), "--records", "1500",
                            "--seed", "5"], capture_output=True, text=True, env=env, timeout=300)
    assert synth.returncode == 0, synth.stderr
    (data / "truth.json").unlink()
    run = subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "--input", str(data), "--out", str(out), "--format", "html",
         "--warehouse", str(tmp_path / "w.duckdb")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    run_id = json.loads((out / "results.json").read_text())["run_id"]
    assert run_id in run.stdout
    flows = _post(f"{prefect_server['url']}/flows/filter", {"flows": {"name": {"any_": ["quarterly"]}}})
    assert len(flows) == 1
    runs = _post(f"{prefect_server['url']}/flow_runs/filter",
                 {"flows": {"id": {"any_": [flows[0]["id"]]}}})
    assert [r["state"]["type"] for r in runs] == ["COMPLETED"]
    # the sub-flows ran through the same server
    names = {f["name"] for f in _post(f"{prefect_server['url']}/flows/filter", {})}
    assert {"ingest", "validate", "analyze", "report", "quarterly"} <= names
