"""``levelcare network package | combine``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def configure_network(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="network_command", metavar="ACTION", required=True)
    pkg = sub.add_parser("package", help="run a study on this warehouse and write its aggregate-only package")
    pkg.add_argument("--out", required=True, type=Path, metavar="DIR", help="an empty or new folder for the package")
    pkg.add_argument("--study", type=Path, metavar="FILE",
                     help="the study specification (study.yaml) from the coordinating centre (default: IOP "
                          "against residential on the headline definitions)")
    pkg.add_argument("--label", metavar="NAME", help="the site's name in the pooled results (default: the --out "
                     "folder's name)")
    pkg.add_argument("--definitions-dir", metavar="DIR", help="folder of your own definition files")
    pkg.add_argument("--disclosure", choices=("cms", "opensafely"), default="cms",
                     help="small-cell rule applied before anything is written (default cms: no count 1-10)")
    comb = sub.add_parser("combine", help="check study packages and pool them (meta-analysis, exact counts)")
    comb.add_argument("packages", nargs="+", metavar="PACKAGE",
                      help="package folders, or package locations in object storage (fsspec URLs, e.g. "
                           "s3://bucket/site-a with s3fs installed)")
    comb.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the pooled results")
    comb.add_argument("--prefect", action="store_true",
                      help="run as a Prefect flow: one task per package (fetched and checked concurrently, "
                           "retried on a read error), recorded in Prefect")


def run_network(args: argparse.Namespace, settings: Any) -> int:
    if args.network_command == "package":
        from pipelines.definitions.command import with_definitions_dir
        from pipelines.network.package import write_package
        from pipelines.network.study import load_study

        settings = with_definitions_dir(settings, args.definitions_dir)
        if not Path(settings.warehouse).exists():
            from pipelines.errors import UserError

            raise UserError(f"{settings.warehouse}: no warehouse here yet (run `levelcare ingest` first)")
        study = load_study(args.study) if args.study else None
        files = write_package(settings, args.out, study, args.label or args.out.resolve().name, args.disclosure)
        print(f"wrote the study package {args.out}: " + ", ".join(f.name for f in files))
        return 0
    if args.prefect:
        import os

        from pipelines.flows.command import check_prefect_api, start_embedded_server
        from pipelines.progress import quiet_console
        from pipelines.settings import prefect_environment

        os.environ.update(prefect_environment())
        check_prefect_api()
        start_embedded_server()
        from pipelines.network.flow import network_combine_flow

        quiet_console(args.verbose)  # Prefect's own records go to its log, not the terminal (-vv shows them)
        summary = network_combine_flow([str(p) for p in args.packages], str(args.out))
    else:
        from pipelines.network.combine import combine

        summary = combine(args.packages, args.out)
    from pipelines.network.combine import OUTPUTS

    print(f"pooled {len(summary['packages'])} packages of study {summary['study']} into {args.out}: "
          + ", ".join(OUTPUTS))
    for note in summary["notes"]:
        print(f"  note: {note}")
    return 0
