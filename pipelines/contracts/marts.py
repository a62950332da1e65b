"""Mart contracts: ``data_contracts/marts/<mart>.yaml`` loaded, checked against a warehouse, and
written out as docs/interfaces.md's mart section.

A contract holds the mart's columns in order (name, DuckDB type, meaning), grouped as a reader
meets them; a group marked ``per_window`` is repeated for each follow-up window
(:func:`pipelines.contracts.followup_windows`), ``{w}`` in its texts replaced by the window.
Tests, per column: ``not_null``, ``unique``, ``{accepted_values: [...]}`` (nulls pass); per mart:
``key``, columns unique together.

    python -m pipelines.contracts.marts            # rewrite the mart section of docs/interfaces.md
    python -m pipelines.contracts.marts --check    # exit 1 when it is out of date
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.contracts import ContractError, followup_windows
from pipelines.resources import contracts_dir

if TYPE_CHECKING:
    import duckdb

MARTS = ("mart_episodes", "mart_followups", "mart_pathways")
COLUMN_TESTS = ("not_null", "unique", "accepted_values")
INTERFACES = Path(__file__).resolve().parents[2] / "docs" / "interfaces.md"
SECTION = "## Marts"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as DuckDB's describe names it
    description: str
    not_null: bool = False
    unique: bool = False
    accepted_values: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Group:
    name: str | None
    description: str | None
    columns: tuple[Column, ...]
    per_window: bool = False  # the columns below, as written (``{w}``); ``MartContract.columns`` repeats them


@dataclass(frozen=True)
class MartContract:
    mart: str
    one_row_per: str
    description: str | None
    key: tuple[str, ...]
    groups: tuple[Group, ...]
    notes: str | None

    @property
    def columns(self) -> tuple[Column, ...]:
        """Every column in order, per-window groups repeated for each window."""
        out: list[Column] = []
        for g in self.groups:
            if g.per_window:
                out += [_for_window(c, w) for w in followup_windows() for c in g.columns]
            else:
                out += g.columns
        return tuple(out)

    def schema(self) -> list[tuple[str, str]]:
        """(name, DuckDB type) of every column, in order."""
        return [(c.name, c.type) for c in self.columns]


def _for_window(c: Column, window: int) -> Column:
    return Column(c.name.replace("{w}", str(window)), c.type, c.description.replace("{w}", str(window)),
                  c.not_null, c.unique, c.accepted_values)


def _column(raw: dict[str, Any], where: str) -> Column:
    name = raw.get("name")
    if not name or not raw.get("type") or not raw.get("description"):
        raise ContractError(f"{where}: every column needs a name, a type and a description ({name!r})")
    tests: dict[str, Any] = {}
    for test in raw.get("tests") or ():
        test_name, arg = next(iter(test.items())) if isinstance(test, dict) else (test, True)
        if test_name not in COLUMN_TESTS or (test_name == "accepted_values") != isinstance(arg, list):
            raise ContractError(f"{where}: column {name!r}: unknown test {test!r}")
        tests[test_name] = tuple(arg) if isinstance(arg, list) else arg
    unknown = set(raw) - {"name", "type", "description", "tests"}
    if unknown:
        raise ContractError(f"{where}: column {name!r}: unknown keys {', '.join(sorted(unknown))}")
    return Column(name=name, type=str(raw["type"]).upper(), description=" ".join(str(raw["description"]).split()),
                  **tests)


def _text(value: Any) -> str | None:
    return " ".join(str(value).split()) if value else None


def _parse(path: Path) -> MartContract:
    import yaml

    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    where = f"marts/{path.name}"
    for key in ("mart", "one_row_per", "groups"):
        if key not in doc:
            raise ContractError(f"{where}: missing {key!r}")
    unknown = set(doc) - {"mart", "one_row_per", "description", "key", "groups", "notes"}
    if unknown:
        raise ContractError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    groups = []
    for raw in doc["groups"]:
        columns = tuple(_column(c, where) for c in raw.get("columns") or ())
        per_window = bool(raw.get("per_window", False))
        if per_window and not all("{w}" in c.name for c in columns):
            raise ContractError(f"{where}: every column of a per-window group has {{w}} in its name")
        groups.append(Group(name=raw.get("group"), description=_text(raw.get("description")),
                            columns=columns, per_window=per_window))
    contract = MartContract(mart=doc["mart"], one_row_per=_text(doc["one_row_per"]) or "",
                            description=_text(doc.get("description")), key=tuple(doc.get("key") or ()),
                            groups=tuple(groups), notes=_text(doc.get("notes")))
    names = [c.name for c in contract.columns]
    if len(names) != len(set(names)):
        raise ContractError(f"{where}: a column is declared twice")
    if not set(contract.key) <= set(names):
        raise ContractError(f"{where}: the key names unknown columns")
    return contract


@cache
def load(mart: str) -> MartContract:
    """The contract of ``mart`` (one of MARTS)."""
    if mart not in MARTS:
        raise KeyError(f"unknown mart {mart!r}; expected one of {', '.join(MARTS)}")
    contract = _parse(contracts_dir() / "marts" / f"{mart}.yaml")
    if contract.mart != mart:
        raise ContractError(f"marts/{mart}.yaml: declares mart {contract.mart!r}")
    return contract


def all_contracts() -> list[MartContract]:
    return [load(m) for m in MARTS]


# --------------------------------------------------------------------------- checking a warehouse
@dataclass(frozen=True)
class Failure:
    mart: str
    test: str  # "schema", "key", or "<test>:<column>"
    rows: int  # failing rows (duplicated values for unique and key; 0 for schema)
    message: str


def schema_failures(con: duckdb.DuckDBPyConnection, contract: MartContract) -> list[Failure]:
    """The mart's columns against the contract: names, order and types."""
    # mart: a name from MARTS, not input
    built = [(name, kind) for name, kind, *_ in con.execute(f"describe {contract.mart}").fetchall()]
    promised = contract.schema()
    if built == promised:
        return []
    differ = [f"column {i}: {b[0]} {b[1]} built, {p[0]} {p[1]} promised"
              for i, (b, p) in enumerate(zip(built, promised, strict=False), start=1) if b != p]
    counts = [f"{len(built)} columns built, {len(promised)} promised"] if len(built) != len(promised) else []
    return [Failure(contract.mart, "schema", 0, "; ".join(counts + differ[:3]))]


def failed_tests(con: duckdb.DuckDBPyConnection, contract: MartContract) -> list[Failure]:
    """The contract's tests run on the mart; a failure counts rows, never shows a value."""
    mart = contract.mart  # names below come from the contract files, values travel as parameters

    def count(sql: str, params: Sequence[Any] = ()) -> int:
        return int(con.execute(sql, list(params)).fetchone()[0])

    def repeated(columns: Sequence[str], where: str = "true") -> int:
        cols = ", ".join(f'"{c}"' for c in columns)
        return count(f"select count(*) from (select {cols} from {mart} where {where} "
                     f"group by all having count(*) > 1)")

    out = []
    for c in contract.columns:
        if c.not_null and (n := count(f'select count(*) from {mart} where "{c.name}" is null')):
            out.append(Failure(mart, f"not_null:{c.name}", n, f"{n} rows with no {c.name}"))
        if c.unique and (n := repeated([c.name], f'"{c.name}" is not null')):
            out.append(Failure(mart, f"unique:{c.name}", n, f"{n} values of {c.name} repeated"))
        if c.accepted_values is not None and (n := count(
                f'select count(*) from {mart} where not list_contains(?, "{c.name}")', [list(c.accepted_values)])):
            out.append(Failure(mart, f"accepted_values:{c.name}", n, f"{n} rows with a {c.name} not accepted"))
    if contract.key and (n := repeated(contract.key)):
        out.append(Failure(mart, "key", n, f"{n} values of ({', '.join(contract.key)}) repeated"))
    return out


# --------------------------------------------------------------------------- docs/interfaces.md
def _tests_cell(c: Column, key: Sequence[str]) -> str:
    words = []
    if c.not_null:
        words.append("not null")
    if c.unique or tuple(key) == (c.name,):
        words.append("unique")
    if c.accepted_values is not None:
        words.append("one of " + ", ".join(f"`{v}`" for v in c.accepted_values))
    return "; ".join(words)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _build_paragraphs() -> list[str]:
    from pipelines.marts import materialization_rules, models

    layers, _ = materialization_rules()
    rules = []
    for layer, kind in layers.items():
        own = [m for m in models() if m.layer == layer and m.materialized != kind]
        rules.append(f"`sql/{layer}` {kind}s" + "".join(
            f", `{m.name}` a {m.materialized}" for m in own))
    return [
        ("`build` creates any missing raw table empty (`pipelines.marts.ensure_raw_tables`, with the DDL that "
         "`pipelines.contracts` generates from `data_contracts/*.yaml`: `Contract.ddl()`), then materializes "
         "every model in one transaction, in dependency order: DuckDB's parser finds the tables each model "
         "reads, and file order (layer, then file name) only breaks ties. A staging model reads one raw "
         "table; a model reads only raw tables and models of its own or an earlier layer."),
        (f"How each model is materialized is declared in `sql/models.yaml`: {'; '.join(rules)}. Temporary "
         "models belong to the building connection and are dropped after the build: only the `mart_*` models "
         "are written to the warehouse. `data_end_date` (default: the latest admission or discharge date in "
         "the data) is the last day the data can show."),
    ]


def _paragraph(text: str) -> list[str]:
    """``text`` wrapped as the rest of docs/interfaces.md is, and a blank line."""
    return [*textwrap.wrap(text, width=100, break_long_words=False, break_on_hyphens=False), ""]


def _mart_section(c: MartContract) -> list[str]:
    from pipelines.marts import models

    (kind,) = [m.materialized for m in models() if m.name == c.mart]
    head = f"One row per {c.one_row_per}."
    if c.description:
        head += f" {c.description}"
    head += f" A {kind}" + (", computed when read" if kind.endswith("view") else "")
    if c.key:
        head += f"; unique key ({', '.join(f'`{k}`' for k in c.key)})"
    out = [f"### `{c.mart}`", "", *_paragraph(head + ".")]
    windows = ", ".join(str(w) for w in followup_windows())
    for g in c.groups:
        if g.name:
            title = f"**{g.name}**"
            if g.per_window:
                title += f" (`{{w}}`: each of {windows})"
            out += _paragraph(title + (f": {g.description}." if g.description else ""))
        out += ["| column | type | meaning | tests |", "|---|---|---|---|"]
        out += [f"| `{col.name}` | {col.type} | {_cell(col.description)} | {_tests_cell(col, c.key)} |"
                for col in g.columns]
        out.append("")
    if c.notes:
        out += _paragraph(c.notes)
    return out


def interfaces_section() -> str:
    """docs/interfaces.md's mart section (its heading to the next level-2 heading), from the
    mart contracts and ``sql/models.yaml``."""
    out = [f"{SECTION} (`sql/marts`, built by `pipelines.marts.build(con, data_end_date=None)`)", "",
           *_paragraph("Generated from `data_contracts/marts/*.yaml` and `sql/models.yaml` by "
                       "`python -m pipelines.contracts.marts`: do not edit by hand. "
                       "`tests/sql/test_mart_contracts.py` checks that a build gives exactly these columns "
                       "and passes these tests.")]
    for text in _build_paragraphs():
        out += _paragraph(text)
    for c in all_contracts():
        out += _mart_section(c)
    return "\n".join(out)


def with_section(document: str) -> str:
    """``document`` (docs/interfaces.md) with its mart section replaced by the generated one."""
    lines = document.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith(SECTION + " ") or line.rstrip() == SECTION]
    if len(starts) != 1:
        raise ContractError(f"{INTERFACES.name}: one {SECTION!r} heading expected")
    end = next((i for i in range(starts[0] + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:starts[0]]) + interfaces_section() + ("\n" if tail else "") + tail


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    current = INTERFACES.read_text(encoding="utf-8")
    text = with_section(current)
    if "--check" in argv:
        if current != text:
            print(f"{INTERFACES}: the mart section is out of date: run python -m pipelines.contracts.marts",
                  file=sys.stderr)
            return 1
        return 0
    INTERFACES.write_text(text, encoding="utf-8")
    print(INTERFACES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
