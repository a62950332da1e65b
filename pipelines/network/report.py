"""``network.html``: the pooled study for a reader — one self-contained page (no script, no
external file): the study, the packages pooled, the pooled crude rates, and per definition and
method the pooled estimates with heterogeneity and a forest plot by site."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

STYLE = """body{font-family:DejaVu Sans,Arial,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border-bottom:1px solid #ddd;padding:.2rem .6rem;
text-align:left}td.n{text-align:right}h2{margin-top:2rem}.note{color:#555;font-size:.9rem}svg{max-width:100%;height:auto}"""


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


def write_network_report(out: Path, summary: Mapping[str, Any], rates: Sequence[Mapping[str, Any]],
                         pooled: Sequence[Mapping[str, Any]], sites: Sequence[Mapping[str, Any]]) -> Path:
    from pipelines.report import charts

    spec = summary["specification"]
    parts = [f"<h1>{html.escape(str(summary.get('title') or summary['study']))}</h1>",
             (f"<p>Study <code>{html.escape(summary['study'])}</code>, specification SHA-256 "
             f"<code>{html.escape(summary['spec_sha256'][:16])}…</code>: {html.escape(spec['arm'])} against "
             f"{html.escape(spec['reference'])}; period {html.escape(str(spec.get('period') or 'all data'))}; "
             f"{len(summary['packages'])} site packages, aggregates only.</p>"),
             _table(["site", "period", "levelcare"], [(p["label"], (p.get("period") or {}).get("label", ""),
                                                       p.get("levelcare", "")) for p in summary["packages"]])]
    parts += [f"<p class=\"note\">{html.escape(n)}</p>" for n in summary.get("notes", [])]
    parts.append("<h2>Pooled crude rates</h2>")
    parts.append(_table(["definition", "level of care", "successes", "episodes", "rate (95% CI)", "sites pooled",
                         "sites whose cell was hidden"],
                        [(r["definition_id"], r["level_of_care"], r["numerator"], r["denominator"],
                          f"{_pct(r['rate'])} ({_pct(r['ci_low'])} to {_pct(r['ci_high'])})", r["sites_pooled"],
                          str(r["sites_hidden"]).replace(";", ", ") or "–") for r in rates], numeric=(2, 3)))
    keys = list(dict.fromkeys((r["definition_id"], r["method"]) for r in pooled))
    for k, (def_id, method) in enumerate(keys):
        mine = [r for r in pooled if (r["definition_id"], r["method"]) == (def_id, method)]
        parts.append(f"<h2>{html.escape(def_id)}: {html.escape(method)}, {html.escape(spec['arm'])} minus "
                     f"{html.escape(spec['reference'])}</h2>")
        shown = [r for r in mine if r.get("estimate") is not None]
        if not shown:
            parts.append(f"<p>Not estimable: {html.escape(str(mine[0].get('note') or ''))}.</p>")
            continue
        parts.append(_table(["pooling", "difference, pp (95% CI)", "sites"],
                            [(r["pooling"] + (" (primary)" if r.get("primary") else ""),
                              f"{_pp(r['estimate'])} ({_pp(r['ci_low'])} to {_pp(r['ci_high'])})", r["k"])
                             for r in shown]))
        primary = next((r for r in shown if r.get("primary")), shown[0])
        parts.append(f"<p>{html.escape(heterogeneity_sentence(primary))}</p>")
        if primary.get("sites_not_estimable"):
            parts.append("<p>Not estimable at (crude counts only): "
                         f"{html.escape(str(primary['sites_not_estimable']).replace(';', ', '))}.</p>")
        chart = charts.site_forest([s for s in sites if (s["definition_id"], s["method"]) == (def_id, method)],
                                   shown, f"{def_id}, {method}: by site and pooled", chart_id=f"chart-forest-{k}",
                                   png=False)
        parts.append(f"<figure>{chart.svg}<figcaption class=\"note\">{html.escape(chart.caption)}</figcaption></figure>")
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{html.escape(str(summary.get('title') or summary['study']))}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n")
    path = Path(out) / "network.html"
    path.write_text(page, encoding="utf-8")
    return path


def write_network_workbook(out: Path, tables: Mapping[str, tuple[Sequence[str], Sequence[Mapping[str, Any]]]]) -> Path:
    """``network.xlsx``: one sortable sheet per pooled table (rates, comparisons, sites), text
    that a spreadsheet would read as a formula escaped."""
    from openpyxl import Workbook

    from pipelines.report.xlsx import safe_cell

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
