"""The DuckDB warehouse: one file, one writer at a time, SQL loaded from ``sql/`` by name.

Writers take an advisory lock on ``<warehouse>.lock`` before opening the database, so a second
writer waits (up to ``Settings.lock_timeout_seconds``) and then stops with "warehouse busy"
instead of failing inside DuckDB; a writer also waits, within the same time, for readers that
hold the file open. Readers open the file read-only and need no lock; a reader arriving while
a writer has the file open is told "warehouse busy" at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import UserError, WarehouseBusy
from pipelines.resources import sql_dir

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

SQL_LAYERS = ("staging", "intermediate", "marts", "checks")
# DuckDB's own default is 80% of the machine's memory; levelcare's statistics share the process
# with the connection, so DuckDB gets this share and spills to disk beyond it (``<file>.tmp``).
MEMORY_SHARE = 0.4


def duckdb_config(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Connection settings: ``memory_limit`` from ``$LEVELCARE_DUCKDB_MEMORY`` (DuckDB's syntax,
    e.g. ``6GB``), else MEMORY_SHARE of the physical memory."""
    env = os.environ if environ is None else environ
    limit = env.get("LEVELCARE_DUCKDB_MEMORY")
    if not limit:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        limit = f"{max(int(total * MEMORY_SHARE) >> 20, 256)}MiB"
    return {"memory_limit": limit}


# warehouses whose write lock this process holds for a whole run (:func:`run_lock`): how deep
_RUN_LOCKS: dict[str, int] = {}


def _lock_key(warehouse: Path) -> str:
    return str(Path(warehouse).resolve())


@contextlib.contextmanager
def run_lock(warehouse: Path, timeout_seconds: float = 0.0) -> Iterator[None]:
    """Hold the write lock for a whole run, taken at its start: a second run on the same
    warehouse is refused at once (:class:`WarehouseBusy`) instead of interleaving with this
    one. The run's own writers (its tasks, threads of this process) pass through
    :func:`write_lock` while it is held."""
    key = _lock_key(warehouse)
    with write_lock(warehouse, timeout_seconds):
        _RUN_LOCKS[key] = _RUN_LOCKS.get(key, 0) + 1
        try:
            yield
        finally:
            _RUN_LOCKS[key] -= 1
            if not _RUN_LOCKS[key]:
                del _RUN_LOCKS[key]


@contextlib.contextmanager
def write_lock(warehouse: Path, timeout_seconds: float = 30.0) -> Iterator[None]:
    """Hold the warehouse's exclusive write lock for the duration of the block."""
    if _lock_key(warehouse) in _RUN_LOCKS:  # this process's run holds it
        yield
        return
    lock_path = Path(f"{warehouse}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + max(timeout_seconds, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    what = (f"waited {timeout_seconds:g} s; set LEVELCARE_LOCK_TIMEOUT to wait longer"
                            if timeout_seconds else "try again when it has finished")
                    raise WarehouseBusy(
                        f"warehouse busy: another levelcare process is writing {warehouse} ({what})") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def connect(
    warehouse: Path, *, read_only: bool = False, timeout_seconds: float = 30.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse. Writers hold the write lock; readers need an existing file."""
    import duckdb

    warehouse = Path(warehouse)
    if read_only:
        if not warehouse.exists():
            raise UserError(f"{warehouse}: no warehouse here yet (run `levelcare ingest` first)")
        try:
            con = duckdb.connect(str(warehouse), read_only=True, config=duckdb_config())
        except duckdb.IOException as exc:
            log.debug("read-only open refused: %s", _first_line(exc))
            raise WarehouseBusy(f"warehouse busy: {warehouse} is being written by another process; "
                                "try again when it has finished") from None
        try:
            yield con
        finally:
            con.close()
        return

    with write_lock(warehouse, timeout_seconds):
        warehouse.parent.mkdir(parents=True, exist_ok=True)
        new = not warehouse.exists()
        # A reader (a notebook, `levelcare quarantine`) holding the file open keeps DuckDB's own
        # lock: a writer waits for it as it waits for another writer, then stops "busy".
        deadline = time.monotonic() + max(timeout_seconds, 0.0)
        while True:
            try:
                con = duckdb.connect(str(warehouse), config=duckdb_config())
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    # DuckDB's message names the holder's PID and lock internals: for the log only
                    log.debug("warehouse open refused: %s", _first_line(exc))
                    raise WarehouseBusy(f"warehouse busy: {warehouse} is open in another process (a "
                                        "notebook or another levelcare command); close it and retry") from None
                time.sleep(0.2)
        if new:
            os.chmod(warehouse, 0o600)
        try:
            yield con
        finally:
            con.close()


@contextlib.contextmanager
def memory_returned(con: duckdb.DuckDBPyConnection, limit: str = "256MiB") -> Iterator[None]:
    """Lower DuckDB's memory limit for the block, so that it gives back the buffers it keeps
    after a build (the statistics that follow need the memory in numpy); then back to
    :func:`duckdb_config`'s (DuckDB shows its setting rounded, so it is not read back)."""
    import duckdb

    try:
        con.execute(f"SET memory_limit = '{limit}'")
        lowered = True
    except duckdb.Error:  # what it holds cannot be evicted (temporary tables): left as it is
        lowered = False
    try:
        yield
    finally:
        if lowered:
            con.execute(f"SET memory_limit = '{duckdb_config()['memory_limit']}'")


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: all of it lands, or none of it."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")


@cache
def _sql_index() -> dict[str, Path]:
    index: dict[str, Path] = {}
    root = sql_dir()
    for layer in SQL_LAYERS:
        for path in sorted((root / layer).glob("*.sql")):
            if path.stem in index:
                raise RuntimeError(f"two SQL models are named {path.stem!r}")
            index[path.stem] = path
    return index


def sql_names(layer: str) -> list[str]:
    """Model names of one layer, in file-name order."""
    return [name for name, path in _sql_index().items() if path.parent.name == layer]


@cache
def load_sql(name: str) -> str:
    """The text of the SQL model ``name`` (file ``sql/<layer>/<name>.sql``)."""
    try:
        return _sql_index()[name].read_text(encoding="utf-8")
    except KeyError:
        raise KeyError(f"no SQL model named {name!r} under {sql_dir()}") from None


def run_sql(
    con: duckdb.DuckDBPyConnection,
    name: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Execute a named SQL file with bound parameters (never string-formatted values)."""
    if params is None:
        return con.execute(load_sql(name))
    return con.execute(load_sql(name), params)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
