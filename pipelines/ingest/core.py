"""Ingest files into the warehouse: read, gate, type, check, validate, load, record.

One file at a time, each in its own transaction (``pipelines.warehouse.transaction``): its
raw rows, its quarantine rows and its ledger row land together or not at all. Every data row
is either loaded or quarantined with a reason (``rows_read = rows_loaded + rows_quarantined``;
a refused file quarantines every row it could read, under the refusal reason). A file whose
sha256 was already loaded is a duplicate and loads nothing. Discharge files of a run are
loaded before its follow-up files, so follow-ups can find discharges sent alongside them.

Nothing here logs or stores a row's values: counts, file names, column names, sha256 only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines import contracts
from pipelines.ingest import identifiers
from pipelines.ingest.batch import BATCH, FAILURES, build_native, collect_row_failures, run_cross_checks
from pipelines.ingest.readers import (
    SRC_TABLE,
    ReadRefused,
    drop_source,
    file_facts,
    load_source,
    peek_columns,
    quote_ident,
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
QUARANTINE_DDL = """CREATE TABLE IF NOT EXISTS ingest_quarantine (
    file_sha256 VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    row_number BIGINT,
    field VARCHAR,
    check_id VARCHAR NOT NULL,
    reason VARCHAR NOT NULL
)"""
# A check failing on more than its tolerated share of rows refuses the whole file, but only
# from this many failing rows on: in a 3-row file two bad rows are two bad rows, not a pattern.
TOLERANCE_MIN_ROWS = 10
KIND_ORDER = {"discharges": 0, "teds-d": 1, "followups": 2}


@dataclass(frozen=True)
class LedgerRow:
    file: str
    sha256: str
    kind: str | None
    status: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    message: str
    contract_version: str | None = None
    site_id: str | None = None
    docs: str | None = None

    def to_json(self) -> str:
        keys = ("file", "sha256", "kind", "status", "rows_read", "rows_loaded", "rows_quarantined", "message")
        return json.dumps({k: asdict(self)[k] for k in keys})

    def line(self) -> str:
        return (f"{self.file}: {self.status} ({self.kind or 'unknown kind'}) read {self.rows_read}, "
                f"loaded {self.rows_loaded}, quarantined {self.rows_quarantined}; {self.message}")


class _Clock:
    """Seconds per ingest phase, for the report and the benchmark."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, phase: str) -> None:
        """Seconds since the last lap, added to ``phase`` (a phase may come back)."""
        now = time.perf_counter()
        self.laps[phase] = round(self.laps.get(phase, 0.0) + now - self._t, 3)
        self._t = now


class Refused(Exception):
    def __init__(self, message: str, field: str = "", check_id: str = "refused"):
        super().__init__(message)
        self.field = field
        self.check_id = check_id


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(LEDGER_DDL)
    con.execute(QUARANTINE_DDL)
    for stmt in contracts.ddl_statements():
        con.execute(stmt)


# Inside a folder only these are taken as record files (truth.json, README.md are skipped);
# a file named explicitly is always attempted, whatever its name.
RECORD_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", ".parquet", ".xlsx", ".xlsm")


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and not any(
                part.startswith(".") for part in f.relative_to(p).parts))
            skipped = [f.name for f in found if f.suffix.lower() not in RECORD_SUFFIXES]
            if skipped:
                log.info("%s: skipped %d files that are not CSV, Parquet or XLSX: %s", p, len(skipped),
                         ", ".join(skipped[:5]))
            out += [f for f in found if f.suffix.lower() in RECORD_SUFFIXES]
        else:
            out.append(p)
    return out


def detect_kind(columns: Sequence[str]) -> str | None:
    cols = set(columns)
    for c in contracts.all_contracts():
        rule = c.detect
        if all(x in cols for x in rule.get("all_of", [])) and (
                not rule.get("any_of") or any(x in cols for x in rule["any_of"])):
            return c.kind
    return None


def _order(paths: list[Path], kind: str | None) -> list[Path]:
    if kind is not None:
        return paths

    def rank(p: Path) -> int:
        try:
            return KIND_ORDER.get(detect_kind(peek_columns(p)) or "", 3)
        except Exception:  # noqa: BLE001 - unreadable: its turn comes and it is refused then
            return 3
    return sorted(paths, key=rank)  # stable: files of one kind keep their order


def ingest_paths(settings: Settings, paths: Sequence[str | Path], kind: str | None = None,
                 site: str | None = None, run_id: str | None = None,
                 today: dt.date | None = None, docs: bool = True) -> list[LedgerRow]:
    """Ingest files (folders: every file inside) into ``settings.warehouse``; one LedgerRow per file.

    great-expectations validates every file; ``docs=False`` only skips writing its Data Docs
    HTML (the validation.json report is always written).
    """
    if kind is not None and kind not in contracts.KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    files = _order(expand_paths(paths), kind)
    today = today or dt.date.today()
    docs_root = docs_root_of(settings)
    return write_each(settings, files, lambda con, path, seen: ingest_file(
        con, path, kind=kind, site=site, run_id=run_id, today=today, docs_root=docs_root, seen=seen, docs=docs))


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
    return rows


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path, *, kind: str | None, site: str | None,
                run_id: str | None, today: dt.date, docs_root: Path, seen: set[str] = frozenset(),
                docs: bool = True) -> LedgerRow:
    name = path.name
    try:
        facts = file_facts(path)
    except ReadRefused as exc:
        # no bytes, no sha256 to key a ledger row by: reported, not recorded
        return LedgerRow(name, "", kind, "refused", 0, 0, 0, str(exc))
    sha = facts.sha256
    if _already_loaded(con, sha, seen):
        return _duplicate(name, sha, kind)
    try:
        return _ingest_source(con, path, facts.sha256, facts, kind, site, run_id, today, docs_root, docs)
    finally:
        _drop_work_tables(con)


def _already_loaded(con, sha: str, seen: set[str]) -> bool:
    prior = con.execute("SELECT status FROM ingest_ledger WHERE file_sha256 = ?", [sha]).fetchall()
    return sha in seen or any(s in ("loaded", "partial") for (s,) in prior)


def _duplicate(name: str, sha: str, kind: str | None) -> LedgerRow:
    return LedgerRow(name, sha, kind, "duplicate", 0, 0, 0, "already loaded (same sha256); nothing loaded again")


def _drop_work_tables(con) -> None:
    con.execute("DROP VIEW IF EXISTS _lc_ok")
    for t in ("_lc_okkeys", "_lc_hashkeys", "_lc_existing", BATCH, FAILURES, "_lc_checks",
              "_lc_window_tolerance"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    drop_source(con)


def _refuse(con, name: str, sha: str, kind: str | None, message: str, field: str, check_id: str,
            run_id: str | None, site: str | None, rows_read: int, version: str | None) -> LedgerRow:
    reason = message[len(name) + 2:] if message.startswith(f"{name}: ") else message
    reason = reason if reason.startswith("refused") else f"refused: {reason}"
    with transaction(con):
        _forget(con, sha)
        if rows_read:
            # every row the file had (data rows are numbered 1..rows_read, as in the source view)
            con.execute("INSERT INTO ingest_quarantine SELECT ?, ?, range, ?, ?, ? FROM range(1, ? + 1)",
                        [sha, name, field or None, check_id, f"file {reason}", rows_read])
        _insert_ledger(con, sha, name, kind, "refused", rows_read, 0, rows_read, message, version, site, run_id)
    return LedgerRow(name, sha, kind, "refused", rows_read, 0, rows_read, message, version, site)


def _forget(con, sha: str) -> None:
    # a refused file may be sent again unchanged (e.g. after a contract fix): its old record goes
    con.execute("DELETE FROM ingest_quarantine WHERE file_sha256 = ?", [sha])
    con.execute("DELETE FROM ingest_ledger WHERE file_sha256 = ?", [sha])


def _insert_ledger(con, sha, name, kind, status, read, loaded, quarantined, message, version, site, run_id):
    con.execute("INSERT INTO ingest_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp, ?)",
                [sha, name, kind, status, read, loaded, quarantined, message, version, site, run_id])


@dataclass
class _Parsed:
    """What the warehouse-independent steps learned of a file (filled as they go, so a refusal
    half-way still knows the kind, contract version and rows read)."""

    kind: str | None
    clock: _Clock
    rows_read: int = 0
    contract: contracts.Contract | None = None
    validation: Future | None = None  # great-expectations, running (see _validate)
    docs_dir: Path | None = None  # where that validation writes its Data Docs

    @property
    def version(self) -> str | None:
        return self.contract.version if self.contract is not None else None


def _parse_and_check(con, path: Path, facts, site: str | None, parsed: _Parsed,
                     docs_dir: Path | None) -> None:
    """Read, identifier gate, typed batch and row checks: everything that needs only the file.

    Leaves ``_lc_batch`` and ``_lc_failures`` on ``con`` (any connection: the warehouse's, or an
    in-memory one on a Dask worker), and great-expectations validating the typed batch in
    ``parsed.validation`` (Data Docs to ``docs_dir`` if given); raises ReadRefused / Refused.
    """
    name = path.name
    clock = parsed.clock
    columns = load_source(con, path, facts)
    (parsed.rows_read,) = con.execute(f"SELECT count(*) FROM {SRC_TABLE}").fetchone()
    clock.lap("read")
    detected = detect_kind(columns)
    if parsed.kind is None:
        parsed.kind = detected
        if parsed.kind is None:
            raise Refused(f"{name}: unknown kind: the header matches no record format "
                          "(discharges, followups, teds-d); give --kind", check_id="unknown_kind")
    contract = parsed.contract = contracts.load(parsed.kind)
    _gate_identifiers(con, name, contract, columns)
    _require_columns(name, contract, columns, site)
    clock.lap("identifier_gate")
    if parsed.kind == "teds-d":
        from pipelines.ingest.teds import build_teds, detect_era

        era = detect_era(con, columns, name)
        checks = build_teds(con, contract, columns, era)
    else:
        checks = build_native(con, contract, columns, site)
    clock.lap("typed_batch")
    parsed.docs_dir = docs_dir
    parsed.validation = _validate(con, contract, parsed.rows_read, docs_dir)
    clock.lap("great_expectations")
    collect_row_failures(con, checks)
    _tolerance(con, name, contract, parsed.rows_read)
    clock.lap("row_checks")


def _finish(con, name: str, sha: str, parsed: _Parsed, site: str | None, run_id: str | None,
            today: dt.date, docs_root: Path, docs: bool, report=None) -> LedgerRow:
    """Cross-record checks against the warehouse, validation verdict, load (the writer's part).

    ``report`` is the great-expectations report when a worker already validated the batch;
    otherwise it is awaited from ``parsed.validation`` after the cross-record checks.
    """
    contract, rows_read, clock = parsed.contract, parsed.rows_read, parsed.clock
    try:
        run_cross_checks(con, contract, today)
        _tolerance(con, name, contract, rows_read)
        clock.lap("cross_checks")
        if report is None:
            report = _validated(parsed)
        if report.errors:
            first = report.errors[0]
            raise Refused(f"{name}: validation could not evaluate {first.check_id} "
                          f"({len(report.errors)} expectations errored); nothing loaded", field=first.column or "",
                          check_id="validation_error")
    except (ReadRefused, Refused) as exc:
        return _refuse(con, name, sha, parsed.kind, str(exc), getattr(exc, "field", ""),
                       getattr(exc, "check_id", "refused"), run_id, site, rows_read, parsed.version)
    return _load(con, name, sha, contract, rows_read, site, run_id, report, docs_root / sha[:16], clock)


def _ingest_source(con, path: Path, sha: str, facts, kind: str | None, site: str | None,
                   run_id: str | None, today: dt.date, docs_root: Path, docs: bool = True) -> LedgerRow:
    parsed = _Parsed(kind, _Clock())
    try:
        try:
            _parse_and_check(con, path, facts, site, parsed, docs_root / sha[:16] if docs else None)
        except (ReadRefused, Refused) as exc:
            return _refuse(con, path.name, sha, parsed.kind, str(exc), getattr(exc, "field", ""),
                           getattr(exc, "check_id", "refused"), run_id, site, parsed.rows_read, parsed.version)
        return _finish(con, path.name, sha, parsed, site, run_id, today, docs_root, docs)
    finally:
        _abandon(parsed)


def _gate_identifiers(con, name: str, contract, columns: list[str]) -> None:
    declared = {f.name for f in contract.fields}
    if contract.kind == "teds-d":
        declared |= _teds_source_columns()
    pseudonyms = {f.name for f in contract.fields if f.sensitivity == "pseudonym"}
    amounts = {f.name for f in contract.fields if f.type == "number"}
    findings = identifiers.scan(con, SRC_TABLE, columns,
                                name_checked=[c for c in columns if c not in declared or c in pseudonyms],
                                distinct=pseudonyms | amounts)
    if findings:
        f = findings[0]
        raise Refused(f.message(name), field=f.column, check_id="direct_identifier")


def _teds_source_columns() -> set[str]:
    # every published TEDS-D variable (76 in 2017-2019, plus the older and newer extras)
    names = set(_TEDS_VARIABLES.split())
    return names


_TEDS_VARIABLES = """age alcdrug alcflg amphflg arrests arrests_d barbflg benzflg caseid cbsa2010 cbsa2020 cbsa
cokeflg daywait detcrim detnlf detnlf_d disyr division dsmcrit educ employ employ_d ethnic freq1 freq2 freq3 freq1_d
freq2_d freq3_d freq_atnd_self_help freq_atnd_self_help_d frstuse1 frstuse2 frstuse3 gender hallflg herflg hlthins
idu inhflg livarag livarag_d los marflg marstat methflg methuse mthamflg noprior opsynflg otcflg otherflg pcpflg
preg priminc primpay psource psyprob race reason region route1 route2 route3 sedhpflg services services_d stfips
stimflg sub1 sub2 sub3 sub1_d sub2_d sub3_d trnqflg vet servsetd pmsa numsubs year"""


def _require_columns(name: str, contract, columns: list[str], site: str | None) -> None:
    cols = set(columns)
    if contract.kind == "teds-d":
        from pipelines.ingest.teds import required_source_columns

        for alts in required_source_columns(contract):
            if not any(a in cols for a in alts):
                raise Refused(f"{name}: missing required column {'|'.join(a.upper() for a in alts)}",
                              field=alts[0], check_id="missing_column")
        return
    for f in contract.fields:
        if not f.required or f.name in cols:
            continue
        if f.alternative and f.alternative in cols:
            continue
        if f.name == "site_id" and site is not None:
            continue
        alt = f" (or {f.alternative})" if f.alternative else ""
        raise Refused(f"{name}: missing required column {f.name}{alt}", field=f.name, check_id="missing_column")


def _tolerance(con, name: str, contract, rows_read: int) -> None:
    if not rows_read:
        return
    counts = con.execute(
        f"SELECT check_id, field, count(DISTINCT _row_number) AS n FROM {FAILURES} WHERE severity = 'error' "
        "GROUP BY check_id, field ORDER BY n DESC, check_id, field").fetchall()
    for check_id, field, n in counts:
        c = contract.check(check_id)
        if c.tolerance is not None and n >= TOLERANCE_MIN_ROWS and n / rows_read > c.tolerance:
            raise Refused(f"{name}: refused: {field} fails {check_id} on {n} of {rows_read} rows "
                          f"({n / rows_read:.0%}, tolerance {c.tolerance:.0%})", field=field, check_id=check_id)


@cache
def _validation_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="levelcare-validation")


def _validate(con, contract, rows_read: int, docs_dir: Path | None) -> Future:
    """Start great-expectations on (a systematic sample of) the typed batch; the report is the
    Future's result.

    The sample is read here, on the caller's connection; the validation itself runs in one
    thread of its own (the thread never touches DuckDB, and one worker means validations never
    overlap: they share one GE context). GE on pandas is Python, one core, while the row and
    cross-record checks that follow it run in DuckDB, which lets go of the GIL. At 1.7 M
    episodes on 2 cores the two files' 3.7-4.1 s of GE leave 0.5-0.75 s of waiting, the checks
    beside them take ~2.8 s longer (the cores are shared): ingest 36.9-37.2 -> 35.4-36.0 s.
    With more cores the checks would not slow down.
    """
    from pipelines.validation import sample_step, validate_frame

    k = sample_step(rows_read)
    cols = ", ".join(quote_ident(f.name) for f in contract.stored_fields)
    where = f"WHERE (_row_number - 1) % {k} = 0" if k > 1 else ""
    frame = con.execute(f"SELECT {cols} FROM {BATCH} {where} ORDER BY _row_number").df()
    return _validation_thread().submit(validate_frame, contract, frame, rows_in_batch=rows_read, docs_dir=docs_dir)


def _validated(parsed: _Parsed):
    """The great-expectations report of ``parsed``'s batch (waits for it; the wait is added to
    the clock's great_expectations phase)."""
    validation, parsed.validation = parsed.validation, None
    report = validation.result()
    parsed.clock.lap("great_expectations")
    return report


def _abandon(parsed: _Parsed) -> None:
    """A file refused before its validation report was used: wait for the validation (so the
    next file's does not run beside it) and remove the Data Docs it wrote; a refused file has
    none, as when validation ran only after the checks."""
    if parsed.validation is None:
        return
    validation, parsed.validation = parsed.validation, None
    if validation.exception() is None and parsed.docs_dir is not None:
        shutil.rmtree(parsed.docs_dir, ignore_errors=True)


def _check_statuses(con, contract, rows_read: int, report) -> list[dict]:
    """OHDSI DQD-style status per contract check: passed, failed, not_applicable."""
    counts = dict(con.execute(f"SELECT check_id, count(DISTINCT _row_number) FROM {FAILURES} GROUP BY check_id")
                  .fetchall())
    out = []
    for c in contract.checks:
        n = counts.get(c.id, 0)
        share = n / rows_read if rows_read else 0.0
        if rows_read == 0:
            status = "not_applicable"
        elif c.severity == "error":
            status = "failed" if n else "passed"
        else:
            status = "failed" if share > (c.tolerance or 0.0) else "passed"
        out.append({"check_id": c.id, "category": c.category, "severity": c.severity, "tolerance": c.tolerance,
                    "failing_rows": n, "share": round(share, 6), "status": status})
    return out


def _load(con, name: str, sha: str, contract, rows_read: int, site: str | None, run_id: str | None,
          report, docs_dir: Path, clock: _Clock) -> LedgerRow:
    cols = ", ".join(quote_ident(f.name) for f in contract.stored_fields)
    (q_rows,) = con.execute(
        f"SELECT count(DISTINCT _row_number) FROM {FAILURES} WHERE severity = 'error'").fetchone()
    loaded = rows_read - q_rows
    top = con.execute(
        f"SELECT check_id, field, count(DISTINCT _row_number) AS n FROM {FAILURES} WHERE severity = 'error' "
        "GROUP BY ALL ORDER BY n DESC, check_id, field LIMIT 3").fetchall()
    warns = con.execute(
        f"SELECT check_id, count(DISTINCT _row_number) AS n FROM {FAILURES} WHERE severity = 'warn' "
        "GROUP BY ALL ORDER BY n DESC, check_id").fetchall()
    if loaded == rows_read:
        status, message = "loaded", f"loaded {loaded} rows"
    elif loaded > 0:
        status, message = "partial", f"loaded {loaded} of {rows_read} rows"
    else:
        status, message = "refused", f"every one of {rows_read} rows failed a check; nothing loaded"
    if q_rows:
        message += "; quarantined " + ", ".join(f"{c} {f} {n}" for c, f, n in top)
    if warns:
        message += "; warnings " + ", ".join(f"{c} {n}" for c, n in warns)
    message += f"; validation {report.summary()}"
    sites = con.execute(
        f"SELECT DISTINCT site_id FROM {BATCH} b WHERE site_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
        f"{FAILURES} x WHERE x._row_number = b._row_number AND x.severity = 'error') LIMIT 2").fetchall()
    site_id = site if site is not None else (sites[0][0] if len(sites) == 1 else None)
    statuses = _check_statuses(con, contract, rows_read, report)
    with transaction(con):
        _forget(con, sha)
        # rows land in file order: the batch is in that order already (DuckDB keeps insertion
        # order), so only a file with quarantined rows (an anti-join) needs the sort
        keep = "" if not q_rows else (
            f"WHERE NOT EXISTS (SELECT 1 FROM {FAILURES} AS x WHERE x._row_number = b._row_number "
            "AND x.severity = 'error') ORDER BY _row_number")
        con.execute(
            f"INSERT INTO {contract.table} ({cols}, _file_sha256, _row_number) SELECT {cols}, ?, _row_number "
            f"FROM {BATCH} AS b {keep}", [sha])
        con.execute(
            f"INSERT INTO ingest_quarantine SELECT ?, ?, _row_number, NULLIF(field, ''), check_id, reason "
            f"FROM {FAILURES} WHERE severity = 'error' ORDER BY _row_number, check_id, field", [sha, name])
        _insert_ledger(con, sha, name, contract.kind, status, rows_read, loaded, q_rows, message,
                       contract.version, site_id, run_id)
    clock.lap("load")
    log.info("%s: seconds per phase %s", name, clock.laps)
    _write_report(docs_dir, name, sha, contract, status, rows_read, loaded, q_rows, statuses, report, clock.laps)
    return LedgerRow(name, sha, contract.kind, status, rows_read, loaded, q_rows, message, contract.version,
                     site_id, str(report.docs_path) if report.docs_path else None)


def _write_report(docs_dir: Path, name, sha, contract, status, read, loaded, quarantined, statuses, report,
                  timings) -> None:
    docs_dir.mkdir(parents=True, exist_ok=True)
    doc = {"file": name, "sha256": sha, "kind": contract.kind, "contract_version": contract.version,
           "status": status, "rows_read": read, "rows_loaded": loaded, "rows_quarantined": quarantined,
           "checks": statuses, "great_expectations": report.as_dict(), "seconds": timings}
    (docs_dir / "validation.json").write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
