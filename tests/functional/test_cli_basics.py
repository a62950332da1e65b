"""The CLI as a user runs it: a real subprocess, real exit codes, real stderr."""

from __future__ import annotations

import subprocess
import sys
import time

from pipelines.cli import main


def _levelcare(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args], capture_output=True, text=True, timeout=300, **kw
    )


def test_help_loads_no_heavy_library():
    code = (
        "import sys, contextlib, io\n"
        "from pipelines.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('duckdb', 'polars', 'prefect', 'great_expectations', 'statsmodels', 'scipy', 'pandas')\n"
        "print('HEAVY', [m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_help_is_fast():
    start = time.perf_counter()
    result = _levelcare("--help")
    elapsed = time.perf_counter() - start
    assert result.returncode == 0
    # generous bound for a loaded CI machine; the benchmark measures the real figure
    assert elapsed < 5, elapsed


def test_unknown_command_is_a_usage_error():
    result = _levelcare("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert "Traceback" not in result.stderr


def test_busy_warehouse_is_one_line(tmp_path):
    from pipelines.errors import WarehouseBusy
    from pipelines.warehouse import write_lock

    wh = tmp_path / "w.duckdb"
    with write_lock(wh, 1):
        try:
            with write_lock(wh, 0.3):
                raise AssertionError("second writer got the lock")
        except WarehouseBusy as exc:
            assert "warehouse busy" in str(exc)
            assert "\n" not in str(exc)


def test_main_returns_zero_on_bare_invocation(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out
