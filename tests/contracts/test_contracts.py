"""Contracts: declared once, compiled consistently to DDL, suites and the committed dictionary."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines import contracts, marts
from pipelines.resources import contracts_dir
from pipelines.warehouse import load_sql

# docs/interfaces.md: raw_teds_d columns, written out by hand
TEDS_COLUMNS = ["episode_id", "site_id", "discharge_year", "teds_era", "services_d", "level_of_care", "discharge_reason", "los_code", "age_band", "sex", "race", "ethnicity", "primary_substance", "co_occurring_mh", "has_prior_episodes", "use_frequency_admit", "use_frequency_discharge", "employed_admit", "employed_discharge", "homeless_admit", "homeless_discharge", "arrests_admit", "arrests_discharge", "referral_source", "payer", "mat", "_file_sha256", "_row_number"]


def test_committed_dictionary_is_generated():
    committed = (contracts_dir() / "DICTIONARY.md").read_text(encoding="utf-8")
    assert committed == contracts.dictionary_markdown(), "run `levelcare ingest --write-dictionary`"
    # the records spec users of a clone read (README): the same generated text
    published = (Path(__file__).resolve().parents[2] / "docs" / "records.md").read_text(encoding="utf-8")
    assert published == contracts.dictionary_markdown(), "run `levelcare ingest --write-dictionary docs/records.md`"


@pytest.mark.parametrize("kind", contracts.KINDS)
def test_contract_shape(kind):
    c = contracts.load(kind)
    assert c.version and c.table.startswith("raw_")
    assert {ch.category for ch in c.checks} == {"conformance", "completeness", "plausibility"}
    for ch in c.checks:
        assert ch.severity in ("error", "warn")
        if ch.sql:
            assert load_sql(ch.sql).strip()
    assert len({f.name for f in c.fields}) == len(c.fields)


def test_ddl_matches_the_tables_marts_expect():
    con = duckdb.connect()
    for stmt in contracts.ddl_statements():
        con.execute(stmt)
    other = duckdb.connect()
    marts.ensure_raw_tables(other)
    for table in ("raw_discharges", "raw_followups", "raw_teds_d"):
        q = f"select column_name, data_type from information_schema.columns where table_name = '{table}' " \
            "order by ordinal_position"
        assert con.execute(q).fetchall() == other.execute(q).fetchall(), table
    cols = [r[0] for r in con.execute("select column_name from information_schema.columns "
                                      "where table_name = 'raw_teds_d' order by ordinal_position").fetchall()]
    assert cols == TEDS_COLUMNS


def test_input_only_fields_are_not_stored():
    names = [n for n, _ in contracts.load("discharges").columns()]
    assert "age" not in names and "planned_los_days" not in names and "age_band" in names


def test_suite_spec_from_fields():
    spec = {s["check_id"]: s for s in contracts.suite_spec(contracts.load("discharges"))}
    assert spec["range:phq9_admit"]["type"] == "ExpectColumnValuesToBeBetween"
    assert (spec["range:phq9_admit"]["kwargs"]["min_value"], spec["range:phq9_admit"]["kwargs"]["max_value"]) == (0, 27)
    assert spec["allowed_values:sex"]["kwargs"]["value_set"] == ["female", "male", "other", "unknown"]
    assert spec["required:episode_id"]["type"] == "ExpectColumnValuesToNotBeNull"
    # alternatives are checked by SQL (level_of_care may come from asam_level)
    assert "required:level_of_care" not in spec
    # no expectation that would report an observed (row) value
    assert not any("Min" in s["type"] or "Max" in s["type"] or "Mean" in s["type"] for s in spec.values())


def test_teds_targets_cover_the_contract():
    codes = contracts.teds_codes()
    stored = {f.name for f in contracts.load("teds-d").stored_fields} - {"teds_era"}
    assert stored == set(codes["targets"])
    for spec in codes["targets"].values():
        for t in [spec.get("table"), *(spec.get("table_by_era") or {}).values()]:
            assert t is None or t in codes["tables"]


def test_malformed_contract_is_rejected(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("contract: x\nversion: '1'\nkind: x\ntable: raw_x\nfields:\n"
                   "  - {name: a, type: text, description: d}\n  - {name: a, type: text, description: d}\n"
                   "checks: {}\n")
    with pytest.raises(contracts.ContractError, match="declared twice"):
        contracts._parse(bad)
