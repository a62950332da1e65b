"""The columns of ``mart_episodes``: their types, and the values a categorical one can hold.

Both are learned from the SQL models themselves, so a definition is checked against what the
marts really contain and no list of values is written down a second time. The models are built
in an in-memory database over *probe* rows generated from the contracts
(``data_contracts/{discharges,followups,teds_d}.yaml``):

* every value of every field with allowed values (the enumerations), true and false for every
  boolean and every integer of a field's range (at most 1000 wide) appears in some row: row ``i`` takes value
  ``i mod n`` of each field's ``n`` values; every follow-up window gets an attempt of every
  status, each on an episode of its own (the best attempt of a window is the one that reaches
  the mart's ``fu{w}_*`` columns);
* the rows are written twice, as two *worlds* that share those values but differ in every
  free-text field (ids, sites) and every date.

A text column whose non-null values are the same set in both worlds is *closed*: its values come
only from the contracts' enumerations and the models' own literals (``level_group``'s
``'residential'``, ``source``'s ``'native'``), and that set is what a definition may compare it
with. A column whose values differ between the worlds (ids, keys, ``discharge_quarter``), or that
no probe row fills, is *open*: any text is accepted.

Values are compared as stored: the staging models lower-case the enumerations, and SQL's ``=``
is case-sensitive, so ``'IOP'`` would match no row.

Limit: a value that a model derived only from a particular combination of two fields' values
need not appear (each field cycles through its values independently). No model does so today;
``tests/contracts/test_literal_values.py`` pins the sets of the categorical columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from itertools import product
from typing import TYPE_CHECKING, Any

from pipelines.definitions import expression

if TYPE_CHECKING:
    import duckdb

    from pipelines.contracts import Contract, Field

MART = "mart_episodes"
# Two worlds: the same categorical values, different texts and dates (their quarters differ).
WORLDS = {"a": dt.date(2001, 1, 1), "b": dt.date(2031, 7, 1)}
# The fields of a follow-up attempt that name the discharge it follows up (int_followups joins on them).
FOLLOWUP_LINK = ("site_id", "episode_id")
MAX_RANGE = 1000  # an integer range wider than this is probed at its ends and middle
_PREFIX = "probe-"  # every probe text: the prefix, the world's letter, "-", the row number


@dataclass(frozen=True)
class MartDomains:
    types: dict[str, str]  # column -> coarse type class (expression.BOOL, NUMBER, TEXT, DATE)
    values: dict[str, tuple[str, ...]]  # closed text column -> its values, in the probe rows' order


def _domain(f: Field) -> list[Any] | None:
    """The values a probe cycles through for field ``f``; None for free text and dates."""
    if f.values is not None:
        return list(f.values)
    if f.type == "bool":
        return [True, False]
    if f.type == "int":
        lo, hi = (int(f.range[0]), int(f.range[1])) if f.range else (0, 1)
        return list(range(lo, hi + 1)) if hi - lo <= MAX_RANGE else [lo, (lo + hi) // 2, hi]
    if f.type == "number":
        return [float(f.range[0]), float(f.range[1])] if f.range else [0.0, 1.0]
    return None


def _text(world: str, row: int, table: str) -> str:
    # the row number first: ordering by episode_id is ordering by row, whatever the source
    return f"{_PREFIX}{world}-{row:06d}-{table}"


def _columns(
    contract: Contract, world: str, n: int, fixed: dict[str, list[Any]] | None = None
) -> dict[str, list[Any]]:
    """``n`` probe rows of ``contract``'s raw table in ``world``, column by column; ``fixed``
    gives some columns' values outright."""
    fixed = fixed or {}
    out: dict[str, list[Any]] = {}
    for f in contract.stored_fields:
        if f.name in fixed:
            out[f.name] = fixed[f.name]
            continue
        domain = _domain(f)
        if domain is not None:
            out[f.name] = [domain[i % len(domain)] for i in range(n)]
        elif f.type == "date":
            out[f.name] = [WORLDS[world] + dt.timedelta(days=i) for i in range(n)]
        else:
            out[f.name] = [_text(world, i, contract.table) for i in range(n)]
    return out


def _rows_needed(contract: Contract) -> int:
    return max(len(d) for f in contract.stored_fields if (d := _domain(f)) is not None)


def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list[Any]]) -> None:
    # names come from the contract files, values travel as bound lists (unnest zips them)
    select = ", ".join(f'unnest(?) as "{name}"' for name in columns)
    con.execute(f"insert into {table} by name select {select}", list(columns.values()))


def _insert_probe(con: duckdb.DuckDBPyConnection) -> None:
    from pipelines import contracts

    discharges, followups, teds = (contracts.load(k) for k in ("discharges", "followups", "teds-d"))
    # every combination of the follow-up fields with allowed values (window_days x status)
    crossed = [f for f in followups.stored_fields if f.values is not None and f.name not in FOLLOWUP_LINK]
    combos = list(product(*(f.values for f in crossed)))
    n_episodes = max(_rows_needed(discharges), len(combos))
    for world in WORLDS:
        episodes = _columns(discharges, world, n_episodes)
        _insert(con, discharges.table, episodes)
        _insert(con, teds.table, _columns(teds, world, _rows_needed(teds)))
        # attempt k follows up episode k, alone in its window: it is the one the mart shows
        fixed = {f.name: [combo[j] for combo in combos] for j, f in enumerate(crossed)}
        fixed.update({name: episodes[name][: len(combos)] for name in FOLLOWUP_LINK})
        _insert(con, followups.table, _columns(followups, world, len(combos), fixed))


def _values(con: duckdb.DuckDBPyConnection, columns: list[str]) -> dict[str, dict[str, tuple[str, ...]]]:
    """Column -> world -> its non-null values there, in the order of the first row showing each."""
    # columns: names DuckDB's describe gave for the mart; the world is the episode_id's letter
    quoted = ", ".join(f'"{c}"' for c in columns)
    rows = con.execute(
        f"select name, substr(probe_row, {len(_PREFIX) + 1}, 1) as world, value, min(probe_row) as first "
        f"from (unpivot (select episode_id as probe_row, {quoted} from {MART}) on {quoted} "
        f"into name name value value) "
        f"group by all order by name, world, first, value"
    ).fetchall()
    out: dict[str, dict[str, tuple[str, ...]]] = {c: {w: () for w in WORLDS} for c in columns}
    for name, world, value, _ in rows:
        out[name][world] += (value,)
    return out


@cache
def mart_domains() -> MartDomains:
    """Types and closed value sets of ``mart_episodes`` (module docstring); built once per process."""
    import duckdb

    from pipelines import marts

    con = duckdb.connect()
    try:
        marts.ensure_raw_tables(con)
        _insert_probe(con)
        marts.build(con)
        described = con.execute(f"describe {MART}").fetchall()
        types = {name: expression.sql_type_class(kind) for name, kind, *_ in described}
        values: dict[str, tuple[str, ...]] = {}
        text_columns = [c for c, kind in types.items() if kind == expression.TEXT]
        for name, by_world in _values(con, text_columns).items():
            first, *others = by_world.values()
            if first and all(set(o) == set(first) for o in others):
                values[name] = first
    finally:
        con.close()
    return MartDomains(types=types, values=values)
