"""The steps of ingesting a file: the one place both ingest drivers take them from.

:func:`pipelines.ingest.core.ingest_paths` runs them one file after another in one process, on
the warehouse's connection; :mod:`pipelines.ingest.staged` runs the file-only steps on other
processes (Dask workers) and the writer's steps in the one process holding the warehouse. The
same functions make every decision, so both drivers leave the warehouse the same (but for the
source lines of a file refused on a worker: see the staged module).

1. Plan (:func:`plan_files`): the files to ingest, a folder's record files, discharges before
   follow-ups so follow-ups can find discharges sent alongside them.
2. Identify (``readers.file_facts``, :func:`already_loaded`, :func:`duplicate_row`): a file
   whose sha256 was already loaded is a duplicate and loads nothing.
3. The file-only steps (:func:`parse_and_check`, on any DuckDB connection): read the file,
   apply the mapping, tell its kind (:func:`detect_kind`), refuse direct identifiers
   (:func:`gate_identifiers`) and missing columns (:func:`check_columns`), type the batch
   (``_lc_batch``), start great-expectations on it (:func:`start_validation`), run the row
   checks (``_lc_failures``) and refuse a check failing beyond its tolerance
   (:func:`check_tolerance`). The report is awaited with :func:`await_validation`, or let go
   with :func:`abandon_validation` when the file is refused.
4. The writer's steps (on the warehouse's connection, under its write lock): :func:`finish`
   runs the cross-record checks against what is loaded and takes the validation verdict, then
   :func:`load_batch` or :func:`refuse` records the file; :func:`drop_work_tables` clears the
   work tables after each file.

Each file is recorded in one transaction (``pipelines.warehouse.transaction``): its raw rows,
its quarantine rows and its ledger row land together or not at all. Every data row is either
loaded or quarantined with a reason (``rows_read = rows_loaded + rows_quarantined``; a refused
file quarantines every row it could read, under the refusal reason). A step refuses a file by
raising :class:`Refused` (or ``readers.ReadRefused``); :class:`Parsed` keeps what the steps
learned so far, so a refusal half-way still records the kind, contract version and rows read.
The tables themselves are defined in :mod:`pipelines.ingest.core`.

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
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pipelines import contracts, progress
from pipelines.ingest import identifiers
from pipelines.ingest.batch import BATCH, FAILURES, build_native, collect_row_failures, run_cross_checks
from pipelines.ingest.readers import (
    SRC_RAW,
    SRC_TABLE,
    SRC_VIEW,
    ReadRefused,
    drop_source,
    load_source,
    peek_columns,
    quote_ident,
)
from pipelines.warehouse import transaction

log = logging.getLogger(__name__)

# the columns of ingest_quarantine (see pipelines.ingest.core) that a file's rows fill
QUARANTINE_COLUMNS = ("file_sha256, file_name, row_number, field, check_id, reason, source_line, site_id, "
                      "record_id, episode_id")
# A check failing on more than its tolerated share of rows refuses the whole file, but only
# from this many failing rows on: in a 3-row file two bad rows are two bad rows, not a pattern.
TOLERANCE_MIN_ROWS = 10
# a failing label (or value shape) is named in a refusal only when this many rows carry it
LABEL_MIN_ROWS = 3
KIND_ORDER = {"discharges": 0, "teds-d": 1, "followups": 2}

# Inside a folder only these are taken as record files (truth.json, README.md are skipped);
# a file named explicitly is always attempted, whatever its name. Text files (.txt, .dat) in a
# folder are often notes (README.txt): taken only when their header names record fields.
RECORD_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", ".parquet", ".xlsx", ".xlsm")
TEXT_SUFFIXES = (".txt", ".dat")

# the detail sql/checks/chk_duplicate_record.sql gives a row that repeats a loaded record exactly
ALREADY_LOADED = "identical to a record already loaded"


@dataclass(frozen=True)
class LedgerRow:
    """What became of one file: its ingest_ledger row (a file that could not be read has no
    sha256 and no ledger row), with the problems and warnings to print under it."""

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
    problems: tuple[str, ...] = ()  # every problem of a refused file, one line each
    warnings: tuple[str, ...] = ()  # e.g. columns not used; the file loaded anyway
    mapping_sha256: str | None = None

    def to_json(self) -> str:
        keys = ("file", "sha256", "kind", "status", "rows_read", "rows_loaded", "rows_quarantined", "message",
                "problems", "warnings", "mapping_sha256")
        return json.dumps({k: asdict(self)[k] for k in keys})

    def line(self) -> str:
        # a refusal's message names the file already; the line names it once
        message = self.message.removeprefix(f"{self.file}: ")
        if self.status == "duplicate":
            return f"{self.file}: duplicate of a {self.kind or 'file'} already loaded; {message}"
        return (f"{self.file}: {self.status} ({self.kind or 'unknown kind'}) read {self.rows_read}, "
                f"loaded {self.rows_loaded}, quarantined {self.rows_quarantined}; {message}")

    def detail_lines(self) -> list[str]:
        """The problems and warnings, one line each (printed under ``line()``)."""
        return [f"  - {p}" for p in self.problems] + [f"  warning: {w}" for w in self.warnings]


@dataclass(frozen=True)
class Options:
    """How to read a run's files: record kind, site, mapping, XLSX sheet (None: detect / none)."""

    kind: str | None = None
    site: str | None = None
    mapping: Any = None  # pipelines.ingest.mapping.Mapping
    sheet: str | None = None


class Clock:
    """Seconds per ingest phase, for the report and the benchmark; each lap is shown as the
    ingest's live status (``label``: the file's name)."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.rows: int | None = None  # once read
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, phase: str) -> None:
        """Seconds since the last lap, added to ``phase`` (a phase may come back)."""
        now = time.perf_counter()
        self.laps[phase] = round(self.laps.get(phase, 0.0) + now - self._t, 3)
        self._t = now
        rows = f", {self.rows:,} rows" if self.rows is not None else ""
        progress.status("ingest", f"{self.label}{rows}: {phase.replace('_', ' ')} done")


class Refused(Exception):
    """A step refusing the file: ``field`` and ``check_id`` key its quarantine rows,
    ``problems`` lists every problem found, one line each."""

    def __init__(self, message: str, field: str = "", check_id: str = "refused", problems: Sequence[str] = ()):
        super().__init__(message)
        self.field = field
        self.check_id = check_id
        self.problems = tuple(problems)


def refused(name: str, problems: list[tuple[str, str, str]]) -> Refused:
    """One refusal naming every problem: ``problems`` are (text, field, check_id); the first
    problem's field and check key the quarantine rows."""
    texts = [t for t, _, _ in problems]
    if len(texts) == 1:
        return Refused(f"{name}: refused: {texts[0]}", problems[0][1], problems[0][2], texts)
    return Refused(f"{name}: refused: {len(texts)} problems: " + "; ".join(texts), problems[0][1],
                   problems[0][2], texts)


@dataclass
class Parsed:
    """What the warehouse-independent steps learned of a file (filled as they go, so a refusal
    half-way still knows the kind, contract version and rows read)."""

    kind: str | None
    clock: Clock
    rows_read: int = 0
    contract: contracts.Contract | None = None
    validation: Future | None = None  # great-expectations, running (see start_validation)
    docs_dir: Path | None = None  # where that validation writes its Data Docs
    warnings: list[str] = field(default_factory=list)  # columns not used, and the like
    sheet: str | None = None  # the XLSX sheet read
    mapping_sha256: str | None = None  # the mapping applied to the file, if any

    @property
    def version(self) -> str | None:
        return self.contract.version if self.contract is not None else None


def expand_paths(paths: Iterable[str | Path], skipped: list[str] | None = None,
                 mapping: Any = None) -> list[Path]:
    """The files to ingest; a folder gives every record file inside. Each file of a folder left
    out is one line in ``skipped`` ("name: why"), never an error."""
    out: list[Path] = []
    notes: list[str] = []
    for p in map(Path, paths):
        if not p.is_dir():
            out.append(p)
            continue
        for f in sorted(f for f in p.rglob("*") if f.is_file()):
            rel = f.relative_to(p)
            if any(part.startswith(".") for part in rel.parts):
                notes.append(f"{rel}: skipped (hidden file)")
            elif f.suffix.lower() not in RECORD_SUFFIXES:
                notes.append(f"{rel}: skipped (not a CSV, Parquet or XLSX file)")
            elif f.suffix.lower() in TEXT_SUFFIXES and not _names_record_fields(f, mapping):
                notes.append(f"{rel}: skipped (a text file whose first lines name no record fields)")
            else:
                out.append(f)
    for note in notes:
        log.info("%s", note)
    if skipped is not None:
        skipped += notes
    return out


def header_columns(path: Path, mapping: Any = None, sheet: str | None = None) -> list[str]:
    """The file's column names as the contracts see them (mapped), from its header only; of a
    workbook, the sheet ``sheet`` or else the first whose header names a record format."""
    def mapped(names: list[str]) -> list[str]:
        return mapping.output_columns(names) if mapping is not None else names

    return mapped(peek_columns(path, sheet=sheet, accept=lambda names: detect_kind(mapped(names)) is not None))


def _names_record_fields(path: Path, mapping: Any) -> bool:
    try:
        columns = header_columns(path, mapping)
    except Exception:  # noqa: BLE001 - unreadable as a table: not a record file
        return False
    fields = {f.name for c in contracts.all_contracts() for f in c.fields}
    return detect_kind(columns) is not None or len(fields & set(columns)) >= 2


def detect_kind(columns: Sequence[str]) -> str | None:
    """The record kind whose contract's detect rule the columns match; None if none does."""
    cols = set(columns)
    for c in contracts.all_contracts():
        rule = c.detect
        if all(x in cols for x in rule.get("all_of", [])) and (
                not rule.get("any_of") or any(x in cols for x in rule["any_of"])):
            return c.kind
    return None


def plan_files(paths: Sequence[str | Path], kind: str | None = None, mapping: Any = None,
               skipped: list[str] | None = None, sheet: str | None = None) -> list[Path]:
    """The files to ingest (see expand_paths) in the order they are loaded: the order in which
    both drivers take them, and so the order ``staged.load_prepared`` must be given them.

    With no ``kind`` given, discharges come before TEDS-D before follow-ups (so follow-ups find
    the discharges sent alongside them), each kind's files in the order given (a folder's by
    path); a file of no known kind, or whose header cannot be read, comes last and is refused
    in its turn. The kind is told from the header alone (``sheet``: of a workbook, the sheet).
    """
    files = expand_paths(paths, skipped, mapping)
    if kind is not None:
        return files

    def rank(p: Path) -> int:
        try:
            return KIND_ORDER.get(detect_kind(header_columns(p, mapping, sheet)) or "", 3)
        except Exception:  # noqa: BLE001 - unreadable: its turn comes and it is refused then
            return 3
    return sorted(files, key=rank)  # stable: files of one kind keep their order


def already_loaded(con, sha: str, seen: set[str]) -> bool:
    """Whether a file with this sha256 is loaded already (wholly or partly), or came earlier in
    this call (``seen``): if so it is a duplicate, and loads nothing."""
    prior = con.execute("SELECT status FROM ingest_ledger WHERE file_sha256 = ?", [sha]).fetchall()
    return sha in seen or any(s in ("loaded", "partial") for (s,) in prior)


def duplicate_row(con, name: str, sha: str, kind: str | None) -> LedgerRow:
    """A file loaded before (same sha256): the ledger row says what it was and when."""
    prior = con.execute("SELECT file_name, kind, ingested_at FROM ingest_ledger WHERE file_sha256 = ? "
                        "AND status IN ('loaded', 'partial') ORDER BY ingested_at LIMIT 1", [sha]).fetchone()
    if prior is None:  # a second copy within this call, not yet committed under its first name
        return LedgerRow(name, sha, kind, "duplicate", 0, 0, 0,
                         "same content (sha256) as a file earlier in this ingest; nothing loaded again")
    first, prior_kind, when = prior
    return LedgerRow(name, sha, kind or prior_kind, "duplicate", 0, 0, 0,
                     f"same content (sha256) as {first}, loaded {when:%Y-%m-%d %H:%M}; nothing loaded again")


def parse_and_check(con, path: Path, facts, opts: Options, parsed: Parsed, docs_dir: Path | None) -> None:
    """Read, apply the mapping, identifier gate, typed batch and row checks: everything that
    needs only the file.

    Leaves ``_lc_batch`` and ``_lc_failures`` on ``con`` (any connection: the warehouse's, or an
    in-memory one on a Dask worker), and great-expectations validating the typed batch in
    ``parsed.validation`` (Data Docs to ``docs_dir`` if given); raises ReadRefused / Refused.
    """
    name = path.name
    clock = parsed.clock
    mapping = opts.mapping

    def mapped(names: list[str]) -> list[str]:
        return mapping.output_columns(names) if mapping is not None else names

    # the same choice of header (and sheet) as header_columns
    source = load_source(con, path, facts, sheet=opts.sheet,
                         accept=lambda names: detect_kind(mapped(names)) is not None)
    raw = source.names
    parsed.sheet = source.sheet
    (parsed.rows_read,) = con.execute(f"SELECT count(*) FROM {SRC_TABLE}").fetchone()
    clock.rows = parsed.rows_read
    clock.lap("read")
    columns = mapped(raw)
    if mapping is not None and mapping.kind is not None and parsed.kind is None:
        # a mapping of one kind is not for a file of another (a folder's follow-ups beside the
        # discharges its mapping is for): such a file is read as it is
        own = detect_kind(raw)
        if detect_kind(columns) != mapping.kind and own is not None and own != mapping.kind:
            mapping, columns = None, raw
        elif detect_kind(columns) is None:
            parsed.kind = mapping.kind
    if mapping is not None:
        parsed.mapping_sha256 = mapping.sha256
    if parsed.kind is None:
        parsed.kind = detect_kind(columns)
        if parsed.kind is None:
            raise Refused(f"{name}: unknown kind: the header matches no record format "
                          "(discharges, followups, teds-d); give --kind (or a mapping: see docs/mapping.md)",
                          check_id="unknown_kind")
    contract = parsed.contract = contracts.load(parsed.kind)
    if mapping is not None:
        if contract.kind not in ("discharges", "followups"):
            raise Refused(f"{name}: a mapping applies to discharges and followups files, not {contract.kind}",
                          check_id="mapping")
        if problems := mapping.file_problems(raw, contract):
            raise refused(name, [(f"mapping {mapping.name}: {p}", "", "mapping") for p in problems])
        con.execute(f"CREATE OR REPLACE TEMP VIEW {SRC_VIEW} AS SELECT _row_number, _line, "
                    f"{', '.join(mapping.select(raw, contract))} FROM {SRC_RAW}")
    gate_identifiers(con, name, contract, raw, mapping)
    parsed.warnings += check_columns(name, contract, columns, opts.site)
    clock.lap("identifier_gate")
    if parsed.kind == "teds-d":
        from pipelines.ingest.teds import build_teds, detect_era

        era = detect_era(con, columns, name)
        checks = build_teds(con, contract, columns, era)
    else:
        checks = build_native(con, contract, columns, opts.site,
                              date_formats={f.name: mapping.date_format(f.name) for f in contract.fields
                                            if f.type == "date" and mapping.date_format(f.name)}
                              if mapping is not None else None)
    clock.lap("typed_batch")
    parsed.docs_dir = docs_dir
    parsed.validation = start_validation(con, contract, parsed.rows_read, docs_dir)
    clock.lap("great_expectations")
    collect_row_failures(con, checks)
    check_tolerance(con, name, contract, parsed.rows_read)
    clock.lap("row_checks")


def gate_identifiers(con, name: str, contract, columns: list[str], mapping: Any = None) -> None:
    """Refuse the file if any column (mapped, ignored or unknown: every one the file has) looks
    like a direct identifier. ``columns`` are the file's own names, read from the raw table."""
    field_of = mapping.field_of if mapping is not None else (lambda c: c)
    declared = {f.name for f in contract.fields}
    if contract.kind == "teds-d":
        declared |= _teds_source_columns()
    pseudonyms = {f.name for f in contract.fields if f.sensitivity == "pseudonym"}
    amounts = {f.name for f in contract.fields if f.type == "number"}
    ignored = mapping.ignore if mapping is not None else frozenset()
    findings = identifiers.scan(
        con, SRC_TABLE, columns,
        name_checked=[c for c in columns if c in ignored or field_of(c) not in declared or field_of(c) in pseudonyms],
        distinct=[c for c in columns if c not in ignored and field_of(c) in pseudonyms | amounts])
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


def check_columns(name: str, contract, columns: list[str], site: str | None) -> list[str]:
    """Refuse a file missing required columns, naming every one with the closest column the file
    has; return warnings for the file's columns that no field takes (with the closest field)."""
    from pipelines.ingest.mapping import did_you_mean

    cols = set(columns)
    if contract.kind == "teds-d":
        from pipelines.ingest.teds import required_source_columns

        missing = [alts for alts in required_source_columns(contract) if not any(a in cols for a in alts)]
        if missing:
            raise refused(name, [(f"missing required column {'|'.join(a.upper() for a in alts)}", alts[0],
                                  "missing_column") for alts in missing])
        return []
    fields = [f.name for f in contract.fields]
    unknown = sorted(c for c in cols if c not in fields)  # (a mapping's ignored columns are gone already)
    problems = []
    for f in contract.fields:
        if not f.required or f.name in cols or (f.alternative and f.alternative in cols):
            continue
        if f.name == "site_id" and site is not None:
            continue
        alt = f" (or {f.alternative})" if f.alternative else ""
        problems.append((f"missing required column {f.name}{alt}{_column_hint(f.name, unknown, contract.kind)}",
                         f.name, "missing_column"))
    if problems:
        if unknown:
            text = (f"columns no field takes: {', '.join(repr(c) for c in unknown[:20])}"
                    f"{' …' if len(unknown) > 20 else ''} (to draft a mapping of them: levelcare map "
                    f"suggest {name} --kind {contract.kind} --out mapping.yaml)")
            problems.append((text, "", "missing_column"))
        raise refused(name, problems)
    free = [f for f in fields if f not in cols]  # a field the file has already is not the one meant
    return [f"column {c!r} is not a {contract.kind} field and was not loaded{did_you_mean(c, free, 2)}"
            for c in unknown]


def _column_hint(field_name: str, unknown: list[str], kind: str) -> str:
    """"; the file has 'x' ..." naming the file's column that most likely holds ``field_name``:
    a known wording of it (data_contracts/synonyms.yaml), else a close spelling."""
    from pipelines.ingest.mapping import closest
    from pipelines.ingest.suggest import match_header

    for c in unknown:
        match, _ = match_header(c, kind)
        if match is not None and match.field == field_name:
            return f"; the file has {c!r}, a usual name for it: map it (docs/mapping.md)"
    close = closest(field_name, unknown)
    if field_name == "site_id":
        return "; give --site, or a mapping's constants" + (f", or map {close[0]!r}" if close else "")
    return f"; the file has {close[0]!r}: map it (docs/mapping.md)" if close else ""


def check_tolerance(con, name: str, contract, rows_read: int) -> None:
    """Refuse the file when a check fails on more than its tolerated share of rows, naming every
    such check with the values or format it expects and (category fields only) the labels that
    failed."""
    if not rows_read:
        return
    if problems := failing_checks(con, contract, rows_read, over_tolerance=True):
        raise refused(name, problems)


def failing_checks(con, contract, rows_read: int, over_tolerance: bool = False) -> list[tuple[str, str, str]]:
    """(text, field, check_id) per error check that failed rows (``over_tolerance``: only those
    failing more than their tolerated share): rows failing, and what the field expects."""
    counts = con.execute(
        f"SELECT check_id, field, count(DISTINCT _row_number) AS n FROM {FAILURES} WHERE severity = 'error' "
        "AND reason <> ? GROUP BY check_id, field ORDER BY n DESC, check_id, field", [ALREADY_LOADED]).fetchall()
    problems = []
    for check_id, field_name, n in counts:
        c = contract.check(check_id)
        over = c.tolerance is not None and n >= TOLERANCE_MIN_ROWS and n / rows_read > c.tolerance
        if over_tolerance and not over:
            continue
        share = f"{n / rows_read:.0%}" + (f", tolerance {c.tolerance:.0%}" if over else "")
        target = f"{field_name} fails {check_id}" if field_name else f"{check_id} fails"
        text = f"{target} on {n} of {rows_read} rows ({share}){_failing_detail(con, contract, check_id, field_name)}"
        problems.append((text, field_name, check_id))
    return problems


def _failing_detail(con, contract, check_id: str, field_name: str) -> str:
    """What the field expects, and up to 5 distinct failing labels (enumerations and booleans:
    category labels) or value shapes (dates and numbers: 9 for a digit, A for a letter), never
    a value that could be free text or an identifier."""
    from pipelines.ingest.batch import TYPE_WORDS

    try:
        f = contract.field(field_name)
    except KeyError:
        return ""
    if f.type in ("text",) and f.values is None:
        return ""
    # the label as sent (after a mapping's recodes) where the source is at hand; else the batch's
    # text of it (an enumeration's, lower-cased), which is all a file prepared elsewhere brings
    if _exists(con, SRC_VIEW) and _has_column(con, SRC_VIEW, f.name):
        source = f"(SELECT {quote_ident(f.name)} FROM {SRC_VIEW} AS s WHERE s._row_number = b._row_number)"
    elif _has_column(con, BATCH, f"_src_{f.name}"):
        source = f"_src_{f.name}"
    elif f.type == "enum":
        source = f"b.{quote_ident(f.name)}"
    else:
        return ""
    failing = (f"FROM {BATCH} AS b WHERE b._row_number IN (SELECT _row_number FROM {FAILURES} "
               f"WHERE check_id = ? AND field = ?)")
    if f.values is not None or f.type == "bool":
        expr, what = f"trim({source})", "failing labels"
        expects = f"; allowed: {', '.join(str(v) for v in f.values)}" if f.values is not None else \
            f"; expected {TYPE_WORDS['bool']}"
    else:
        expr = f"regexp_replace(regexp_replace(trim({source}), '[0-9]', '9', 'g'), '[A-Za-z]', 'A', 'g')"
        what, expects = "values shaped", f"; expected {TYPE_WORDS.get(f.type, f.type)}"
    # a label is shown only when it stands on LABEL_MIN_ROWS rows or more: a category's wording
    # recurs, while a value on one or two rows may be one person's (a stray id or name)
    labels = con.execute(
        f"SELECT v, n >= {LABEL_MIN_ROWS} FROM (SELECT {expr} AS v, count(*) AS n {failing} GROUP BY v) "
        "WHERE v IS NOT NULL ORDER BY n DESC, v", [check_id, field_name]).fetchall()
    shown = [v for v, ok in labels if ok][:5]
    hidden = sum(not ok for _, ok in labels)
    text = f"; {what} " + ", ".join(repr(v) for v in shown) if shown else ""
    if hidden:
        text += f"; {hidden} {'other ' * bool(shown)}{what.split()[0]} on fewer than {LABEL_MIN_ROWS} rows not shown"
    return expects + text


def _has_column(con, table: str, column: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = ?",
                            [table, column]).fetchone()[0])


@cache
def _validation_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="levelcare-validation")


def start_validation(con, contract, rows_read: int, docs_dir: Path | None) -> Future:
    """Start great-expectations on (a systematic sample of) the typed batch; the report is the
    Future's result.

    The sample is read here, on the caller's connection; the validation itself runs in one
    thread of its own (the thread never touches DuckDB, and one worker means validations never
    overlap: they share one GE context). GE on pandas is Python, one core, while the row and
    cross-record checks that follow it run in DuckDB, which lets go of the GIL. On 2 cores the
    checks beside GE run slower (the cores are shared), yet the ingest is shorter than with GE
    after them (benchmarks/README.md, Measurements: pipelines/ingest/steps.py). With more cores
    the checks would not slow down.
    """
    # pandas imported here, not by DuckDB's .df(): DuckDB reports a Ctrl-C during its own
    # import of pandas as "pandas is not installed"
    import pandas  # noqa: F401

    from pipelines.validation import sample_step, validate_frame

    k = sample_step(rows_read)
    cols = ", ".join(quote_ident(f.name) for f in contract.stored_fields)
    where = f"WHERE (_row_number - 1) % {k} = 0" if k > 1 else ""
    frame = con.execute(f"SELECT {cols} FROM {BATCH} {where} ORDER BY _row_number").df()
    return _validation_thread().submit(validate_frame, contract, frame, rows_in_batch=rows_read, docs_dir=docs_dir)


def await_validation(parsed: Parsed):
    """The great-expectations report of ``parsed``'s batch (waits for it; the wait is added to
    the clock's great_expectations phase)."""
    validation, parsed.validation = parsed.validation, None
    report = validation.result()
    parsed.clock.lap("great_expectations")
    return report


def abandon_validation(parsed: Parsed) -> None:
    """A file refused before its validation report was used: wait for the validation (so the
    next file's does not run beside it) and remove the Data Docs it wrote; a refused file has
    none, as when validation ran only after the checks."""
    if parsed.validation is None:
        return
    validation, parsed.validation = parsed.validation, None
    if validation.exception() is None and parsed.docs_dir is not None:
        shutil.rmtree(parsed.docs_dir, ignore_errors=True)


def finish(con, name: str, sha: str, parsed: Parsed, opts: Options, run_id: str | None,
           today: dt.date, docs_root: Path, report=None) -> LedgerRow:
    """The writer's part, after :func:`parse_and_check` left the batch and its row failures on
    ``con`` (the warehouse's): cross-record checks against what is loaded, the validation
    verdict, then :func:`load_batch`, or :func:`refuse` if either refuses the file.

    ``report`` is the great-expectations report when a worker already validated the batch;
    otherwise it is awaited from ``parsed.validation`` after the cross-record checks.
    """
    contract, rows_read, clock = parsed.contract, parsed.rows_read, parsed.clock
    try:
        run_cross_checks(con, contract, today)
        check_tolerance(con, name, contract, rows_read)
        clock.lap("cross_checks")
        if report is None:
            report = await_validation(parsed)
        if report.errors:
            first = report.errors[0]
            raise Refused(f"{name}: validation could not evaluate {first.check_id} "
                          f"({len(report.errors)} expectations errored); nothing loaded", field=first.column or "",
                          check_id="validation_error")
    except (ReadRefused, Refused) as exc:
        return refuse(con, name, sha, parsed, exc, run_id, opts)
    return load_batch(con, name, sha, parsed, opts, run_id, report, docs_root / sha[:16])


def refuse(con, name: str, sha: str, parsed: Parsed, exc: Exception, run_id: str | None,
           opts: Options) -> LedgerRow:
    """Record a refused file, in one transaction: every row it could read quarantined under the
    refusal (``exc``, a Refused or ReadRefused), and its ledger row, replacing any earlier
    record of the same file."""
    message, field = str(exc), getattr(exc, "field", "")
    check_id, problems = getattr(exc, "check_id", "refused"), tuple(getattr(exc, "problems", ()))
    reason = message[len(name) + 2:] if message.startswith(f"{name}: ") else message
    reason = reason if reason.startswith("refused") else f"refused: {reason}"
    rows_read = parsed.rows_read
    with transaction(con):
        _forget(con, sha)
        if rows_read:
            # every row the file had (data rows are numbered 1..rows_read, as in the source view),
            # at its line of the file when the source is still at hand
            lines = (f"(SELECT _line FROM {SRC_RAW} AS s WHERE s._row_number = range)"
                     if _exists(con, SRC_RAW) else "NULL")
            con.execute(f"INSERT INTO ingest_quarantine ({QUARANTINE_COLUMNS}) SELECT ?, ?, range, ?, ?, ?, "
                        f"{lines}, NULL, NULL, NULL FROM range(1, ? + 1)",
                        [sha, name, field or None, check_id, f"file {reason}", rows_read])
        insert_ledger(con, sha, name, parsed.kind, "refused", rows_read, 0, rows_read, message, parsed.version,
                      opts.site, run_id, parsed.mapping_sha256, parsed.sheet)
    return LedgerRow(name, sha, parsed.kind, "refused", rows_read, 0, rows_read, message, parsed.version,
                     opts.site, problems=problems, warnings=tuple(parsed.warnings),
                     mapping_sha256=parsed.mapping_sha256)


def _exists(con, name: str) -> bool:
    """A table or view ``name`` is there (the work tables of a file read on this connection)."""
    return con.execute("SELECT (SELECT count(*) FROM duckdb_tables() WHERE table_name = ?) + "
                       "(SELECT count(*) FROM duckdb_views() WHERE view_name = ?)", [name, name]).fetchone()[0] > 0


def _forget(con, sha: str) -> None:
    # a refused file may be sent again unchanged (e.g. after a contract fix): its old record goes
    con.execute("DELETE FROM ingest_quarantine WHERE file_sha256 = ?", [sha])
    con.execute("DELETE FROM ingest_ledger WHERE file_sha256 = ?", [sha])


def insert_ledger(con, sha, name, kind, status, read, loaded, quarantined, message, version, site, run_id,
                  mapping_sha256=None, sheet=None):
    """Write the file's ingest_ledger row (inside the caller's transaction)."""
    con.execute("INSERT INTO ingest_ledger (file_sha256, file_name, kind, status, rows_read, rows_loaded, "
                "rows_quarantined, message, contract_version, site_id, ingested_at, run_id, mapping_sha256, "
                "sheet) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp, ?, ?, ?)",
                [sha, name, kind, status, read, loaded, quarantined, message, version, site, run_id,
                 mapping_sha256, sheet])


def load_batch(con, name: str, sha: str, parsed: Parsed, opts: Options, run_id: str | None, report,
               docs_dir: Path) -> LedgerRow:
    """Record a checked file, in one transaction: the rows without error failures into its raw
    table, the others into ingest_quarantine, the earlier quarantine rows it supersedes marked,
    and its ledger row (loaded, partial, or refused when no row passed); then its validation
    report (validation.json) into ``docs_dir``."""
    contract, rows_read, clock = parsed.contract, parsed.rows_read, parsed.clock
    cols = ", ".join(quote_ident(f.name) for f in contract.stored_fields)
    (q_rows,) = con.execute(
        f"SELECT count(DISTINCT _row_number) FROM {FAILURES} WHERE severity = 'error'").fetchone()
    # a resent file's rows that are already in the warehouse exactly: not loaded twice, and not
    # the sender's error (a corrected resend is "loaded", not "partial")
    (already,) = con.execute(
        f"SELECT count(*) FROM (SELECT _row_number FROM {FAILURES} WHERE severity = 'error' GROUP BY _row_number "
        "HAVING bool_and(reason = ?))", [ALREADY_LOADED]).fetchone()
    loaded = rows_read - q_rows
    top = con.execute(
        f"SELECT check_id, field, count(DISTINCT _row_number) AS n FROM {FAILURES} WHERE severity = 'error' "
        "AND reason <> ? GROUP BY ALL ORDER BY n DESC, check_id, field LIMIT 3", [ALREADY_LOADED]).fetchall()
    warns = con.execute(
        f"SELECT check_id, count(DISTINCT _row_number) AS n FROM {FAILURES} WHERE severity = 'warn' "
        "GROUP BY ALL ORDER BY n DESC, check_id").fetchall()
    if loaded + already == rows_read:
        status, message = "loaded", f"loaded {loaded} rows"
    elif loaded + already > 0:
        status, message = "partial", f"loaded {loaded} of {rows_read} rows"
    else:
        status, message = "refused", f"every one of {rows_read} rows failed a check; nothing loaded"
    if already:
        message += f"; {already} rows identical to records already loaded (kept once)"
    if top:
        message += "; quarantined " + ", ".join(f"{c} {f} {n}" for c, f, n in top)
    if warns:
        message += "; warnings " + ", ".join(f"{c} {n}" for c, n in warns)
    if parsed.warnings:
        message += f"; {len(parsed.warnings)} columns not used"
    message += f"; validation {report.summary()}"
    # every failing field, with what it expects and the labels that failed: a refusal's problems,
    # a partial load's notes (the rows are in the quarantine)
    failing = [text for text, _, _ in failing_checks(con, contract, rows_read)]
    problems = tuple(failing) if status == "refused" else ()
    notes = tuple(parsed.warnings) + (tuple(f"quarantined: {t}" for t in failing) if status != "refused" else ())
    site = opts.site
    sites = con.execute(
        f"SELECT DISTINCT site_id FROM {BATCH} b WHERE site_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
        f"{FAILURES} x WHERE x._row_number = b._row_number AND x.severity = 'error') LIMIT 2").fetchall()
    site_id = site if site is not None else (sites[0][0] if len(sites) == 1 else None)
    statuses = _check_statuses(con, contract, rows_read, report)
    record, episode = contract.key[-1], "episode_id" if any(f.name == "episode_id" for f in contract.fields) else None
    with transaction(con):
        _forget(con, sha)
        # rows land in file order, in full row groups. The batch is in file order already, but
        # in the uneven row groups of its parallel build, which an unordered INSERT copies; when
        # neighbours fit in fewer, DuckDB's checkpoint at close rewrites (vacuums) the table's
        # row groups (costly on a large file, and the database file ends up larger). The sort's
        # ordered output fills whole row groups, so nothing is left to vacuum.
        keep = "ORDER BY _row_number" if not q_rows else (
            f"WHERE NOT EXISTS (SELECT 1 FROM {FAILURES} AS x WHERE x._row_number = b._row_number "
            "AND x.severity = 'error') ORDER BY _row_number")
        con.execute(
            f"INSERT INTO {contract.table} ({cols}, _file_sha256, _row_number) SELECT {cols}, ?, _row_number "
            f"FROM {BATCH} AS b {keep}", [sha])
        con.execute(
            f"INSERT INTO ingest_quarantine ({QUARANTINE_COLUMNS}) SELECT ?, ?, f._row_number, NULLIF(f.field, ''), "
            f"f.check_id, f.reason, b._line, CAST(b.site_id AS VARCHAR), CAST(b.{quote_ident(record)} AS VARCHAR), "
            f"{f'CAST(b.{quote_ident(episode)} AS VARCHAR)' if episode else 'NULL'} FROM {FAILURES} AS f "
            f"JOIN {BATCH} AS b USING (_row_number) WHERE f.severity = 'error' "
            "ORDER BY f._row_number, f.check_id, f.field", [sha, name])
        superseded = _supersede(con, sha, name, contract, record)
        if superseded:
            message += "; supersedes " + ", ".join(f"{n} quarantined rows of {old}" for old, n in superseded)
        insert_ledger(con, sha, name, contract.kind, status, rows_read, loaded, q_rows, message,
                      contract.version, site_id, run_id, parsed.mapping_sha256, parsed.sheet)
    clock.lap("load")
    log.info("%s: seconds per phase %s", name, clock.laps)
    _write_report(docs_dir, name, sha, contract, status, rows_read, loaded, q_rows, statuses, report, clock.laps)
    return LedgerRow(name, sha, contract.kind, status, rows_read, loaded, q_rows, message, contract.version,
                     site_id, str(report.docs_path) if report.docs_path else None, problems=problems,
                     warnings=notes, mapping_sha256=parsed.mapping_sha256)


def _supersede(con, sha: str, name: str, contract, record: str) -> list[tuple[str, int]]:
    """Quarantine entries of earlier files of this kind whose record this file now has in the
    warehouse (loaded, or identical to one loaded) are marked superseded by it; their ledger rows
    say so. Returns (earlier file, rows) pairs."""
    good = (f"SELECT CAST(b.site_id AS VARCHAR) AS site_id, CAST(b.{quote_ident(record)} AS VARCHAR) AS rid "
            f"FROM {BATCH} AS b WHERE NOT EXISTS (SELECT 1 FROM {FAILURES} AS x WHERE x._row_number = b._row_number "
            "AND x.severity = 'error' AND x.reason <> ?)")
    hits = con.execute(
        f"SELECT q.file_sha256, any_value(q.file_name), count(DISTINCT q.row_number) FROM ingest_quarantine AS q "
        f"WHERE q.superseded_by IS NULL AND q.file_sha256 <> ? AND q.record_id IS NOT NULL "
        "AND q.file_sha256 IN (SELECT file_sha256 FROM ingest_ledger WHERE kind = ?) "
        f"AND EXISTS (SELECT 1 FROM ({good}) AS g WHERE g.site_id = q.site_id AND g.rid = q.record_id) "
        "GROUP BY q.file_sha256 ORDER BY 2", [sha, contract.kind, ALREADY_LOADED]).fetchall()
    for old_sha, _, n in hits:
        con.execute(
            f"UPDATE ingest_quarantine AS q SET superseded_by = ? WHERE q.file_sha256 = ? AND q.superseded_by IS NULL "
            f"AND EXISTS (SELECT 1 FROM ({good}) AS g WHERE g.site_id = q.site_id AND g.rid = q.record_id)",
            [sha, old_sha, ALREADY_LOADED])
        con.execute("UPDATE ingest_ledger SET message = message || ? WHERE file_sha256 = ?",
                    [f"; {n} quarantined rows superseded by {name} ({sha[:12]})", old_sha])
    return [(old_name, n) for _, old_name, n in hits]


def _write_report(docs_dir: Path, name, sha, contract, status, read, loaded, quarantined, statuses, report,
                  timings) -> None:
    docs_dir.mkdir(parents=True, exist_ok=True)
    doc = {"file": name, "sha256": sha, "kind": contract.kind, "contract_version": contract.version,
           "status": status, "rows_read": read, "rows_loaded": loaded, "rows_quarantined": quarantined,
           "checks": statuses, "great_expectations": report.as_dict(), "seconds": timings}
    (docs_dir / "validation.json").write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")


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


def drop_work_tables(con) -> None:
    """Drop a file's work tables (source, batch, failures, checks) from ``con``."""
    con.execute("DROP VIEW IF EXISTS _lc_ok")
    for t in ("_lc_okkeys", "_lc_hashkeys", "_lc_existing", BATCH, FAILURES, "_lc_checks",
              "_lc_window_tolerance"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    drop_source(con)
