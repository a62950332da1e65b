"""The pooled study for a reader, one content in two files: ``network.html`` (one
self-contained page: no script, no external file) and ``network.pdf`` (the same for printing,
laid out by the single-site report's :mod:`pipelines.report.pdf`): the study, the packages
pooled, the pooled crude rates, per definition and method the pooled estimates with
heterogeneity and a forest plot by site, and each definition's pooled covariate balance. And
``network.xlsx``, the pooled tables."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.disclosure import Rule
    from pipelines.report.model import Chart

STYLE = """body{font-family:DejaVu Sans,Arial,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border-bottom:1px solid #ddd;padding:.2rem .6rem;
text-align:left}td.n{text-align:right}h2{margin-top:2rem}.note{color:#555;font-size:.9rem}svg{max-width:100%;height:auto}"""
PACKAGE_HEADER = ("site", "period", "levelcare")
RATE_HEADER = ("definition", "group", "successes", "episodes", "rate (95% CI)", "sites pooled",
               "sites whose cell was hidden")
BALANCE_HEADER = ("covariate level", "SMD before", "SMD after", "sites pooled", "sites whose row was hidden")
#: the weighting whose pooled balance the report shows (AIPW's and IPTW-ATE's); balance.csv has all
BALANCE_WEIGHTING = "iptw_ate"
SMD_THRESHOLD = 0.1
POOLED_HEADER = ("pooling", "difference, pp (95% CI)", "sites")


def _pct(x: Any) -> str:
    return "–" if x in (None, "") else f"{100 * float(x):.1f}%"


def _pp(x: Any) -> str:
    return "–" if x in (None, "") else f"{100 * float(x):+.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class=\"n\">{html.escape(str(v))}</td>" if i in numeric else
                                    f"<td>{html.escape(str(v))}</td>" for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def heterogeneity_sentence(p: Mapping[str, Any]) -> str:
    if p.get("i2") in (None, ""):
        return "One site: no heterogeneity to measure."
    text = (f"Between-site heterogeneity: I² {100 * float(p['i2']):.0f}%, tau² {float(p['tau2']):.5f} "
            f"(Cochran's Q {float(p['q']):.2f}, p {float(p['q_p_value']):.3f}).")
    if p.get("prediction_low") not in (None, ""):
        text += (f" A new site's effect would lie between {_pp(p['prediction_low'])} and "
                 f"{_pp(p['prediction_high'])} percentage points (95% prediction interval).")
    return text


def _title(summary: Mapping[str, Any]) -> str:
    return str(summary.get("title") or summary["study"])


def _period(spec: Mapping[str, Any]) -> str:
    return str(spec.get("period") or "all data")


def _study_sentence(summary: Mapping[str, Any], esc: Callable[[str], str], code: Callable[[str], str]) -> str:
    """The study's identity in one sentence; ``esc`` escapes text and ``code`` shows an
    identifier, as the page it goes on needs."""
    spec = summary["specification"]
    return (f"Study {code(summary['study'])}, specification SHA-256 {code(summary['spec_sha256'][:16] + '…')}: "
            f"{esc(spec['arm'])} against {esc(spec['reference'])}; period {esc(_period(spec))}; "
            f"{len(summary['packages'])} site packages, aggregates only.")


def _package_rows(summary: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    return [(p["label"], (p.get("period") or {}).get("label", ""), p.get("levelcare", "")) for p in summary["packages"]]


def _group(r: Mapping[str, Any]) -> str:
    return f"{r['group']} (level group)" if r["group_by"] == "level_group" else str(r["group"])


def _rate_rows(rates: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["definition_id"], _group(r), "–" if r["numerator"] is None else r["numerator"],
             "–" if r["denominator"] is None else r["denominator"],
             f"{_pct(r['rate'])} ({_pct(r.get('ci_low'))} to {_pct(r.get('ci_high'))})", r["sites_pooled"],
             str(r["sites_hidden"]).replace(";", ", ") or "–") for r in rates]


def _smd(x: Any) -> str:
    return "–" if x in (None, "") else f"{float(x):+.3f}"


@dataclass(frozen=True)
class _Balance:
    """One definition's pooled balance under BALANCE_WEIGHTING, as both files show it."""

    heading: str
    sentence: str
    rows: list[tuple[Any, ...]]  # the levels with |SMD| above the threshold before or after


def _balances(spec: Mapping[str, Any], balance: Sequence[Mapping[str, Any]]) -> list[_Balance]:
    out = []
    for def_id in dict.fromkeys(r["definition_id"] for r in balance):
        mine = [r for r in balance if r["definition_id"] == def_id and r["method"] == BALANCE_WEIGHTING]
        if not mine:
            continue
        pooled = [r for r in mine if r.get("smd_after") is not None]
        heading = f"{def_id}: covariate balance, {spec['arm']} against {spec['reference']}"
        if not pooled:
            out.append(_Balance(heading, "No covariate level could be pooled (hidden at every site).", []))
            continue
        worst = max(pooled, key=lambda r: abs(r["smd_after"]))
        above = [r for r in pooled if max(abs(r["smd_before"]), abs(r["smd_after"])) > SMD_THRESHOLD]
        above.sort(key=lambda r: -abs(r["smd_before"]))
        hidden = sum(1 for r in mine if r.get("smd_after") is None)
        sentence = (f"Pooled from the sites' means and SDs, weighted by {BALANCE_WEIGHTING.replace('_', '-')}: "
                    f"{len(pooled)} covariate levels, the largest |SMD| after weighting {abs(worst['smd_after']):.3f} "
                    f"({worst['covariate']}), {sum(abs(r['smd_after']) > SMD_THRESHOLD for r in pooled)} above "
                    f"{SMD_THRESHOLD} after against {sum(abs(r['smd_before']) > SMD_THRESHOLD for r in pooled)} before."
                    + (f" {hidden} levels hidden at every site." if hidden else "")
                    + (" The levels above the threshold before or after:" if above else ""))
        rows = [(r["covariate"], _smd(r["smd_before"]), _smd(r["smd_after"]), r["k"],
                 str(r.get("sites_hidden") or "").replace(";", ", ") or "–") for r in above]
        out.append(_Balance(heading, sentence, rows))
    return out


def _disclosure_statement(rule: Rule) -> str:
    return (f"Aggregates only. Each package was checked on arrival against the disclosure rule it was made "
            f"under, and the pooled counts against the {rule.name} rule (no count from 1 to {rule.high}); a "
            "count a site hid is left out of the pooled count, and that site is named under 'sites whose cell "
            "was hidden'.")


@dataclass(frozen=True)
class _Comparison:
    """One definition and method, as both files show it."""

    heading: str
    not_estimable: str  # why nothing was pooled ("" when something was)
    rows: list[tuple[Any, ...]]  # the pooled estimates, under POOLED_HEADER
    sentence: str  # the heterogeneity
    sites_not_estimable: str  # the sites left out of the pooling ("" when none)
    chart: Chart | None  # the forest plot (None when nothing was pooled)


def _comparisons(spec: Mapping[str, Any], pooled: Sequence[Mapping[str, Any]],
                 sites: Sequence[Mapping[str, Any]]) -> list[_Comparison]:
    from pipelines.report import charts

    out = []
    keys = list(dict.fromkeys((r["definition_id"], r["method"]) for r in pooled))
    for k, (def_id, method) in enumerate(keys):
        mine = [r for r in pooled if (r["definition_id"], r["method"]) == (def_id, method)]
        heading = f"{def_id}: {method}, {spec['arm']} minus {spec['reference']}"
        shown = [r for r in mine if r.get("estimate") is not None]
        if not shown:
            out.append(_Comparison(heading, f"Not estimable: {mine[0].get('note') or ''}.", [], "", "", None))
            continue
        rows = [(r["pooling"] + (" (primary)" if r.get("primary") else ""),
                 f"{_pp(r['estimate'])} ({_pp(r['ci_low'])} to {_pp(r['ci_high'])})", r["k"]) for r in shown]
        primary = next((r for r in shown if r.get("primary")), shown[0])
        # the heterogeneity is the meta-analysis's (a one-shot primary has none of its own)
        meta_row = next((r for r in shown if r.get("i2") not in (None, "")), primary)
        left_out = ("Not estimable at (crude counts only): "
                    f"{str(primary['sites_not_estimable']).replace(';', ', ')}."
                    if primary.get("sites_not_estimable") else "")
        chart = charts.site_forest([s for s in sites if (s["definition_id"], s["method"]) == (def_id, method)],
                                   shown, f"{def_id}, {method}: by site and pooled", chart_id=f"chart-forest-{k}")
        out.append(_Comparison(heading, "", rows, heterogeneity_sentence(meta_row), left_out, chart))
    return out


def _code(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


def _write_html(out: Path, summary: Mapping[str, Any], rates: Sequence[Mapping[str, Any]],
                comparisons: Sequence[_Comparison], balances: Sequence[_Balance]) -> Path:
    parts = [f"<h1>{html.escape(_title(summary))}</h1>", f"<p>{_study_sentence(summary, html.escape, _code)}</p>",
             _table(PACKAGE_HEADER, _package_rows(summary))]
    parts += [f"<p class=\"note\">{html.escape(n)}</p>" for n in summary.get("notes", [])]
    parts.append("<h2>Pooled crude rates</h2>")
    parts.append(_table(RATE_HEADER, _rate_rows(rates), numeric=(2, 3)))
    for c in comparisons:
        parts.append(f"<h2>{html.escape(c.heading)}</h2>")
        if c.chart is None:
            parts.append(f"<p>{html.escape(c.not_estimable)}</p>")
            continue
        parts.append(_table(POOLED_HEADER, c.rows))
        parts.append(f"<p>{html.escape(c.sentence)}</p>")
        if c.sites_not_estimable:
            parts.append(f"<p>{html.escape(c.sites_not_estimable)}</p>")
        parts.append(f"<figure>{c.chart.svg}<figcaption class=\"note\">{html.escape(c.chart.caption)}</figcaption>"
                     "</figure>")
    for b in balances:
        parts.append(f"<h2>{html.escape(b.heading)}</h2><p>{html.escape(b.sentence)}</p>")
        if b.rows:
            parts.append(_table(BALANCE_HEADER, b.rows, numeric=(1, 2, 3)))
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{html.escape(_title(summary))}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n")
    path = Path(out) / "network.html"
    path.write_text(page, encoding="utf-8")
    return path


def _write_pdf(out: Path, summary: Mapping[str, Any], rates: Sequence[Mapping[str, Any]],
               comparisons: Sequence[_Comparison], balances: Sequence[_Balance], rule_name: str) -> Path:
    """The HTML page's content on landscape A4, in the single-site report's layout: its styles,
    tables fitted to their text, figures, footer and outline."""
    from datetime import date

    import pandas as pd

    from pipelines import disclosure
    from pipelines.report import pdf
    from pipelines.report.model import Report, Section, Table

    def table(table_id: str, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]],
              counts: tuple[str, ...] = (), note: str = "") -> Table:
        # cells as the HTML writes them (str), so the report's number formats never re-format them
        frame = pd.DataFrame([[str(v) for v in r] for r in rows], columns=list(header))
        return Table(id=table_id, title=title, frame=frame, count_cols=counts, note=note)

    sections = [Section("packages", "Site packages", paragraphs=list(summary.get("notes", [])),
                        tables=[table("packages", "Packages combined", PACKAGE_HEADER, _package_rows(summary))]),
                Section("rates", "Pooled crude rates",
                        tables=[table("rates", "Successes and episodes summed over the sites that show the cell",
                                      RATE_HEADER, _rate_rows(rates), counts=("successes", "episodes"))])]
    for k, c in enumerate(comparisons):
        # the heterogeneity under the pooled estimates, as on the page; the forest plot leads, so
        # that the heading starts the page the plot is on
        note = " ".join(x for x in (c.sentence, c.sites_not_estimable) if x)
        sections.append(Section(f"comparison-{k}", c.heading, unavailable=[c.not_estimable] if c.not_estimable else [],
                                charts=[c.chart] if c.chart else [],
                                tables=[table(f"pooled-{k}", "Pooled estimates", POOLED_HEADER, c.rows, note=note)]))
    for k, b in enumerate(balances):
        sections.append(Section(f"balance-{k}", b.heading, paragraphs=[b.sentence],
                                tables=[table(f"balance-{k}", "Covariate levels above the threshold", BALANCE_HEADER,
                                              b.rows)] if b.rows else []))
    rule = disclosure.get_rule(rule_name)
    report = Report(title=_title(summary), period=_period(summary["specification"]), run_id="",
                    created_at=date.today().isoformat(), rule_name=rule.name, marker=rule.marker,
                    disclosure_note=_disclosure_statement(rule), sections=sections)
    report.check()
    lay = pdf.REPORT_LAYOUT
    st = pdf.Styles(lay.body_size)
    story = [pdf.paragraph(report.title, st.title),
             pdf.paragraph(_study_sentence(summary, str, str), st.small),
             pdf.paragraph(f"Combined {report.created_at} · disclosure rule {rule.name}", st.small),
             pdf.paragraph(report.disclosure_note, st.small)]
    for s in sections:
        story += pdf.section_story(report, s, st, lay)
    path = Path(out) / "network.pdf"
    pdf.build_pdf(report, path, lay, story, report.title)
    return path


def write_network_report(out: Path, summary: Mapping[str, Any], rates: Sequence[Mapping[str, Any]],
                         pooled: Sequence[Mapping[str, Any]], sites: Sequence[Mapping[str, Any]],
                         rule: str, balance: Sequence[Mapping[str, Any]]) -> list[Path]:
    """``network.html`` and ``network.pdf``, each forest plot drawn once for both; ``rule``: the
    disclosure rule the pooled counts were checked against (the PDF checks its tables again);
    ``balance``: the pooled balance rows."""
    comparisons = _comparisons(summary["specification"], pooled, sites)
    balances = _balances(summary["specification"], balance)
    return [_write_html(out, summary, rates, comparisons, balances),
            _write_pdf(out, summary, rates, comparisons, balances, rule)]


def write_network_workbook(out: Path, tables: Mapping[str, tuple[Sequence[str], Sequence[Mapping[str, Any]]]]) -> Path:
    """``network.xlsx``: one sortable sheet per pooled table (rates, comparisons, sites), text
    that a spreadsheet would read as a formula escaped."""
    from openpyxl import Workbook

    from pipelines.writers import safe_cell

    wb = Workbook()
    wb.remove(wb.active)
    for name, (columns, rows) in tables.items():
        ws = wb.create_sheet(name)
        ws.append(list(columns))
        for r in rows:
            ws.append([safe_cell(r.get(c)) for c in columns])
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = ws.dimensions
    path = Path(out) / "network.xlsx"
    wb.save(path)
    return path
