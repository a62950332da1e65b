"""Ingestion: read files, refuse direct identifiers, check against the contracts, load.

``ingest_paths(settings, paths, kind=None, site=None)`` is the plain entry point for flows
and the demo; ``pipelines.ingest.command`` wraps it for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.ingest.core import LedgerRow, ingest_paths

__all__ = ["LedgerRow", "ingest_paths"]


def __getattr__(name: str) -> Any:
    # lazy, so importing the package (e.g. for the CLI) stays light
    if name in __all__:
        from pipelines.ingest import core

        return getattr(core, name)
    raise AttributeError(name)
