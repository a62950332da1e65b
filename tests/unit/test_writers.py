"""pipelines.writers: formula-like text made inert, the CSV tables' layout, file checksums."""

from __future__ import annotations

import hashlib

import pytest

from pipelines.writers import file_sha256, safe_cell, write_csv


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x","y")'])
def test_formula_like_text_gets_an_apostrophe(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["iop", "1", "a=b", "", None, 0, -1, -0.5, 3.25, True])
def test_other_cells_are_unchanged(value):
    assert safe_cell(value) is value


def test_csv_leading_columns_then_the_rest_with_empty_none_and_inert_formulas(tmp_path):
    path = tmp_path / "t.csv"
    rows = [{"b": 1, "a": "=cmd", "x": None}, {"a": -2.5, "y": "-text", "b": None}]
    write_csv(path, rows, ["a", "b"])
    assert path.read_bytes() == b"a,b,x,y\r\n'=cmd,1,,\r\n-2.5,,,'-text\r\n"


def test_csv_with_no_rows_is_its_header(tmp_path):
    path = tmp_path / "empty.csv"
    write_csv(path, [], ("a", "b"))
    assert path.read_bytes() == b"a,b\r\n"


def test_file_sha256_of_a_file_longer_than_a_block(tmp_path):
    data = bytes(range(256)) * 5000  # 1.28 MB: more than one 1 MiB read
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
