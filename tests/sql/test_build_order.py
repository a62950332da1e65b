"""The models' build order comes from what each one reads (DuckDB's parser), not from file names;
the per-window SQL is written once (pipelines.marts.render); materialization is declared in
sql/models.yaml."""

from __future__ import annotations

import datetime as dt
import random
import textwrap

import duckdb
import pytest

from pipelines import contracts, marts
from pipelines.marts import Model, ModelError

DATA_END = dt.date(2026, 9, 30)
RAW = [c.table for c in contracts.all_contracts()]
MARTS = ("mart_episodes", "mart_followups", "mart_pathways")

# what each model reads, written out by hand: the parser must find exactly these
READS = {
    "stg_discharges": {"raw_discharges"},
    "stg_followups": {"raw_followups"},
    "stg_teds_d": {"raw_teds_d"},
    "int_episodes": {"stg_discharges", "stg_teds_d"},
    "int_followups": {"stg_followups", "stg_discharges"},
    "int_followup_best": {"int_followups"},
    "int_pathways": {"int_episodes"},
    "mart_episodes": {"int_episodes", "int_followup_best", "int_pathways"},
    "mart_followups": {"mart_episodes"},
    "mart_pathways": {"int_pathways"},
}


def test_each_model_reads_what_its_sql_names_and_no_common_table_expression():
    assert {m.name: set(m.reads) for m in marts.models()} == READS


def test_table_references_come_from_duckdbs_parser():
    con = duckdb.connect()
    sql = """
        with a as (select * from t1), b as (select * from a join t2 using (x))
        select * from b, (select * from t3) as s
        where b.x in (select y from t4) and b.d <= $data_end_date
        union all by name
        select * from a
    """
    assert marts.table_references(con, sql) == {"t1", "t2", "t3", "t4"}
    with pytest.raises(ModelError):
        marts.table_references(con, "select * from")


def _model(name, layer, reads, materialized="temporary table"):
    return Model(name, layer, materialized, "select 1", frozenset(reads))


def test_the_order_follows_the_reads_whatever_the_file_order():
    given = [
        _model("mart_b", "marts", {"int_a"}, "table"),
        _model("int_a", "intermediate", {"int_z", "stg_x"}),
        _model("int_z", "intermediate", {"stg_x"}),
        _model("stg_x", "staging", {"raw_discharges"}),
    ]
    assert [m.name for m in marts.build_order(given, RAW)] == ["stg_x", "int_z", "int_a", "mart_b"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([_model("int_a", "intermediate", {"int_b"}), _model("int_b", "intermediate", {"int_c"}),
          _model("int_c", "intermediate", {"int_a"})],
         "cycle: int_a -> int_b -> int_c -> int_a"),
        ([_model("int_a", "intermediate", {"int_a"})], "cycle: int_a -> int_a"),
        ([_model("int_a", "intermediate", {"stg_gone", "raw_discharges"})],
         "int_a reads stg_gone: no model or raw table of that name"),
        ([_model("stg_x", "staging", {"raw_discharges", "raw_followups"})],
         "stg_x is a staging model: it reads one raw table, not raw_discharges, raw_followups"),
        ([_model("stg_x", "staging", {"raw_discharges"}), _model("stg_y", "staging", {"stg_x"})],
         "stg_y is a staging model: it reads one raw table, not stg_x"),
        ([_model("int_a", "intermediate", {"mart_b"}), _model("mart_b", "marts", {"raw_discharges"}, "table")],
         "int_a reads mart_b, of a later layer"),
        ([_model("int_a", "intermediate", {"raw_discharges"}), _model("mart_b", "marts", {"int_a"}, "view")],
         "mart_b is a view in the warehouse: it cannot read the temporary int_a"),
    ],
)
def test_a_model_set_that_cannot_be_built_is_refused_by_name(given, message):
    with pytest.raises(ModelError, match=message):
        marts.build_order(given, RAW)


def _fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    """Each mart's columns and types, row count and a hash of its rows in a fixed order."""
    out = {}
    for mart in MARTS:
        described = con.execute(f"describe {mart}").fetchall()
        content = con.execute(
            f"select count(*), md5(string_agg(h, ',' order by h)) "
            f"from (select md5(cast(t as varchar)) as h from {mart} as t)").fetchone()
        out[mart] = (described, content)
    return out


def test_shuffled_file_order_builds_the_same_marts(synth_warehouse, monkeypatch):
    con = duckdb.connect(str(synth_warehouse))
    normal_order = marts.build(con, data_end_date=DATA_END)
    normal = _fingerprints(con)
    assert all(rows for _, (rows, _) in normal.values())  # a real build: every mart has rows
    files = marts.models()
    orders = set()
    for seed in (1, 2, 3, 4):
        shuffled = list(files)
        random.Random(seed).shuffle(shuffled)
        monkeypatch.setattr(marts, "models", lambda shuffled=shuffled: tuple(shuffled))
        order = marts.build(con, data_end_date=DATA_END)
        orders.add(tuple(order))
        for i, name in enumerate(order):  # every model after what it reads
            assert READS[name] & set(order[i:]) == set(), (seed, name)
        assert _fingerprints(con) == normal, seed
    assert orders - {tuple(normal_order)}, "the shuffles changed the build order"


def test_the_normal_order_is_the_file_order_where_the_reads_allow():
    order = [m.name for m in marts.build_order(marts.models(), RAW)]
    assert order == ["stg_discharges", "stg_followups", "stg_teds_d", "int_episodes", "int_followups",
                     "int_followup_best", "int_pathways", "mart_episodes", "mart_followups", "mart_pathways"]


# ------------------------------------------------------------------ the per-window template


def test_a_window_block_is_repeated_for_each_window():
    sql = textwrap.dedent("""\
        select
            -- for each window {w}:
            fu{w}.x as fu{w}_x,
            -- end for
            k
        from t where w in ({followup_windows})
            -- for each window {v}, joined by union all:
            select {v} as w
            -- end for
    """)
    assert marts.render(sql, (30, 90)).splitlines() == [
        "select", "    fu30.x as fu30_x,", "    fu90.x as fu90_x,", "    k", "from t where w in (30, 90)",
        "    select 30 as w", "    union all", "    select 90 as w",
    ]


@pytest.mark.parametrize("sql", [
    "-- for each window {w}:\nselect {w}",
    "select 1\n-- end for",
    "-- for each window {w}:\n-- for each window {v}:\n-- end for\n-- end for",
])
def test_a_broken_window_block_is_refused(sql):
    with pytest.raises(ModelError):
        marts.render(sql, (30,))


def test_the_windows_are_the_followups_contracts():
    assert contracts.followup_windows() == (30, 90, 180, 365)
    (mart,) = [m for m in marts.models() if m.name == "mart_episodes"]
    for w in contracts.followup_windows():
        assert f"fu{w}_er_visits" in mart.sql and f"fu{w}.window_days = {w}" in mart.sql
    assert [line for line in mart.sql.splitlines() if "{w}" in line and not line.lstrip().startswith("--")] == []


# ------------------------------------------------------------------ materialization, in one place


def test_materialization_is_declared_in_models_yaml_only():
    layers, _ = marts.materialization_rules()
    assert list(layers) == ["staging", "intermediate", "marts"]
    for m in marts.models():
        assert "-- materialized" not in m.sql, m.name
        assert m.materialized in marts.MATERIALIZATIONS
