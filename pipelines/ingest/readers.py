"""Read an input file into a DuckDB table of text: every column VARCHAR, names lower-case.

Everything is read as text so that a value that does not parse becomes a quarantine reason
later (in SQL), never a crash here. Row numbers are 1-based data rows (the header is not a row).

CSV: UTF-8 (BOM or not) or Latin-1 (chosen by trying UTF-8 over the whole file), CRLF or LF,
delimiter sniffed from the header line among , ; tab |, double-quoted fields. The dialect is
passed to DuckDB explicitly with strict parsing, so a short row or an unterminated quote
refuses the file instead of shifting values between columns. Parquet: every column cast to
VARCHAR. XLSX: the first sheet via openpyxl.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import UserError

if TYPE_CHECKING:
    import duckdb

SRC_TABLE = "_lc_src0"
SRC_VIEW = "_lc_src"  # adds _row_number
DELIMITERS = (",", ";", "\t", "|")
_CHUNK = 1 << 22
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


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def trimmed(expr: str) -> str:
    """SQL: the text ``expr`` without leading and trailing spaces, NULL when nothing is left;
    the same as ``NULLIF(trim(expr), '')``, at less than half its cost.

    DuckDB's ``trim`` strips the Unicode space separators (category Zs): of ASCII only ' ', the
    rest are multi-byte. A value with no ' ' whose bytes are all ASCII (``strlen = length``)
    has nothing to strip and is taken as it is; ``trim`` runs on the others only. On a 1.7 M-row
    discharge file (37 columns) trim on every value took 2.3 s of the typed batch's ~4.5."""
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
    """sha256 and, for text files, encoding and quote balance in one streaming pass."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    c1 = False  # a byte 0x80-0x9F: C1 controls in Latin-1, punctuation (smart quotes, €) in Windows-1252
    quotes = 0
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
                    quotes += chunk.count(b'"')
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
    return FileFacts(digest.hexdigest(), size, fmt, encoding, quotes % 2 == 1)


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


def _header_line(path: Path, encoding: str) -> str:
    try:
        with path.open("r", encoding=encoding, newline="") as fh:
            line = fh.readline(MAX_HEADER_BYTES + 1)
    except UnicodeDecodeError:  # a byte Windows-1252 leaves undefined
        raise _undecodable(path) from None
    if len(line) > MAX_HEADER_BYTES:
        raise ReadRefused(f"{path.name}: the header line is longer than {MAX_HEADER_BYTES} characters",
                          check_id="header")
    return line.lstrip("\ufeff").rstrip("\r\n")


def _split_header(path: Path, header: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([header], delimiter=delimiter))
    except csv.Error:  # e.g. a column name longer than the csv module's field limit
        raise ReadRefused(f"{path.name}: unreadable header line", check_id="header") from None


def sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _clean_names(path: Path, names: list[str]) -> list[str]:
    if len(names) > MAX_COLUMNS:
        raise ReadRefused(f"{path.name}: the header has {len(names)} columns (at most {MAX_COLUMNS})",
                          check_id="header")
    cleaned = [n.replace("\ufeff", "").strip().lower() for n in names]
    for i, n in enumerate(cleaned, start=1):
        if not n:
            raise ReadRefused(f"{path.name}: header column {i} has no name", check_id="header")
    seen: set[str] = set()
    for n in cleaned:
        if n in seen:
            raise ReadRefused(f"{path.name}: column {n!r} appears twice in the header (names are "
                              "case-insensitive)", field=n, check_id="header")
        seen.add(n)
    return cleaned


def peek_columns(path: Path) -> list[str]:
    """Lower-case column names from the header only (for kind detection and ordering)."""
    facts = file_facts(path)
    if facts.format == "csv":
        line = _header_line(path, facts.encoding)
        return _clean_names(path, _split_header(path, line, sniff_delimiter(line)) if line else [])
    if facts.format == "parquet":

        return _clean_names(path, _parquet_names(path))
    rows = _xlsx_rows(path, limit=1)
    return _clean_names(path, [str(v) if v is not None else "" for v in rows[0]]) if rows else []


def _duck_error_line(exc: Exception) -> str:
    # DuckDB's message can quote the offending line; keep only the line number.
    m = re.search(r"[Ll]ine:?\s*(\d+)", str(exc))
    return f" (parser stopped at line {m.group(1)})" if m else ""


def load_csv(con: duckdb.DuckDBPyConnection, path: Path, facts: FileFacts) -> list[str]:
    import duckdb

    if facts.size == 0:
        raise ReadRefused(f"{path.name}: empty file (no header)")
    if facts.odd_quotes:
        raise ReadRefused(f"{path.name}: unreadable or truncated CSV (unbalanced quotes)", check_id="truncated")
    header = _header_line(path, facts.encoding)
    if not header.strip():
        raise ReadRefused(f"{path.name}: empty file (no header)")
    delim = sniff_delimiter(header)
    names = _clean_names(path, _split_header(path, header, delim))
    columns = "{" + ", ".join(f"{quote_lit(n)}: 'VARCHAR'" for n in names) + "}"
    with tempfile.TemporaryDirectory(prefix="levelcare-utf8-") as tmp:
        source, encoding = path, facts.encoding
        if encoding == WINDOWS_1252:
            source, encoding = Path(tmp) / "utf8.csv", "utf-8"
            _to_utf8(path, source)
        sql = (
            f"CREATE OR REPLACE TEMP TABLE {SRC_TABLE} AS SELECT * FROM read_csv({quote_lit(str(source))}, "
            f"delim={quote_lit(delim)}, quote='\"', escape='\"', header=true, auto_detect=false, "
            f"columns={columns}, strict_mode=true, null_padding=false, "
            f"encoding={quote_lit(encoding)}, max_line_size=10000000)"
        )
        try:
            con.execute(sql)
        except duckdb.Error as exc:
            raise ReadRefused(f"{path.name}: unreadable or truncated CSV{_duck_error_line(exc)}",
                              check_id="truncated") from None
    return names


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


def _xlsx_rows(path: Path, limit: int | None = None) -> list[tuple]:
    _check_xlsx_package(path)
    cells = 0
    try:
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            ws = wb.worksheets[0]
            # the sheet's declared dimension (A1:XFD1048576) would make openpyxl pad every row to
            # that width and emit that many rows: read only the cells that are there
            if hasattr(ws, "reset_dimensions"):
                ws.reset_dimensions()
            rows = []
            for row in ws.iter_rows(values_only=True):
                # rows without trailing empties; a bounded number of cells (and empty rows) kept
                end = len(row)
                while end and row[end - 1] is None:
                    end -= 1
                row = row[:end]
                cells += end + 1
                if cells > XLSX_MAX_CELLS:
                    raise ReadRefused(f"{path.name}: the sheet has more than {XLSX_MAX_CELLS} cells; refused "
                                      "(send large extracts as CSV or Parquet)", check_id="xlsx_too_large")
                rows.append(row)
                if limit is not None and len(rows) >= limit:
                    break
        finally:
            wb.close()
    except ReadRefused:
        raise
    except Exception:  # noqa: BLE001 - any openpyxl/zip failure means the same to the sender
        raise ReadRefused(f"{path.name}: unreadable or truncated XLSX file", check_id="truncated") from None
    return rows


def load_xlsx(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    import pyarrow as pa

    rows = _xlsx_rows(path)
    while rows and all(v is None for v in rows[-1]):
        rows.pop()  # trailing empty rows are formatting leftovers, not records
    if not rows:
        raise ReadRefused(f"{path.name}: empty sheet (no header)")
    width = len(rows[0])
    while width and rows[0][width - 1] is None:
        width -= 1
    names = _clean_names(path, [_cell_text(v) or "" for v in rows[0][:width]])
    data = rows[1:]
    cols = {}
    for j, name in enumerate(names):
        cols[name] = pa.array([_cell_text(r[j]) if j < len(r) else None for r in data], type=pa.string())
    for i, r in enumerate(data, start=1):
        if any(v is not None for v in r[width:]):
            raise ReadRefused(f"{path.name}: row {i} has values beyond the header's {width} columns",
                              check_id="truncated")
    table = pa.table(cols) if cols else pa.table({})
    con.register("_lc_xlsx", table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {SRC_TABLE} AS SELECT * FROM _lc_xlsx")
    finally:
        con.unregister("_lc_xlsx")
    return names


def load_source(con: duckdb.DuckDBPyConnection, path: Path, facts: FileFacts) -> list[str]:
    """Load ``path`` into the temp view ``_lc_src`` (text columns + ``_row_number``)."""
    if facts.format == "parquet":
        names = load_parquet(con, path)
    elif facts.format == "xlsx":
        names = load_xlsx(con, path)
    else:
        names = load_csv(con, path, facts)
    # A freshly created table's rowid follows insertion (file) order.
    con.execute(f"CREATE OR REPLACE TEMP VIEW {SRC_VIEW} AS SELECT rowid + 1 AS _row_number, * FROM {SRC_TABLE}")
    return names


def drop_source(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP VIEW IF EXISTS {SRC_VIEW}")
    con.execute(f"DROP TABLE IF EXISTS {SRC_TABLE}")


__all__ = [
    "FileFacts",
    "ReadRefused",
    "drop_source",
    "file_facts",
    "load_source",
    "peek_columns",
    "quote_ident",
    "quote_lit",
]
