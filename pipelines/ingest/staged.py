"""The staged ingest driver: the steps split in two, so the per-file work runs on other
processes (Dask workers; the Prefect flow ``ingest`` with ``parallel``, pipelines.flows).

It drives the steps of :mod:`pipelines.ingest.steps`, as the one-process driver
:func:`pipelines.ingest.core.ingest_paths` does.

``prepare_file(path, ...)`` takes the file-only steps — sha256, reading, the identifier gate,
the typed batch, the row checks and great-expectations validation — in an in-memory DuckDB of
its own, and returns a :class:`PreparedFile`: counts, the refusal if any, and the typed batch
and its row failures as Parquet bytes. It never opens the warehouse.

``load_prepared(settings, prepared, ...)`` takes the writer's steps, in one process holding the
warehouse write lock: duplicate check, cross-record checks against what is already loaded,
the validation verdict and the load, one transaction per file, in the order given. Given the
files in :func:`pipelines.ingest.steps.plan_files` order it leaves the warehouse as
``ingest_paths`` does (the same functions make every decision), but for one thing: the
quarantine rows of a file refused while it was prepared have no ``source_line``, the file's
source being on the worker, not at hand where the rows are written.

A PreparedFile carries a person's values only inside its Parquet bytes, which are never
logged or printed; its other fields are names, hashes, counts and check ids.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import contracts
from pipelines.ingest.batch import BATCH, FAILURES
from pipelines.ingest.core import docs_root_of, write_each
from pipelines.ingest.readers import ReadRefused, file_facts, quote_lit
from pipelines.ingest.steps import (
    Clock,
    LedgerRow,
    Options,
    Parsed,
    Refused,
    abandon_validation,
    already_loaded,
    await_validation,
    drop_work_tables,
    duplicate_row,
    finish,
    parse_and_check,
    refuse,
)
from pipelines.warehouse import duckdb_config

if TYPE_CHECKING:
    from pipelines.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedFile:
    """One file after the file-only steps (see the module docstring)."""

    path: str
    name: str
    sha256: str  # "" when the file could not even be read
    kind: str | None
    status: str  # prepared | refused | duplicate
    rows_read: int = 0
    contract_version: str | None = None
    refusal: tuple[str, str, str] | None = None  # message, field, check_id
    batch: bytes | None = None  # _lc_batch as Parquet
    failures: bytes | None = None  # _lc_failures as Parquet
    report: Any = None  # pipelines.validation.ValidationReport
    docs: dict[str, bytes] = field(default_factory=dict)  # Data Docs files by relative path
    seconds: dict[str, float] = field(default_factory=dict)
    problems: tuple[str, ...] = ()  # a refusal's problems, one line each
    warnings: tuple[str, ...] = ()
    sheet: str | None = None
    mapping_sha256: str | None = None  # the mapping applied to it


def loaded_sha256s(settings: Settings) -> set[str]:
    """sha256 of files already loaded (a hint so workers skip them; the writer checks again)."""
    import duckdb

    from pipelines.errors import UserError
    from pipelines.warehouse import connect

    try:
        with connect(settings.warehouse, read_only=True) as con:
            return {sha for (sha,) in con.execute(
                "SELECT file_sha256 FROM ingest_ledger WHERE status IN ('loaded', 'partial')").fetchall()}
    except (UserError, duckdb.CatalogException):  # no warehouse or ledger yet, or busy: skip nothing
        return set()


def _parquet(con, table: str, folder: Path) -> bytes:
    target = folder / f"{table}.parquet"
    con.execute(f"COPY {table} TO {quote_lit(str(target))} (FORMAT parquet)")
    return target.read_bytes()


def prepare_file(path: str, kind: str | None = None, site: str | None = None,
                 skip: Iterable[str] = (), docs: bool = True, opts: Options | None = None) -> PreparedFile:
    """The file-only steps of ingesting ``path`` (any process; never opens the warehouse).

    ``skip``: sha256 of files already loaded; such a file is only hashed. ``opts`` (kind, site,
    mapping, sheet) replaces ``kind`` and ``site`` when given.
    """
    import duckdb

    opts = opts or Options(kind=kind, site=site)
    kind = opts.kind
    p = Path(path)
    try:
        facts = file_facts(p)
    except ReadRefused as exc:
        return PreparedFile(path, p.name, "", kind, "refused", refusal=(str(exc), "", exc.check_id))
    if facts.sha256 in set(skip):
        return PreparedFile(path, p.name, facts.sha256, kind, "duplicate")
    parsed = Parsed(kind, Clock())
    con = duckdb.connect(config=duckdb_config())
    try:
        with tempfile.TemporaryDirectory(prefix="levelcare-prepare-") as tmp:
            folder = Path(tmp)
            try:
                docs_dir = folder / "docs" if docs else None
                parse_and_check(con, p, facts, opts, parsed, docs_dir)
                report = await_validation(parsed)
            except (ReadRefused, Refused) as exc:
                return PreparedFile(path, p.name, facts.sha256, parsed.kind, "refused", parsed.rows_read,
                                    parsed.version, (str(exc), getattr(exc, "field", ""),
                                                     getattr(exc, "check_id", "refused")),
                                    problems=tuple(getattr(exc, "problems", ())), warnings=tuple(parsed.warnings),
                                    sheet=parsed.sheet, mapping_sha256=parsed.mapping_sha256)
            files = {}
            if docs_dir is not None and docs_dir.is_dir():
                files = {str(f.relative_to(docs_dir)): f.read_bytes() for f in sorted(docs_dir.rglob("*"))
                         if f.is_file()}
            return PreparedFile(path, p.name, facts.sha256, parsed.kind, "prepared", parsed.rows_read,
                                parsed.version, None, _parquet(con, BATCH, folder), _parquet(con, FAILURES, folder),
                                report, files, dict(parsed.clock.laps), warnings=tuple(parsed.warnings),
                                sheet=parsed.sheet, mapping_sha256=parsed.mapping_sha256)
    finally:
        abandon_validation(parsed)
        con.close()


def load_prepared(settings: Settings, prepared: Iterable[PreparedFile], *, kind: str | None = None,
                  site: str | None = None, run_id: str | None = None, today: dt.date | None = None,
                  docs: bool = True, opts: Options | None = None) -> list[LedgerRow]:
    """Load prepared files into ``settings.warehouse`` in the order given; one LedgerRow each.

    ``kind`` and ``site`` (or ``opts``) are those the files were prepared with. ``prepared``
    may be a generator (e.g. waiting for each worker's result in turn): each file is loaded,
    and its batch let go, before the next is asked for.
    """
    opts = opts or Options(kind=kind, site=site)
    today = today or dt.date.today()
    docs_root = docs_root_of(settings)
    return write_each(settings, prepared, lambda con, item, seen: _load_one(
        con, item, opts, run_id=run_id, today=today, docs_root=docs_root, seen=seen, docs=docs))


def _load_one(con, item: PreparedFile, opts: Options, *, run_id, today, docs_root: Path, seen: set[str],
              docs: bool) -> LedgerRow:
    if not item.sha256:  # unreadable: reported, not recorded (as ingest_file does)
        return LedgerRow(item.name, "", opts.kind, "refused", 0, 0, 0, item.refusal[0])
    if item.status == "duplicate" or already_loaded(con, item.sha256, seen):
        return duplicate_row(con, item.name, item.sha256, opts.kind)
    contract = contracts.load(item.kind) if item.kind else None
    if item.status == "refused":
        message, fld, check_id = item.refusal
        parsed = Parsed(item.kind, Clock(), item.rows_read, contract, warnings=list(item.warnings),
                        sheet=item.sheet, mapping_sha256=item.mapping_sha256)
        return refuse(con, item.name, item.sha256, parsed, Refused(message, fld, check_id, item.problems),
                      run_id, opts)
    clock = Clock(item.name)
    clock.laps.update(item.seconds)
    parsed = Parsed(item.kind, clock, item.rows_read, contract, warnings=list(item.warnings), sheet=item.sheet,
                    mapping_sha256=item.mapping_sha256)
    report = item.report
    docs_dir = docs_root / item.sha256[:16]
    if docs and item.docs:
        for rel, data in item.docs.items():
            target = docs_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        report = dataclasses.replace(report, docs_path=docs_dir / "index.html")
    try:
        with tempfile.TemporaryDirectory(prefix="levelcare-load-") as tmp:
            for table, data in ((BATCH, item.batch), (FAILURES, item.failures)):
                staged = Path(tmp) / f"{table}.parquet"
                staged.write_bytes(data)
                con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_parquet("
                            f"{quote_lit(str(staged))})")
        return finish(con, item.name, item.sha256, parsed, opts, run_id, today, docs_root, report)
    finally:
        drop_work_tables(con)
