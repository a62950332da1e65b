"""``levelcare definitions list [--json] | show ID | check FILE``."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from pipelines.errors import UserError
from pipelines.settings import Settings


def configure_definitions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--definitions-dir", metavar="DIR",
        help="folder of your own definition files (default $LEVELCARE_DEFINITIONS or ./definitions)",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list built-in and user definitions")
    listing.add_argument("--json", action="store_true",
                         help="print a JSON array of {id, version, origin, label} objects, not the table")
    show = actions.add_parser("show", help="show one definition")
    show.add_argument("id", metavar="ID")
    check = actions.add_parser("check", help="check a definition file without loading it into the workspace")
    check.add_argument("file", metavar="FILE", type=Path)


def with_definitions_dir(settings: Settings, folder: str | None) -> Settings:
    return dataclasses.replace(settings, definitions_dir=Path(folder)) if folder else settings


def run_definitions(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.definitions import registry

    settings = with_definitions_dir(settings, args.definitions_dir)
    if args.action == "check":
        is_builtin = args.file.resolve().parent == registry.builtin_dir().resolve()
        definition = registry.load_file(args.file, origin="built-in" if is_builtin else "user")
        builtins = registry.load_registry(None)
        replaces = ""
        if not is_builtin:
            registry.merge(builtins, [definition])  # raises on a built-in id without a higher version
            replaces = " (replaces the built-in)" if definition.id in builtins else ""
        print(f"ok: {definition.id} version {definition.version}{replaces}")
        return 0

    defs = registry.load_registry(settings.definitions_dir)
    if args.action == "list":
        if args.json:
            rows = [{"id": d.id, "version": d.version, "origin": d.origin, "label": d.label}
                    for d in defs.values()]
            print(json.dumps(rows, indent=2, ensure_ascii=False))
            return 0
        width = max(len(d) for d in defs)
        for d in defs.values():
            print(f"{d.id:<{width}}  v{d.version:<3} {d.origin:<8}  {d.label}")
        return 0

    if args.id not in defs:
        raise UserError(f"unknown definition {args.id!r} (see `levelcare definitions list`)")
    d = defs[args.id]
    print(f"id:          {d.id}")
    print(f"version:     {d.version}")
    print(f"label:       {d.label}")
    print(f"origin:      {d.origin}" + (f" ({d.path})" if d.path else ""))
    print(f"description: {d.description}")
    print(f"population:  {d.population or '(every episode)'}")
    print(f"success:     {d.success}")
    print(f"missing:     {d.missing}")
    print(f"window_days: {d.window_days if d.window_days is not None else '-'}")
    print(f"followup: {d.followup or '-'}")
    print(f"requires:    {', '.join(d.requires) or '-'}")
    print("references:")
    for ref in d.references:
        print(f"  - {ref}")
    return 0
