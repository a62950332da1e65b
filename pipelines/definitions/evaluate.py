"""The analysis frame: baseline columns of ``mart_episodes`` plus one Int8 column per definition.

Per definition and episode: 1 success, 0 failure, null = not in the population, excluded by
the missing-data policy, or the definition is not applicable to these data (a required field
is absent or null everywhere; reported as such by the rates, never as 0).

Everything is one SQL query over ``mart_episodes``; conditions are compiled by
:mod:`.expression` with their literals as bound parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pipelines.definitions import expression
from pipelines.definitions.registry import Definition

if TYPE_CHECKING:
    import duckdb
    import polars as pl

SOURCE_TABLE = "mart_episodes"

# Keys, grouping columns and baseline covariates: what comparisons adjust for. Follow-up and
# pathway outcomes stay out; they are reached only through definitions.
BASELINE_COLUMNS: tuple[str, ...] = (
    "episode_key", "episode_id", "person_id", "site_id", "source",
    "level_of_care", "level_group", "discharge_quarter", "discharge_year",
    "age_band", "sex", "race", "ethnicity", "primary_substance", "co_occurring_mh",
    "prior_episodes", "has_prior_episodes", "use_days_admit", "use_frequency_admit",
    "phq9_admit", "gad7_admit", "employed_admit", "homeless_admit", "arrests_admit",
    "payer", "referral_source", "mat",
)
# The frame's row order: the mart's key (unique per source; the source breaks a tie between a
# native and a TEDS-D episode of one site and id). A build of the marts on several threads
# does not keep one row order, and the statistics' sums, starting values and subgroup order
# follow the frame's: ordered, the same data give the same numbers to the last digit. The sort
# makes the read longer at national scale, a small part of the statistics' time
# (benchmarks/README.md, Measurements: pipelines/definitions/evaluate.py).
FRAME_ORDER = "episode_key, source"


def not_applicable(
    con: duckdb.DuckDBPyConnection, definitions: Sequence[Definition], *, where: str = "",
    where_params: Sequence[object] = (), table: str = SOURCE_TABLE,
) -> dict[str, list[str]]:
    """Definition id -> required fields with no value anywhere in the mart, or in its rows that
    meet ``where`` (a condition with ``where_params`` for its ``?``) when given (empty: applicable).
    ``table``: another relation with the mart's columns (an attached warehouse's mart)."""
    fields = sorted({f for d in definitions for f in d.requires})
    if not fields:
        return {d.id: [] for d in definitions}
    # field names were checked against the mart's columns when the definitions were loaded
    counts = con.execute(
        "select " + ", ".join(f'count("{f}")' for f in fields) + f" from {table}"
        + (f" where {where}" if where else ""), list(where_params)
    ).fetchall()[0]
    empty = {f for f, n in zip(fields, counts, strict=True) if not n}
    return {d.id: [f for f in d.requires if f in empty] for d in definitions}


def definition_sql(definition: Definition, params: list[object]) -> str:
    """``CASE`` expression giving 1 / 0 / null for one definition (literals go to ``params``)."""
    population = definition.population_tree()
    pop_sql = "TRUE" if population is None else expression.compile_sql(population, params)
    success_sql = expression.compile_sql(definition.success_tree(), params)
    when_missing = "0" if definition.missing == "failure" else "NULL"
    # a null population condition means "not known to be in the population": left out
    return (
        f"CASE WHEN coalesce({pop_sql}, FALSE) "
        f"THEN coalesce(CAST({success_sql} AS TINYINT), {when_missing}) END"
    )


def frame_sql(
    definitions: Sequence[Definition],
    inapplicable: Mapping[str, Sequence[str]],
    extra: Sequence[str] = (),
    baseline: Sequence[str] = BASELINE_COLUMNS,
    *,
    where: str = "",
    where_params: Sequence[object] = (),
    ordered: bool = False,
) -> tuple[str, list[object]]:
    """The analysis-frame query and its parameters (``baseline``: the baseline columns wanted,
    ``extra``: more columns of the mart, after the definitions'; ``where``: a condition on the
    mart's rows, with ``where_params`` for its ``?``; ``ordered``: rows in FRAME_ORDER, for
    whatever depends on their order; an aggregate does not)."""
    params: list[object] = []
    columns = [f'"{c}"' for c in baseline]
    for d in definitions:
        # ids match ^[a-z][a-z0-9_]*$ (checked by the registry), so quoting them is safe
        if inapplicable.get(d.id):
            columns.append(f'CAST(NULL AS TINYINT) AS "{d.id}"')
        else:
            columns.append(f'CAST({definition_sql(d, params)} AS TINYINT) AS "{d.id}"')
    columns += [f'"{c}"' for c in extra]
    sql = f"select {', '.join(columns)} from {SOURCE_TABLE}"
    if where:
        sql += f" where {where}"
        params += where_params
    if ordered:
        sql += f" order by {FRAME_ORDER}"
    return sql, params


def evaluate(
    con: duckdb.DuckDBPyConnection, definitions: Sequence[Definition], extra: Sequence[str] = ()
) -> pl.DataFrame:
    """The analysis frame as a polars DataFrame (see module docstring); ``extra``: more columns
    of the mart after the definitions' (names the caller has checked against the mart)."""
    ids = [d.id for d in definitions]
    if len(set(ids)) != len(ids):
        raise ValueError("a definition is listed twice")
    sql, params = frame_sql(definitions, not_applicable(con, definitions), extra, ordered=True)
    return con.sql(sql, params=params).pl()
