"""``levelcare run | schedule | runs | rerun``: the quarterly flow and the run registry."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.report.command import FORMATS as _REPORT_FORMATS
from pipelines.settings import Settings, prefect_environment

FORMATS = ",".join(_REPORT_FORMATS)


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _flow_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", metavar="DIR", required=True, type=Path, help="folder of extracts to ingest")
    parser.add_argument("--out", metavar="DIR", required=True, type=Path, help="folder for results and report")
    from pipelines.analysis.command import add_period_arguments

    add_period_arguments(parser)
    parser.add_argument("--definitions", metavar="IDS", type=_csv, help="definition ids (default: all)")
    parser.add_argument("--by", metavar="GROUPS", type=_csv, help="rate groupings (default: level of care)")
    parser.add_argument("--format", metavar="FORMATS", default=FORMATS, type=_csv, help=f"report formats ({FORMATS})")
    parser.add_argument("--definitions-dir", metavar="DIR", help="folder of your own definition files")
    parser.add_argument("--task-runner", choices=("default", "dask"), default="default",
                        help="where independent tasks run: in this process (default) or on a Dask cluster "
                             "(per-file parsing and validation, the comparative statistics)")
    from pipelines.ingest.command import KINDS, add_reading_options

    parser.add_argument("--kind", choices=KINDS, help="record kind of every file (default: detected per file)")
    parser.add_argument("--site", help="site_id for files without a site_id column; its saved mapping applies "
                        "(`levelcare map save`)")
    add_reading_options(parser)
    parser.add_argument("--reference-warehouse", metavar="PATH",
                        help="a warehouse of TEDS-D rows: the report benchmarks your outcomes against it "
                             "(levelcare benchmark --help); default: TEDS-D rows of --warehouse, if any")
    parser.add_argument("--dask-address", metavar="tcp://HOST:PORT",
                        help="Dask scheduler for --task-runner dask (default: a local cluster of 2 processes)")


def configure_run(parser: argparse.ArgumentParser) -> None:
    _flow_arguments(parser)
    parser.add_argument("--strict", action="store_true",
                        help="fail the run (exit 4, nothing analyzed) when any row is quarantined; by default "
                             "the run completes and its summary and results.json say how many rows were")


def flow_parameters(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    if not args.input.is_dir():
        raise UserError(f"--input {args.input}: not a folder")
    if not _any_record_file(args.input):
        raise UserError(f"--input {args.input}: no record files (CSV, Parquet or XLSX) in this folder")
    if args.dask_address and args.task_runner != "dask":
        raise UserError("--dask-address needs --task-runner dask")
    from pipelines.results.periods import parse_period

    defs = args.definitions_dir or (str(settings.definitions_dir) if settings.definitions_dir else None)
    return {
        "input_dir": str(args.input), "out_dir": str(args.out), "warehouse": str(settings.warehouse),
        "period": parse_period(args.period, args.quarter).text(), "definitions": args.definitions, "by": args.by,
        "formats": args.format, "definitions_dir": defs,
        "task_runner": args.task_runner, "dask_address": args.dask_address,
        "kind": args.kind, "site": args.site, "mapping": _mapping_path(args.mapping), "sheet": args.sheet,
        "strict": getattr(args, "strict", False),
        "reference_warehouse": str(Path(args.reference_warehouse).resolve()) if args.reference_warehouse else None,
    }


def _any_record_file(folder: Path) -> bool:
    """Whether ``folder`` holds a file that may be a record file (its header is read by the
    ingest, after the mapping: a folder of only such files that are not is refused there)."""
    from pipelines.ingest.steps import RECORD_SUFFIXES

    return any(f.is_file() and f.suffix.lower() in RECORD_SUFFIXES and not f.name.startswith(".")
               for f in folder.rglob("*"))


def _mapping_path(path: str | None) -> str | None:
    """The mapping file's absolute path, checked before the flow starts (one line per problem)."""
    if path is None:
        return None
    from pipelines.ingest.mapping import load_mapping

    load_mapping(path)
    return str(Path(path).resolve())


def check_dask_address(address: str | None, timeout_seconds: float = 10.0) -> None:
    """Stop with one line, before any work, when the Dask scheduler cannot be reached."""
    if not address:
        return
    import distributed

    try:
        with distributed.Client(address, timeout=timeout_seconds, set_as_default=False):
            pass
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"--dask-address {address}: cannot reach a Dask scheduler there "
                        f"({type(exc).__name__})") from None


def run_quarterly(parameters: dict[str, Any], verbose: int = 0) -> dict[str, Any]:
    """Run the quarterly flow (embedded Prefect, or the server at PREFECT_API_URL), holding
    the warehouse's write lock from the start: a second run is refused at once (exit 3).

    Prefect's own log records (a failed task's traceback among them) go to Prefect's log, not
    the terminal (:func:`pipelines.progress.quiet_console`; ``-vv`` shows them).
    """
    from pipelines.progress import quiet_console
    from pipelines.runs import new_run_id
    from pipelines.warehouse import run_lock

    with run_lock(Path(parameters["warehouse"]), timeout_seconds=0):
        os.environ.update(prefect_environment())
        check_prefect_api()
        start_embedded_server()
        from pipelines.flows.quarterly import quarterly_flow

        quiet_console(verbose)
        parameters = {**parameters, "run_id": parameters.get("run_id") or new_run_id()}
        return quarterly_flow(**parameters)


def check_prefect_api(timeout_seconds: float = 5.0) -> None:
    """Stop with one line, before any work, when PREFECT_API_URL names a server that does not
    answer."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return
    import httpx

    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=timeout_seconds).raise_for_status()
    except (httpx.HTTPError, OSError) as exc:
        raise UserError(f"PREFECT_API_URL {url}: no Prefect server answers there ({type(exc).__name__}); "
                        "start it (`prefect server start`) or unset PREFECT_API_URL to run without one") from None


def start_embedded_server() -> None:
    """Start Prefect's temporary server before the flow asks for it, and meanwhile import
    great-expectations and build its context on a second thread.

    The server is a subprocess that takes seconds to answer, during which this process only
    waits; importing great-expectations takes seconds of this process's own time. Side by side
    every run and demo waits for the longer of the two only (benchmarks/README.md,
    Measurements: pipelines/flows/command.py). The flow then finds the
    server running (Prefect keeps one per process) and the context built. Nothing starts
    when PREFECT_API_URL names a server or the temporary server is switched off.
    """
    import threading

    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    from prefect.server.api.server import SubprocessASGIServer

    from pipelines.validation import _context

    def build_context() -> None:
        # a failure here is raised again, with its message, where the ingest builds the context
        with contextlib.suppress(Exception):
            _context()

    warm = threading.Thread(target=build_context, name="levelcare-warm-up", daemon=True)
    warm.start()
    try:
        with _server_in_own_session():
            SubprocessASGIServer().start()
    finally:
        warm.join()


@contextlib.contextmanager
def _server_in_own_session():
    """Start the temporary server's process in a session of its own. A Ctrl-C at the terminal
    goes to the whole foreground process group: the server would print uvicorn's "Aborted!"
    beside levelcare's one line. Out of the group, it is stopped by Prefect at levelcare's exit,
    as after a normal run. Only Prefect's server module sees the changed Popen, only meanwhile."""
    import functools
    import subprocess
    import types

    from prefect.server.api import server

    original = server.subprocess
    shim = types.ModuleType("subprocess")
    shim.__dict__.update(subprocess.__dict__)
    shim.Popen = functools.partial(subprocess.Popen, start_new_session=True)
    server.subprocess = shim
    try:
        yield
    finally:
        server.subprocess = original


def run_run(args: argparse.Namespace, settings: Settings) -> int:
    parameters = flow_parameters(args, settings)
    check_dask_address(parameters["dask_address"])
    outcome = run_quarterly(parameters, args.verbose)
    print(f"run {outcome['run_id']} finished; outputs in {outcome['out_dir']}:")
    for f in outcome["files"]:
        print(f"  {f}")
    print(f"  {Path(outcome['out_dir']) / 'results.json'}")
    print_quarantined(outcome["ingest"])
    return 0


def print_quarantined(counts: dict[str, int]) -> None:
    """The run completed, but not every row loaded: say so where the summary is read."""
    if counts.get("rows_quarantined"):
        print(f"note: {counts['rows_quarantined']} rows of {counts['partial']} file(s) were quarantined and are "
              "not in the numbers (see `levelcare quarantine`; results.json inputs[].rows_quarantined; "
              "--strict fails such a run)")


def configure_schedule(parser: argparse.ArgumentParser) -> None:
    _flow_arguments(parser)
    parser.add_argument("--cron", required=True, help='cron schedule, e.g. "0 6 1 1,4,7,10 *"')
    parser.add_argument("--name", default="levelcare-quarterly", help="deployment name")


def run_schedule(args: argparse.Namespace, settings: Settings) -> int:
    if not os.environ.get("PREFECT_API_URL"):
        raise UserError("schedule needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)")
    try:
        from prefect.client.schemas.schedules import CronSchedule

        CronSchedule(cron=args.cron)
    except Exception:  # noqa: BLE001 - pydantic or croniter reject the text
        raise UserError(f"--cron: not a valid cron expression: {args.cron!r}") from None
    params = flow_parameters(args, settings)
    params["warehouse"] = str(Path(params["warehouse"]).resolve())
    check_dask_address(params["dask_address"])
    os.environ.update(prefect_environment())
    from pipelines.flows.quarterly import quarterly_flow

    print(f"serving deployment quarterly/{args.name} on cron {args.cron!r} (Ctrl-C stops)")
    quarterly_flow.serve(name=args.name, cron=args.cron, parameters=params)
    return 0


def configure_runs(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="every recorded run")
    listing.add_argument("--json", action="store_true",
                         help="a JSON array of {run_id, created_at, command, status, out_dir, inputs, rerun_of}")
    show = sub.add_parser("show", help="one run's manifest")
    show.add_argument("run_id", metavar="ID")
    show.add_argument("--json", action="store_true",
                      help="{run_id, created_at, command, status, out_dir, manifest} as one JSON object")


def _run_summary(r) -> dict[str, Any]:
    return {"run_id": r.run_id, "created_at": r.created_at.isoformat(timespec="seconds"), "command": r.command,
            "status": r.status, "out_dir": r.out_dir, "inputs": len(r.manifest.get("inputs", [])),
            "rerun_of": r.manifest.get("rerun_of")}


def run_runs(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines import runs
    from pipelines.jsonout import print_json
    from pipelines.warehouse import connect

    with connect(settings.warehouse, read_only=True) as con:
        if args.action == "list":
            records = runs.list_runs(con)
            if args.json:
                print_json([_run_summary(r) for r in records])
                return 0
            if not records:
                print("no runs recorded yet")
            for r in records:
                rerun_of = r.manifest.get("rerun_of")
                print(f"{r.run_id}  {r.created_at:%Y-%m-%d %H:%M}  {r.command:<6} {r.status:<9} "
                      f"{len(r.manifest.get('inputs', []))} inputs  {r.out_dir or ''}"
                      f"{f'  (rerun of {rerun_of})' if rerun_of else ''}")
        else:
            record = runs.get_run(con, args.run_id)
            if args.json:
                print_json({**_run_summary(record), "manifest": record.manifest})
            else:
                print(json.dumps(record.manifest, indent=2, sort_keys=True))
    return 0


def configure_rerun(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="ID", help="a run id from `levelcare runs list`")
    parser.add_argument("--out", metavar="DIR", required=True, type=Path, help="folder for the reproduced results")


def run_rerun(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines import runs

    outcome = runs.rerun(settings, args.run_id, args.out)
    print(f"reran {outcome['rerun_of']} as {outcome['run_id']} (recorded: `levelcare runs show "
          f"{outcome['run_id']}`); outputs in {outcome['out_dir']}:")
    for f in [*outcome["files"], str(args.out / "results.json"), str(args.out / runs.MANIFEST_FILE)]:
        print(f"  {f}")
    return 0
