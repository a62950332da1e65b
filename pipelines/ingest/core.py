"""Ingest files into the warehouse in one process: the driver behind ``levelcare ingest``, the
flows' default runner, the notebooks and the tests; and the ingest tables it writes.

:func:`ingest_paths` plans the files and takes each through every step in turn, on the
warehouse's connection under its write lock (:func:`write_each`). The steps themselves, and
what a file's outcome is, are in :mod:`pipelines.ingest.steps`; :mod:`pipelines.ingest.staged`
is the other driver of the same steps, running the file-only ones on other processes (Dask
workers) and leaving the warehouse as this one does.

The tables: ``ingest_ledger`` (one row per file) and ``ingest_quarantine`` (the rows not
loaded, and why), made or brought up to date by :func:`ensure_tables`.

Nothing here logs or stores a row's values: counts, file names, column names, sha256 only.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import contracts, progress
from pipelines.ingest.readers import ReadRefused, file_facts
from pipelines.ingest.steps import (
    Clock,
    LedgerRow,
    Options,
    Parsed,
    Refused,
    abandon_validation,
    already_loaded,
    drop_work_tables,
    duplicate_row,
    finish,
    parse_and_check,
    plan_files,
    refuse,
)
from pipelines.warehouse import transaction

if TYPE_CHECKING:
    import duckdb

    from pipelines.settings import Settings

log = logging.getLogger(__name__)

LEDGER_DDL = """CREATE TABLE IF NOT EXISTS ingest_ledger (
    file_sha256 VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    kind VARCHAR,
    status VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    message VARCHAR,
    contract_version VARCHAR,
    site_id VARCHAR,
    ingested_at TIMESTAMP NOT NULL,
    run_id VARCHAR,
    CHECK (rows_read = rows_loaded + rows_quarantined),
    CHECK (status IN ('loaded', 'partial', 'refused', 'duplicate'))
)"""
# columns added after the first release: a warehouse made before them gets them on first use
LEDGER_ADDED = (("mapping_sha256", "VARCHAR"), ("sheet", "VARCHAR"))
QUARANTINE_DDL = """CREATE TABLE IF NOT EXISTS ingest_quarantine (
    file_sha256 VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    row_number BIGINT,
    field VARCHAR,
    check_id VARCHAR NOT NULL,
    reason VARCHAR NOT NULL
)"""
# source_line: the line of the file (CSV) or row of the sheet (XLSX) as the sender sees it;
# site_id/record_id: the row's key where it has one (record_id = episode_id for discharges,
# followup_id for follow-ups); superseded_by: the sha256 of a later file that loaded that key.
QUARANTINE_ADDED = (("source_line", "BIGINT"), ("site_id", "VARCHAR"), ("record_id", "VARCHAR"),
                    ("episode_id", "VARCHAR"), ("superseded_by", "VARCHAR"))


def current_relation(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """``table`` (ingest_ledger or ingest_quarantine) as SQL with every column this version
    adds, NULL where an older warehouse (opened read-only) does not have it yet."""
    added = {"ingest_ledger": LEDGER_ADDED, "ingest_quarantine": QUARANTINE_ADDED}[table]
    have = {c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ?",
                                      [table]).fetchall()}
    missing = [f"CAST(NULL AS {t}) AS {c}" for c, t in added if c not in have]
    return f"(SELECT *, {', '.join(missing)} FROM {table})" if missing else table


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ingest tables, the saved mappings' table and the contracts' raw tables where
    missing, and add the columns this version adds to an older warehouse's."""
    from pipelines.ingest.mapping import MAPPINGS_DDL

    con.execute(LEDGER_DDL)
    con.execute(QUARANTINE_DDL)
    con.execute(MAPPINGS_DDL)
    for table, added in (("ingest_ledger", LEDGER_ADDED), ("ingest_quarantine", QUARANTINE_ADDED)):
        for column, sql_type in added:
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {sql_type}")
    for stmt in contracts.ddl_statements():
        con.execute(stmt)


def resolve_options(settings: Settings, kind: str | None = None, site: str | None = None,
                    mapping: Any = None, sheet: str | None = None) -> Options:
    """The options of a run: ``mapping`` a Mapping, a path to a mapping file, or None, in which
    case the mapping saved for ``site`` (``levelcare map save``) applies, if any."""
    from pipelines.ingest.mapping import Mapping, load_mapping, site_mapping

    if kind is not None and kind not in contracts.KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    if mapping is None and site is not None and Path(settings.warehouse).exists():
        from pipelines.warehouse import connect

        with connect(settings.warehouse, read_only=True, timeout_seconds=settings.lock_timeout_seconds) as con:
            mapping = site_mapping(con, site)
        if mapping is not None:
            log.info("site %s: applying the mapping saved for it (%s)", site, mapping.sha256[:12])
    if mapping is not None and kind == "teds-d":
        raise ValueError("a mapping applies to discharges and followups files, not TEDS-D")
    return Options(kind=kind, site=site, mapping=mapping,
                   sheet=sheet)


def ingest_paths(settings: Settings, paths: Sequence[str | Path], kind: str | None = None,
                 site: str | None = None, run_id: str | None = None,
                 today: dt.date | None = None, docs: bool = True, *, mapping: Any = None,
                 sheet: str | None = None, skipped: list[str] | None = None) -> list[LedgerRow]:
    """Ingest files (folders: every file inside) into ``settings.warehouse``; one LedgerRow per file.

    great-expectations validates every file; ``docs=False`` only skips writing its Data Docs
    HTML (the validation.json report is always written). ``mapping``: see resolve_options;
    ``skipped`` collects one line per file of a folder that is not a record file.
    """
    opts = resolve_options(settings, kind, site, mapping, sheet)
    files = plan_files(paths, opts.kind, opts.mapping, skipped, opts.sheet)
    today = today or dt.date.today()
    docs_root = docs_root_of(settings)
    return write_each(settings, files, lambda con, path, seen: ingest_file(
        con, path, opts, run_id=run_id, today=today, docs_root=docs_root, seen=seen, docs=docs))


def docs_root_of(settings: Settings) -> Path:
    """Where validation reports and Data Docs go: beside the warehouse."""
    return Path(settings.warehouse).resolve().parent / "levelcare-docs"


def write_each(settings: Settings, items: Iterable, ingest_one) -> list[LedgerRow]:
    """The writer's loop: one warehouse connection under the write lock, and
    ``ingest_one(con, item, seen)`` for each item in order (``seen``: sha256 of this call's files)."""
    from pipelines.warehouse import connect

    rows: list[LedgerRow] = []
    with connect(settings.warehouse, timeout_seconds=settings.lock_timeout_seconds) as con:
        with transaction(con):
            ensure_tables(con)
        seen: set[str] = set()
        for item in items:
            row = ingest_one(con, item, seen)
            seen.add(row.sha256)
            log.info("%s", row.line())
            rows.append(row)
    progress.clear()  # the live line goes before the command prints the ledger
    return rows


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path, opts: Options, *, run_id: str | None,
                today: dt.date, docs_root: Path, seen: set[str] = frozenset(), docs: bool = True) -> LedgerRow:
    """Every step for one file, on the warehouse's connection ``con`` (see pipelines.ingest.steps)."""
    name = path.name
    try:
        facts = file_facts(path)
    except ReadRefused as exc:
        # no bytes, no sha256 to key a ledger row by: reported, not recorded
        return LedgerRow(name, "", opts.kind, "refused", 0, 0, 0, str(exc))
    sha = facts.sha256
    if already_loaded(con, sha, seen):
        return duplicate_row(con, name, sha, opts.kind)
    parsed = Parsed(opts.kind, Clock(name))
    try:
        try:
            parse_and_check(con, path, facts, opts, parsed, docs_root / sha[:16] if docs else None)
        except (ReadRefused, Refused) as exc:
            return refuse(con, name, sha, parsed, exc, run_id, opts)
        return finish(con, name, sha, parsed, opts, run_id, today, docs_root)
    finally:
        try:
            abandon_validation(parsed)
        finally:
            drop_work_tables(con)
