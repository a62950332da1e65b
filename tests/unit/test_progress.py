"""The live status line: drawn in place on a terminal, absent elsewhere, cleared before output."""

from __future__ import annotations

import io
import logging

import pytest

from pipelines import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch):
    screen = _Terminal()
    monkeypatch.setattr(progress, "REDRAW_EVERY", 0.0)
    assert progress.enable_live(screen)
    yield screen
    progress.disable_live()


def test_status_redraws_one_line_with_the_elapsed_time(terminal):
    progress.stage("ingest")
    progress.status("ingest", "a.csv, 1,000 rows: read done")
    progress.status("ingest", "a.csv, 1,000 rows: typed batch done")
    assert terminal.getvalue() == ("\r\x1b[Kingest    a.csv, 1,000 rows: read done (0:00)"
                                   "\r\x1b[Kingest    a.csv, 1,000 rows: typed batch done (0:00)")


def test_a_line_clears_the_status_first(terminal, capsys):
    progress.status("marts", "model 3/9 int_episodes")
    progress.line("report", "report.html")
    assert terminal.getvalue().endswith("\r\x1b[K")  # erased before the line is printed
    err = capsys.readouterr().err
    assert err.endswith("] report    report.html\n") and "\x1b" not in err
    progress.clear()  # nothing shown: nothing written
    assert terminal.getvalue().count("\r\x1b[K") == 2


def test_no_live_line_off_a_terminal(capsys):
    assert not progress.enable_live(io.StringIO())
    progress.status("analyze", "comparisons iop vs residential: 1/4 populations fitted")
    progress.clear()
    assert capsys.readouterr() == ("", "")


def test_library_records_are_kept_off_the_terminal_handlers():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        # quiet_console only filters handlers writing to the terminal: point this one at it
        handler.stream = __import__("sys").stderr
        progress.quiet_console()
        handler.stream = stream
        logging.getLogger("prefect.task_runs").error("Task run failed with exception: Traceback ...")
        logging.getLogger("pipelines.ingest").warning("kept")
    finally:
        root.removeHandler(handler)
    assert stream.getvalue() == "kept\n"


def test_clock_format():
    assert [progress._clock(s) for s in (0, 59.9, 61, 3600 + 62)] == ["0:00", "0:59", "1:01", "1:01:02"]
