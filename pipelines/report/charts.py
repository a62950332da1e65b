"""Report charts (matplotlib, Agg): each drawn once, kept as inline SVG for the HTML and PNG
for the PDF. Inputs are disclosed aggregates only; nothing is plotted per person.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.report.model import Chart

# Okabe-Ito colours (safe for colour-blind readers), each series also with its own marker and
# line style, so a chart printed in grayscale still tells them apart
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#000000", "#E69F00", "#56B4E9", "#999999")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (8, 2)))
ARM, REFERENCE = PALETTE[0], PALETTE[1]


def style(i: int) -> dict[str, Any]:
    """The i-th series' colour, marker and line style."""
    return {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "svg.fonttype": "none",  # text stays text: smaller files, selectable, no glyph ids
        "svg.hashsalt": "levelcare",  # stable clip-path ids, so the same input gives the same file
        "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.color": "#e3e3e3", "grid.linewidth": 0.6,
        "font.family": "DejaVu Sans",
    })
    return plt


def _finish(fig, chart_id: str, title: str, caption: str = "", *, png: bool = True, tight: bool = True,
            dpi: int = 130) -> Chart:
    """The figure as inline SVG and, unless ``png`` is False (a chart for an HTML page only), PNG
    at ``dpi``. ``tight``: crop to the drawing (matplotlib draws the figure twice per format to
    find it); a figure laid out already is saved as it is, in one pass."""
    plt = _plt()
    buf = io.StringIO()
    bbox = "tight" if tight else None
    fig.savefig(buf, format="svg", bbox_inches=bbox, metadata={"Date": None, "Creator": "levelcare"})
    image = io.BytesIO()
    if png:
        fig.savefig(image, format="png", dpi=dpi, bbox_inches=bbox, metadata={"Software": "levelcare"})
    plt.close(fig)
    return Chart(id=chart_id, title=title, svg=_inline(buf.getvalue(), chart_id), png=image.getvalue(),
                 caption=caption)


def _inline(svg: str, prefix: str) -> str:
    """An SVG document made safe to inline beside others: no XML prologue, ids prefixed so two
    charts never share a clip-path id."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', svg)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{prefix}" ', 1)
    return svg


def _pct(ax, axis: str = "x") -> None:
    from matplotlib.ticker import PercentFormatter

    # decimals chosen from the axis range: a tick at 42.5% never reads "43%"
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(PercentFormatter(1.0, decimals=None))


def _yerr(rates: Sequence[float], lows: Sequence[float | None], highs: Sequence[float | None]) -> list[list[float]]:
    """Error-bar lengths below and above each rate. Never negative: at a rate of 0 (or 1) the
    interval's bound can lie a rounding error beyond it (matplotlib refuses negative lengths),
    and a bound the results do not hold draws no bar."""
    below = [max(0.0, r - lo) if lo is not None else 0.0 for r, lo in zip(rates, lows, strict=True)]
    above = [max(0.0, hi - r) if hi is not None else 0.0 for r, hi in zip(rates, highs, strict=True)]
    return [below, above]


def rates_by_definition(rows: Sequence[Mapping[str, Any]], labels: Mapping[str, str],
                        groups: Sequence[str], *, chart_id: str = "chart-rates",
                        title: str = "Success rate by definition and level of care", compact: bool = False) -> Chart:
    """Dot and 95% interval per definition and level: how the rate moves with the definition.
    Each level has its own marker as well as its colour."""
    plt = _plt()
    defs = [d for d in labels if any(str(r.get("definition_id")) == d for r in rows)]
    width = 6.2 if compact else 8
    fig, ax = plt.subplots(figsize=(width, (0.42 if compact else 0.34) * len(defs) * max(1, len(groups) / 4) + 1.2))
    k = len(groups)
    hidden = 0
    for gi, g in enumerate(groups):
        ys, xs, lo, hi = [], [], [], []
        for di, d in enumerate(defs):
            r = next((r for r in rows if str(r.get("definition_id")) == d and r.get("group") == g), None)
            if r is None:
                continue
            if r.get("rate") is None:
                hidden += 1
                continue
            y = di + (gi - (k - 1) / 2) * (0.7 / max(k, 1))
            ys.append(y)
            xs.append(r["rate"])
            lo.append(r.get("ci_low"))
            hi.append(r.get("ci_high"))
        st = style(gi)
        ax.errorbar(xs, ys, xerr=_yerr(xs, lo, hi), fmt=st["marker"], ms=4, lw=1, capsize=0, color=st["color"],
                    label=g)
    ax.set_yticks(range(len(defs)), [labels[d] for d in defs])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    _pct(ax)
    ax.set_xlabel("success rate (95% interval)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(k, 4 if compact else 6), frameon=False)
    caption = "Each row is one definition of success; dots are rates, lines 95% intervals; each level has its own marker."
    if hidden:
        caption += f" {hidden} rate(s) not shown (small numbers)."
    return _finish(fig, chart_id, title, caption)


def forest(rows: Sequence[Mapping[str, Any]], labels: Mapping[str, str], margins: Mapping[str, float],
           relative: Sequence[str] = (), *, chart_id: str = "chart-forest", compact: bool = False,
           arm: str = "IOP", reference: str = "residential") -> Chart:
    """Crude beside adjusted estimates (risk difference in percentage points), one row per
    definition; a dashed line at -margin for the definitions judged on an absolute margin
    (``margins``, 0-1 scale). Those in ``relative`` are judged on a risk-ratio margin, which is
    no fixed difference: no line, and the caption says so."""
    plt = _plt()
    defs = [d for d in labels if any(str(r.get("definition_id")) == d for r in rows)]
    methods = list(dict.fromkeys(str(r.get("method")) for r in rows))
    methods.sort(key=lambda m: (m != "crude", m))
    fig, ax = plt.subplots(figsize=(6.2 if compact else 8, 0.4 * len(defs) * max(1, len(methods) / 3) + 1.4))
    k = len(methods)
    for mi, m in enumerate(methods):
        ys, xs, lo, hi = [], [], [], []
        for di, d in enumerate(defs):
            r = next((r for r in rows if str(r.get("definition_id")) == d and str(r.get("method")) == m), None)
            if r is None or r.get("estimate") is None:
                continue
            ys.append(di + (mi - (k - 1) / 2) * (0.7 / max(k, 1)))
            xs.append(100 * r["estimate"])
            lo.append(None if r.get("ci_low") is None else 100 * r["ci_low"])
            hi.append(None if r.get("ci_high") is None else 100 * r["ci_high"])
        st = style(mi)
        ax.errorbar(xs, ys, xerr=_yerr(xs, lo, hi), fmt="s" if m == "crude" else st["marker"], ms=4, lw=1,
                    capsize=2, color="#777777" if m == "crude" else st["color"],
                    mfc="white" if m == "crude" else st["color"], label=m.upper() if m in ("aipw", "gcomp") else m)
    for di, d in enumerate(defs):
        if d in margins:
            ax.plot([-100 * margins[d]] * 2, [di - 0.4, di + 0.4], color="#000000", lw=1, ls="--")
    ax.axvline(0, color="#333333", lw=0.8)
    ax.set_yticks(range(len(defs)), [labels[d] for d in defs])
    ax.invert_yaxis()
    ax.set_xlabel(f"difference in percentage points, {arm} minus {reference} (95% interval)"
                  + ("" if compact else "; dashed: absolute non-inferiority margin"))
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(k, 6), frameon=False)
    caption = (f"Open squares: crude; filled markers: adjusted. Right of zero favours {arm}; the dashed line is the "
               "non-inferiority margin. Each definition under its own missing-data policy.")
    shown = [labels[d] for d in defs if d in set(relative)]
    if shown:
        caption += (f" No dashed line for {', '.join(shown)}: judged on a risk-ratio margin (a low {reference} "
                    "rate), which is no fixed difference; see the non-inferiority table.")
    title = f"{arm} vs {reference} across definitions (forest plot)"
    return _finish(fig, chart_id, title, caption)


def love_plot(panels: Mapping[str, Sequence[Mapping[str, Any]]], titles: Mapping[str, str]) -> Chart:
    """|SMD| before and after weighting, one panel per weighting method (named in its title),
    the covariates on one shared axis: one figure, so the long covariate labels are drawn once."""
    plt = _plt()
    methods = list(panels)
    covs = list(dict.fromkeys(str(r.get("covariate")) for rows in panels.values() for r in rows))
    at = {c: i for i, c in enumerate(covs)}
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 + 2.6 * len(methods), 0.22 * len(covs) + 1.4),
                             sharey=True, squeeze=False)
    for ax, method in zip(axes[0], methods):
        rows = panels[method]
        y = [at[str(r.get("covariate"))] for r in rows]
        before = [abs(r["smd_unadjusted"]) if r.get("smd_unadjusted") is not None else math.nan for r in rows]
        after = [abs(r["smd_adjusted"]) if r.get("smd_adjusted") is not None else math.nan for r in rows]
        ax.scatter(before, y, marker="o", s=14, facecolors="none", edgecolors=REFERENCE, label="unadjusted")
        ax.scatter(after, y, marker="o", s=14, color=ARM, label="weighted")
        ax.axvline(0.1, color="#a33b3b", lw=0.8, ls="--")
        ax.set_title(titles.get(method, method), fontsize=8, loc="left")
        ax.tick_params(axis="y", labelsize=7)
    axes[0, 0].set_yticks(range(len(covs)), covs)
    axes[0, 0].invert_yaxis()
    axes[0, 0].legend(loc="lower right", frameon=False, fontsize=7)
    fig.supxlabel("absolute standardized mean difference (dashed: 0.1)", fontsize=8)
    return _finish(fig, "chart-love", "Covariate balance before and after each weighting method (Love plot)",
                   "One panel per weighting method the analysis used; the tables below give the numbers.")


def overlap(edges: Sequence[float], counts: Mapping[str, Sequence[int | None]], arm: str, reference: str) -> Chart:
    """Propensity score distributions, arm above the axis and reference below; hidden bins hatched."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    for name, sign, color in ((arm, 1, ARM), (reference, -1, REFERENCE)):
        vals = counts.get(name, [])
        total = sum(v for v in vals if v is not None) or 1
        heights = [sign * (v or 0) / total for v in vals]
        ax.bar(edges[:-1], heights, width=widths, align="edge", color=color, alpha=0.75, label=name)
        for x, w, v in zip(edges[:-1], widths, vals):
            if v is None:
                ax.axvspan(x, x + w, ymin=0.5 if sign > 0 else 0, ymax=1 if sign > 0 else 0.5,
                           facecolor="none", hatch="///", edgecolor="#999999", lw=0)
    ax.axhline(0, color="#333333", lw=0.8)
    ax.set_xlabel("propensity score (probability of IOP)")
    ax.set_ylabel("share of the group")
    ax.legend(frameon=False)
    return _finish(fig, "chart-overlap", "Propensity score overlap",
                   "Hatched bins hold counts too small to show.")


def kaplan_meier(curves: Mapping[str, Sequence[Mapping[str, Any]]], times: Sequence[float],
                 at_risk: Mapping[str, Sequence[Any]], marker: str) -> Chart:
    plt = _plt()
    fig, (ax, tab) = plt.subplots(2, 1, figsize=(7, 4.4), gridspec_kw={"height_ratios": [4, 1]}, sharex=True)
    for gi, (g, pts) in enumerate(curves.items()):
        if not pts:
            continue
        color = PALETTE[gi % len(PALETTE)]
        t = [p["time"] for p in pts]
        ax.step(t, [p["survival"] for p in pts], where="post", color=color, ls=LINESTYLES[gi % len(LINESTYLES)],
                label=g)
        if all(p.get("ci_low") is not None for p in pts):
            ax.fill_between(t, [p["ci_low"] for p in pts], [p["ci_high"] for p in pts], step="post",
                            color=color, alpha=0.15, lw=0)
    ax.set_ylabel("not readmitted")
    _pct(ax, "y")
    ax.legend(frameon=False, loc="lower left")
    tab.set_axis_off()
    groups = list(at_risk)
    for gi, g in enumerate(groups):
        tab.text(-0.02, 1 - (gi + 0.5) / max(len(groups), 1), g, transform=tab.transAxes, ha="right",
                 va="center", fontsize=8)
        for t, n in zip(times, at_risk[g]):
            tab.text(t, 1 - (gi + 0.5) / max(len(groups), 1), marker if n is None else f"{n:,}",
                     transform=tab.get_xaxis_transform(), ha="center", va="center", fontsize=8)
    tab.set_title("number at risk", fontsize=8, loc="left")
    ax.set_xlabel("")
    # the axis spans the risk table's times even when disclosure cut every curve short: labels
    # placed outside it made bbox_inches="tight" stretch the figure to millions of pixels
    ends = [p["time"] for pts in curves.values() for p in pts] + list(times)
    if ends:
        pad = 0.03 * (max(ends) - min(0.0, min(ends)) or 1.0)
        ax.set_xlim(min(0.0, min(ends)) - pad, max(ends) + pad)
    return _finish(fig, "chart-km", "Time to readmission (Kaplan–Meier)",
                   "Curves are read on a coarse grid and stop when few remain at risk (disclosure control).")


def trends(series: Mapping[str, Mapping[str, Any]], definition_label: str) -> Chart:
    """p-chart per group: rate and interval per quarter, centre line and 3-sigma limits."""
    plt = _plt()
    groups = list(series)
    cols = 1 if len(groups) <= 2 else 2
    nrows = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(7.5 if cols == 1 else 10, 2.1 * nrows + 0.5), squeeze=False,
                             sharex=True, sharey=True)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax, g in zip(axes.flat, groups):
        s = series[g]
        q = s["quarters"]
        x = list(range(len(q)))
        shown = [i for i, r in enumerate(s["rate"]) if r is not None]
        ax.errorbar([x[i] for i in shown], [s["rate"][i] for i in shown],
                    yerr=_yerr([s["rate"][i] for i in shown], [s["ci_low"][i] for i in shown],
                               [s["ci_high"][i] for i in shown]),
                    fmt="o-", ms=4, lw=1, color=ARM, capsize=2, label="rate (95% interval)")
        if s.get("pbar") is not None:
            ax.axhline(s["pbar"], color="#333333", lw=0.8, label="centre line")
            lims = s["limits"]
            lx = [x[i] for i, lim in enumerate(lims) if lim]
            ax.step(lx, [lim[0] for lim in lims if lim], where="mid", color="#a33b3b", lw=0.8, ls="--",
                    label="3-sigma limits")
            ax.step(lx, [lim[1] for lim in lims if lim], where="mid", color="#a33b3b", lw=0.8, ls="--")
        ax.set_title(g, fontsize=9, loc="left")
        _pct(ax, "y")
        ax.set_xticks(x, q, fontsize=7, rotation=45 if len(q) > 6 and cols > 1 else 0)
        ax.tick_params(labelbottom=True)
    axes[0, 0].legend(frameon=False, fontsize=7, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.08))
    return _finish(fig, "chart-trend", f"Trend over the last quarters: {definition_label} (p-chart)",
                   "Points outside the dashed limits signal special-cause variation.")


def trend_lines(series: Mapping[str, Mapping[str, Any]], definition_label: str, *,
                chart_id: str = "chart-brief-trend") -> Chart:
    """The main outcome by quarter, one line per level of care (own marker and line style), each
    point with its 95% interval; quarters whose rate is not shown leave a gap."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 2.6))
    quarters: list[str] = []
    for s in series.values():
        quarters = list(s["quarters"]) if len(s["quarters"]) > len(quarters) else quarters
    k = len(series)
    for gi, (g, s) in enumerate(series.items()):
        st = style(gi)
        x = [quarters.index(q) + (gi - (k - 1) / 2) * 0.08 for q in s["quarters"]]
        y = [math.nan if r is None else r for r in s["rate"]]
        ax.plot(x, y, color=st["color"], ls=st["linestyle"], lw=1.2, marker=st["marker"], ms=4, label=g)
        shown = [i for i, r in enumerate(s["rate"]) if r is not None]
        ax.errorbar([x[i] for i in shown], [s["rate"][i] for i in shown],
                    yerr=_yerr([s["rate"][i] for i in shown], [s["ci_low"][i] for i in shown],
                               [s["ci_high"][i] for i in shown]), fmt="none", ecolor=st["color"], lw=0.8, capsize=2)
    ax.set_xticks(range(len(quarters)), quarters)
    _pct(ax, "y")
    ax.set_ylabel("success rate")
    ax.legend(frameon=False, fontsize=8, ncol=min(k, 4), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return _finish(fig, chart_id, f"Trend by quarter and level of care: {definition_label}",
                   "Rates with 95% intervals; a gap is a quarter whose rate is too small to show.")


def funnel(points: Sequence[Mapping[str, Any]], pbar: float, definition_label: str) -> Chart:
    from pipelines.report.tables import funnel_limits

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    ns = [p["denominator"] for p in points]
    nmax = max(ns) * 1.1
    grid = [max(5.0, nmax * i / 200) for i in range(1, 201)]
    for z, ls, name in ((1.959964, "--", "95%"), (3.090232, ":", "99.8%")):
        lims = [funnel_limits(pbar, n, z) for n in grid]
        ax.plot(grid, [a for a, _ in lims], color="#a33b3b", lw=0.8, ls=ls, label=f"{name} limits")
        ax.plot(grid, [b for _, b in lims], color="#a33b3b", lw=0.8, ls=ls)
    ax.axhline(pbar, color="#333333", lw=0.8, label="overall")
    ax.scatter(ns, [p["rate"] for p in points], s=14, color=ARM, zorder=3, label="site")
    for p in points:
        if p.get("outlier"):
            ax.annotate(str(p["group"]), (p["denominator"], p["rate"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel("discharges in the denominator")
    ax.set_ylabel(definition_label)
    _pct(ax, "y")
    ax.legend(frameon=False, fontsize=7)
    return _finish(fig, "chart-funnel", f"Sites compared: {definition_label} (funnel plot)",
                   "Sites outside the 99.8% limits are labelled.")


def oe_funnel(points: Sequence[Mapping[str, Any]], rate: float, definition_label: str, *,
              chart_id: str = "chart-benchmark-funnel", shrunk: bool = False) -> Chart:
    """Observed / expected against the nation: each shown site's O/E (y) against its expected
    count E (x), a line at 1, and the 95% and 99.8% control limits 1 ± z·sqrt(E(1-p))/E of
    :func:`pipelines.stats.benchmark.funnel_limits` (``rate`` = p, the program's expected
    rate). Sites outside the 95% limits are named. The SVG groups carry ids for readers and
    tests: ``sites`` (one marker per site, in the order given) and ``limit-95-low`` /
    ``limit-95-high`` / ``limit-998-low`` / ``limit-998-high``."""
    import numpy as np

    from pipelines.stats.benchmark import Z95, Z998, funnel_limits

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    es = [float(p["expected"]) for p in points]
    oes = [float(p["oe"]) for p in points]
    lo_e, hi_e = min(es), max(es)
    grid = np.linspace(max(1.0, 0.5 * lo_e), 1.1 * hi_e if hi_e > lo_e else 1.5 * hi_e, 200)
    for z, ls, name, key in ((Z95, "--", "95%", "95"), (Z998, ":", "99.8%", "998")):
        low, high = funnel_limits(grid, rate, z)
        ax.plot(grid, low, color="#a33b3b", lw=0.9, ls=ls, label=f"{name} limits", gid=f"limit-{key}-low")
        ax.plot(grid, high, color="#a33b3b", lw=0.9, ls=ls, gid=f"limit-{key}-high")
    ax.axhline(1.0, color="#333333", lw=0.8, label="as expected (O/E = 1)")
    ax.scatter(es, oes, s=18, color=ARM, zorder=3, label="site", gid="sites")
    low95, high95 = funnel_limits(np.asarray(es), rate, Z95)
    for p, e, oe, lo, hi in zip(points, es, oes, low95, high95, strict=True):
        if oe < lo or oe > hi:
            ax.annotate(str(p["group"]), (e, oe), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlim(left=0)
    ax.set_xlabel("expected successes (E) for the people the site served")
    ax.set_ylabel("observed / expected (O/E)")
    ax.legend(frameon=False, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4)
    caption = ("Each site's O/E against its expected count; the funnel narrows as E grows. Sites outside the dashed "
               "95% limits are named; outside the dotted 99.8% limits, chance alone would explain it about once in "
               "500. Sites too small to show are not plotted.")
    if shrunk:
        caption += " O/E shrunk toward 1; the limits are those of unshrunk ratios."
    return _finish(fig, chart_id, f"Sites against the nation: {definition_label} (funnel plot of O/E)", caption)


def stepdown(rows: Sequence[Mapping[str, Any]]) -> Chart:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3))
    shown = [r for r in rows if r.get("rate") is not None]
    x = list(range(len(rows)))
    xi = [x[i] for i, r in enumerate(rows) if r.get("rate") is not None]
    ax.errorbar(xi, [r["rate"] for r in shown],
                yerr=_yerr([r["rate"] for r in shown], [r["ci_low"] for r in shown], [r["ci_high"] for r in shown]),
                fmt="o-", ms=4, lw=1, color=ARM, capsize=2)
    ax.set_xticks(x, [str(r["group"]) for r in rows])
    ax.set_ylim(0, 1)
    _pct(ax, "y")
    ax.set_ylabel("stepped down to IOP within 14 days")
    return _finish(fig, "chart-stepdown", "Step-down from residential to IOP by quarter")


def dose_curve(curve: Mapping[str, Any], definition_label: str, band: tuple[float, float | None] | None = None,
               chart_id: str = "chart-dose") -> Chart:
    """The adjusted probability of success by scheduled hours a week, with its 95% band and
    the ASAM band of the level shaded."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 1.9))
    st = style(0)
    ax.plot(curve["grid"], curve["probability"], color=st["color"], lw=1.4, label="adjusted rate")
    ax.fill_between(curve["grid"], curve["ci_low"], curve["ci_high"], color=st["color"], alpha=0.18, lw=0,
                    label="95% interval")
    if band is not None:
        lo, hi = band
        ax.axvspan(lo, hi if hi is not None else max(curve["grid"]), color="#999999", alpha=0.12, lw=0,
                   label="ASAM band")
    ax.set_xlabel("scheduled hours per week")
    ax.set_ylabel(definition_label)
    _pct(ax, "y")
    ax.legend(frameon=False, fontsize=7, loc="best")
    return _finish(fig, chart_id, f"Dose-response within {curve['level_of_care'].upper()}: {definition_label}",
                   "Standardized over the episodes' covariates; hours are not randomized, so this is an adjusted "
                   "association, not the effect of scheduling more hours.")


def acceptability(rows: Sequence[Mapping[str, Any]], labels: Mapping[str, str], chart_id: str = "chart-ceac") -> Chart:
    """Cost-effectiveness acceptability curves: the probability that the arm is cost-effective
    (net monetary benefit above 0) against the willingness to pay for one more success."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 1.9))
    for i, x in enumerate(rows):
        pts = [p for p in x.get("nmb") or [] if p.get("probability_cost_effective") is not None]
        if not pts:
            continue
        st = style(i)
        ax.plot([p["wtp"] for p in pts], [p["probability_cost_effective"] for p in pts], color=st["color"],
                ls=st["linestyle"], marker=st["marker"], ms=3, lw=1.2, label=labels.get(x["definition_id"], x["definition_id"]))
    ax.set_xscale("symlog", linthresh=5000)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("willingness to pay for one more success ($)")
    ax.set_ylabel("P(cost-effective)")
    _pct(ax, "y")
    ax.legend(frameon=False, fontsize=7, loc="best")
    return _finish(fig, chart_id, "Cost-effectiveness acceptability (adjusted, AIPW)",
                   "The probability that the net monetary benefit is above zero, by willingness to pay.")


def site_forest(sites: Sequence[Mapping[str, Any]], pooled: Sequence[Mapping[str, Any]], title: str,
                chart_id: str = "chart-site-forest", *, png: bool = True) -> Chart:
    """A network's forest plot: each site's estimate (risk difference, percentage points) with its
    95% interval, then the pooled estimates (diamonds: fixed effect, DerSimonian-Laird, HKSJ, and
    a one-shot Mantel-Haenszel estimate where there is one) and the prediction interval (a bar
    under the HKSJ diamond)."""
    plt = _plt()
    shown = [s for s in sites if s.get("estimate") is not None]
    pools = [p for p in pooled if p.get("estimate") is not None]
    n = len(shown) + len(pools)
    fig, ax = plt.subplots(figsize=(7, 0.38 * n + 1.3))
    if shown:  # one artist for every site: a network may have dozens
        est = [100 * s["estimate"] for s in shown]
        ax.errorbar(est, range(len(shown)),
                    xerr=_yerr(est, [None if s.get("ci_low") is None else 100 * s["ci_low"] for s in shown],
                               [None if s.get("ci_high") is None else 100 * s["ci_high"] for s in shown]),
                    fmt="s", ms=5, color=PALETTE[0], capsize=2, lw=1, ls="none")
    names = {"fixed": "pooled, fixed effect", "random_dl": "pooled, random (DerSimonian-Laird)",
             "random_hksj": "pooled, random (HKSJ)", "random_hksj_modified": "pooled, random (HKSJ, modified)",
             "mantel_haenszel": "pooled, Mantel-Haenszel (one shot)"}
    for j, p in enumerate(pools):
        y = len(shown) + j
        est, lo, hi = 100 * p["estimate"], 100 * p["ci_low"], 100 * p["ci_high"]
        ax.fill([lo, est, hi, est], [y, y - 0.3, y, y + 0.3], color=PALETTE[1] if p.get("primary") else "#777777")
        if p.get("pooling") == "random_hksj" and p.get("prediction_low") is not None:
            ax.plot([100 * p["prediction_low"], 100 * p["prediction_high"]], [y + 0.4] * 2, color=PALETTE[1], lw=1,
                    ls=":")
    ax.axvline(0, color="#333333", lw=0.8)
    ax.set_yticks(range(n), [str(s["site"]) for s in shown] + [names.get(str(p["pooling"]), str(p["pooling"]))
                                                              for p in pools])
    ax.invert_yaxis()
    ax.set_xlabel("difference in percentage points (95% interval)")
    # laid out by hand, in inches (the labels' column: "pooled, random (HKSJ, modified)" at 9 pt):
    # matplotlib's tight layout draws the whole figure once more, and a network's plots are tall
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.36, right=0.97, top=1 - 0.2 / height, bottom=0.75 / height)
    primary = next((names.get(str(p["pooling"]), str(p["pooling"])) for p in pools if p.get("primary")), None)
    caption = ("Squares: each site's estimate; diamonds: pooled"
               + (f" (the coloured one is the primary: {primary.removeprefix('pooled, ')})" if primary else "")
               + "; dotted: the 95% prediction interval for a new site's effect.")
    return _finish(fig, chart_id, title, caption, png=png, tight=False, dpi=100)
