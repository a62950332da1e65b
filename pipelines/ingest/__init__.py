"""Ingestion: read files, refuse direct identifiers, check against the contracts, load.

``ingest_paths(settings, paths, kind=None, site=None)`` (:mod:`pipelines.ingest.core`) is the
plain entry point for flows and the demo; ``pipelines.ingest.command`` wraps it for the CLI.
The steps every file goes through are in :mod:`pipelines.ingest.steps`, shared with
:mod:`pipelines.ingest.staged`, which runs them split across processes (Dask workers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.ingest.core import ingest_paths
    from pipelines.ingest.steps import LedgerRow

__all__ = ["LedgerRow", "ingest_paths"]

# where each name of __all__ lives
_HOMES = {"LedgerRow": "pipelines.ingest.steps", "ingest_paths": "pipelines.ingest.core"}


def __getattr__(name: str) -> Any:
    # lazy, so importing the package (e.g. for the CLI) stays light
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(name)
