"""A real local Prefect server, started by the tests that ask for it (``prefect_server``).

Module-scoped: each test file that asks for it gets its own server, used by all of that
file's tests and stopped after them. The server listens on 127.0.0.1 only, on a free port,
with a Prefect home of its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """{"url": the server's API URL, "home": its PREFECT_HOME}."""
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
