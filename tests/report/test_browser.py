"""The HTML report opened in headless Chromium (Debian's /usr/bin/chromium; never downloaded).

Console messages are read from Chromium's own log (``--enable-logging=stderr``: every
``console.*`` call and uncaught error is logged as a ``CONSOLE`` line); the page writes none, so
any such line is a failure. A deliberately broken page proves the check catches errors.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                       "(apt-get install chromium); browser tests skipped"),
]


def _chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", *extra, page.resolve().as_uri()],
        check=False, capture_output=True, text=True, timeout=180,
    )


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


def test_a_broken_page_is_caught(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><p>x</p><script>notDefined();</script>"
                    '<img src="https://cdn.example.invalid/x.png"></body></html>', encoding="utf-8")
    run = _chromium(page, tmp_path / "profile", "--dump-dom")
    lines = console_lines(run.stderr)
    assert any("notDefined is not defined" in line for line in lines), run.stderr[-2000:]


def test_report_renders_with_no_console_errors_and_every_chart(written, tmp_path):
    run = _chromium(written[".html"], tmp_path / "profile", "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    assert console_lines(run.stderr) == []
    dom = run.stdout
    for cid in ("chart-rates", "chart-forest", "chart-love", "chart-overlap", "chart-km", "chart-trend",
                "chart-funnel", "chart-stepdown"):
        assert re.search(rf'<figure id="{cid}" class="chart">\s*<svg', dom), cid
    # the script ran: captions are clickable only after it did
    assert "Outcomes after intensive outpatient" in dom


def test_screenshot_is_taken_and_not_blank(written, tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    shot = tmp_path / "report.png"
    run = _chromium(written[".html"], tmp_path / "profile", "--window-size=1200,3000", "--hide-scrollbars",
                    f"--screenshot={shot}")
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    assert console_lines(run.stderr) == []
    img = np.asarray(mpimg.imread(shot))[..., :3]
    assert img.shape[:2] == (3000, 1200)
    assert (img < 0.9).any(axis=-1).mean() > 0.02  # text and charts, not a white page
