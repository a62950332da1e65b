"""Read an input file into a DuckDB table of text: every column VARCHAR, names lower-case.

Everything is read as text so that a value that does not parse becomes a quarantine reason
later (in SQL), never a crash here. Rows are numbered twice: ``_row_number`` is the 1-based
data-row ordinal (the header is not a row), ``_line`` the place a person finds the row in the
source: the file's physical line for CSV (1-based, counting title rows, blank lines and the lines
inside multi-line quoted fields), the sheet's row number as Excel shows it for XLSX, the record
ordinal (= ``_row_number``) for Parquet.

The header need not be the first line: exports often put 1-5 title lines ("Acme Recovery -
Discharges Q3 2026", "Generated 10/01/2026", blank lines) above it. Among the first 20 non-blank
rows the header is the first whose number of non-empty cells is the largest of any of them (a
header names every column; a title has a cell or two). What is above it is skipped.

CSV: UTF-8 (BOM or not) or Latin-1 (chosen by trying UTF-8 over the whole file), CRLF or LF,
delimiter sniffed from the header line among , ; tab |, double-quoted fields. The dialect is
passed to DuckDB explicitly with strict parsing, so a short row or an unterminated quote
refuses the file instead of shifting values between columns. DuckDB skips blank lines between
records (a file of one column excepted: there a blank line is a row of NULL),
so a data row's line is its ordinal plus the lines above the first row only when the file has no
blank lines and no line breaks inside quoted fields; :func:`file_facts` counts the file's line
feeds to tell, and only the other files are scanned once more (in Python) for the exact lines.
Parquet: every column cast to VARCHAR. XLSX: every sheet is considered; the one named (``sheet``),
else the first whose header the caller's ``accept`` takes, else the first that has a header.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import logging
import os
import re
import stat
import tempfile
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import UserError

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

SRC_TABLE = "_lc_src0"  # the data columns, text, in file order
SRC_RAW = "_lc_src1"  # view: _row_number, _line, the data columns
SRC_VIEW = "_lc_src"  # view over SRC_RAW (SELECT * here; the ingest may map columns)
_LINES = "_lc_lines"  # _line per row, in row order, for files whose rows are not one line each
DELIMITERS = (",", ";", "\t", "|")
_CHUNK = 1 << 22
HEAD_ROWS = 20  # the header is looked for among this many non-blank rows
_HEAD_LINES = 10_000  # ... and in at most this many physical lines (blank ones included)
# Hostile-input bounds (tests/security): a header line longer than this, or with more columns,
# is refused before any parser sees it; an XLSX package is refused from its zip directory when
# it would inflate past XLSX_MAX_BYTES or an entry compresses suspiciously well (a zip bomb),
# and while reading when the sheet holds more cells than XLSX_MAX_CELLS.
MAX_HEADER_BYTES = 1 << 20
MAX_COLUMNS = 1_024  # records-v1 and TEDS-D need under 100; 10,000 exhausts DuckDB's memory
XLSX_MAX_BYTES = 256 << 20
XLSX_MAX_RATIO = 200  # inflated / compressed, checked for entries above 16 MiB
XLSX_MAX_ENTRIES = 10_000
XLSX_MAX_CELLS = 30_000_000


class ReadRefused(UserError):
    """The file cannot be read as a table (unreadable, truncated, malformed header)."""

    def __init__(self, message: str, field: str = "", check_id: str = "unreadable"):
        super().__init__(message)
        self.field = field
        self.check_id = check_id


@dataclass(frozen=True)
class FileFacts:
    sha256: str
    size: int
    format: str  # csv, parquet, xlsx
    encoding: str  # utf-8, latin-1 or windows-1252 (csv only)
    odd_quotes: bool
    newlines: int = -1  # line feed bytes (csv only; -1: not counted)


@dataclass(frozen=True)
class Source:
    """What :func:`load_source` read: the header's column names (lower-case), the XLSX sheet
    (None for CSV and Parquet) and the header's line (CSV: physical line, 1-based; XLSX: the
    sheet's row number; Parquet: 0)."""

    names: list[str]
    sheet: str | None
    header_line: int


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def trimmed(expr: str) -> str:
    """SQL: the text ``expr`` without leading and trailing spaces, NULL when nothing is left;
    the same as ``NULLIF(trim(expr), '')``, at less cost.

    DuckDB's ``trim`` strips the Unicode space separators (category Zs): of ASCII only ' ', the
    rest are multi-byte. A value with no ' ' whose bytes are all ASCII (``strlen = length``)
    has nothing to strip and is taken as it is; ``trim`` runs on the others only. ``trim`` on
    every value is a large part of the typed batch's time (benchmarks/README.md, Measurements:
    pipelines/ingest/readers.py)."""
    return (f"NULLIF(CASE WHEN contains({expr}, ' ') OR strlen({expr}) <> length({expr}) "
            f"THEN trim({expr}) ELSE {expr} END, '')")


def _format_of(path: Path, head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    return "csv"


def file_facts(path: Path) -> FileFacts:
    """sha256 and, for text files, encoding, quote balance and line feeds in one streaming pass."""
    import numpy as np

    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    c1 = False  # a byte 0x80-0x9F: C1 controls in Latin-1, punctuation (smart quotes, €) in Windows-1252
    quotes = newlines = 0
    size = 0
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; anything but a regular file
        # (FIFO, device such as /dev/zero, socket) is refused before a byte is read
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ReadRefused(f"{path.name}: not a regular file (a pipe, device or socket); nothing read")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as fh:
            head = fh.read(8)
            fh.seek(0)
            fmt = _format_of(path, head)
            while chunk := fh.read(_CHUNK):
                size += len(chunk)
                digest.update(chunk)
                if fmt == "csv":
                    # numpy counts both bytes in less time than bytes.count takes for one
                    view = np.frombuffer(chunk, dtype=np.uint8)
                    quotes += int(np.count_nonzero(view == 34))  # "
                    newlines += int(np.count_nonzero(view == 10))  # \n
                    if utf8:
                        try:
                            decoder.decode(chunk)
                        except UnicodeDecodeError:
                            utf8 = False
            if fmt == "csv" and utf8:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    utf8 = False  # file ends inside a multi-byte character: truncated or not UTF-8
            if fmt == "csv" and not utf8:
                # a second pass, only for the (rare, small) files that are not UTF-8
                fh.seek(0)
                while not c1 and (chunk := fh.read(_CHUNK)):
                    c1 = _C1.search(chunk) is not None
    except OSError as exc:
        raise ReadRefused(f"{path.name}: cannot read the file ({exc.strerror or type(exc).__name__})") from None
    # Not UTF-8: Latin-1, unless bytes 0x80-0x9F occur, which only Windows-1252 gives a meaning
    # (Excel's "CSV" on Windows writes its smart quotes and dashes there).
    encoding = "utf-8" if utf8 else WINDOWS_1252 if c1 else "latin-1"
    return FileFacts(digest.hexdigest(), size, fmt, encoding, quotes % 2 == 1, newlines if fmt == "csv" else -1)


_C1 = re.compile(rb"[\x80-\x9f]")
WINDOWS_1252 = "windows-1252"


def _undecodable(path: Path) -> ReadRefused:
    return ReadRefused(f"{path.name}: unreadable CSV (neither UTF-8 nor Latin-1 nor Windows-1252 text)",
                       check_id="truncated")


def _to_utf8(path: Path, target: Path) -> None:
    """Re-encode a Windows-1252 file as UTF-8 (DuckDB reads UTF-8, UTF-16 and Latin-1 only).
    The five bytes Windows-1252 leaves undefined make the file unreadable, as for DuckDB."""
    try:
        with path.open("r", encoding="cp1252", newline="") as src, target.open("w", encoding="utf-8",
                                                                                 newline="") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
    except UnicodeDecodeError:
        raise _undecodable(path) from None


def _split_header(path: Path, header: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([header], delimiter=delimiter))
    except csv.Error:  # e.g. a column name longer than the csv module's field limit
        raise ReadRefused(f"{path.name}: unreadable header line", check_id="header") from None


def sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def header_name(name: str) -> str:
    """A column name as levelcare reads it: lower case, surrounding spaces (and a BOM) gone, and
    runs of spaces and hyphens inside written '_' ("Level of Care" and "co-occurring MH" are
    level_of_care and co_occurring_mh)."""
    return re.sub(r"[\s\-]+", "_", str(name).replace("\ufeff", "").strip().lower())


def _clean_names(path: Path, names: list[str], where: str = "") -> list[str]:
    """``where``: where the header is, for the message when it is not the first line, e.g.
    ``" (header on line 3)"``."""
    if len(names) > MAX_COLUMNS:
        raise ReadRefused(f"{path.name}: the header has {len(names)} columns (at most {MAX_COLUMNS}){where}",
                          check_id="header")
    cleaned = [header_name(n) for n in names]
    for i, n in enumerate(cleaned, start=1):
        if not n:
            raise ReadRefused(f"{path.name}: header column {i} has no name{where}", check_id="header")
    seen: set[str] = set()
    for n in cleaned:
        if n in seen:
            raise ReadRefused(f"{path.name}: column {n!r} appears twice in the header (names are "
                              f"case-insensitive){where}", field=n, check_id="header")
        seen.add(n)
    return cleaned


# ------------------------------------------------------------------------------------ CSV

@dataclass(frozen=True)
class _CsvHead:
    line: int  # the header's physical line, 1-based
    end_line: int  # its last physical line (the same unless a quoted name holds a line break)
    skip: int  # lines above it as DuckDB's ``skip`` counts them (a quoted field's line breaks do not count)
    text: str  # the header without its line break (and, on line 1, byte-order mark)
    delimiter: str

    @property
    def where(self) -> str:
        return f" (header on line {self.line})" if self.line > 1 else ""


_QUOTED = re.compile(r'"[^"]*(?:""[^"]*)*"')


def _filled(cells: list[str]) -> int:
    return sum(1 for c in cells if c.strip())


def _csv_head(path: Path, encoding: str) -> _CsvHead | None:
    """The header: among the first HEAD_ROWS non-blank records, the first with the most non-empty
    cells (see the module docstring); None when there is no non-blank record.

    Each record's delimiter is sniffed from its own first line, so a title ("Report; Q3", "Acme,
    Inc.") never decides the header's. A record is read by the csv module as DuckDB reads it: a
    line break inside a quoted field continues it (so a data row's second line is never taken
    for a row of its own), a quote inside an unquoted field is a character."""
    found: list[tuple[int, _CsvHead]] = []
    lineno = logical = 0
    budget = [0]  # characters read for the current record

    try:
        with path.open("r", encoding=encoding, newline="") as fh:
            while len(found) < HEAD_ROWS and lineno < _HEAD_LINES:
                first = fh.readline(MAX_HEADER_BYTES + 1)
                if not first:
                    break
                start = lineno = lineno + 1
                if len(first) > MAX_HEADER_BYTES:
                    if not found:
                        raise ReadRefused(f"{path.name}: the header line is longer than {MAX_HEADER_BYTES} "
                                          "characters", check_id="header")
                    break  # a long data row: the header is above it
                if start == 1:
                    first = first.lstrip("\ufeff")
                lines = [first]
                budget[0] = len(first)

                def more(fh=fh, lines=lines):
                    # the first line, then the next ones as long as the csv module asks (a quoted
                    # field goes on), within the header's bounds
                    nonlocal lineno
                    yield lines[0]
                    while budget[0] <= MAX_HEADER_BYTES and lineno < _HEAD_LINES:
                        line = fh.readline(MAX_HEADER_BYTES + 1 - budget[0])
                        if not line:
                            return
                        lineno += 1
                        budget[0] += len(line)
                        lines.append(line)
                        yield line

                delim = sniff_delimiter(first)
                try:
                    cells = next(csv.reader(more(), delimiter=delim), [])
                except csv.Error:  # a field over the csv module's limit: count without the quoted text
                    cells = _QUOTED.sub("q", "".join(lines).rstrip("\r\n")).split(delim)
                if budget[0] > MAX_HEADER_BYTES:
                    if not found:
                        raise ReadRefused(f"{path.name}: the header line is longer than {MAX_HEADER_BYTES} "
                                          "characters", check_id="header")
                    break
                text = "".join(lines).rstrip("\r\n")
                if n := _filled(cells):
                    found.append((n, _CsvHead(start, lineno, logical, text, delim)))
                logical += 1
    except UnicodeDecodeError:  # a byte Windows-1252 leaves undefined
        raise _undecodable(path) from None
    if not found:
        return None
    most = max(n for n, _ in found)
    return next(h for n, h in found if n == most)


def _csv_names(path: Path, head: _CsvHead) -> list[str]:
    return _clean_names(path, _split_header(path, head.text, head.delimiter), head.where)


def _duck_error_line(exc: Exception) -> int | None:
    # DuckDB's message can quote the offending line; keep only the line number.
    m = re.search(r"[Ll]ine:?\s*(\d+)", str(exc))
    return int(m.group(1)) if m else None


def _scan_lines(path: Path, after: int) -> Iterator[tuple[int, str, bool]]:
    """(physical line, text, starts a record) for the lines after line ``after``: a line starts a
    record unless a quoted field runs on into it (an odd number of quotes since the record began;
    DuckDB's strict parsing has refused any other use of a quote). Decoded as Latin-1: line
    breaks and quotes are the same bytes in every encoding read here."""
    with path.open("r", encoding="latin-1", newline="", buffering=_CHUNK) as fh:
        lineno = after
        for _ in itertools.islice(fh, after):
            pass
        inside = False
        for line in fh:
            lineno += 1
            yield lineno, line, not inside
            if '"' in line and line.count('"') % 2:
                inside = not inside


def _physical_line(path: Path, head: _CsvHead, logical: int) -> int:
    """The physical line of DuckDB's line ``logical`` (DuckDB counts a quoted field's line
    breaks as none)."""
    if logical <= head.skip + 1:
        return logical
    n = head.skip + 1  # logical lines up to the header's
    for lineno, _, starts in _scan_lines(path, head.end_line):
        n += starts
        if n == logical:
            return lineno
    return logical


_BLANK = frozenset(("\n", "\r\n", "\r"))


def _row_lines(path: Path, head: _CsvHead, single_column: bool):
    """The physical line each data row starts on, in row order (a numpy int64 array). DuckDB skips a
    blank line between records, except in a file of one column, where it is a row of NULL.
    (:func:`_scan_lines`, inlined: this loop runs once per line of the file.)"""
    import numpy as np

    out = array("q")
    add = out.append
    blank = _BLANK if not single_column else frozenset()
    with path.open("r", encoding="latin-1", newline="", buffering=_CHUNK) as fh:
        for _ in itertools.islice(fh, head.end_line):
            pass
        inside = False
        for lineno, line in enumerate(fh, start=head.end_line + 1):
            if not inside and line not in blank:
                add(lineno)
            if '"' in line and line.count('"') % 2:
                inside = not inside
    return np.frombuffer(out, dtype=np.int64) if len(out) else np.zeros(0, dtype=np.int64)


def _line_counts(path: Path, facts: FileFacts) -> tuple[int, int]:
    """(physical lines, physical lines up to the last one that is not blank), from the line-feed
    count of :func:`file_facts` and the file's last bytes."""
    newlines = facts.newlines
    with path.open("rb") as fh:
        if newlines < 0:  # not counted by file_facts
            newlines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(_CHUNK), b""))
        # line feeds in the run of line-break bytes the file ends with
        end = fh.seek(0, os.SEEK_END)
        trailing, last = 0, None
        while end > 0:
            start = max(0, end - 65536)
            fh.seek(start)
            block = fh.read(end - start)
            if last is None:
                last = block[-1:]
            stripped = block.rstrip(b"\r\n")
            trailing += block.count(b"\n", len(stripped))
            if stripped:
                break
            end = start
    lines = newlines + (0 if last == b"\n" or last is None else 1)
    to_last_filled = newlines - trailing + 1 if trailing else lines
    return lines, to_last_filled


def _from_line(path: Path, line: int, target: Path) -> Path:
    """A copy of ``path`` from its physical line ``line`` (1-based) to the end."""
    import shutil

    with path.open("rb") as src, target.open("wb") as dst:
        for _ in range(line - 1):
            src.readline()
        shutil.copyfileobj(src, dst, _CHUNK)
    return target


def load_csv(con: duckdb.DuckDBPyConnection, path: Path, facts: FileFacts) -> tuple[Source, int | None]:
    """Load into SRC_TABLE; returns the Source and the ``_line`` of row 1 less 1 when every row is
    one line (the offset), None when :data:`_LINES` holds each row's line."""
    import duckdb

    if facts.size == 0:
        raise ReadRefused(f"{path.name}: empty file (no header)")
    if facts.odd_quotes:
        raise ReadRefused(f"{path.name}: unreadable or truncated CSV (unbalanced quotes)", check_id="truncated")
    head = _csv_head(path, facts.encoding)
    if head is None:
        raise ReadRefused(f"{path.name}: empty file (no header)")
    names = _csv_names(path, head)
    columns = "{" + ", ".join(f"{quote_lit(n)}: 'VARCHAR'" for n in names) + "}"
    with tempfile.TemporaryDirectory(prefix="levelcare-utf8-") as tmp:
        source, encoding = path, facts.encoding
        if encoding == WINDOWS_1252:
            source, encoding = Path(tmp) / "utf8.csv", "utf-8"
            _to_utf8(path, source)
        if head.skip:
            # DuckDB's skip= reads no row at all when the lines above the header end in LF and
            # the rest in CRLF (a title written by another tool; duckdb 2.0.0): DuckDB is given
            # the file from its header line on instead. Only files with title rows pay the copy.
            source = _from_line(source, head.line, Path(tmp) / "body.csv")
        sql = (
            f"CREATE OR REPLACE TEMP TABLE {SRC_TABLE} AS SELECT * FROM read_csv({quote_lit(str(source))}, "
            f"delim={quote_lit(head.delimiter)}, quote='\"', escape='\"', header=true, auto_detect=false, "
            f"columns={columns}, strict_mode=true, null_padding=false, "
            f"encoding={quote_lit(encoding)}, max_line_size=10000000)"
        )
        try:
            con.execute(sql)
        except duckdb.Error as exc:
            line = _duck_error_line(exc)
            # DuckDB read the file from the header line on: its line 1 is the original's skip + 1
            at = f" (parser stopped at line {_physical_line(path, head, line + head.skip)})" if line else ""
            raise ReadRefused(f"{path.name}: unreadable or truncated CSV{at}", check_id="truncated") from None
    source_info = Source(names, None, head.line)
    ((rows,),) = con.execute(f"SELECT count(*) FROM {SRC_TABLE}").fetchall()
    lines, to_last_filled = _line_counts(path, facts)
    single = len(names) == 1
    if (lines if single else to_last_filled) == head.end_line + rows:
        return source_info, head.end_line  # no blank line, no line break inside a field: row i is on line i + offset
    import pyarrow as pa

    at = _row_lines(path, head, single)
    if len(at) != rows:  # should not happen: numbered as data rows after the header rather than fail
        log.warning("%s: %d rows read but %d found by the line scan; rows numbered from the header",
                    path.name, rows, len(at))
        return source_info, head.end_line
    con.register("_lc_lines_arrow", pa.table({"_line": pa.array(at, type=pa.int64())}))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_LINES} AS SELECT _line FROM _lc_lines_arrow")
    finally:
        con.unregister("_lc_lines_arrow")
    return source_info, None


# ------------------------------------------------------------------------------------ Parquet

def _parquet_names(path: Path) -> list[str]:
    """The column names the Parquet file itself holds (DuckDB renames duplicates)."""
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception:  # noqa: BLE001 - any pyarrow failure means the same to the sender
        raise ReadRefused(f"{path.name}: unreadable or truncated Parquet file", check_id="truncated") from None


def load_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    import duckdb

    # a name twice (case-insensitively) is refused as in CSV and XLSX; DuckDB's DESCRIBE would
    # rename the second one, and it would be dropped as an unknown column
    _clean_names(path, _parquet_names(path))
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({quote_lit(str(path))})").fetchall()
        originals = [r[0] for r in described]
        names = _clean_names(path, originals)
        select = ", ".join(f"CAST({quote_ident(o)} AS VARCHAR) AS {quote_ident(n)}"
                           for o, n in zip(originals, names, strict=True))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {SRC_TABLE} AS SELECT {select} "
                    f"FROM read_parquet({quote_lit(str(path))})")
    except duckdb.Error:
        raise ReadRefused(f"{path.name}: unreadable or truncated Parquet file", check_id="truncated") from None
    return names


# ------------------------------------------------------------------------------------ XLSX

def _cell_text(value: object) -> str | None:
    import datetime as dt

    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _check_xlsx_package(path: Path) -> None:
    """Refuse a zip bomb from the zip directory alone, before anything is inflated. Python's
    zipfile never inflates an entry past its declared size, so the declared sizes bound the work."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ReadRefused(f"{path.name}: unreadable or truncated XLSX file", check_id="truncated") from None
    total = sum(i.file_size for i in infos)
    bomb = len(infos) > XLSX_MAX_ENTRIES or total > XLSX_MAX_BYTES or any(
        i.file_size > 16 << 20 and i.file_size > XLSX_MAX_RATIO * max(i.compress_size, 1) for i in infos)
    if bomb:
        raise ReadRefused(f"{path.name}: XLSX package would inflate to {total >> 20} MiB in {len(infos)} parts "
                          f"(at most {XLSX_MAX_BYTES >> 20} MiB, ratio {XLSX_MAX_RATIO}); refused unread "
                          "(send large extracts as CSV or Parquet)", check_id="xlsx_too_large")


class _CellBudget:
    """Cells read so far, over every sheet read (an empty row counts one)."""

    def __init__(self, path: Path):
        self.path, self.cells = path, 0

    def take(self, n: int) -> None:
        self.cells += n
        if self.cells > XLSX_MAX_CELLS:
            raise ReadRefused(f"{self.path.name}: the workbook has more than {XLSX_MAX_CELLS} cells; refused "
                              "(send large extracts as CSV or Parquet)", check_id="xlsx_too_large")


def _sheet_rows(ws, budget: _CellBudget) -> Iterator[tuple]:
    """The sheet's rows from row 1 (an empty row as ``()``), without their trailing empty cells."""
    # the sheet's declared dimension (A1:XFD1048576) would make openpyxl pad every row to that
    # width and emit that many rows: read only the cells that are there
    if hasattr(ws, "reset_dimensions"):
        ws.reset_dimensions()
    for row in ws.iter_rows(values_only=True):
        end = len(row)
        while end and row[end - 1] is None:
            end -= 1
        budget.take(end + 1)
        yield row[:end]


def _row_filled(row: tuple) -> int:
    return sum(1 for v in row if v is not None and (_cell_text(v) or "").strip())


@dataclass
class _Sheet:
    title: str
    head: list[tuple]  # the rows read to find the header, from row 1
    header: int | None  # index in head (the Excel row less 1), None: no non-blank row
    names: list[str] | None  # None when the header is refused (error)
    error: ReadRefused | None
    rest: Iterator[tuple]  # the rows after head, not read yet
    where: str

    def close(self) -> None:
        close = getattr(self.rest, "close", None)
        if close is not None:
            close()


def _scan_sheet(path: Path, ws, budget: _CellBudget, several: bool) -> _Sheet:
    rows = _sheet_rows(ws, budget)
    head: list[tuple] = []
    best, header, seen = 0, None, 0
    for row in rows:
        head.append(row)
        if n := _row_filled(row):
            seen += 1
            if n > best:
                best, header = n, len(head) - 1
            if seen >= HEAD_ROWS:
                break
    names, error, where = None, None, ""
    if header is not None:
        if several or header:
            where = (f" (sheet {ws.title!r}, header on row {header + 1})" if several
                     else f" (header on row {header + 1})")
        try:
            names = _clean_names(path, [_cell_text(v) or "" for v in head[header]], where)
        except ReadRefused as exc:
            error = exc
    return _Sheet(ws.title, head, header, names, error, rows, where)


def _choose_sheet(path: Path, wb, sheet: str | None, accept: Callable[[list[str]], bool] | None,
                  budget: _CellBudget) -> _Sheet:
    """The sheet named ``sheet``; else the first whose header ``accept`` takes; else (no accept, or
    none taken) the first that has a header. Sheets are read only as far as their header."""
    sheets = list(wb.worksheets)
    titles = [ws.title for ws in sheets]
    several = len(sheets) > 1
    if sheet is not None:
        named = ([ws for ws in sheets if ws.title == sheet]
                 or [ws for ws in sheets if ws.title.strip().casefold() == sheet.strip().casefold()])
        if not named:
            raise ReadRefused(f"{path.name}: no sheet named {sheet!r} (the workbook has "
                              f"{', '.join(repr(t) for t in titles) or 'no sheets'})", check_id="sheet")
        chosen = _scan_sheet(path, named[0], budget, several)
        if chosen.header is None:
            raise ReadRefused(f"{path.name}: empty sheet {chosen.title!r} (no header)")
        return chosen
    fallback: _Sheet | None = None
    for ws in sheets:
        s = _scan_sheet(path, ws, budget, several)
        if s.header is None:
            continue
        if accept is None or (s.names is not None and accept(s.names)):
            if fallback is not None:
                fallback.close()
            return s
        if fallback is None:
            fallback = s  # kept open: read on from where its header was found if no sheet is taken
        else:
            s.close()
    if fallback is not None:
        return fallback
    raise ReadRefused(f"{path.name}: empty sheet (no header)"
                      + (f" in each of the {len(sheets)} sheets" if several else ""))


def _open_workbook(path: Path):
    _check_xlsx_package(path)
    try:
        import openpyxl

        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - any openpyxl/zip failure means the same to the sender
        raise ReadRefused(f"{path.name}: unreadable or truncated XLSX file", check_id="truncated") from None


def _xlsx_sheet(path: Path, sheet: str | None, accept, full: bool) -> tuple[_Sheet, list[tuple]]:
    """The chosen sheet, and when ``full`` its rows after the header (else [])."""
    wb = _open_workbook(path)
    try:
        chosen = _choose_sheet(path, wb, sheet, accept, _CellBudget(path))
        if chosen.error is not None:
            chosen.close()
            raise chosen.error
        data: list[tuple] = []
        if full:
            data = chosen.head[chosen.header + 1:]
            data.extend(chosen.rest)
        chosen.close()
    except ReadRefused:
        raise
    except Exception:  # noqa: BLE001 - any openpyxl/zip failure means the same to the sender
        raise ReadRefused(f"{path.name}: unreadable or truncated XLSX file", check_id="truncated") from None
    finally:
        wb.close()
    return chosen, data


def load_xlsx(con: duckdb.DuckDBPyConnection, path: Path, sheet: str | None = None,
              accept: Callable[[list[str]], bool] | None = None) -> Source:
    import pyarrow as pa

    chosen, data = _xlsx_sheet(path, sheet, accept, full=True)
    while data and all(v is None for v in data[-1]):
        data.pop()  # trailing empty rows are formatting leftovers, not records
    names = chosen.names or []
    width = len(names)
    first = chosen.header + 2  # Excel row of data row 1
    for i, r in enumerate(data):
        if any(v is not None for v in r[width:]):
            at = f" of sheet {chosen.title!r}" if chosen.where.startswith(" (sheet") else ""
            raise ReadRefused(f"{path.name}: row {first + i}{at} has values beyond the header's {width} columns",
                              check_id="truncated")
    cols = {}
    for j, name in enumerate(names):
        cols[name] = pa.array([_cell_text(r[j]) if j < len(r) else None for r in data], type=pa.string())
    table = pa.table(cols) if cols else pa.table({})
    con.register("_lc_xlsx", table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {SRC_TABLE} AS SELECT * FROM _lc_xlsx")
    finally:
        con.unregister("_lc_xlsx")
    return Source(names, chosen.title, chosen.header + 1)


# ------------------------------------------------------------------------------------ any format

def peek_columns(path: Path, sheet: str | None = None,
                 accept: Callable[[list[str]], bool] | None = None) -> list[str]:
    """Lower-case column names from the header only (for kind detection and ordering), the header
    and XLSX sheet found as :func:`load_source` finds them; [] when there is no header."""
    facts = file_facts(path)
    if facts.format == "csv":
        head = _csv_head(path, facts.encoding)
        return _csv_names(path, head) if head is not None else []
    if facts.format == "parquet":
        return _clean_names(path, _parquet_names(path))
    try:
        chosen, _ = _xlsx_sheet(path, sheet, accept, full=False)
    except ReadRefused as exc:
        if str(exc).startswith(f"{path.name}: empty sheet"):
            return []
        raise
    return chosen.names or []


def load_source(con: duckdb.DuckDBPyConnection, path: Path, facts: FileFacts, sheet: str | None = None,
                accept: Callable[[list[str]], bool] | None = None) -> Source:
    """Load ``path`` into the table SRC_TABLE (text columns), the view SRC_RAW (``_row_number``,
    ``_line``, the columns) and the view SRC_VIEW over it.

    ``sheet`` (XLSX only; ignored for other formats) names the sheet to read; without it the first
    sheet whose header's names ``accept`` takes is read, else the first sheet that has a header."""
    offset: int | None
    if facts.format == "parquet":
        source, offset = Source(load_parquet(con, path), None, 0), 0
    elif facts.format == "xlsx":
        source = load_xlsx(con, path, sheet, accept)
        offset = source.header_line  # every row after the header is a row, empty ones too
    else:
        source, offset = load_csv(con, path, facts)
    # A freshly created table's rowid follows insertion (file) order.
    if offset is not None:
        con.execute(f"DROP TABLE IF EXISTS {_LINES}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW {SRC_RAW} AS SELECT rowid + 1 AS _row_number, "
                    f"CAST(rowid + {offset + 1} AS BIGINT) AS _line, * FROM {SRC_TABLE}")
    else:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {SRC_RAW} AS SELECT s.rowid + 1 AS _row_number, l._line, s.* "
                    f"FROM {SRC_TABLE} AS s POSITIONAL JOIN {_LINES} AS l")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {SRC_VIEW} AS SELECT * FROM {SRC_RAW}")
    return source


def drop_source(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP VIEW IF EXISTS {SRC_VIEW}")
    con.execute(f"DROP VIEW IF EXISTS {SRC_RAW}")
    con.execute(f"DROP TABLE IF EXISTS {SRC_TABLE}")
    con.execute(f"DROP TABLE IF EXISTS {_LINES}")


__all__ = [
    "SRC_RAW",
    "SRC_TABLE",
    "SRC_VIEW",
    "FileFacts",
    "ReadRefused",
    "Source",
    "drop_source",
    "file_facts",
    "load_source",
    "peek_columns",
    "quote_ident",
    "quote_lit",
]
