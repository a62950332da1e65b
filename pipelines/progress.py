"""Progress of long work: lines a person reads while it runs, and the same lines in Prefect.

Two kinds of output, both on stderr (stdout is for results and ``--json``):

* :func:`line` -- a step's outcome ("ingest  discharges.csv: loaded ..."): always printed, and
  logged through Prefect's run logger when called inside a flow or task run, so the Prefect
  UI shows it beside the run;
* :func:`status` -- what is happening now ("analyze  definition 7/27 completion: fits"), with
  the elapsed time: redrawn in place on one line when stderr is a terminal and the CLI turned
  the live display on (:func:`enable_live`), otherwise not printed; logged to the Prefect run
  at most every ``PREFECT_EVERY`` seconds, so a long analyze shows signs of life in the UI.

Lines carry counts, file names and ids only, never a person's values. Nothing here imports
Prefect: a run logger is looked for only when Prefect is already imported.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import sys
import threading
import time
from typing import TextIO

log = logging.getLogger("levelcare.progress")

REDRAW_EVERY = 0.25  # seconds between redraws of the live line
PREFECT_EVERY = 15.0  # seconds between status lines sent to Prefect's log

_lock = threading.Lock()
_live: TextIO | None = None  # the terminal the live line is drawn on (None: no live line)
_shown = False  # a live line is on the screen now
_last_draw = 0.0
_last_prefect = 0.0
_stage_start: dict[str, float] = {}


def enable_live(stream: TextIO | None = None) -> bool:
    """Draw :func:`status` lines in place on ``stream`` (default stderr) if it is a terminal;
    returns whether it is."""
    global _live
    stream = sys.stderr if stream is None else stream
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    _live = stream if is_tty else None
    return is_tty


def disable_live() -> None:
    global _live
    clear()
    _live = None


def _prefect_logger() -> logging.Logger | logging.LoggerAdapter | None:
    """The current Prefect flow or task run's logger, or None outside a run."""
    if "prefect" not in sys.modules:
        return None
    try:
        from prefect.context import FlowRunContext, TaskRunContext
        from prefect.logging import get_run_logger

        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return None
        return get_run_logger()
    except Exception:  # noqa: BLE001 - no run context in this thread, or Prefect shutting down
        return None


def _to_prefect(text: str) -> None:
    logger = _prefect_logger()
    if logger is not None:
        # only Prefect's API handler: the terminal already has the line (see quiet_console)
        logger.info(text, extra={"levelcare_progress": True})


def clear() -> None:
    """Erase the live line, if one is shown."""
    global _shown
    with _lock:
        if _shown and _live is not None:
            _live.write("\r\x1b[K")
            _live.flush()
        _shown = False


def line(step: str, detail: str) -> None:
    """One progress line: ``[HH:MM:SS] step detail`` on stderr, and in the Prefect run's log."""
    clear()
    text = f"{step:<9} {detail}"
    print(f"[{dt.datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)
    log.info("%s", text)
    _to_prefect(text)


def stage(step: str) -> None:
    """Start the clock of ``step`` (its elapsed time is shown by :func:`status`)."""
    _stage_start[step] = time.monotonic()


def status(step: str, detail: str) -> None:
    """What ``step`` is doing now (see the module docstring); cheap enough to call per item."""
    global _shown, _last_draw, _last_prefect
    now = time.monotonic()
    elapsed = now - _stage_start.setdefault(step, now)
    text = f"{step:<9} {detail} ({_clock(elapsed)})"
    if _live is not None and now - _last_draw >= REDRAW_EVERY:
        with _lock:
            _last_draw = now
            width = shutil.get_terminal_size().columns
            _live.write("\r\x1b[K" + text[: max(width - 1, 20)])
            _live.flush()
            _shown = True
    if now - _last_prefect >= PREFECT_EVERY and _prefect_logger() is not None:
        _last_prefect = now
        _to_prefect(text)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _LibraryNoise(logging.Filter):
    """Drops the records of Prefect, its server and Dask from a terminal handler."""

    PREFIXES = ("prefect", "uvicorn", "fastapi", "distributed", "httpx", "levelcare.progress")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(self.PREFIXES)


def quiet_console(verbose: int = 0) -> None:
    """Keep Prefect's own log records (a failed task's traceback, "Finished in state ...")
    off the terminal; they still reach Prefect's log (its API handler) and so the UI.

    Call after Prefect configured logging (importing ``prefect.flow`` does). With ``-vv``
    (``verbose`` >= 2) nothing is filtered. levelcare's progress lines are printed by
    :func:`line` itself, so they are filtered from the handlers too (no line twice).
    """
    if verbose >= 2:
        return
    terminals = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
    for name in ("", "uvicorn", "fastapi", "prefect"):
        for handler in logging.getLogger(name).handlers:
            if (isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in terminals
                    and not any(isinstance(f, _LibraryNoise) for f in handler.filters)):
                handler.addFilter(_LibraryNoise())
