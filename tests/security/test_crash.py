"""Crash consistency: ``levelcare ingest`` and ``levelcare run`` killed with SIGKILL at random
points, then run again, leave the warehouse as a clean run leaves it.

How a trial works. A chain of processes works on one warehouse: each is started on the
warehouse as the previous one left it and is killed with SIGKILL after a delay drawn uniformly
(fixed seed) from [0, T], T being the duration of one clean run measured first. After every
kill the warehouse is inspected: the file opens, the ledger reconciles (rows_read =
rows_loaded + rows_quarantined), every raw and quarantine row belongs to a file the ledger
records with matching counts, no raw row appears twice, and the stale ``<warehouse>.lock``
left by the dead process can be locked at once (fcntl locks die with their process). The next
process of the chain is the rerun; a chain ends when a process runs to completion (or, after
the last trial, with one more run to completion). Should four kills in a row leave the
warehouse where it was (a machine grown busier than during the clean run makes every process
slower than T), the next process runs uncut, ending the chain, and T becomes the longest
whole-job duration seen. At every completion the warehouse is
compared with the clean run's, table by table: same tables, same columns, same row count and
the same sum of row hashes (an order-free checksum of the content), plus the per-file ledger
figures derived from the input files themselves. A new chain starts on a fresh warehouse.

Columns left out of the checksums, because they legitimately differ between two correct runs:
``ingest_ledger.ingested_at`` (the load time) and ``ingest_ledger.run_id`` (the run that
loaded the file: after a kill, an earlier killed run may have loaded it). ``run_registry`` is
not checksummed (run ids, creation times, output folders); its rows are checked instead: at
least one completed run, no more than the runs started, each with the inputs of this data.

Cost. Importing great-expectations takes longer than most of a small ingest; a trial that
re-imported it would spend its kill points mostly inside ``import``. The default trials therefore fork their
processes from a *fork server*: a process that imported the levelcare package and its heavy
libraries once and forks, per trial, a child that runs ``pipelines.cli.main(argv)`` — the
whole CLI, from argument parsing through the warehouse writes to exit, in a process of its
own (own session, own DuckDB instance, own locks), killed with SIGKILL. The ``slow`` variants
start every process as a user does (``python -m pipelines ...``), with more trials and more
data. ``levelcare run`` trials talk to one Prefect server started for the module (as
``PREFECT_API_URL`` users do) so that a trial does not pay for starting an ephemeral server,
and most of their kill points fall in ingest and analyze, the stages that write the warehouse.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from sec_helpers import DISCHARGE_COLUMNS, REPO, csv_text, discharge

SEED = 20261123
STALL = 4  # kills in a row that leave the warehouse as it was before one runs uncut
LOCK_TIMEOUT = "3"  # a stale lock that blocked would surface as exit 3 within seconds
BAD_DISCHARGE_ROWS = (4, 57, 188)  # 0-based data rows given an invalid sex: quarantined
RAW_TABLES = ("raw_discharges", "raw_followups", "raw_teds_d")
# columns that legitimately differ between two correct runs (see the module docstring)
VOLATILE = {"ingest_ledger": {"ingested_at", "run_id"}}
NOT_CHECKSUMMED = {"run_registry"}

PRELOAD = ["pipelines.cli", "pipelines.ingest.command", "pipelines.ingest.core", "pipelines.validation",
           "great_expectations", "duckdb", "pandas", "polars"]
PRELOAD_RUN = [*PRELOAD, "prefect", "pipelines.flows.command", "pipelines.flows.quarterly",
               "pipelines.analysis.command", "pipelines.analysis.comparative", "pipelines.marts",
               "pipelines.report.command", "pipelines.report.build", "pipelines.report.html"]

# The fork server: reads one JSON request a line, forks a child that runs the CLI in a new
# session, kills it with SIGKILL (and its process group) when kill_after passes, reaps it and
# answers one JSON line. The child is never reaped before the kill, so its pid stays ours.
FORK_SERVER = r"""
import importlib, json, os, select, signal, sys, time, traceback
for name in sys.argv[1:]:
    importlib.import_module(name)
import pipelines.cli
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        rc = 70
        try:
            os.setsid()
            log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0); os.dup2(log, 1); os.dup2(log, 2)
            os.chdir(req["cwd"])
            rc = pipelines.cli.main(req["argv"])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush(); sys.stderr.flush()
            finally:
                os._exit(rc)
    pidfd = os.pidfd_open(pid)
    ready, _, _ = select.select([pidfd], [], [], req.get("kill_after"))
    if not ready:
        os.kill(pid, signal.SIGKILL)
    try:
        os.killpg(pid, signal.SIGKILL)  # whatever the child started goes with it
    except ProcessLookupError:
        pass
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    print(json.dumps({"returncode": os.waitstatus_to_exitcode(status),
                      "seconds": time.monotonic() - start}), flush=True)
"""


@dataclass
class Outcome:
    returncode: int
    seconds: float
    log: str

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


class ForkServer:
    """Children forked from a process that imported levelcare once (see the module docstring)."""

    def __init__(self, preload: list[str], env: dict[str, str], logs: Path):
        self.logs = logs
        self.n = 0
        self.proc = subprocess.Popen([sys.executable, "-c", FORK_SERVER, *preload], cwd=str(REPO), env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        assert json.loads(self.proc.stdout.readline() or "{}").get("ready"), "fork server did not start"

    def launch(self, argv: list[str], kill_after: float | None) -> Outcome:
        self.n += 1
        log = self.logs / f"child-{self.n}.log"
        req = {"argv": [str(a) for a in argv], "kill_after": kill_after, "log": str(log), "cwd": str(REPO)}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        # a child killed at once may not have opened its log yet
        text = log.read_text(errors="replace") if log.exists() else ""
        return Outcome(answer["returncode"], answer["seconds"], text)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a test stopped half-way: the server is still serving
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Spawner:
    """Every process started as a user starts it: ``python -m pipelines ARGS``."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs, self.n = env, logs, 0

    def launch(self, argv: list[str], kill_after: float | None) -> Outcome:
        self.n += 1
        log = self.logs / f"proc-{self.n}.log"
        start = time.monotonic()
        with log.open("wb") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "pipelines", *map(str, argv)], cwd=str(REPO),
                                    env=self.env, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh,
                                    start_new_session=True)
            try:
                proc.wait(timeout=kill_after if kill_after is not None else 1800)
            except subprocess.TimeoutExpired:
                pass
            finally:  # also when the test itself is stopped
                if proc.returncode is None:  # not reaped yet: its pid and group are still ours
                    os.kill(proc.pid, signal.SIGKILL)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)  # and whatever it started
                proc.wait()
        return Outcome(proc.returncode, time.monotonic() - start, log.read_text(errors="replace"))

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# input data


def _rewrite_rows(path: Path, rows: set[int], column: str, value: str) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        data = list(csv.DictReader(fh))
    for i in rows:
        data[i][column] = value
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(data[0]))
        w.writeheader()
        w.writerows(data)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@dataclass
class Inputs:
    folder: Path
    expected: dict[str, tuple[str, int, int, int]]  # sha256 -> (status, read, loaded, quarantined)
    names: dict[str, str] = field(default_factory=dict)  # sha256 -> file name


def make_inputs(root: Path, records: int, *, refused_file: bool, followups: bool = True) -> Inputs:
    """Synthetic extracts with a few quarantined rows (and, for ingest, a file the identifier
    gate refuses); the ledger each file must end with, derived from the files themselves."""
    folder = root / "input"
    res = subprocess.run([sys.executable, "-m", "pipelines", "synth", "--out", str(folder), "--records",
                          str(records), "--seed", "7"], cwd=str(REPO), capture_output=True, text=True, timeout=600,
                         check=False)
    assert res.returncode == 0, res.stderr
    (folder / "truth.json").unlink()
    discharges, followups_csv = folder / "discharges.csv", folder / "followups.csv"
    _rewrite_rows(discharges, set(BAD_DISCHARGE_ROWS), "sex", "?")
    d_rows, f_rows = _csv_rows(discharges), _csv_rows(followups_csv)
    bad_episodes = {d_rows[i]["episode_id"] for i in BAD_DISCHARGE_ROWS}
    orphans = sum(r["episode_id"] in bad_episodes for r in f_rows)  # follow-ups of a quarantined episode
    files = {discharges: (len(d_rows), len(BAD_DISCHARGE_ROWS)), followups_csv: (len(f_rows), orphans)}
    if not followups:
        followups_csv.unlink()
        del files[followups_csv]
    if refused_file:
        names = folder / "names.csv"
        names.write_text(csv_text([discharge(f"n{i}", first_name="Alex") for i in range(4)],
                                  [*DISCHARGE_COLUMNS, "first_name"]))
        files[names] = (4, 4)
    inputs = Inputs(folder, {})
    for path, (read, quarantined) in files.items():
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        loaded = read - quarantined
        status = "refused" if loaded == 0 else "partial" if quarantined else "loaded"
        inputs.expected[sha] = (status, read, loaded, quarantined)
        inputs.names[sha] = path.name
    return inputs


# ---------------------------------------------------------------------------------------------
# inspecting a warehouse


def _tables(con) -> list[str]:
    return [r[0] for r in con.execute("select table_name from information_schema.tables where table_schema = "
                                      "'main' and table_type = 'BASE TABLE' order by 1").fetchall()]


def checksums(warehouse: Path) -> dict[str, tuple]:
    """Per table: its columns with types, row count, sum of row hashes and distinct-row count."""
    out = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table in _tables(con):
            if table in NOT_CHECKSUMMED:
                continue
            cols = [(c, t) for c, t in con.execute(
                "select column_name, data_type from information_schema.columns where table_schema = 'main' "
                "and table_name = ? order by ordinal_position", [table]).fetchall()
                if c not in VOLATILE.get(table, set())]
            quoted = ", ".join(f'"{c}"' for c, _ in cols)
            # table and column names come from the catalog of a warehouse this test built
            n, total, distinct = con.execute(
                f'select count(*), coalesce(sum(hash({quoted})), 0), count(distinct hash({quoted})) '
                f'from "{table}"').fetchone()
            out[table] = (tuple(cols), n, int(total), distinct)
    return out


def check_consistent(warehouse: Path, inputs: Inputs) -> dict[str, tuple]:
    """What must hold after any kill. Returns the ledger {sha: (status, read, loaded, quarantined)}."""
    lock = Path(f"{warehouse}.lock")
    if lock.exists():  # left behind by the dead process; nobody may still hold it
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if still held
        finally:
            os.close(fd)
    if not warehouse.exists():
        return {}
    with duckdb.connect(str(warehouse), read_only=True) as con:  # never corrupt: it opens
        tables = set(_tables(con))
        if "ingest_ledger" not in tables:
            assert not tables & set(RAW_TABLES), "raw tables without a ledger"
            return {}
        ledger_rows = con.execute("select file_sha256, status, rows_read, rows_loaded, rows_quarantined "
                                  "from ingest_ledger").fetchall()
        ledger = {r[0]: r[1:] for r in ledger_rows}
        assert len(ledger) == len(ledger_rows), "a file recorded twice in the ledger"
        for sha, (status, read, loaded, quarantined) in ledger.items():
            assert sha in inputs.expected, "ledger row for a file that is not an input"
            assert read == loaded + quarantined
            assert (status, read, loaded, quarantined) == inputs.expected[sha], inputs.names[sha]
        raw: dict[str, int] = {}
        for table in RAW_TABLES:
            if table not in tables:
                continue
            (dupes,) = con.execute(f"select count(*) - count(distinct (_file_sha256, _row_number)) "
                                   f"from {table}").fetchone()
            assert dupes == 0, f"{table}: {dupes} duplicate rows"
            for sha, n in con.execute(f"select _file_sha256, count(*) from {table} group by 1").fetchall():
                raw[sha] = raw.get(sha, 0) + n
        quarantine = dict(con.execute("select file_sha256, count(distinct row_number) from ingest_quarantine "
                                      "group by 1").fetchall())
    for sha in raw.keys() | quarantine.keys():
        assert sha in ledger, "rows of a file the ledger does not record (a half-recorded file)"
    for sha, (_status, _read, loaded, quarantined) in ledger.items():
        assert raw.get(sha, 0) == loaded, f"{inputs.names[sha]}: raw rows differ from the ledger"
        assert quarantine.get(sha, 0) == quarantined, f"{inputs.names[sha]}: quarantine differs from the ledger"
    return ledger


def check_complete(warehouse: Path, inputs: Inputs, clean: dict[str, tuple], label: str) -> None:
    ledger = check_consistent(warehouse, inputs)
    assert ledger == inputs.expected, f"{label}: ledger after the rerun differs from the input files"
    got = checksums(warehouse)
    assert got.keys() == clean.keys(), f"{label}: tables differ: {sorted(got.keys() ^ clean.keys())}"
    diff = [t for t in clean if got[t] != clean[t]]
    assert not diff, f"{label}: content differs from the clean run in {diff}"


# ---------------------------------------------------------------------------------------------
# the trials


@dataclass
class Tally:
    trials: int = 0
    kills: int = 0
    completions: int = 0
    kill_seconds: list[float] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)  # what the kills left, by progress
    clean_seconds: float = 0.0
    clean_warehouse: Path | None = None


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(REPO), "LEVELCARE_LOCK_TIMEOUT": LOCK_TIMEOUT, "TQDM_DISABLE": "1"})
    env.update(extra or {})
    return env


def run_chains(launcher, make_argv, inputs: Inputs, root: Path, trials: int, delays, ok_codes: tuple[int, ...],
               after_completion=None) -> Tally:
    """``trials`` killed-or-completed processes in chains on fresh warehouses (module docstring)."""
    tally = Tally()
    clean_wh = root / "clean" / "w.duckdb"
    clean_wh.parent.mkdir(parents=True)
    first = launcher.launch(make_argv(clean_wh), None)
    assert first.returncode in ok_codes, first.log[-3000:]
    tally.clean_seconds = first.seconds
    check_consistent(clean_wh, inputs)
    if after_completion:
        after_completion(clean_wh, 1)
    clean = checksums(clean_wh)
    tally.clean_warehouse = clean_wh
    lifetime = first.seconds  # the longest run to completion seen: on a machine growing busier,
    # delays drawn from a stale, shorter lifetime would all fall early and the chain never advance

    chain, started, stalled, state, warehouse = 0, 0, 0, "", None
    for i in range(trials + 1):
        last = i == trials
        if last and warehouse is None:
            break  # the last trial ran to completion: nothing left to recover
        if warehouse is None:
            chain += 1
            started, stalled, state = 0, 0, ""
            warehouse = root / f"chain-{chain}" / "w.duckdb"
            warehouse.parent.mkdir(parents=True)
        # after STALL kills without progress one process runs uncut: it ends the chain and
        # measures the lifetime anew
        delay = None if last or stalled >= STALL else delays(lifetime, first.seconds)
        outcome = launcher.launch(make_argv(warehouse), delay)
        started += 1
        label = f"trial {i + 1} (chain {chain}, delay {delay})"
        assert "Traceback" not in outcome.log, f"{label}\n{outcome.log[-3000:]}"
        if not last:
            tally.trials += 1
        if outcome.killed:
            tally.kills += 1
            tally.kill_seconds.append(outcome.seconds)
            now = _progress(warehouse, check_consistent(warehouse, inputs), inputs)
            tally.states[now] = tally.states.get(now, 0) + 1
            stalled = stalled + 1 if now == state else 0
            state = now
            continue
        assert outcome.returncode in ok_codes, f"{label}: exit {outcome.returncode}\n{outcome.log[-3000:]}"
        tally.completions += 1
        if not state or state.startswith(("no warehouse", "0 of")):  # it did the whole job
            lifetime = max(lifetime, outcome.seconds)
        check_complete(warehouse, inputs, clean, label)
        if after_completion:
            after_completion(warehouse, started)
        if not last:
            warehouse = None  # the next trial starts a new chain
    return tally


def _progress(warehouse: Path, ledger: dict, inputs: Inputs) -> str:
    """How far a killed process got, as the warehouse shows it."""
    if not warehouse.exists():
        return "no warehouse yet"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = set(_tables(con))
        registered = con.execute("select count(*) from run_registry").fetchone()[0] if "run_registry" in tables else 0
    state = f"{len(ledger)} of {len(inputs.expected)} files recorded"
    if any(t.startswith("mart_") for t in tables):
        state += ", marts built"
    if registered:
        state += f", {registered} run(s) registered"
    return state


def _uniform(rng: random.Random):
    return lambda lifetime, _clean: rng.uniform(0.0, lifetime)


def _ingest_trials(tmp_path_factory, launcher_kind: str, trials: int, records: int,
                   followups: bool) -> tuple[Tally, Inputs]:
    root = tmp_path_factory.mktemp(f"crash-ingest-{launcher_kind}")
    inputs = make_inputs(root, records, refused_file=True, followups=followups)
    logs = root / "logs"
    logs.mkdir()
    launcher = ForkServer(PRELOAD, _env(), logs) if launcher_kind == "fork" else Spawner(_env(), logs)
    try:
        # exit 4: names.csv is refused by the identifier gate every time, by design
        return run_chains(launcher, lambda wh: ["ingest", inputs.folder, "--warehouse", wh], inputs, root,
                          trials, _uniform(random.Random(SEED)), ok_codes=(4,)), inputs
    finally:
        launcher.close()


def _report(name: str, tally: Tally, seconds: float) -> None:
    kills = sorted(tally.kill_seconds)
    print(f"\n{name}: {tally.trials} trials, {tally.kills} killed, {tally.completions} completions "
          f"(plus the clean run, {tally.clean_seconds:.1f} s); kill times {kills[0]:.2f}-{kills[-1]:.2f} s; "
          f"{seconds:.0f} s in all; the kills left: {dict(sorted(tally.states.items()))}")


def _checks_catch_damage(tally: Tally, inputs: Inputs, root: Path) -> None:
    """The checks above can fail: damaged copies of the clean warehouse are caught."""
    clean = checksums(tally.clean_warehouse)
    damage = {
        "a half-recorded file": "delete from ingest_ledger where file_name = 'discharges.csv'",
        "a duplicate row": "insert into raw_discharges select * from raw_discharges limit 1",
        "a missing row": "delete from raw_discharges where _row_number = 2",
        "a changed value": "update raw_discharges set sex = 'male' where sex = 'female' and _row_number < 40",
    }
    for what, sql in damage.items():
        copy = root / "damaged" / f"{len(what)}-{what.replace(' ', '-')}.duckdb"
        copy.parent.mkdir(exist_ok=True)
        shutil.copy(tally.clean_warehouse, copy)
        with duckdb.connect(str(copy)) as con:
            con.execute(sql)
        with pytest.raises(AssertionError):
            check_complete(copy, inputs, clean, what)


def test_ingest_killed_at_random_points_recovers(tmp_path_factory):
    start = time.monotonic()
    # 20 trials keep the default suite within its budget; the full variant (--slow) runs 60
    tally, inputs = _ingest_trials(tmp_path_factory, "fork", trials=20, records=300, followups=False)
    _report("ingest (forked CLI processes)", tally, time.monotonic() - start)
    assert tally.trials == 20 and tally.kills >= 10 and tally.completions >= 2
    _checks_catch_damage(tally, inputs, tally.clean_warehouse.parent.parent)


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_ingest_killed_at_random_points_recovers_full(tmp_path_factory):
    start = time.monotonic()
    tally, _ = _ingest_trials(tmp_path_factory, "exec", trials=60, records=2000, followups=True)
    _report("ingest (python -m pipelines processes)", tally, time.monotonic() - start)
    assert tally.trials == 60 and tally.kills >= 30 and tally.completions >= 5


# ---------------------------------------------------------------------------------------------
# levelcare run


@pytest.fixture(scope="module")
def prefect_api(request):
    """One local Prefect server for the module (tests/support/plugin_prefect_server.py), as env."""
    server = request.getfixturevalue("prefect_server")
    return {"PREFECT_API_URL": server["url"], "PREFECT_HOME": server["home"]}


PROGRESS = re.compile(r"^\[(\d\d):(\d\d):(\d\d)\] (\w+)", re.MULTILINE)


def _stage_offsets(log: str, started_at: float) -> dict[str, float]:
    """Seconds from the process start to each progress line of ``levelcare run`` (1 s resolution)."""
    day = time.localtime(started_at)
    out = {}
    for h, m, s, step in PROGRESS.findall(log):
        at = time.mktime((day.tm_year, day.tm_mon, day.tm_mday, int(h), int(m), int(s), 0, 0, -1))
        out.setdefault(step, max(at - started_at, 0.0))
    return out


def _run_trials(tmp_path_factory, prefect_api, launcher_kind: str, trials: int, records: int) -> Tally:
    root = tmp_path_factory.mktemp(f"crash-run-{launcher_kind}")
    inputs = make_inputs(root, records, refused_file=False)
    logs = root / "logs"
    logs.mkdir()
    env = _env(prefect_api)
    launcher = ForkServer(PRELOAD_RUN, env, logs) if launcher_kind == "fork" else Spawner(env, logs)
    rng = random.Random(SEED + 1)
    stages: dict[str, float] = {}

    def argv(wh: Path) -> list:
        return ["run", "--input", inputs.folder, "--out", wh.parent / "out", "--warehouse", wh, "--format", "html",
                "--definitions", "completion,no_readmission_30d"]

    def delays(lifetime: float, clean: float) -> float:
        # three kills in four fall in ingest-validate-analyze (the stages that write the warehouse);
        # the rest anywhere in the run, report and run registry included
        writing = stages.get("analyze", clean) * lifetime / clean
        return rng.uniform(0.0, writing if rng.random() < 0.75 else lifetime)

    def registry(wh: Path, started: int) -> None:
        with duckdb.connect(str(wh), read_only=True) as con:
            rows = con.execute("select status, manifest from run_registry").fetchall()
        assert 1 <= len(rows) <= started, f"{len(rows)} runs recorded for {started} started"
        for status, manifest in rows:
            shas = {i["file_sha256"] for i in json.loads(manifest)["inputs"]}
            assert status == "completed" and shas == set(inputs.expected)

    class Timed:  # measures the stages of the clean run (the first launch) from its progress lines
        def __init__(self, inner):
            self.inner, self.first = inner, True

        def launch(self, argv_, kill_after):
            started = time.time()
            outcome = self.inner.launch(argv_, kill_after)
            if self.first:
                stages.update(_stage_offsets(outcome.log, started))
                self.first = False
            return outcome

        def close(self):
            self.inner.close()

    try:
        tally = run_chains(Timed(launcher), argv, inputs, root, trials, delays, ok_codes=(0,),
                           after_completion=registry)
    finally:
        launcher.close()
    print(f"\nrun stages of the clean run (s from start): {stages}")
    return tally


def test_run_killed_at_random_points_recovers(tmp_path_factory, prefect_api):
    start = time.monotonic()
    # 3 trials keep the default suite within its budget; the full variant (--slow) runs 15
    tally = _run_trials(tmp_path_factory, prefect_api, "fork", trials=3, records=300)
    _report("run (forked CLI processes)", tally, time.monotonic() - start)
    assert tally.trials == 3 and tally.kills >= 2


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_run_killed_at_random_points_recovers_full(tmp_path_factory, prefect_api):
    start = time.monotonic()
    tally = _run_trials(tmp_path_factory, prefect_api, "exec", trials=15, records=1000)
    _report("run (python -m pipelines processes)", tally, time.monotonic() - start)
    assert tally.trials == 15 and tally.kills >= 8
