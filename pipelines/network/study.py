"""A network study's specification (``study.yaml``): what every site runs, unchanged.

A coordinating centre writes it; each site runs ``levelcare network package --study
study.yaml``; ``levelcare network combine`` pools only packages whose specification is the
same. Keys:

* ``study`` (required): an id, 1-64 letters, digits, ``.``, ``_`` or ``-``;
* ``title``: words for the reports;
* ``definitions`` (required): a list of ``{id: ..., version: N}``; a site whose registry lacks an
  id, or holds another version, refuses to run the study (the numbers would mean something else);
* ``arm`` / ``reference``: the levels of care compared (default ``iop`` / ``residential``);
* ``period``: quarters ``FROM..TO`` (default: all data);
* ``methods``: the estimators pooled (default ``crude``, ``aipw``, ``ps_stratified``; any method
  ``analyze`` writes in comparisons.csv, and ``ps_stratified``: the sites' propensity-score
  strata, pooled in one shot, :mod:`pipelines.network.strata`).

The specification as run — these keys, each definition's full text and the levelcare version —
is written into the package (``study.json``); its SHA-256 (over canonical JSON) identifies the
study.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.errors import UserError

KEYS = {"study", "title", "definitions", "arm", "reference", "period", "methods"}
STUDY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_DEFINITIONS = ("completion", "no_readmission_90d", "abstinent_90d_itt")
DEFAULT_METHODS = ("crude", "aipw", "ps_stratified")
#: the method whose estimates come from the packages' propensity-score strata
PS_STRATIFIED = "ps_stratified"


@dataclass(frozen=True)
class Study:
    id: str
    title: str
    definitions: tuple[tuple[str, int], ...]
    arm: str = "iop"
    reference: str = "residential"
    period: str | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS

    def as_dict(self) -> dict[str, Any]:
        return {"study": self.id, "title": self.title,
                "definitions": [{"id": i, "version": v} for i, v in self.definitions],
                "arm": self.arm, "reference": self.reference, "period": self.period, "methods": list(self.methods)}


def load_study(path: Path) -> Study:
    """Read and check ``study.yaml`` (one-line errors naming the file and the key)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: not a readable YAML study file ({type(exc).__name__})") from None
    return study_from(data, str(path))


def study_from(data: Any, where: str) -> Study:
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: a study file is a mapping of keys ({', '.join(sorted(KEYS))})")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(map(str, unknown))} (allowed: {', '.join(sorted(KEYS))})")
    sid = data.get("study")
    if not isinstance(sid, str) or not STUDY_ID.match(sid):
        raise UserError(f"{where}: study: an id of 1-64 letters, digits, '.', '_' or '-' is required")
    defs = data.get("definitions")
    if not isinstance(defs, list) or not defs:
        raise UserError(f"{where}: definitions: a list of {{id: ..., version: N}} is required")
    pairs = []
    for k, d in enumerate(defs, start=1):
        if not (isinstance(d, Mapping) and isinstance(d.get("id"), str) and isinstance(d.get("version"), int)
                and not isinstance(d.get("version"), bool) and set(d) <= {"id", "version"}):
            raise UserError(f"{where}: definitions item {k}: write {{id: completion, version: 1}}")
        pairs.append((d["id"], int(d["version"])))
    if len({i for i, _ in pairs}) != len(pairs):
        raise UserError(f"{where}: definitions: an id is listed twice")
    methods = data.get("methods", list(DEFAULT_METHODS))
    if not isinstance(methods, list) or not methods or not all(isinstance(x, str) for x in methods):
        raise UserError(f"{where}: methods: a list of estimator names, e.g. [crude, aipw]")
    for key in ("arm", "reference", "title", "period"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            raise UserError(f"{where}: {key}: a text value")
    if data.get("period"):
        from pipelines.results.periods import parse_period

        parse_period(data["period"])
    return Study(id=sid, title=str(data.get("title") or sid), definitions=tuple(pairs),
                 arm=data.get("arm") or "iop", reference=data.get("reference") or "residential",
                 period=data.get("period") or None, methods=tuple(methods))


def default_study(registry: Mapping[str, Any]) -> Study:
    """The study a site runs without ``--study``: IOP against residential on the headline
    definitions at the versions this levelcare holds."""
    return Study(id="levelcare-default", title="IOP against residential (levelcare's headline definitions)",
                 definitions=tuple((i, registry[i].version) for i in DEFAULT_DEFINITIONS if i in registry))


def check_definitions(study: Study, registry: Mapping[str, Any]) -> list[Any]:
    """The registry's definitions of the study, refusing one it lacks or holds at another version."""
    out = []
    for def_id, version in study.definitions:
        d = registry.get(def_id)
        if d is None:
            raise UserError(f"study {study.id}: definition {def_id!r} is not in this levelcare's registry "
                            "(add it with --definitions-dir, or upgrade levelcare)")
        if d.version != version:
            raise UserError(f"study {study.id}: definition {def_id!r} is version {d.version} here, the study "
                            f"asks for version {version}: the numbers would not mean the same")
        out.append(d)
    return out


def specification(study: Study, definitions: list[Any]) -> dict[str, Any]:
    """The specification as run: the study's keys and each definition's full text."""
    spec = study.as_dict()
    spec["definitions"] = [{k: v for k, v in d.as_dict().items() if k != "origin"} for d in definitions]
    return spec


def spec_hash(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two specifications first differ, in words (None: the same)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}{k}: only in one"
            found = first_difference(a[k], b[k], f"{path}{k}.")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path.rstrip('.')}: {len(a)} against {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}{i}.")
            if found:
                return found
        return None
    return None if a == b else f"{path.rstrip('.')}: {a!r} against {b!r}"
