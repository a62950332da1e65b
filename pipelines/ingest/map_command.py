"""``levelcare map suggest FILE... --kind K [--out FILE]``: draft a mapping file (docs/mapping.md);
``levelcare map save --site S FILE``: keep it for a site.

Each action is one entry of :data:`ACTIONS`: ``name -> (configure, run, help)``. Adding one
(``map save``) is one more entry; ``configure_map`` and ``run_map`` need no change.

Imports nothing heavy at module level: the CLI imports this module to configure its parser.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import UserError, one_line

if TYPE_CHECKING:
    from pipelines.settings import Settings

SUGGEST_KINDS = ("discharges", "followups")


def configure_suggest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", type=Path,
                        help="export files of one kind (CSV, Parquet or XLSX), e.g. a site's quarterly extracts")
    parser.add_argument("--kind", required=True, choices=SUGGEST_KINDS, help="the records the files hold")
    parser.add_argument("--out", metavar="FILE", type=Path,
                        help="write the draft here (default: print it); an existing file is kept unless --force")
    parser.add_argument("--force", action="store_true", help="overwrite --out when it exists")


def run_suggest(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.ingest.suggest import render_yaml, suggest_mapping

    out: Path | None = args.out
    if out is not None and out.exists() and not args.force:
        raise UserError(f"{out}: already exists (a draft you may have edited); choose another --out "
                        "or add --force")
    suggestion = suggest_mapping(args.files, args.kind)
    text = render_yaml(suggestion)
    if out is None:
        sys.stdout.write(text)
    else:
        _write(out, text)
    guesses = list(suggestion.columns.values()) + [g for v in suggestion.values.values() for g in v.values()]
    low = sum(g.confidence == "low" for g in guesses)
    summary = (f"{len(suggestion.columns)} columns mapped, {low} low guesses to check, "
               f"{len(suggestion.missing_required)} required fields not found, "
               f"{len(suggestion.refused)} columns refused as direct identifiers")
    if out is None:
        print(f"levelcare: draft mapping: {summary}", file=sys.stderr)
    else:
        print(f"wrote {one_line(out)}: {summary}")
    return 0


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file beside it, then rename)."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise UserError(f"{path}: cannot write the draft ({exc.strerror or type(exc).__name__})") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def configure_save(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", type=Path, help="the mapping file (checked before it is saved)")
    parser.add_argument("--site", required=True, help="the site whose later files use it (ingest/run --site S)")


def run_save(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.ingest.core import ensure_tables
    from pipelines.ingest.mapping import load_mapping, save_site_mapping
    from pipelines.warehouse import connect, transaction

    mapping = load_mapping(args.file)
    with connect(settings.warehouse, timeout_seconds=settings.lock_timeout_seconds) as con, transaction(con):
        ensure_tables(con)
        save_site_mapping(con, args.site, mapping)
    print(one_line(f"saved {args.file.name} ({mapping.sha256[:12]}) for site {args.site}: later files of the "
                   f"site use it when ingested with --site {args.site} (a --mapping given overrides it)"))
    return 0


# action -> (configure its parser, run it, one-line help)
ACTIONS: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                         Callable[[argparse.Namespace, Settings], int], str]] = {
    "suggest": (configure_suggest, run_suggest,
                "draft a mapping file from your export's headers and labels (every guess marked)"),
    "save": (configure_save, run_save, "keep a mapping file for a site: its later files use it"),
}


def configure_map(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="map_command", metavar="ACTION", required=True)
    for name, (configure, _run, help_text) in ACTIONS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))


def run_map(args: argparse.Namespace, settings: Settings) -> int:
    return int(ACTIONS[args.map_command][1](args, settings) or 0)
