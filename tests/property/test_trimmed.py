"""``readers.trimmed``: the cheaper spelling of ``NULLIF(trim(x), '')`` the typed batch uses must
give the same text for every value. Expected values come from Python (the Unicode space
separators, category Zs, stripped from both ends; empty -> None), not from DuckDB."""

from __future__ import annotations

import sys
import unicodedata

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.ingest.readers import trimmed

ZS = "".join(chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Zs")
# ASCII controls and other Unicode "spaces" that are not Zs: DuckDB's trim keeps them
NOT_ZS = "\t\n\x0b\x0c\r\x1c\x1f\x85\u200b\u2028\u2029\ufeff"


def expected(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip(ZS) or None


def through_sql(values: list[str | None]) -> tuple[list, list]:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, v VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
    rows = con.execute(f"SELECT {trimmed('v')}, NULLIF(trim(v), '') FROM t ORDER BY i").fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


def test_space_separators_are_the_seventeen():
    # U+0020, U+00A0, U+1680, U+2000-U+200A, U+202F, U+205F, U+3000
    assert len(ZS) == 17 and ZS[0] == " " and all(ord(c) > 127 for c in ZS[1:])


@pytest.mark.parametrize("edge", list(ZS) + list(NOT_ZS))
def test_each_space_and_non_space_at_either_end(edge):
    values = [f"{edge}a", f"a{edge}", f"{edge}a b{edge}", f"{edge}", f"{edge}{edge}", f"a{edge}b", f"{edge}é"]
    got, duck = through_sql(values)
    assert got == [expected(v) for v in values]
    assert got == duck


def test_plain_values_empty_and_null():
    values = ["iop", "2024-01-19", "", "   ", None, " x", "x ", "less than 20 days", "é", " é ", "\u3000é\u3000",
              "12.50", "a\u00a0", "\u00a0", "ab\tc"]
    got, duck = through_sql(values)
    assert got == [expected(v) for v in values]
    assert got == ["iop", "2024-01-19", None, None, None, "x", "x", "less than 20 days", "é", "é", "é",
                   "12.50", "a", None, "ab\tc"]
    assert got == duck


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=st.sampled_from(list(ZS + NOT_ZS) + list("ab 1-é中")),
                                                 max_size=8)), min_size=1, max_size=40))
def test_generated_values(values):
    got, duck = through_sql(values)
    assert got == [expected(v) for v in values]
    assert got == duck
