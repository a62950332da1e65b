"""Small helpers of the functional tests: read and write an extract as a user's tools would,
and load files into a warehouse through the real ingest (great-expectations included)."""

from __future__ import annotations

import csv
from pathlib import Path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def ingest(warehouse: Path, *paths: Path) -> None:
    """Load ``paths`` into ``warehouse``; every file must load whole."""
    from pipelines.ingest.core import ingest_paths
    from pipelines.settings import Settings

    loaded = ingest_paths(Settings(warehouse=warehouse), list(paths), docs=False)
    assert all(r.status == "loaded" for r in loaded), [r.line() for r in loaded]
