"""``levelcare ingest`` and ``levelcare quarantine``.

Imports nothing heavy at module level: the CLI imports this module to configure its parser.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from pipelines.errors import UserError, one_line

if TYPE_CHECKING:
    from pipelines.settings import Settings

KINDS = ("discharges", "followups", "teds-d")


def configure_ingest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (every file inside)")
    parser.add_argument("--kind", choices=KINDS, help="record kind (default: detected from the header)")
    parser.add_argument("--site", help="site_id for files without a site_id column (rows of another site "
                        "are quarantined)")
    parser.add_argument("--run-id", help="run id recorded in the ledger")
    parser.add_argument("--json", action="store_true", help="print ledger rows as JSON objects, one per line")
    parser.add_argument("--write-dictionary", metavar="FILE", nargs="?", const="",
                        help="write the data dictionary generated from the contracts "
                             "(default data_contracts/DICTIONARY.md) and exit")


def run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    if args.write_dictionary is not None:
        from pipelines import contracts

        path = contracts.write_dictionary(Path(args.write_dictionary) if args.write_dictionary else None)
        print(f"wrote {path}")
        return 0
    if not args.paths:
        raise UserError("ingest: give at least one PATH (a file or a folder)")
    for p in args.paths:
        if not Path(p).exists():
            raise UserError(f"{p}: no such file or folder")
    from pipelines.ingest.core import ingest_paths

    rows = ingest_paths(settings, args.paths, kind=args.kind, site=args.site, run_id=args.run_id)
    if not rows:
        raise UserError("ingest: no files found under the given paths")
    for row in rows:
        print(row.to_json() if args.json else one_line(row.line()))
    if not args.json:
        _print_top_reasons(settings, [r.sha256 for r in rows if r.rows_quarantined])
    refused = [r for r in rows if r.status == "refused"]
    if refused:
        print(f"levelcare: error: {len(refused)} of {len(rows)} files refused (first: "
              f"{one_line(refused[0].message)})", file=sys.stderr)
        return 4
    return 0


def _print_top_reasons(settings: Settings, shas: list[str]) -> None:
    if not shas:
        return
    from pipelines.errors import WarehouseBusy
    from pipelines.warehouse import connect

    try:
        with connect(settings.warehouse, read_only=True) as con:
            top = con.execute(
                "SELECT check_id, field, any_value(reason) AS reason, count(*) AS n FROM ingest_quarantine "
                "WHERE list_contains(?, file_sha256) GROUP BY check_id, field ORDER BY n DESC, check_id, field "
                "LIMIT 10", [shas]).fetchall()
    except WarehouseBusy:
        # the load is done and committed; another writer took the warehouse the moment this one
        # let go. The summary is not worth failing a successful ingest for.
        print("top quarantine reasons: not shown, another levelcare process is writing "
              "(see `levelcare quarantine`)")
        return
    if top:
        print("top quarantine reasons:")
        for check_id, field, reason, n in top:
            print(one_line(f"  {n:>8}  {check_id:<24} {field or '-':<22} {reason}"))


def configure_quarantine(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", help="only this file (its name or sha256 prefix)")
    parser.add_argument("--rows", action="store_true", help="one line per quarantined row and reason")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many lines with --rows")
    parser.add_argument("--json", action="store_true", help="JSON objects, one per line")


def run_quarantine(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.warehouse import connect

    with connect(settings.warehouse, read_only=True) as con:
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = "
                             "'ingest_quarantine'").fetchone()[0]
        if not exists:
            raise UserError(f"{settings.warehouse}: nothing ingested yet")
        where, params = "", []
        if args.file:
            where = "WHERE file_name = ? OR starts_with(file_sha256, ?)"
            params = [args.file, args.file.lower()]
        if args.rows:
            cur = con.execute(
                f"SELECT file_name, row_number, field, check_id, reason FROM ingest_quarantine {where} "
                f"ORDER BY file_name, row_number, check_id, field LIMIT {int(args.limit)}", params)
        else:
            cur = con.execute(
                f"SELECT file_name, check_id, field, any_value(reason) AS reason, count(*) AS rows "
                f"FROM ingest_quarantine {where} GROUP BY file_name, check_id, field "
                "ORDER BY file_name, rows DESC, check_id, field", params)
        names = [d[0] for d in cur.description]
        results = cur.fetchall()
    if args.json:
        for r in results:
            print(json.dumps(dict(zip(names, r, strict=True))))
    else:
        print("\t".join(names))
        for r in results:
            print("\t".join("" if v is None else str(v) for v in r))
    return 0
