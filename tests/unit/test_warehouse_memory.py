"""DuckDB's memory limit on warehouse connections: the share of the machine, or the user's choice."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from pipelines.warehouse import MEMORY_SHARE, connect

UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def limit_bytes(con) -> float:
    (text,) = con.execute("SELECT current_setting('memory_limit')").fetchone()
    value, unit = re.fullmatch(r"([\d.]+) (\w+)", text).groups()
    return float(value) * UNITS[unit]


def mem_total() -> int:
    # /proc/meminfo, not the sysconf figures the code uses
    line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal:"))
    return int(line.split()[1]) * 1024


def test_default_is_a_share_of_physical_memory(tmp_path, monkeypatch):
    monkeypatch.delenv("LEVELCARE_DUCKDB_MEMORY", raising=False)
    with connect(tmp_path / "w.duckdb") as con:
        got = limit_bytes(con)
    # DuckDB prints one decimal: within 0.1 GiB of MEMORY_SHARE of MemTotal
    assert got == pytest.approx(MEMORY_SHARE * mem_total(), abs=0.1 * 2**30)
    assert got < 0.8 * mem_total()  # below DuckDB's own default


def test_user_limit_applies_to_writers_and_readers(tmp_path, monkeypatch):
    monkeypatch.setenv("LEVELCARE_DUCKDB_MEMORY", "1GB")  # 10^9 bytes = 953.6 MiB
    wh = tmp_path / "w.duckdb"
    with connect(wh) as con:
        assert limit_bytes(con) == pytest.approx(953.6 * 2**20)
    with connect(wh, read_only=True) as con:
        assert limit_bytes(con) == pytest.approx(953.6 * 2**20)


def test_work_beyond_the_limit_spills_beside_the_warehouse(tmp_path, monkeypatch):
    # 5 million rows of 32-character text (~250 MB) sorted under a 128 MB limit: DuckDB spills
    # to <warehouse>.tmp and finishes (and says so: a temporary directory once used cannot be
    # switched; had everything fitted in memory, the SET would succeed)
    monkeypatch.setenv("LEVELCARE_DUCKDB_MEMORY", "128MB")
    wh = tmp_path / "w.duckdb"
    with connect(wh) as con:
        con.execute("CREATE TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(5000000)")
        con.execute("CREATE TABLE sorted AS SELECT * FROM t ORDER BY s")
        first, n = con.execute("SELECT (SELECT s FROM sorted LIMIT 1), count(*) FROM sorted").fetchone()
        assert n == 5_000_000
        assert first == con.execute("SELECT min(s) FROM t").fetchone()[0]
        with pytest.raises(duckdb.NotImplementedException, match="has been used"):
            con.execute("SET temp_directory = ''")


def test_memory_returned_lowers_the_limit_for_the_block_and_restores_it(tmp_path, monkeypatch):
    from pipelines.warehouse import memory_returned

    monkeypatch.setenv("LEVELCARE_DUCKDB_MEMORY", "2GB")
    with connect(tmp_path / "w.duckdb") as con:
        con.execute("CREATE TEMP TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(6000000)")
        used = "SELECT sum(memory_usage_bytes) FROM duckdb_memory()"
        assert con.execute(used).fetchone()[0] > 256 * 2**20  # a temporary table lives in memory
        before = limit_bytes(con)
        with memory_returned(con, "256MiB"):
            assert limit_bytes(con) == 256 * 2**20
            assert con.execute(used).fetchone()[0] <= 256 * 2**20
        assert limit_bytes(con) == before == pytest.approx(2e9, abs=0.1 * 2**30)  # printed to 0.1 GiB
