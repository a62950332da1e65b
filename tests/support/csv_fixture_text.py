"""CSV text from row dicts, for test fixtures (shared by the ingest and security tests)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], delimiter: str = ",",
             newline: str = "\n") -> str:
    """A header of ``columns``, then one line per row; a missing or None value is empty."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return buf.getvalue()
