"""Build the SQL models (``sql/staging``, ``sql/intermediate``, ``sql/marts``).

Order. A model declares what it reads by reading it: DuckDB's own parser lists the tables each
model's SQL refers to (its common table expressions are not tables), and the models run in
dependency order (:func:`build_order`), file order (layer, then file name) only breaking ties.
A model may read raw tables (``pipelines.contracts``) and the models of its own or an earlier
layer; a model of the first layer (staging) reads one raw table and nothing else (cross-source
logic starts in the intermediate layer). A model that reads an unknown table, or a cycle, stops
the build before it starts, naming them. All models are rebuilt in one transaction, so readers
never see a half-built set of marts.

Materialization. ``sql/models.yaml`` says, in one place, which models are tables and which
views, and which are temporary (in memory, for the building connection only, dropped at the end
of the build): there, the layers' rules, the exceptions, and why.

Follow-up windows. The per-window SQL is written once and repeated for each window of the
followups contract (``pipelines.contracts.followup_windows``) by a small templating step
(:func:`render`), applied before the SQL is parsed:

* ``{followup_windows}`` anywhere is the windows as an SQL list, ``30, 90, 180, 365``;
* the lines between ``-- for each window {w}:`` and ``-- end for`` (each a line of its own) are
  repeated once per window, ``{w}`` in them replaced by the window; ``-- for each window {w},
  joined by union all:`` puts ``union all`` between the repetitions. Blocks do not nest.

Raw tables may not exist yet in a young warehouse (no TEDS-D file ingested, say). The models
need them, so ``ensure_raw_tables`` creates any missing one empty, with the DDL the contracts
area generates from ``data_contracts/*.yaml`` (``pipelines.contracts``); an existing table is
never altered.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from pipelines import progress
from pipelines.resources import sql_dir
from pipelines.warehouse import load_sql, sql_names, transaction

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

MATERIALIZATIONS = ("table", "view", "temporary table", "temporary view")
_BLOCK_START = re.compile(r"^\s*-- for each window \{(\w+)\}(?:, joined by ([a-z ]+))?:\s*$")
_BLOCK_END = re.compile(r"^\s*-- end for\s*$")


class ModelError(RuntimeError):
    """The SQL models do not form a buildable set (a bug in sql/, not in user input)."""


@dataclass(frozen=True)
class Model:
    name: str
    layer: str
    materialized: str  # one of MATERIALIZATIONS
    sql: str  # rendered (:func:`render`)
    reads: frozenset[str]  # the tables and models the SQL refers to

    @property
    def temporary(self) -> bool:
        return self.materialized.startswith("temporary ")

    @property
    def view(self) -> bool:
        return self.materialized.endswith("view")


def render(sql: str, windows: Sequence[int]) -> str:
    """``sql`` with its per-window blocks repeated and ``{followup_windows}`` filled in (module
    docstring)."""
    out: list[str] = []
    block: list[str] | None = None
    name = joiner = ""
    for line in sql.splitlines():
        start = _BLOCK_START.match(line)
        if start:
            if block is not None:
                raise ModelError("a '-- for each window' block inside another")
            block, name = [], start.group(1)
            joiner = line[: len(line) - len(line.lstrip())] + start.group(2) if start.group(2) else ""
        elif _BLOCK_END.match(line):
            if block is None:
                raise ModelError("'-- end for' without '-- for each window'")
            for i, window in enumerate(windows):
                if i and joiner:
                    out.append(joiner)
                out += [b.replace("{" + name + "}", str(int(window))) for b in block]
            block = None
        elif block is not None:
            block.append(line)
        else:
            out.append(line)
    if block is not None:
        raise ModelError("'-- for each window' without '-- end for'")
    text = "\n".join(out) + ("\n" if sql.endswith("\n") else "")
    return text.replace("{followup_windows}", ", ".join(str(int(w)) for w in windows))


def _references(node: object, ctes: frozenset[str] = frozenset()) -> set[str]:
    """Table names a parsed statement (DuckDB's JSON form) refers to, common table expressions
    left out. A node's CTEs are in scope for everything under it, their own bodies included."""
    found: set[str] = set()
    if isinstance(node, dict):
        cte_map = node.get("cte_map") or {}
        if cte_map.get("map"):
            ctes = ctes | {item["key"].lower() for item in cte_map["map"]}
        if node.get("type") == "BASE_TABLE" and "table_name" in node:
            name = node["table_name"].lower()
            if name not in ctes or node.get("schema_name"):
                found.add(name)
        for value in node.values():
            found |= _references(value, ctes)
    elif isinstance(node, list):
        for value in node:
            found |= _references(value, ctes)
    return found


def table_references(con: duckdb.DuckDBPyConnection, sql: str) -> frozenset[str]:
    """The tables (or views) one SELECT statement reads, by DuckDB's parser.

    ``duckdb.get_table_names`` would do, but refuses a statement with a parameter
    (``$data_end_date``); the parse tree that ``json_serialize_sql`` returns has them all.
    """
    tree = json.loads(con.execute("select json_serialize_sql(?)", [sql]).fetchone()[0])
    if tree.get("error"):
        raise ModelError(tree.get("error_message", "the SQL does not parse"))
    if len(tree["statements"]) != 1:
        raise ModelError(f"{len(tree['statements'])} statements where one SELECT goes")
    return frozenset(_references(tree["statements"]))


@cache
def materialization_rules() -> tuple[dict[str, str], dict[str, str]]:
    """(layer -> materialization, model -> materialization where it differs) from
    ``sql/models.yaml``."""
    import yaml

    doc = yaml.safe_load((sql_dir() / "models.yaml").read_text(encoding="utf-8"))
    layers, models = dict(doc.get("layers") or {}), dict(doc.get("models") or {})
    for what, kind in [*layers.items(), *models.items()]:
        if kind not in MATERIALIZATIONS:
            raise ModelError(f"sql/models.yaml: {what}: {kind!r} is not one of {', '.join(MATERIALIZATIONS)}")
    return layers, models


@cache
def models() -> tuple[Model, ...]:
    """Every model, in file order (layer as in ``sql/models.yaml``, then file name)."""
    import duckdb

    from pipelines.contracts import followup_windows

    layers, exceptions = materialization_rules()
    names = {name: layer for layer in layers for name in sql_names(layer)}
    unknown = sorted(set(exceptions) - set(names))
    if unknown:
        raise ModelError(f"sql/models.yaml names no model file: {', '.join(unknown)}")
    same = sorted(n for n, kind in exceptions.items() if kind == layers[names[n]])
    if same:
        raise ModelError(f"sql/models.yaml: {', '.join(same)}: the layer's rule already says so")
    windows = followup_windows()
    out = []
    con = duckdb.connect()
    try:
        for name, layer in names.items():
            try:
                sql = render(load_sql(name), windows)
                reads = table_references(con, sql)
            except ModelError as exc:
                raise ModelError(f"model {name}: {exc}") from None
            out.append(Model(name, layer, exceptions.get(name, layers[layer]), sql, reads))
    finally:
        con.close()
    return tuple(out)


def _cycle(remaining: dict[str, Model]) -> list[str]:
    """A cycle among ``remaining`` (each of which reads another of them)."""
    path: list[str] = []
    name = next(iter(remaining))
    while name not in path:
        path.append(name)
        name = next(r for r in sorted(remaining[name].reads) if r in remaining)
    return [*path[path.index(name):], name]


def build_order(given: Sequence[Model], raw_tables: Sequence[str]) -> list[Model]:
    """``given`` in an order in which every model comes after the models it reads; among the
    models ready at a step, the first of ``given``. Checks the rules of the module docstring."""
    by_name = {m.name: m for m in given}
    layer_rank = {layer: i for i, layer in enumerate(materialization_rules()[0])}
    problems = []
    for m in given:
        unknown = sorted(m.reads - set(by_name) - set(raw_tables))
        if unknown:
            problems.append(f"{m.name} reads {', '.join(unknown)}: no model or raw table of that name")
        later = sorted(r for r in m.reads & set(by_name) if layer_rank[by_name[r].layer] > layer_rank[m.layer])
        if later:
            problems.append(f"{m.name} reads {', '.join(later)}, of a later layer")
        if layer_rank[m.layer] == 0 and (len(m.reads) != 1 or m.reads & set(by_name)):
            problems.append(f"{m.name} is a {m.layer} model: it reads one raw table, not "
                            f"{', '.join(sorted(m.reads)) or 'none'}")
        if m.view and not m.temporary:
            gone = sorted(r for r in m.reads if r in by_name and by_name[r].temporary)
            if gone:
                problems.append(f"{m.name} is a view in the warehouse: it cannot read the temporary "
                                f"{', '.join(gone)}")
    if problems:
        raise ModelError("; ".join(problems))
    order: list[Model] = []
    remaining = dict(by_name)
    while remaining:
        ready = next((m for m in remaining.values() if not (m.reads & set(remaining))), None)
        if ready is None:
            raise ModelError(f"the models read each other in a cycle: {' -> '.join(_cycle(remaining))}")
        order.append(ready)
        del remaining[ready.name]
    return order


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


def build(con: duckdb.DuckDBPyConnection, *, data_end_date: dt.date | None = None,
          keep_temporary: bool = False) -> list[str]:
    """Materialize every model as ``sql/models.yaml`` says, in dependency order, in one
    transaction; return their names in the order built.

    ``data_end_date`` is the last day the data can show (readmissions and follow-up windows
    that end after it are unknown); by default the latest admission or discharge date found.
    The temporary views and tables are dropped at the end (the tables hold memory that the
    statistics after the build need) unless ``keep_temporary``.
    """
    from pipelines import contracts

    order = build_order(models(), [c.table for c in contracts.all_contracts()])
    con.execute("set enable_progress_bar = false")  # it would write to a user's terminal
    with transaction(con):
        ensure_raw_tables(con)
        drops = []  # the temporary models, dropped at the end
        for i, model in enumerate(order, start=1):
            progress.status("marts", f"model {i}/{len(order)} {model.name}")
            params = {"data_end_date": data_end_date} if "$data_end_date" in model.sql else None
            # model names are file stems under sql/, not user input
            if not model.temporary:
                _drop_other_kind(con, model.name, "VIEW" if model.view else "BASE TABLE")
            statement = f"create or replace {model.materialized} {model.name} as\n{model.sql}"
            con.execute(statement, params) if params else con.execute(statement)
            if model.temporary:
                kind = "view" if model.view else "table"
                drops.append(f"drop {kind} if exists temp.{model.name}")  # name: a file stem
        if not keep_temporary:
            for statement in drops:
                con.execute(statement)
    progress.clear()
    log.info("built %d models", len(order))
    return [model.name for model in order]
