"""``--json`` for scripts: one JSON document on stdout and nothing else.

Commands with ``--json`` (analyze, export, runs, definitions list) print their outcome as one
object (or array) on stdout; progress and library output go to stderr meanwhile
(:func:`stdout_to_stderr`). An error prints no JSON: its one line goes to stderr and the exit
code says what failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any


def add_json_argument(parser: argparse.ArgumentParser, fields: str) -> None:
    """``--json``, with the fields of the object it prints in the command's help epilog."""
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object describing the outcome on stdout, and nothing else "
                        "(fields below)")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keeps the epilog's layout
    parser.epilog = f"--json prints one object on stdout (progress goes to stderr):\n{fields}"


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send whatever the block writes to stdout to stderr: Python's prints and what libraries
    write to file descriptor 1 (DuckDB draws its progress bar on stdout), so that stdout
    carries only the JSON printed after the block."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout at all: nothing to keep clean
        saved = None
    if saved is not None:
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            _flush_c_stdio()  # C buffers written inside the block still go to stderr
            os.dup2(saved, 1)
            os.close(saved)


def _flush_c_stdio() -> None:
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to ask: nothing buffered there by us
        pass


def file_entries(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """``{name, path, bytes, sha256}`` of each file, as read back from disk."""
    from pipelines.writers import file_sha256

    out = []
    for p in paths:
        p = Path(p).absolute()
        out.append({"name": p.name, "path": str(p), "bytes": p.stat().st_size, "sha256": file_sha256(p)})
    return out


def print_json(doc: Mapping[str, Any]) -> None:
    import json

    print(json.dumps(doc, indent=2, ensure_ascii=False), flush=True)


