"""Concurrency: real ``levelcare`` processes on one warehouse at the same time.

``tests/functional/test_cli_basics.py::test_busy_warehouse_is_one_line`` covers the lock in one
process; here every party is its own process, started as a user starts it
(``python -m pipelines ...``):

* two writers started together with no patience (``LEVELCARE_LOCK_TIMEOUT=0``): one loads, the
  other exits 3 with one "warehouse busy" line; while the first still writes, a reader gets
  the same one-line refusal, and two more writers with patience wait for the lock and then
  load; afterwards each file is loaded exactly once;
* readers side by side while nothing writes: CLI readers and notebook-style
  ``pipelines.warehouse.connect(read_only=True)`` sessions at once;
* a writer that starts while a reader holds the file open waits for it like for a writer:
  without patience it exits 3 with one line and changes nothing; with patience it loads once
  the reader closes.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from sec_helpers import REPO, csv_text, discharge

ROWS = 30  # valid rows per file, plus one quarantined row


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    started: float
    out: str = ""
    err: str = ""
    ended: float = 0.0

    def finish(self, timeout: float = 600) -> Proc:
        self.out, self.err = self.popen.communicate(timeout=timeout)
        self.ended = time.monotonic()
        return self

    @property
    def rc(self) -> int:
        return self.popen.returncode


def start(name: str, args: list, *, patience: float | None = None, stdin=subprocess.DEVNULL,
          python: str | None = None) -> Proc:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if patience is not None:
        env["LEVELCARE_LOCK_TIMEOUT"] = str(patience)
    cmd = [sys.executable, "-c", python, *map(str, args)] if python else [sys.executable, "-m", "pipelines",
                                                                          *map(str, args)]
    popen = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdin=stdin, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    return Proc(name, popen, time.monotonic())


def assert_busy(proc: Proc) -> None:
    """Exit 3, exactly one line on stderr saying the warehouse is busy, no traceback."""
    assert proc.rc == 3, f"{proc.name}: exit {proc.rc}\n{proc.err[-3000:]}"
    lines = proc.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("levelcare: error: warehouse busy"), proc.err[-3000:]


def lock_held(warehouse: Path) -> bool:
    fd = os.open(f"{warehouse}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def write_file(folder: Path, tag: str) -> Path:
    rows = [discharge(f"{tag}{i}", person_id=f"P{tag}{i}") for i in range(ROWS)]
    rows.append(discharge(f"{tag}-bad", person_id=f"P{tag}-bad", sex="?"))  # quarantined
    path = folder / f"{tag}.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    return path


def ledger(warehouse: Path) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select file_name, status, rows_read, rows_loaded, rows_quarantined from ingest_ledger "
                           "order by file_name").fetchall()


@dataclass
class Contest:
    warehouse: Path
    files: dict[str, Path]
    loser: Proc
    winner: Proc
    reader: Proc
    patient: list[Proc]
    winner_still_writing: bool


@pytest.fixture(scope="module")
def contest(tmp_path_factory) -> Contest:
    root = tmp_path_factory.mktemp("concurrency")
    files = {tag: write_file(root, tag) for tag in ("a", "b", "c")}
    wh = root / "w.duckdb"
    # two writers with no patience, started together
    eager = [start(f"ingest {t}.csv (no wait)", ["ingest", files[t], "--warehouse", wh], patience=0)
             for t in ("a", "b")]
    deadline = time.monotonic() + 300
    while all(p.popen.poll() is None for p in eager) and time.monotonic() < deadline:
        time.sleep(0.1)
    first = next(p for p in eager if p.popen.poll() is not None)
    other = next(p for p in eager if p is not first)
    assert other.popen.poll() is None, "both writers ended at once: no contention to test"
    assert lock_held(wh), "the remaining writer does not hold the lock"
    time.sleep(0.5)  # it opened the DuckDB file right after taking the lock
    # while it writes: a reader, the refused file again and a third file, both with patience
    reader = start("quarantine (reader)", ["quarantine", "--warehouse", wh])
    refused_tag = "a" if first is eager[0] else "b"
    patient = [start(f"ingest {t}.csv (waits)", ["ingest", files[t], "--warehouse", wh], patience=600)
               for t in (refused_tag, "c")]
    reader.finish()
    winner_still_writing = other.popen.poll() is None
    for p in (*eager, *patient):
        p.finish()
    return Contest(wh, files, first, other, reader, patient, winner_still_writing)


def test_second_writer_without_patience_exits_busy(contest):
    assert_busy(contest.loser)
    assert contest.winner.rc == 0, contest.winner.err[-3000:]
    assert "Traceback" not in contest.winner.err


def test_reader_during_a_write_is_told_busy(contest):
    assert contest.winner_still_writing, "the writer finished before the reader asked: nothing was tested"
    assert_busy(contest.reader)
    assert contest.reader.out == ""


def test_writers_with_patience_wait_then_load(contest):
    for p in contest.patient:
        assert p.rc == 0, f"{p.name}: exit {p.rc}\n{p.err[-3000:]}"
        assert "Traceback" not in p.err and "busy" not in p.err
        assert "partial (discharges) read 31, loaded 30, quarantined 1" in p.out


def test_each_file_loaded_exactly_once(contest):
    assert ledger(contest.warehouse) == [(f"{t}.csv", "partial", ROWS + 1, ROWS, 1) for t in ("a", "b", "c")]
    with duckdb.connect(str(contest.warehouse), read_only=True) as con:
        n, distinct_rows, distinct_episodes = con.execute(
            "select count(*), count(distinct (_file_sha256, _row_number)), count(distinct episode_id) "
            "from raw_discharges").fetchone()
        quarantined = con.execute("select file_name, row_number, field from ingest_quarantine order by 1").fetchall()
    assert (n, distinct_rows, distinct_episodes) == (3 * ROWS, 3 * ROWS, 3 * ROWS)
    assert quarantined == [(f"{t}.csv", ROWS + 1, "sex") for t in ("a", "b", "c")]


# A notebook-style session: open read-only, say so, hold the connection until stdin closes,
# then print what it counted.
HOLDING_READER = r"""
import sys
from pathlib import Path
from pipelines.warehouse import connect
with connect(Path(sys.argv[1]), read_only=True) as con:
    print("connected", flush=True)
    sys.stdin.read()
    print(con.execute("select count(*) from raw_discharges").fetchone()[0], flush=True)
"""


def test_readers_work_side_by_side(contest):
    wh = contest.warehouse
    sessions = [start(f"notebook {i}", [wh], python=HOLDING_READER, stdin=subprocess.PIPE) for i in range(2)]
    for s in sessions:
        assert s.popen.stdout.readline().strip() == "connected", s.popen.stderr.read()
    # both sessions hold the file open; CLI readers run meanwhile
    cli = [start("runs list", ["runs", "list", "--warehouse", wh]),
           start("quarantine", ["quarantine", "--warehouse", wh]),
           start("quarantine --rows", ["quarantine", "--rows", "--json", "--warehouse", wh])]
    for p in cli:
        p.finish()
        assert p.rc == 0 and p.err == "", f"{p.name}: exit {p.rc}\n{p.err[-3000:]}"
    for s in sessions:
        s.finish()
        assert s.rc == 0, s.err[-3000:]
        assert s.out.strip() == str(3 * ROWS)
    assert cli[0].out.strip() == "no runs recorded yet"
    assert [ln.split("\t")[:3] for ln in cli[1].out.splitlines()[1:]] == [
        [f"{t}.csv", "allowed_values", "sex"] for t in ("a", "b", "c")]
    assert len(cli[2].out.splitlines()) == 3


def test_writer_meets_an_open_reader(contest, tmp_path):
    wh = tmp_path / "w.duckdb"
    shutil.copy(contest.warehouse, wh)
    before = ledger(wh)
    session = start("notebook", [wh], python=HOLDING_READER, stdin=subprocess.PIPE)
    assert session.popen.stdout.readline().strip() == "connected", session.popen.stderr.read()
    # no patience: refused at once, nothing changed
    hasty = start("ingest d.csv (no wait)", ["ingest", write_file(tmp_path, "d"), "--warehouse", wh],
                  patience=0).finish()
    assert_busy(hasty)
    assert ledger(wh) == before
    # patience: it takes the write lock, waits for the reader to close, then loads
    patient = start("ingest e.csv (waits)", ["ingest", write_file(tmp_path, "e"), "--warehouse", wh],
                    patience=600)
    deadline = time.monotonic() + 300
    while not lock_held(wh) and patient.popen.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    assert patient.popen.poll() is None, "the writer did not wait for the reader"
    session.finish()
    patient.finish()
    assert session.rc == 0 and session.out.strip() == str(3 * ROWS)
    assert patient.rc == 0 and "Traceback" not in patient.err, patient.err[-3000:]
    assert ledger(wh) == [*before, ("e.csv", "partial", ROWS + 1, ROWS, 1)]
    assert not lock_held(wh)
