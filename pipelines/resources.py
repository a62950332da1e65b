"""Where the declarative resources (sql/, data_contracts/) live.

In a source checkout they sit beside the package; in a built wheel they are copied into the
package (see ``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def resource_dir(name: str) -> Path:
    """Return the folder ``name`` (``sql`` or ``data_contracts``)."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"levelcare resource folder {name!r} is missing from the installation")


def sql_dir() -> Path:
    return resource_dir("sql")


def contracts_dir() -> Path:
    return resource_dir("data_contracts")
