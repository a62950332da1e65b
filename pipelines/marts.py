"""Build the SQL models (``sql/staging`` → ``sql/intermediate`` → ``sql/marts``) as tables.

Models run in layer order, then file-name order within a layer; each model reads only from
raw tables or from models of earlier layers (or earlier names in its own layer). All of them
are rebuilt in one transaction, so readers never see a half-built set of marts.

Staging and intermediate models are *temporary* (in memory, for the building connection only;
staging as views, see below); only the marts are written to the warehouse file. Writing the
wide staging copies to disk tripled the build time at 1.7M episodes, and nothing outside the
build reads them (docs/interfaces.md promises the marts).

A model whose first line is ``-- materialized: view`` is created as a view instead (a temporary
view in the temporary layers): its rows are computed when read. ``mart_followups`` is one (the
long form of mart_episodes' fu{w}_* columns): writing its 6.8 million rows at 1.7M episodes was
a fifth of the build. The staging models are too: each is read once, by an intermediate model,
and at 25 M episodes the build wrote 40 GB (temporary tables spilled beside the warehouse, and
the marts) with staging tables against 22 GB with views, in 388 s against 358 s; at 1.7 M the
two are even. ``int_episodes`` is a view as well, though two models read it: stored, it held
0.5 GB of the build's 2.3 GB at 1.7 M episodes (same time), and at 25 M the build took 326 s
with it against 230 s without.

Raw tables may not exist yet in a young warehouse (no TEDS-D file ingested, say). The models
need them, so ``ensure_raw_tables`` creates any missing one empty, with the DDL the contracts
area generates from ``data_contracts/*.yaml`` (``pipelines.contracts``); an existing table is
never altered.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from pipelines import progress
from pipelines.warehouse import load_sql, sql_names, transaction

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

BUILD_LAYERS = ("staging", "intermediate", "marts")
TEMPORARY_LAYERS = ("staging", "intermediate")
VIEW_MARKER = "-- materialized: view"


def _drop_other_kind(con: duckdb.DuckDBPyConnection, name: str, kind: str) -> None:
    """Drop ``name`` if it exists as the other kind (a table where a view goes, or the
    reverse): a warehouse built by an earlier version may hold either."""
    found = con.execute(
        "select table_type from information_schema.tables where table_schema = current_schema() "
        "and table_name = ?", [name]).fetchall()
    if found and found[0][0] != kind:
        con.execute(f"drop {'view' if found[0][0] == 'VIEW' else 'table'} {name}")  # name: a file stem


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Create the raw tables that do not exist yet (empty); return their names."""
    from pipelines import contracts

    existing = {
        row[0]
        for row in con.execute(
            "select table_name from information_schema.tables where table_schema = current_schema()"
        ).fetchall()
    }
    created = []
    for contract in contracts.all_contracts():
        if contract.table not in existing:
            con.execute(contract.ddl())  # generated from the contract files, not from input
            created.append(contract.table)
    if created:
        log.info("created empty raw tables: %s", ", ".join(created))
    return created


def model_names() -> list[str]:
    """Every model in build order."""
    return [name for layer in BUILD_LAYERS for name in sql_names(layer)]


def _models() -> list[tuple[str, bool]]:
    """(name, temporary) for every model in build order."""
    return [(name, layer in TEMPORARY_LAYERS) for layer in BUILD_LAYERS for name in sql_names(layer)]


def build(con: duckdb.DuckDBPyConnection, *, data_end_date: dt.date | None = None,
          keep_temporary: bool = False) -> list[str]:
    """Materialize every model (a table, or a view where marked), in dependency order, in one
    transaction.

    ``data_end_date`` is the last day the data can show (readmissions and follow-up windows
    that end after it are unknown); by default the latest admission or discharge date found.
    The temporary views and tables are dropped at the end (the tables hold memory that the
    statistics after the build need) unless ``keep_temporary``.
    """
    con.execute("set enable_progress_bar = false")  # it would write to a user's terminal
    with transaction(con):
        ensure_raw_tables(con)
        built = []
        drops = []  # the temporary models, dropped at the end
        models = _models()
        for i, (name, temporary) in enumerate(models, start=1):
            progress.status("marts", f"model {i}/{len(models)} {name}")
            sql = load_sql(name)
            params = {"data_end_date": data_end_date} if "$data_end_date" in sql else None
            # model names are file stems under sql/, not user input
            view = sql.lstrip().startswith(VIEW_MARKER)
            kind = ("temporary " if temporary else "") + ("view" if view else "table")
            if not temporary:
                _drop_other_kind(con, name, "VIEW" if view else "BASE TABLE")
            statement = f"create or replace {kind} {name} as\n{sql}"
            con.execute(statement, params) if params else con.execute(statement)
            built.append(name)
            if temporary:
                drops.append(f"drop {'view' if view else 'table'} if exists temp.{name}")  # name: a file stem
        if not keep_temporary:
            for statement in drops:
                con.execute(statement)
    progress.clear()
    log.info("built %d models", len(built))
    return built
