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
    add_reading_options(parser)
    parser.add_argument("--run-id", help="run id recorded in the ledger")
    parser.add_argument("--json", action="store_true", help="print ledger rows as JSON objects, one per line")
    parser.add_argument("--write-dictionary", metavar="FILE", nargs="?", const="",
                        help="write the data dictionary generated from the contracts "
                             "(default data_contracts/DICTIONARY.md) and exit")


def add_reading_options(parser: argparse.ArgumentParser) -> None:
    """--mapping and --sheet (ingest and run)."""
    parser.add_argument("--mapping", metavar="FILE",
                        help="mapping file: your columns, labels and date formats onto levelcare's "
                             "(docs/mapping.md; draft one with `levelcare map suggest`). Default: the "
                             "mapping saved for --site, if any")
    parser.add_argument("--sheet", metavar="NAME",
                        help="XLSX sheet to read (default: the first sheet whose header names a record format)")


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

    skipped: list[str] = []
    rows = ingest_paths(settings, args.paths, kind=args.kind, site=args.site, run_id=args.run_id,
                        mapping=args.mapping, sheet=args.sheet, skipped=skipped)
    if not args.json:
        for note in skipped:
            print(one_line(note))
    if not rows:
        raise UserError("ingest: no record files found under the given paths")
    for row in rows:
        if args.json:
            print(row.to_json())
            continue
        print(one_line(row.line()))
        for detail in row.detail_lines():
            print(one_line(detail))
    if not args.json:
        _print_top_reasons(settings, [r.sha256 for r in rows if r.rows_quarantined and not r.problems])
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
    parser.add_argument("--rows", action="store_true", help="one line per quarantined row and reason (a whole "
                        "file's refusal: one line for the file)")
    parser.add_argument("--all", action="store_true", help="include entries superseded by a later file")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many lines with --rows")
    parser.add_argument("--json", action="store_true", help="JSON objects, one per line")


def run_quarantine(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.warehouse import connect

    with connect(settings.warehouse, read_only=True) as con:
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = "
                             "'ingest_quarantine'").fetchone()[0]
        if not exists:
            raise UserError(f"{settings.warehouse}: nothing ingested yet")
        from pipelines.ingest.core import current_relation

        # a warehouse written by an older levelcare lacks the newer columns (read-only here)
        quarantine, ledger = current_relation(con, "ingest_quarantine"), current_relation(con, "ingest_ledger")
        where, params = ["TRUE"], []
        if args.file:
            where.append("(q.file_name = ? OR starts_with(q.file_sha256, ?))")
            params = [args.file, args.file.lower()]
        if not args.all:
            where.append("q.superseded_by IS NULL")
        where_sql = "WHERE " + " AND ".join(where)
        if args.rows:
            # a whole file's refusal is one line (its rows as a range), not one line per row
            location = ("CASE WHEN l.sheet IS NOT NULL THEN 'sheet ' || l.sheet || ' row ' ELSE 'line ' END "
                        "|| q.source_line")
            cur = con.execute(
                f"SELECT file_name, row_number, location, episode_id, field, check_id, reason FROM ("
                f"SELECT q.file_name, CAST(q.row_number AS VARCHAR) AS row_number, {location} AS location, q.episode_id, "
                f"q.field, q.check_id, q.reason, q.row_number AS o FROM {quarantine} AS q "
                f"LEFT JOIN {ledger} AS l USING (file_sha256) {where_sql} AND NOT starts_with(q.reason, 'file ') "
                "UNION ALL SELECT q.file_name, min(q.row_number) || '-' || max(q.row_number), "
                "'lines ' || min(q.source_line) || '-' || max(q.source_line), NULL, any_value(q.field), "
                f"any_value(q.check_id), q.reason, min(q.row_number) FROM {quarantine} AS q "
                f"{where_sql} AND starts_with(q.reason, 'file ') GROUP BY q.file_name, q.file_sha256, q.reason) "
                f"ORDER BY file_name, o, check_id, field LIMIT {int(args.limit)}", params + params)
        else:
            cur = con.execute(
                "SELECT file_name, check_id, field, any_value(reason) AS reason, count(*) AS rows "
                f"FROM {quarantine} AS q {where_sql} GROUP BY file_name, check_id, field "
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
