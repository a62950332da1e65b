"""The report as one self-contained HTML file: styles, script and charts (inline SVG) embedded."""

from __future__ import annotations

import re
from pathlib import Path

from markupsafe import Markup, escape

from pipelines.report.model import Report

TEMPLATES = Path(__file__).resolve().parent / "templates"

# A badge's status as the word shown (readable without colour) and its style (report.css).
BADGES = {"pass": ("Pass", "badge-pass"), "warn": ("Warn", "badge-warn"), "fail": ("Fail", "badge-fail"),
          "n/a": ("N/A", "badge-na")}

def badge(status: str) -> tuple[str, str]:
    """(word, css class) of a badge status; an unknown status is shown as it is, styled as N/A."""
    key = str(status).strip().lower()
    return BADGES.get(key, (str(status), "badge-na"))


def wbr(text: object) -> Markup:
    """Escaped text with a line-break opportunity (``<wbr>``) after each underscore, so that an
    identifier such as ``has_prior_episodes`` can wrap at its underscores, never mid-word."""
    return Markup(str(escape(text)).replace("_", "_<wbr>"))


def label_svg(svg: str, label_id: str) -> Markup:
    """An inline chart named by its caption: the root ``<svg>`` gets ``role="img"`` and
    ``aria-labelledby`` the figcaption's id, in place of any ``aria-label`` it had."""
    start = svg.find("<svg")
    if start < 0:
        return Markup(svg)
    end = svg.index(">", start)
    tag = re.sub(r'\s(?:aria-label|aria-labelledby|role)="[^"]*"', "", svg[start + 4:end])
    root = f'<svg role="img" aria-labelledby="{escape(label_id)}"{tag}>'
    return Markup(svg[:start] + root + svg[end + 1:])


def render_html(report: Report) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,  # a misspelt field fails loudly instead of printing nothing
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["wbr"] = wbr
    env.filters["label_svg"] = label_svg
    env.globals.update(badge=badge)
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return env.get_template("report.html.j2").render(report=report, css=css)


def write_html(report: Report, path: Path) -> Path:
    report.check()
    path.write_text(render_html(report), encoding="utf-8")
    return path
