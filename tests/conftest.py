"""Shared test configuration.

The tests are grouped by kind (CONTRIBUTING.md). Helper modules live in ``tests/support/``,
which is put on ``sys.path`` here, so every test imports them by bare name
(``from ingest_helpers import ...``) whatever folder it sits in; the fixtures that tests of
several kinds share are plugins there (``pytest_plugins`` below).

Slow tests (marked ``slow``) run only with ``--slow``; benchmarks live in ``benchmarks/`` and
are scripts, not tests.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

pytest_plugins = ["plugin_analysis", "plugin_prefect_server", "plugin_synth"]

# One Prefect home per test session, with settings for a machine without internet. xdist's
# workers inherit the controller's; the process that made the folder removes it when it exits
# (the temporary Prefect server stops before: its own exit handler was registered later).
if not os.environ.get("PREFECT_HOME"):
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="levelcare-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running; run with --slow")
    config.addinivalue_line("markers", "browser: needs Debian's chromium at /usr/bin/chromium")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
