"""Helpers for the security tests: run the CLI as a user would (a subprocess with a time limit
and a 2 GiB address-space limit), valid records-v1 rows, and small file writers."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csv_fixture_text import csv_text as rows_csv_text

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 2 << 30  # 2 GiB of address space per CLI run
CANARY = "CANARY-7f3a9"

DISCHARGE_COLUMNS = ["episode_id", "person_id", "site_id", "program_id", "level_of_care", "admit_date",
                     "discharge_date", "discharge_reason", "age_band", "sex", "primary_substance",
                     "co_occurring_mh", "phq9_admit"]


def discharge(i: int | str = 1, **over: Any) -> dict[str, Any]:
    row = {"episode_id": f"E{i}", "person_id": f"P{i}", "site_id": "s1", "program_id": "s1-iop",
           "level_of_care": "iop", "admit_date": "2026-01-05", "discharge_date": "2026-02-20",
           "discharge_reason": "completed", "age_band": "30-34", "sex": "female",
           "primary_substance": "alcohol", "co_occurring_mh": "false", "phq9_admit": "12"}
    row.update(over)
    return row


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, delimiter: str = ",",
             newline: str = "\n") -> str:
    """CSV text; the columns default to the discharge contract's."""
    return rows_csv_text(rows, list(columns or DISCHARGE_COLUMNS), delimiter, newline)


def _limits() -> None:  # runs in the child between fork and exec: one system call, no locks taken
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    ledger: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        return (f"levelcare {' '.join(self.args)} -> rc={self.returncode} timed_out={self.timed_out}\n"
                f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}")


def run_cli(args: Sequence[str], *, timeout: float = 300, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, stdin: Any = subprocess.DEVNULL) -> CliResult:
    """``python -m pipelines ARGS`` in a subprocess, 2 GiB address space, killed after ``timeout``."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONPATH", str(REPO))
    # RLIMIT_AS counts address space, not memory: glibc reserves 64 MiB per thread arena and Arrow's
    # jemalloc reserves ~1 GiB up front, which alone would exhaust 2 GiB. Pin both allocators so the
    # limit measures what the CLI actually allocates.
    full_env.setdefault("MALLOC_ARENA_MAX", "2")
    full_env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    cmd = [sys.executable, "-m", "pipelines", *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=str(cwd or REPO), env=full_env, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_limits,  # noqa: PLW1509 - setrlimit only
                            start_new_session=True)  # own process group: a timeout kills it and its children
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    res = CliResult([str(a) for a in args], proc.returncode, out.decode("utf-8", "replace"),
                    err.decode("utf-8", "replace"), timed_out)
    for line in res.stdout.splitlines():
        if line.startswith("{"):
            try:
                res.ledger.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return res


def assert_clean_exit(res: CliResult, allowed: Sequence[int] = (0, 2, 4)) -> None:
    """No hang, no crash, no traceback, no memory blow-up; errors are single lines."""
    assert not res.timed_out, "hung (killed at the time limit)\n" + res.describe()
    assert res.returncode >= 0, f"killed by signal {-res.returncode}\n" + res.describe()
    assert "Traceback" not in res.stderr, res.describe()
    assert "MemoryError" not in res.stderr, res.describe()
    assert res.returncode in allowed, res.describe()
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("levelcare: error:")]
    if res.returncode in (2, 3):
        assert len(errors) == 1, "expected exactly one error line\n" + res.describe()
    for ln in errors:
        assert ln.isprintable(), "error line has control characters\n" + res.describe()
