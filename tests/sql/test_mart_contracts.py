"""The marts keep their contracts (data_contracts/marts/*.yaml): a real build gives exactly the
promised columns, in order, with their types, and passes every test the contracts declare; a
mart that breaks a test is reported."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from pipelines import marts
from pipelines.contracts import marts as mart_contracts
from pipelines.definitions import registry

DATA_END = dt.date(2026, 9, 30)


@pytest.fixture
def built(synth_warehouse):
    con = duckdb.connect(str(synth_warehouse))
    marts.build(con, data_end_date=DATA_END)
    yield con
    con.close()


def test_a_real_build_matches_every_contract_exactly(built):
    for contract in mart_contracts.all_contracts():
        described = built.execute(f"describe {contract.mart}").fetchall()
        assert [(name, kind) for name, kind, *_ in described] == contract.schema(), contract.mart
        assert mart_contracts.schema_failures(built, contract) == []


def test_a_real_build_passes_every_contract_test(built):
    sources = dict(built.execute("select source, count(*) from mart_episodes group by all").fetchall())
    assert set(sources) == {"native", "teds-d"}  # both kinds of rows are tested
    for contract in mart_contracts.all_contracts():
        assert built.execute(f"select count(*) from {contract.mart}").fetchone()[0] > 0
        assert mart_contracts.failed_tests(built, contract) == [], contract.mart


def test_an_empty_build_has_the_contracted_columns_too():
    con = duckdb.connect()
    marts.build(con)
    for contract in mart_contracts.all_contracts():
        assert mart_contracts.schema_failures(con, contract) == []
        assert mart_contracts.failed_tests(con, contract) == []


def _as_table(con: duckdb.DuckDBPyConnection, mart: str) -> duckdb.DuckDBPyConnection:
    """``con`` with ``mart`` a table that can be changed (the build's warehouse is this test's own)."""
    (kind,) = con.execute("select table_type from information_schema.tables where table_name = ?", [mart]).fetchone()
    if kind == "VIEW":
        con.execute(f"create table copied as select * from {mart}")
        con.execute(f"drop view {mart}")
        con.execute(f"alter table copied rename to {mart}")
    return con


@pytest.mark.parametrize(
    ("mart", "break_it", "test", "rows"),
    [
        ("mart_episodes", "update mart_episodes set episode_id = null where rowid < 3", "not_null:episode_id", 3),
        ("mart_episodes", "update mart_episodes set fu90_reached = null where rowid = 0", "not_null:fu90_reached", 1),
        ("mart_episodes", "update mart_episodes set level_group = 'IOP' where rowid < 2",
         "accepted_values:level_group", 2),
        ("mart_episodes", "update mart_episodes set fu365_status = 'lost' where rowid = 0",
         "accepted_values:fu365_status", 1),
        ("mart_episodes", "insert into mart_episodes select * from mart_episodes where rowid = 0", "key", 1),
        ("mart_pathways", ("insert into mart_pathways select * replace (person_id || 'x' as person_id) "
                           "from mart_pathways where rowid < 2"), "unique:episode_key", 2),
        ("mart_followups", ("update mart_followups set window_days = 90 "
                            "where window_days = 30 and episode_key = (select min(episode_key) from mart_followups)"),
         "key", 1),
    ],
)
def test_a_broken_mart_fails_its_contract_test(built, mart, break_it, test, rows):
    contract = mart_contracts.load(mart)
    con = _as_table(built, mart)
    assert mart_contracts.failed_tests(con, contract) == []
    con.execute(break_it)
    failures = mart_contracts.failed_tests(con, contract)
    assert [f.test for f in failures] == [test]
    assert failures[0].rows == rows
    assert failures[0].mart == mart


def test_a_mart_with_other_columns_fails_its_schema(built):
    contract = mart_contracts.load("mart_pathways")
    con = _as_table(built, "mart_pathways")
    con.execute("alter table mart_pathways alter episode_seq type integer")
    (failure,) = mart_contracts.schema_failures(con, contract)
    assert failure.message == "column 2: episode_seq INTEGER built, episode_seq BIGINT promised"
    con.execute("alter table mart_pathways drop further_care_30d")
    (failure,) = mart_contracts.schema_failures(con, contract)
    assert failure.message.startswith("23 columns built, 24 promised; column 2: ")


def test_the_registry_checks_definitions_against_the_contracted_columns():
    columns = mart_contracts.load("mart_episodes").columns
    schema = registry.mart_schema()
    assert list(schema) == [c.name for c in columns]
    assert (schema["episode_key"], schema["fu30_reached"], schema["los_days"], schema["admit_date"]) == (
        "text", "boolean", "number", "date")
