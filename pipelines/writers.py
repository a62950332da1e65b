"""Files written for people: spreadsheet-safe cells, CSV tables, checksums.

Analysis, report, export and network studies all write files that someone opens in a
spreadsheet, so the rules for such a file live here, below all of them: text a spreadsheet
would run as a formula (starting with = + - @ tab or CR) is written as text, and an empty
value is an empty cell.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(v: Any) -> Any:
    """Text that a spreadsheet would read as a formula gets a leading apostrophe (OWASP CSV
    injection); numbers stay numbers."""
    if isinstance(v, str) and v.startswith(FORMULA_START):
        return "'" + v
    return v


def write_csv(path: Path, rows: list[dict[str, Any]], leading: Sequence[str]) -> None:
    """``rows`` as a CSV: the ``leading`` columns first, then every other key in order of first
    appearance; None as an empty cell, formula-like text made inert."""
    extra = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in leading]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*leading, *extra], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else safe_cell(v)) for k, v in row.items()})


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
