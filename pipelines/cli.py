"""The ``levelcare`` command line.

This module only parses arguments and dispatches: each command lives in a module that
exposes ``configure_<command>(parser)`` and ``run_<command>(args, settings) -> int``. Only
the chosen command's module is imported, so ``levelcare --help`` loads no heavy library.

User errors (:class:`pipelines.errors.UserError`) print one line on stderr and exit with
their code; anything else is an internal error and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from pipelines import __version__
from pipelines.errors import UserError, one_line

# command -> (module, one-line help). Order is the order shown by --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("pipelines.demo", "synthesize data and run the whole job into --out (start here)"),
    "run": ("pipelines.flows.command", "run the quarterly flow: ingest, validate, analyze, report"),
    "synth": ("pipelines.synth.command", "write synthetic discharges/follow-ups with known truth"),
    "ingest": ("pipelines.ingest.command", "validate files and load them into the warehouse"),
    "quarantine": ("pipelines.ingest.command", "list quarantined rows' reasons"),
    "map": ("pipelines.ingest.map_command", "draft (suggest) or save a mapping of your export's columns and codes"),
    "definitions": ("pipelines.definitions.command", "list, show or check success definitions"),
    "analyze": ("pipelines.analysis.command", "compute rates and comparisons into --out"),
    "benchmark": ("pipelines.analysis.benchmark", "compare your outcomes with TEDS-D's, adjusted for case mix (O/E)"),
    "network": ("pipelines.network.command", "network studies: package a study's aggregates, or combine packages"),
    "report": ("pipelines.report.command", "write the quarterly report (HTML, PDF, XLSX)"),
    "export": ("pipelines.export.command", "write the accreditation export"),
    "schedule": ("pipelines.flows.command", "register a scheduled deployment of the quarterly flow"),
    "runs": ("pipelines.flows.command", "list or show recorded runs"),
    "rerun": ("pipelines.flows.command", "reproduce a recorded run's results"),
}


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--warehouse",
        metavar="PATH",
        default=default,
        help="DuckDB warehouse file (default ./levelcare.duckdb, or $LEVELCARE_WAREHOUSE)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS if suppress else 0,
        help="more log output (counts and ids only, never row values)",
    )


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="levelcare",
        description="Outcomes research for behavioral health: how do people discharged from IOP "
        "fare compared with residential treatment, under every common definition of success?",
    )
    parser.add_argument("--version", action="version", version=f"levelcare {__version__}")
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        _common(sp, suppress=True)
        if name == command:
            importlib.import_module(module).__dict__[f"configure_{name}"](sp)
            _common_everywhere(sp)
    return parser


def _common_everywhere(parser: argparse.ArgumentParser) -> None:
    """Give nested sub-commands (``runs list``, ``definitions show``) the common options too,
    so ``--warehouse`` works wherever the user puts it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if not any("--warehouse" in a.option_strings for a in child._actions):
                    _common(child, suppress=True)
                _common_everywhere(child)


def _command_of(argv: Sequence[str]) -> str | None:
    skip_next = False
    for token in argv:
        if skip_next:
            skip_next = False
            continue
        if token == "--warehouse":
            skip_next = True
            continue
        if token.startswith("-"):
            continue
        return token if token in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point; callable from tests with explicit ``argv`` and ``environ``."""
    from pipelines.settings import Settings

    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    command = _command_of(argv)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Warehouse and outputs hold health records: readable by their owner only.
    os.umask(0o077)
    from pipelines.progress import enable_live

    enable_live()  # a live status line on a terminal; nothing extra when stderr is a file or pipe
    try:
        settings = Settings.from_options(warehouse=args.warehouse, environ=environ)
        module = importlib.import_module(COMMANDS[command][0])
        return int(module.__dict__[f"run_{command}"](args, settings) or 0)
    except UserError as exc:
        print(f"levelcare: error: {one_line(exc)}", file=sys.stderr)
        for problem in getattr(exc, "problems", ()):
            print(f"  - {one_line(problem)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:
        # output piped into `head` and the like: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        if _is_interrupt(exc):
            return _interrupted()
        raise
    finally:
        from pipelines.progress import clear

        clear()


def _is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C during a DuckDB query arrives as DuckDB's InterruptException, or (executemany and
    some other paths of duckdb 2.0) as a RuntimeError "Query interrupted", not KeyboardInterrupt."""
    kind = type(exc)
    return ((kind.__name__ == "InterruptException" and kind.__module__.lstrip("_").startswith("duckdb"))
            or (kind is RuntimeError and str(exc) == "Query interrupted"))


def _interrupted() -> int:
    from pipelines.progress import clear

    clear()
    print("levelcare: interrupted; files loaded before stay loaded, nothing half-loaded is kept",
          file=sys.stderr)
    return 130


def entrypoint() -> None:
    """The ``levelcare`` command and ``python -m pipelines``. The glibc heap settings
    (pipelines/heap.py) are made here, before main() starts a thread, and only here: a notebook,
    a Dask worker or anything else that imports ``pipelines`` keeps its C heap as it was."""
    from pipelines import heap

    heap.configure()
    code = main()
    _quiet_shutdown()
    sys.exit(code)


def _quiet_shutdown() -> None:
    """levelcare has said all it has to say: what libraries print while the interpreter shuts
    down (duckdb 2.0's nanobind "leaked instance" report, dozens of lines) is not for the user.
    ``LEVELCARE_SHOW_SHUTDOWN=1`` keeps it, for debugging."""
    if os.environ.get("LEVELCARE_SHOW_SHUTDOWN"):
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


if __name__ == "__main__":
    entrypoint()
