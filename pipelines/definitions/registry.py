"""The registry of success definitions: one YAML file per definition.

Built-in definitions live in ``data_contracts/definitions/<id>.yaml``. Users add their own
in a workspace folder (``--definitions-dir``, ``$LEVELCARE_DEFINITIONS`` or ``./definitions``)
without touching code. Rules:

* a file is named after its id (``<id>.yaml``) and holds exactly the keys in ``FIELDS``;
* conditions are written in the expression language of :mod:`.expression` and checked
  against the columns of ``mart_episodes`` when the file is loaded: names, types, and every
  literal against the values its column can hold (:mod:`.domains`), so that ``level_group =
  'IOP'`` is refused instead of silently selecting nobody;
* a user file with a built-in id replaces the built-in only if it raises the version
  (a silent redefinition would change published numbers under an unchanged name); the
  same version or a lower one is an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.definitions import domains, expression
from pipelines.errors import Problems, UserError, parse_yaml
from pipelines.resources import contracts_dir

MISSING_POLICIES = ("failure", "exclude")
FOLLOWUP_KINDS = ("interview",)
FIELDS = {
    "id": "identifier: lower-case letters, digits, underscores; the file is <id>.yaml",
    "version": "positive integer; raise it whenever the meaning changes",
    "label": "short name for tables and charts",
    "description": "what counts as success and why, in plain words",
    "population": "condition selecting the episodes the rate is about (omit: every episode)",
    "success": "condition that is true for a success",
    "missing": "failure (unknown counts as not successful) or exclude (dropped from the denominator)",
    "window_days": "follow-up window in days, or null",
    "followup": "interview when success is read from the follow-up interview of window_days "
                "(its comparisons then add ITT, complete-case and inverse-probability-of-follow-up "
                "sensitivity rows); omit for outcomes known without an interview (e.g. readmission "
                "from the records)",
    "references": "list of citations",
    "requires": "mart_episodes fields the definition needs; all-null in the data = not applicable",
}
REQUIRED_FIELDS = ("id", "version", "label", "description", "success", "missing", "references", "requires")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Definition:
    id: str
    version: int
    label: str
    description: str
    population: str | None
    success: str
    missing: str
    window_days: int | None
    references: tuple[str, ...]
    requires: tuple[str, ...]
    followup: str | None = None  # "interview": success comes from the follow-up interview
    origin: str = "built-in"  # or "user"
    path: Path | None = field(default=None, compare=False)

    def population_tree(self) -> expression.Node | None:
        return expression.parse(self.population) if self.population else None

    def success_tree(self) -> expression.Node:
        return expression.parse(self.success)

    def as_dict(self) -> dict[str, Any]:
        """The description that goes into results.json (no file paths)."""
        return {
            "id": self.id,
            "version": self.version,
            "label": self.label,
            "description": self.description,
            "population": self.population,
            "success": self.success,
            "missing": self.missing,
            "window_days": self.window_days,
            "followup": self.followup,
            "references": list(self.references),
            "requires": list(self.requires),
            "origin": self.origin,
        }


def mart_schema() -> dict[str, str]:
    """``mart_episodes`` column -> coarse type, from its contract
    (``data_contracts/marts/mart_episodes.yaml``; a test holds the SQL models to it), so
    checking a definition's names and types needs no warehouse and no build."""
    from pipelines.contracts import marts

    return {c.name: expression.sql_type_class(c.type) for c in marts.load("mart_episodes").columns}


def mart_values() -> dict[str, tuple[str, ...]]:
    """``mart_episodes`` categorical text column -> the values it can hold (:mod:`.domains`)."""
    return domains.mart_domains().values


def load_file(
    path: Path, schema: Mapping[str, str] | None = None, origin: str = "user",
    values: Mapping[str, Sequence[str]] | None = None,
) -> Definition:
    """Read and check one definition file; errors name the file, the field and the position.

    ``schema``: column -> type class (default :func:`mart_schema`); ``values``: column -> the
    values it can hold (default :func:`mart_values`). Literals that their column cannot hold
    are all reported at once, one line each (:class:`~pipelines.errors.Problems`).
    """
    path = Path(path)
    schema = mart_schema() if schema is None else schema
    values = mart_values() if values is None else values
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    data = parse_yaml(text, path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of fields ({', '.join(FIELDS)})")

    def fail(name: str, message: str) -> UserError:
        return UserError(f"{path}: field {name}: {message}")

    unknown = sorted(set(map(str, data)) - set(FIELDS))
    if unknown:
        raise fail(unknown[0], f"unknown field (allowed: {', '.join(FIELDS)})")
    for name in REQUIRED_FIELDS:
        if data.get(name) is None:
            raise fail(name, "missing")

    def_id = data["id"]
    if not isinstance(def_id, str) or not _ID.match(def_id):
        raise fail("id", "must be lower-case letters, digits and underscores, starting with a letter")
    if path.stem != def_id:
        raise fail("id", f"{def_id!r} does not match the file name (expected {def_id}.yaml)")
    version = data["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise fail("version", "must be a positive integer")
    for name in ("label", "description", "success"):
        if not isinstance(data[name], str) or not data[name].strip():
            raise fail(name, "must be non-empty text")
    population = data.get("population")
    if population is not None and (not isinstance(population, str) or not population.strip()):
        raise fail("population", "must be non-empty text or omitted")
    if data["missing"] not in MISSING_POLICIES:
        raise fail("missing", f"must be one of {', '.join(MISSING_POLICIES)}")
    window = data.get("window_days")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise fail("window_days", "must be a positive integer or null")
    followup = data.get("followup")
    if followup is not None and followup not in FOLLOWUP_KINDS:
        raise fail("followup", f"must be {' or '.join(FOLLOWUP_KINDS)}, or omitted")
    if followup is not None and window is None:
        raise fail("followup", "an interview outcome needs window_days (the follow-up window it is read from)")
    references = data["references"]
    if not isinstance(references, list) or not references or not all(
        isinstance(r, str) and r.strip() for r in references
    ):
        raise fail("references", "must be a non-empty list of citations")
    requires = data["requires"]
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise fail("requires", "must be a list of mart_episodes field names")
    for name in requires:
        if name not in schema:
            raise fail("requires", f"unknown column {name!r}")

    problems: list[str] = []
    for name in ("population", "success"):
        text = data.get(name)
        if text is None:
            continue
        try:
            tree = expression.parse(text)
            expression.check_condition(tree, schema)
        except expression.ExpressionError as exc:
            raise fail(name, str(exc)) from None
        problems += [f"definition {def_id}: {p} ({name}, position {p.position})"
                     for p in expression.literal_problems(tree, schema, values)]
    if problems:
        n = len(problems)
        raise Problems(f"{path}: definition {def_id} refused ({n} problem{'s' * (n > 1)} with its "
                       "literal values; see docs/definitions.md)", problems)

    return Definition(
        id=def_id,
        version=version,
        label=data["label"].strip(),
        description=" ".join(data["description"].split()),
        population=population.strip() if population else None,
        success=data["success"].strip(),
        missing=data["missing"],
        window_days=window,
        followup=followup,
        references=tuple(r.strip() for r in references),
        requires=tuple(requires),
        origin=origin,
        path=path,
    )


def builtin_dir() -> Path:
    return contracts_dir() / "definitions"


def _load_folder(
    folder: Path, origin: str, schema: Mapping[str, str], values: Mapping[str, Sequence[str]]
) -> dict[str, Definition]:
    found: dict[str, Definition] = {}
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
        definition = load_file(path, schema, origin=origin, values=values)
        if definition.id in found:
            raise UserError(f"{path}: field id: {definition.id!r} is also defined in {found[definition.id].path}")
        found[definition.id] = definition
    return found


def merge(builtins: Mapping[str, Definition], users: Iterable[Definition]) -> dict[str, Definition]:
    """Built-ins overlaid by user definitions under the version rule (module docstring)."""
    merged = dict(builtins)
    for definition in users:
        existing = builtins.get(definition.id)
        if existing is not None and definition.version <= existing.version:
            raise UserError(
                f"{definition.path}: field version: {definition.id!r} is a built-in definition "
                f"(version {existing.version}); a user file may replace it only with a higher version"
            )
        merged[definition.id] = definition
    return dict(sorted(merged.items()))


def load_registry(
    definitions_dir: Path | None = None, schema: Mapping[str, str] | None = None,
    values: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Definition]:
    """Every definition, built-in and user, by id (sorted); ``schema`` and ``values`` as for
    :func:`load_file`."""
    schema = mart_schema() if schema is None else schema
    values = mart_values() if values is None else values
    builtins = _load_folder(builtin_dir(), "built-in", schema, values)
    users: dict[str, Definition] = {}
    if definitions_dir is not None:
        folder = Path(definitions_dir)
        if not folder.is_dir():
            raise UserError(f"{folder}: definitions folder does not exist")
        users = _load_folder(folder, "user", schema, values)
    return merge(builtins, users.values())


def select(registry: Mapping[str, Definition], ids: Iterable[str] | None) -> list[Definition]:
    """The definitions named by ``ids`` (all when None), in the order given."""
    if ids is None:
        return list(registry.values())
    chosen = []
    for def_id in ids:
        if def_id not in registry:
            raise UserError(f"unknown definition {def_id!r} (see `levelcare definitions list`)")
        chosen.append(registry[def_id])
    return chosen
