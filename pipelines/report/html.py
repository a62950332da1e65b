"""The report as one self-contained HTML file: styles, script and charts (inline SVG) embedded."""

from __future__ import annotations

from pathlib import Path

from pipelines.report.model import Report

TEMPLATES = Path(__file__).resolve().parent / "templates"


def render_html(report: Report) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,  # a misspelt field fails loudly instead of printing nothing
        trim_blocks=True, lstrip_blocks=True,
    )
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return env.get_template("report.html.j2").render(report=report, css=css)


def write_html(report: Report, path: Path) -> Path:
    report.check()
    path.write_text(render_html(report), encoding="utf-8")
    return path
