"""Build the SQL models (``sql/staging`` → ``sql/intermediate`` → ``sql/marts``) as tables.

Models run in layer order, then file-name order within a layer; each model reads only from
raw tables or from models of earlier layers (or earlier names in its own layer). All of them
are rebuilt in one transaction, so readers never see a half-built set of marts.

Staging and intermediate models are materialized as *temporary* tables (in memory, for the
building connection only); only the marts are written to the warehouse file. Writing the
wide staging copies to disk tripled the build time at 1.7M episodes, and nothing outside the
build reads them (docs/interfaces.md promises the marts).

Raw tables may not exist yet in a young warehouse (no TEDS-D file ingested, say). The models
need them, so ``ensure_raw_tables`` creates any missing one empty. The contracts area
(``pipelines.contracts``) did not publish DDL when this was written, so the minimal DDL below
is taken from the column lists of docs/interfaces.md; it creates tables only when absent and
never alters a table ingestion created.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from pipelines.warehouse import load_sql, sql_names, transaction

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

BUILD_LAYERS = ("staging", "intermediate", "marts")
TEMPORARY_LAYERS = ("staging", "intermediate")

_LINEAGE = "_file_sha256 VARCHAR, _row_number BIGINT"

# records-v1 fields with the types docs/interfaces.md gives for raw tables.
RAW_DDL: dict[str, str] = {
    "raw_discharges": f"""
        episode_id VARCHAR, person_id VARCHAR, site_id VARCHAR, program_id VARCHAR,
        level_of_care VARCHAR, asam_level VARCHAR, admit_date DATE, discharge_date DATE,
        discharge_reason VARCHAR, age_band VARCHAR, sex VARCHAR, race VARCHAR, ethnicity VARCHAR,
        primary_substance VARCHAR, co_occurring_mh BOOLEAN, prior_episodes INTEGER,
        days_waiting INTEGER, use_days_admit INTEGER, use_days_discharge INTEGER,
        phq9_admit INTEGER, phq9_discharge INTEGER, gad7_admit INTEGER, gad7_discharge INTEGER,
        employed_admit BOOLEAN, employed_discharge BOOLEAN, homeless_admit BOOLEAN,
        homeless_discharge BOOLEAN, arrests_admit INTEGER, arrests_discharge INTEGER,
        payer VARCHAR, referral_source VARCHAR, mat BOOLEAN, hours_per_week DOUBLE,
        sessions_attended INTEGER, family_involved BOOLEAN, satisfaction INTEGER,
        episode_cost DOUBLE, {_LINEAGE}""",
    "raw_followups": f"""
        followup_id VARCHAR, episode_id VARCHAR, site_id VARCHAR, window_days INTEGER,
        contact_date DATE, days_after_discharge INTEGER, status VARCHAR, abstinent_30d BOOLEAN,
        use_days_30 INTEGER, readmitted BOOLEAN, overdose BOOLEAN, employed BOOLEAN,
        homeless BOOLEAN, arrests_30 INTEGER, phq9 INTEGER, gad7 INTEGER, er_visits_30 INTEGER,
        {_LINEAGE}""",
    "raw_teds_d": f"""
        episode_id VARCHAR, site_id VARCHAR, discharge_year INTEGER, teds_era VARCHAR,
        services_d INTEGER, level_of_care VARCHAR, discharge_reason VARCHAR, los_code INTEGER,
        age_band VARCHAR, sex VARCHAR, race VARCHAR, ethnicity VARCHAR, primary_substance VARCHAR,
        co_occurring_mh BOOLEAN, has_prior_episodes BOOLEAN, use_frequency_admit VARCHAR,
        use_frequency_discharge VARCHAR, employed_admit BOOLEAN, employed_discharge BOOLEAN,
        homeless_admit BOOLEAN, homeless_discharge BOOLEAN, arrests_admit INTEGER,
        arrests_discharge INTEGER, referral_source VARCHAR, payer VARCHAR, mat BOOLEAN,
        {_LINEAGE}""",
}


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Create the raw tables that do not exist yet (empty); return their names."""
    existing = {
        row[0]
        for row in con.execute(
            "select table_name from information_schema.tables where table_schema = current_schema()"
        ).fetchall()
    }
    created = []
    for table, columns in RAW_DDL.items():
        if table not in existing:
            # table names come from the constant above, never from input
            con.execute(f"create table {table} ({columns})")
            created.append(table)
    if created:
        log.info("created empty raw tables: %s", ", ".join(created))
    return created


def model_names() -> list[str]:
    """Every model in build order."""
    return [name for layer in BUILD_LAYERS for name in sql_names(layer)]


def _models() -> list[tuple[str, bool]]:
    """(name, temporary) for every model in build order."""
    return [(name, layer in TEMPORARY_LAYERS) for layer in BUILD_LAYERS for name in sql_names(layer)]


def build(con: duckdb.DuckDBPyConnection, *, data_end_date: dt.date | None = None) -> list[str]:
    """Materialize every model as a table, in dependency order, in one transaction.

    ``data_end_date`` is the last day the data can show (readmissions and follow-up windows
    that end after it are unknown); by default the latest admission or discharge date found.
    """
    con.execute("set enable_progress_bar = false")  # it would write to a user's terminal
    with transaction(con):
        ensure_raw_tables(con)
        built = []
        for name, temporary in _models():
            sql = load_sql(name)
            params = {"data_end_date": data_end_date} if "$data_end_date" in sql else None
            # model names are file stems under sql/, not user input
            kind = "temporary table" if temporary else "table"
            statement = f"create or replace {kind} {name} as\n{sql}"
            con.execute(statement, params) if params else con.execute(statement)
            built.append(name)
    log.info("built %d models", len(built))
    return built
