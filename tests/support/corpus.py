"""A corpus of hostile and malformed input files, generated in code (nothing binary is committed).

Each case writes its file(s) under a folder and names the outcome ``levelcare ingest`` must
reach: a ledger status (loaded, partial, refused) or a one-line user error (exit 2). Whatever the
file, the CLI must never crash with a traceback, hang, or grow past its memory limit.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sec_helpers import CANARY, DISCHARGE_COLUMNS, csv_text, discharge

HEADER = ",".join(DISCHARGE_COLUMNS)
ROWS = [discharge(i) for i in range(1, 4)]


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Path]  # writes the input under the folder given, returns the path to ingest
    expect: str  # loaded | partial | refused | error (one-line user error, exit 2) | any (no crash only)
    message: str = ""  # a substring of the ledger message / error line
    alone: bool = False  # run in its own CLI process even in the fast run (may hang, blow up, or is big)
    timeout: float = 240
    slow: bool = False  # only with --slow
    known_defect: str = ""  # expected to fail until the defect named here is fixed (strict xfail)


def _w(name: str, data: bytes | str, encoding: str = "utf-8") -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        p = d / name
        p.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
        return p
    return build


def _rows(name: str, rows, columns=None, **kw) -> Callable[[Path], Path]:
    return _w(name, csv_text(rows, columns, **kw))


def _junk(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# ------------------------------------------------------------------------------------ XLSX

def _xlsx(name: str, rows: list[list], extra_sheet_first: bool = False) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        if extra_sheet_first:
            ws.title = "notes"
            ws = wb.create_sheet("data")
        for r in rows:
            ws.append(r)
        p = d / name
        wb.save(p)
        return p
    return build


def _xlsx_table(rows) -> list[list]:
    return [DISCHARGE_COLUMNS] + [[r.get(c) for c in DISCHARGE_COLUMNS] for r in rows]


_CONTENT_TYPES = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                  b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                  b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                  b'<Default Extension="xml" ContentType="application/xml"/>'
                  b'<Override PartName="/xl/workbook.xml" '
                  b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                  b'<Override PartName="/xl/worksheets/sheet1.xml" '
                  b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                  b'</Types>')
_RELS = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
         b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
         b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
         b'officeDocument" Target="xl/workbook.xml"/></Relationships>')
_WORKBOOK = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
             b'<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
             b'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
             b'<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
_WB_RELS = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            b'worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
_SHEET_HEAD = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
               b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
_SHEET_TAIL = b"</sheetData></worksheet>"


def _row_xml(r: int, values: list[str]) -> bytes:
    cells = "".join(f'<c r="{chr(65 + j)}{r}" t="inlineStr"><is><t>{v}</t></is></c>' for j, v in enumerate(values))
    return f'<row r="{r}">{cells}</row>'.encode()


def _raw_xlsx(d: Path, name: str, sheet_parts: list[tuple[bytes, int]] | bytes) -> Path:
    """An XLSX package written by hand; the sheet is ``sheet_parts`` (bytes, or (chunk, repeat) pairs
    streamed through the compressor, so a bomb never sits in memory)."""
    p = d / name
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
        z.writestr("_rels/.rels", _RELS)
        z.writestr("xl/workbook.xml", _WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", _WB_RELS)
        if isinstance(sheet_parts, bytes):
            z.writestr("xl/worksheets/sheet1.xml", sheet_parts)
        else:
            with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
                for chunk, repeat in sheet_parts:
                    for _ in range(repeat):
                        fh.write(chunk)
    return p


def _zip_bomb(name: str, gib: float) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        header = _row_xml(1, DISCHARGE_COLUMNS[:3])
        block = _row_xml(2, ["E1", "P1", "s1"]) * 4096  # ~300 kB, compresses ~1000:1
        repeat = int(gib * (1 << 30) / len(block))
        return _raw_xlsx(d, name, [(_SHEET_HEAD + header, 1), (block, repeat), (_SHEET_TAIL, 1)])
    return build


def _lying_zip(name: str) -> Callable[[Path], Path]:
    """A sheet entry whose central directory claims 2 GiB uncompressed."""
    def build(d: Path) -> Path:
        body = _SHEET_HEAD + _row_xml(1, DISCHARGE_COLUMNS[:3]) + _SHEET_TAIL
        p = _raw_xlsx(d, name, body)
        data = bytearray(p.read_bytes())
        i = data.rfind(b"xl/worksheets/sheet1.xml")  # in the central directory
        cd = data.rfind(b"PK\x01\x02", 0, i)
        struct.pack_into("<I", data, cd + 24, 0x7FFFFFFF)  # uncompressed size field
        p.write_bytes(bytes(data))
        return p
    return build


def _sparse_sheet(name: str) -> Callable[[Path], Path]:
    """Tiny on disk, but declares A1:XFD1048576 and has one cell in the last row and column."""
    sheet = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
             b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
             b'<dimension ref="A1:XFD1048576"/><sheetData>' + _row_xml(1, DISCHARGE_COLUMNS[:3])
             + b'<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>' + _SHEET_TAIL)
    return lambda d: _raw_xlsx(d, name, sheet)


def _billion_laughs(name: str) -> Callable[[Path], Path]:
    ents = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    sheet = (f'<?xml version="1.0"?><!DOCTYPE worksheet [{ents}]>'
             '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
             '<row r="1"><c r="A1" t="inlineStr"><is><t>&a9;</t></is></c></row></sheetData></worksheet>').encode()
    return lambda d: _raw_xlsx(d, name, sheet)


def _xxe(name: str) -> Callable[[Path], Path]:
    sheet = (b'<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
             b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
             b'<row r="1"><c r="A1" t="inlineStr"><is><t>&x;</t></is></c></row></sheetData></worksheet>')
    return lambda d: _raw_xlsx(d, name, sheet)


def _truncated(build_full: Callable[[Path], Path], keep: float) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        p = build_full(d)
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * keep)])
        return p
    return build


# ------------------------------------------------------------------------------------ Parquet

def _parquet(name: str, table_fn) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        import pyarrow.parquet as pq

        p = d / name
        pq.write_table(table_fn(), p)
        return p
    return build


def _pa_rows(base: int) -> list[dict]:
    # every case has its own episode ids: in the fast run all files share one warehouse
    return [discharge(base + i) for i in range(3)]


def _pa_valid():
    import pyarrow as pa

    return pa.table({c: [r[c] for r in _pa_rows(100)] for c in DISCHARGE_COLUMNS})


def _pa_wrong_types():
    import datetime as dt

    import pyarrow as pa

    cols = {c: [r[c] for r in _pa_rows(110)] for c in DISCHARGE_COLUMNS}
    cols["admit_date"] = pa.array([20260105, 20260106, 20260107], pa.int64())  # not a date
    cols["discharge_date"] = pa.array([dt.datetime(2026, 2, 20)] * 3, pa.timestamp("us"))  # midnight: fine
    cols["co_occurring_mh"] = pa.array([True, False, None], pa.bool_())
    cols["phq9_admit"] = pa.array([3.5, 12.0, float("nan")], pa.float64())  # 3.5 is not an integer
    return pa.table(cols)


def _pa_nested():
    import pyarrow as pa

    cols = {c: [r[c] for r in _pa_rows(120)] for c in DISCHARGE_COLUMNS}
    cols["program_id"] = pa.array([{"a": 1}, {"a": 2}, None], pa.struct([("a", pa.int64())]))
    cols["extra_list"] = pa.array([[1, 2], [], None], pa.list_(pa.int64()))
    return pa.table(cols)


def _pa_binary():
    import pyarrow as pa

    cols = {c: [r[c] for r in _pa_rows(130)] for c in DISCHARGE_COLUMNS}
    cols["program_id"] = pa.array([b"\xff\xfe\x00bad", b"ok", None], pa.binary())
    return pa.table(cols)


def _pa_dup_names():
    import pyarrow as pa

    arrays = [pa.array([r[c] for r in _pa_rows(140)]) for c in DISCHARGE_COLUMNS] + [pa.array(["x", "y", "z"])]
    return pa.Table.from_arrays(arrays, names=[*DISCHARGE_COLUMNS, "Episode_ID"])


def _pa_empty():
    import pyarrow as pa

    return pa.table({c: pa.array([], pa.string()) for c in DISCHARGE_COLUMNS})


# ------------------------------------------------------------------------------------ special files

def _fifo(d: Path) -> Path:
    p = d / "pipe.csv"
    os.mkfifo(p)
    return p


def _dev_zero(d: Path) -> Path:
    p = d / "zeros.csv"
    p.symlink_to("/dev/zero")
    return p


def _symlink_loop(d: Path) -> Path:
    root = d / "loop"
    (root / "a").mkdir(parents=True)
    (root / "a" / "back").symlink_to("..", target_is_directory=True)
    (root / "a" / "self").symlink_to(".", target_is_directory=True)
    (root / "a" / "loop_discharges.csv").write_text(csv_text([discharge(900)]))
    return root


def _dangling(d: Path) -> Path:
    p = d / "dangling.csv"
    p.symlink_to(d / "nowhere.csv")
    return p


def _dir_named_csv(d: Path) -> Path:
    root = d / "withdir"
    (root / "fake.csv").mkdir(parents=True)
    (root / "real.csv").write_text(csv_text([discharge(901)]))
    return root


def _many_columns(n: int, with_contract: bool) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        extra = [f"x{i:05d}" for i in range(n)]
        cols = (DISCHARGE_COLUMNS if with_contract else []) + extra
        row = ([discharge(950)[c] for c in DISCHARGE_COLUMNS] if with_contract else []) + ["1"] * n
        p = d / (f"cols_{n}_{'disch' if with_contract else 'only'}.csv")
        p.write_text(",".join(cols) + "\n" + ",".join(row) + "\n")
        return p
    return build


def _long_line(name: str, size: int, unit: bytes) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        p = d / name
        with p.open("wb") as fh:
            chunk = unit * max(1, (1 << 20) // len(unit))
            written = 0
            while written < size:
                fh.write(chunk)
                written += len(chunk)
        return p
    return build


def _numbered_header(name: str, n: int) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        p = d / name
        with p.open("w") as fh:
            fh.write(",".join(f"c{i}" for i in range(n)))  # no newline
        return p
    return build


def _huge_cell(name: str, size: int) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        rows = [discharge(960), discharge(961, program_id="p" * size)]
        return _rows(name, rows)(d)
    return build


def _many_blank_lines(d: Path) -> Path:
    p = d / "blank_lines.csv"
    p.write_text(HEADER + "\n" + csv_text([discharge(970)]).split("\n", 1)[1] + "\n" * 200_000)
    return p


INJECTION = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1+1)", "=HYPERLINK(\"http://x\",\"y\")", "\t=1"]

CASES: list[Case] = [
    # --- empty and header-only
    Case("empty_file", _w("empty.csv", b""), "refused", "empty file"),
    Case("only_newline", _w("newline.csv", b"\n"), "refused", "empty file"),
    Case("only_whitespace", _w("spaces.csv", b"   \r\n \n"), "refused"),
    Case("header_only", _w("header_only.csv", HEADER + "\n"), "loaded"),
    Case("header_only_no_newline", _w("header_only_nonl.csv", HEADER + ",episode_cost"), "loaded"),
    Case("unknown_header", _w("unknown.csv", "a,b,c\n1,2,3\n"), "refused", "unknown kind"),
    Case("duplicated_header", _w("dup.csv", HEADER + ",episode_id\n" + "x," * 13 + "x\n"), "refused",
         "appears twice"),
    Case("duplicated_header_case", _w("dupcase.csv", HEADER.replace("person_id", "EPISODE_ID") + "\n"),
         "refused", "appears twice"),
    Case("empty_header_name", _w("emptyname.csv", HEADER + ",\n" + "x," * 13 + "\n"), "refused", "no name"),
    # --- binary junk and wrong formats
    Case("binary_junk_csv", _w("junk.csv", _junk(65536, 1)), "refused"),
    Case("binary_junk_txt", _w("junk.txt", _junk(4096, 2)), "refused"),
    Case("binary_junk_xlsx", _w("junk.xlsx", _junk(4096, 3)), "refused", "XLSX"),
    Case("binary_junk_parquet", _w("junk.parquet", _junk(4096, 4)), "refused", "Parquet"),
    Case("png_named_csv", _w("image.csv", b"\x89PNG\r\n\x1a\n" + _junk(2048, 5)), "refused"),
    Case("gzip_named_csv", _w("gz.csv", b"\x1f\x8b\x08\x00" + zlib.compress(csv_text(ROWS).encode())), "refused"),
    Case("plain_zip_named_csv", lambda d: _plain_zip(d), "refused", "XLSX"),
    Case("html_named_xlsx", _w("page.xlsx", "<html><body>" + HEADER + "</body></html>"), "refused", "XLSX"),
    Case("utf16_csv", _w("utf16.csv", csv_text(ROWS), "utf-16"), "refused"),
    # --- NUL bytes and control characters
    Case("nul_in_field", _w("nul_field.csv", csv_text([discharge(10, program_id="a\x00b"), discharge(11)])), "any"),
    Case("nul_in_header", _w("nul_header.csv", HEADER.replace("site_id", "site\x00_id") + "\n"), "any"),
    Case("all_nul", _w("nuls.csv", b"\x00" * 100_000), "refused"),
    Case("ansi_escapes", _rows("ansi.csv", [discharge(12, program_id="\x1b[31mred\x1b[0m\x07"), discharge(13)]),
         "loaded"),
    Case("rtl_override", _rows("rtl.csv", [discharge(14, program_id="\u202eexe.txt"), discharge(15)]), "loaded"),
    Case("emoji_astral", _rows("emoji.csv", [discharge(16, program_id="\U0001F600\U00010348"), discharge(17)]),
         "loaded"),
    # --- encodings and BOMs
    Case("latin1", _w("latin1.csv", csv_text([discharge(18, program_id="caf\xe9")]), "latin-1"), "loaded"),
    Case("mixed_encodings", lambda d: _mixed(d), "loaded"),
    # Windows-1252 (Excel's CSV): smart quotes are bytes 0x93/0x94, read as such (not as Latin-1 C1 controls)
    Case("cp1252_smart_quotes", _w("cp1252.csv", csv_text([discharge(19, program_id="\u201cq\u201d")]), "cp1252"),
         "loaded"),
    # 0x81 is undefined in Windows-1252 and a C1 control in Latin-1: no reading makes it text
    Case("cp1252_undefined_byte", _w("cp1252_bad.csv", csv_text([discharge(19, program_id="QQQ")]).encode()
                                     .replace(b"QQQ", b"Q\x81Q")), "refused", "unreadable"),
    Case("bom_start", _w("bom.csv", "\ufeff" + csv_text([discharge(20)])), "loaded"),
    Case("bom_twice", _w("bom2.csv", "\ufeff\ufeff" + csv_text([discharge(21)])), "loaded"),
    Case("bom_middle_header", _w("bom_mid.csv", csv_text([discharge(22)]).replace(",person_id", ",\ufeffperson_id", 1)),
         "loaded"),
    Case("bom_middle_data", _rows("bom_data.csv", [discharge(23, program_id="a\ufeffb"), discharge(24)]), "loaded"),
    Case("bom_utf8_in_latin1", _w("bom_latin.csv", b"\xef\xbb\xbf" + csv_text([discharge(25, program_id="\xe9")])
                                  .encode("latin-1")), "refused", "unknown kind"),
    # --- line endings, delimiters, quoting
    Case("crlf", _rows("crlf.csv", [discharge(26)], newline="\r\n"), "loaded"),
    Case("cr_only", _rows("cr.csv", [discharge(27), discharge(28)], newline="\r"), "any"),
    Case("semicolon", _rows("semi.csv", [discharge(29)], delimiter=";"), "loaded"),
    Case("tab_with_injection", _rows("tab.tsv", [discharge(30, program_id="=1+1")], delimiter="\t"), "loaded"),
    Case("deeply_nested_quotes", _rows("quotes.csv", [discharge(31, program_id='"' * 100_000 + "x")]), "loaded"),
    Case("quote_in_unquoted_field", _w("bad_quote.csv", HEADER + "\n"
         + 'E32,P32,s1,ab"cd,iop,2026-01-05,2026-02-20,completed,30-34,female,alcohol,false,12\n'), "refused"),
    Case("unbalanced_quotes", _w("unbalanced.csv", csv_text([discharge(33)]) + '"E34,P34\n'), "refused"),
    Case("short_row", _w("short.csv", csv_text([discharge(35)]) + "E36,P36,s1\n"), "refused"),
    Case("long_row", _w("long.csv", csv_text([discharge(37)]) + ",".join(["x"] * 40) + "\n"), "refused"),
    Case("one_row_10000_fields", _w("wide_row.csv", csv_text([discharge(38)]) + ",".join(["x"] * 10_000) + "\n"),
         "refused"),
    Case("many_blank_lines", _many_blank_lines, "loaded"),
    # --- injection-looking data is data
    Case("csv_injection_text", _rows("inject.csv", [discharge(40 + i, program_id=v) for i, v in enumerate(INJECTION)]),
         "loaded"),
    # RFC 4180 allows a bare CR inside a quoted field; DuckDB's strict parser refuses the file (clearly)
    Case("cr_inside_quoted_field", _rows("cr_quoted.csv", [discharge(48, program_id="\r=1"), discharge(49)]), "any"),
    Case("csv_injection_site", _rows("inject_site.csv", [discharge(50, site_id="=cmd|' /C calc'!A0")]), "loaded"),
    Case("sql_in_values", _rows("sql.csv", [discharge(51, program_id="'); DROP TABLE ingest_ledger; --"),
                                            discharge(52, site_id="x' OR '1'='1")]), "loaded"),
    Case("invalid_enum_canary", _rows("enum.csv", [discharge(53), discharge(54, sex=CANARY)]), "partial"),
    Case("all_rows_invalid", _rows("allbad.csv", [discharge(55 + i, admit_date="soon") for i in range(3)]), "refused"),
    Case("only_delimiters", _w("commas.csv", HEADER + "\n" + "," * 12 + "\n" + csv_text([discharge(58)])
                               .split("\n", 1)[1]), "partial"),
    Case("direct_identifier", _rows("ident.csv", [discharge(59, program_id="123-45-6789")]), "refused",
         "direct identifier"),
    # --- sizes
    Case("huge_field_10mb", _huge_cell("huge10.csv", 10 * (1 << 20)), "refused", alone=True),
    Case("big_field_1mb", _huge_cell("big1.csv", 1 << 20), "loaded"),
    Case("columns_1000_with_contract", _many_columns(1_000, True), "loaded"),
    Case("columns_10000_with_contract", _many_columns(10_000, True), "refused", "columns", alone=True),
    Case("columns_10000_unknown", _many_columns(10_000, False), "refused", "columns", alone=True),
    Case("long_line_no_newline", _long_line("longline.csv", 64 << 20, b"abcdefgh"), "refused", "header line",
         alone=True),
    Case("long_header_many_names", _numbered_header("manynames.csv", 1_000_000), "refused", "header line",
         alone=True),
    Case("header_name_over_csv_field_limit", _w("longname.csv", "n" * 200_000 + ",episode_id\nx,y\n"), "refused",
         "header"),
    # --- XLSX
    Case("xlsx_valid", _xlsx("valid.xlsx", _xlsx_table([discharge(60)])), "loaded"),
    Case("xlsx_formulas", _xlsx("formulas.xlsx", _xlsx_table([
        discharge(61, program_id="=1+1"), discharge(62, program_id="=HYPERLINK(\"http://x\",\"y\")"),
        discharge(63, program_id="=cmd|' /C calc'!A0"), discharge(64, site_id="=A1")])), "partial"),
    Case("xlsx_header_only", _xlsx("header_only.xlsx", [DISCHARGE_COLUMNS]), "loaded"),
    Case("xlsx_empty_workbook", _xlsx("empty.xlsx", []), "refused", "empty sheet"),
    # every sheet is considered: an empty first sheet is passed over
    Case("xlsx_data_on_second_sheet", _xlsx("second.xlsx", _xlsx_table([discharge(65)]), extra_sheet_first=True),
         "loaded"),
    Case("xlsx_duplicate_headers", _xlsx("dup.xlsx", [DISCHARGE_COLUMNS + ["Episode_ID"]]), "refused", "appears twice"),
    Case("xlsx_values_beyond_header", _xlsx("beyond.xlsx", _xlsx_table([discharge(66)]) + [[None] * 14 + ["x"]]),
         "refused", "beyond"),
    Case("xlsx_truncated", _truncated(_xlsx("trunc.xlsx", _xlsx_table([discharge(67)])), 0.6), "refused", "XLSX"),
    Case("xlsx_zip_bomb", _zip_bomb("bomb.xlsx", 1.0), "refused", "XLSX", alone=True, timeout=120),
    Case("xlsx_zip_bomb_4gib", _zip_bomb("bomb4.xlsx", 4.0), "refused", "XLSX", alone=True, timeout=120, slow=True),
    Case("xlsx_lying_sizes", _lying_zip("lying.xlsx"), "refused", "XLSX"),
    Case("xlsx_sparse_dimension", _sparse_sheet("sparse.xlsx"), "refused", "beyond", alone=True, timeout=120),
    Case("xlsx_billion_laughs", _billion_laughs("laughs.xlsx"), "refused", alone=True, timeout=120),
    Case("xlsx_xxe", _xxe("xxe.xlsx"), "refused"),
    # --- Parquet
    Case("parquet_valid", _parquet("valid.parquet", _pa_valid), "loaded"),
    Case("parquet_truncated", _truncated(_parquet("trunc.parquet", _pa_valid), 0.5), "refused", "Parquet"),
    Case("parquet_magic_only", _w("magic.parquet", b"PAR1"), "refused", "Parquet"),
    Case("parquet_wrong_types", _parquet("types.parquet", _pa_wrong_types), "refused"),
    Case("parquet_nested", _parquet("nested.parquet", _pa_nested), "loaded"),
    Case("parquet_binary_not_utf8", _parquet("binary.parquet", _pa_binary), "any"),
    Case("parquet_duplicate_names", _parquet("dupnames.parquet", _pa_dup_names), "refused", "appears twice"),
    Case("parquet_zero_rows", _parquet("zero.parquet", _pa_empty), "loaded"),
    # --- not regular files
    Case("fifo", _fifo, "refused", "not a regular file", alone=True, timeout=60),
    Case("symlink_to_dev_zero", _dev_zero, "refused", "not a regular file", alone=True, timeout=60),
    Case("directory_symlink_loop", _symlink_loop, "loaded", alone=True, timeout=120),
    Case("dangling_symlink", _dangling, "error", "no such file", alone=True),
    Case("directory_named_csv", _dir_named_csv, "loaded", alone=True),
]


def _plain_zip(d: Path) -> Path:
    p = d / "archive.csv"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("discharges.csv", csv_text(ROWS))
    p.write_bytes(buf.getvalue())
    return p


def _mixed(d: Path) -> Path:
    p = d / "mixed.csv"
    body = csv_text([discharge(70, program_id="na\u00efve")]).encode("utf-8")
    body += csv_text([discharge(71, program_id="caf\xe9")]).split("\n", 1)[1].encode("latin-1")
    p.write_bytes(body)
    return p
