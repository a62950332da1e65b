"""No report or export crashes on legitimate data.

Every data set here is one a real program can send: one level of care only, one quarter only,
no follow-ups at all, 30-day follow-ups only, no step-downs, SAMHSA TEDS-D only, so few
people per cell that nearly everything is suppressed, the latest quarter alone (whose
follow-up windows have not ended: zero counts), and the OpenSAFELY rule. Each is built for
real (synth -> ingest -> analyze), then the report is written as HTML, PDF and XLSX and the
accreditation export beside it, and the documents are held to invariants that catch real bugs:

* every file exists and is not trivially small, every chart is page-sized, nothing raised;
* no count the rule forbids is shown (report tables, export CSVs, and results.json itself);
* every rate the report or the export shows is the results model's row (nothing recomputed);
* a definition that is not applicable is said to be so and appears in no rate, comparison or
  non-inferiority row (never a 0.0%);
* what each shape implies, derived from the extracts written and the registry's definition
  files, not from the code under test.

A hypothesis test (``--slow``) draws shape, size, seed, rule and period and checks the same.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import subprocess
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_fixtures import SEED, analyzed, shown_group

REPO = Path(__file__).resolve().parents[2]
DEFINITIONS_DIR = REPO / "data_contracts" / "definitions"
NATIVE_SHAPES = ("as_synthesized", "one_level", "one_quarter", "no_followups", "followups_30d_only",
                 "no_stepdown")
FOLLOWUP_PREFIX = "followup_reached_"
WINDOWS = (30, 90, 180, 365)
REPORT_FORMATS = ("html", "pdf", "xlsx", "brief")
FILE_OF = {"html": "report.html", "pdf": "report.pdf", "xlsx": "report.xlsx", "brief": "brief.pdf"}
SECTIONS = ("summary", "data-quality", "cohort", "rates", "comparison", "survival", "trends", "sites", "stepdown",
            "services",
            "appendix")
# the native synthetic data's quarters at the synth defaults (10 quarters ending 2026Q3)
NATIVE_QUARTERS = ("2024Q2", "2024Q3", "2024Q4", "2025Q1", "2025Q2", "2025Q3", "2025Q4", "2026Q1", "2026Q2",
                   "2026Q3")
TEDS_YEAR = 2019  # the synth default DISYR
MAX_CHART_PIXELS = 4000  # a chart is drawn at dpi 130 for a page: thousands of pixels at most
# person/episode counts in the export's CSVs, by column name
EXPORT_COUNT_COLS = ("numerator", "denominator", "rows_read", "rows_loaded", "rows_quarantined", "n_rows",
                     "n_with_both_scores", "failing_rows")
# report tables of rate rows -> (results section, group_by values the rows come from)
RATE_TABLE_SOURCES = {
    "table-rates": ("rates", ("level_group", "level_of_care")),
    "table-followup": ("rates", ("level_group",)),
    "table-sites": ("rates", ("site",)),
    "table-stepdown-care": ("rates", ("level_of_care",)),
    "table-stepdown-quarter": ("trends", ("quarter",)),
    "table-aftercare": ("rates", ("level_group",)),
}
RATE_COLS = ("numerator", "denominator", "rate", "ci_low", "ci_high")

# --------------------------------------------------------------------------- the cases
@dataclass(frozen=True)
class Case:
    name: str
    shape: str = "as_synthesized"  # a shape of report_fixtures.shape_extracts, or "teds_d"
    records: int = 600
    seed: int = SEED
    rule: str = "cms"
    quarter: str | None = None  # the period as one quarter (None: all data)
    period: str | None = None  # the period as FROM..TO
    synth: tuple[tuple[str, Any], ...] = ()
    base: str | None = None  # analyse the warehouse of this case again (same extracts)
    docs: bool = False  # write great-expectations Data Docs at ingest (the report links them)

    @property
    def fmt(self) -> str:
        return "teds-d" if self.shape == "teds_d" else "native"


CASES = {c.name: c for c in (
    Case("as_synthesized"),
    Case("one_level", shape="one_level"),
    # 5 quarters ending 2026Q3 start at 2025Q3: a fifth of the discharges are kept
    Case("one_quarter", shape="one_quarter", synth=(("quarters", 5),)),
    Case("no_followups", shape="no_followups"),
    Case("followups_30d_only", shape="followups_30d_only"),
    Case("no_stepdown", shape="no_stepdown", docs=True),
    Case("teds_d", shape="teds_d"),
    # 100 discharges over 10 sites and 4 quarters: nearly every cell holds 1-10 people, and the
    # readmission curves stop long before the risk table's last day (more sites or quarters only
    # slow the complementary-suppression audit down)
    Case("everything_suppressed", records=100, synth=(("sites", 10), ("quarters", 4))),
    # the data's last quarter: its discharges' follow-up and readmission windows have not ended
    Case("zero_counts", shape="no_followups", quarter="2026Q3", base="no_followups"),
    Case("opensafely", shape="no_followups", rule="opensafely", base="no_followups"),
)}
# 207 discharges, 2026Q1..2026Q2: 28 people in the readmission analysis, 3 readmitted, all after IOP
ONE_ARM_READMITTED = Case("one_arm_readmitted", records=207, seed=110779, period="2026Q1..2026Q2")
# Left to --slow, to keep the default suite within its 15-minute budget: as synthesized (the
# shape of the report tests' own fixture, 3,000 episodes, checked there), no_stepdown and
# followups_30d_only (a report without step-downs, and with one follow-up window only, are
# checked by `pytest --slow` alone) and one_quarter (one quarter's period arithmetic stays in
# tests/functional/test_periods.py)
SLOW_CASES = ("as_synthesized", "no_stepdown", "followups_30d_only", "one_quarter")


# --------------------------------------------------------------------------- building
@dataclass
class Built:
    case: Case
    root: Path
    results: dict[str, Any]
    report: Any  # pipelines.report.model.Report: the one write_report wrote
    report_paths: dict[str, Path]
    report_error: str | None  # traceback of a writer that failed (the other formats are still written)
    export_dir: Path
    export_paths: list[Path]
    html: str
    discharges: list[dict[str, str]]  # the extracts' discharges in the period (native)
    teds: list[dict[str, str]]  # the extracts' TEDS-D records in the period
    followups: list[dict[str, str]] | None  # None: no follow-up file was sent
    seconds: dict[str, float] = field(default_factory=dict)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _quarter_of(date_text: str) -> str:
    return f"{date_text[:4]}Q{(int(date_text[5:7]) - 1) // 3 + 1}"


def _period_quarters(case: Case) -> list[str] | None:
    """The quarters of the case's period, worked out here (None: all data)."""
    if case.quarter:
        first = last = case.quarter
    elif case.period:
        first, last = case.period.split("..")
    else:
        return None

    def k(q: str) -> int:
        return int(q[:4]) * 4 + int(q[5]) - 1

    return [f"{i // 4}Q{i % 4 + 1}" for i in range(k(first), k(last) + 1)]


def _period(case: Case):
    from pipelines.results.periods import parse_period

    if case.quarter is None and case.period is None:
        return None
    return parse_period(case.period, case.quarter)


def read_extracts(data: Path, case: Case) -> tuple[list[dict], list[dict], list[dict] | None]:
    """(discharges in the period, TEDS-D records in the period, follow-ups or None) as written."""
    quarters = _period_quarters(case)
    discharges, teds, followups = [], [], None
    if (data / "discharges.csv").exists():
        discharges = [r for r in _read_csv(data / "discharges.csv")
                      if quarters is None or _quarter_of(r["discharge_date"]) in quarters]
    if (data / "followups.csv").exists():
        followups = _read_csv(data / "followups.csv")
    if (data / "tedsd_puf.csv").exists():  # a TEDS-D year counts when the period holds its 4 quarters
        teds = [r for r in _read_csv(data / "tedsd_puf.csv")
                if quarters is None or all(f"{r['DISYR']}Q{i}" in quarters for i in range(1, 5))]
    return discharges, teds, followups


def analyse(root: Path, case: Case, base_root: Path | None = None) -> Path:
    """The case's results folder: synth -> ingest -> analyze, or analyze only on ``base_root``'s
    warehouse (the same extracts, another rule or period)."""
    period = _period(case)
    if base_root is None:
        return analyzed(root, records=case.records, seed=case.seed,
                        shape=case.shape if case.fmt == "native" else "as_synthesized", fmt=case.fmt,
                        period=period, rule=case.rule, compare=True, docs=case.docs, **dict(case.synth))
    from pipelines.analysis.command import analyze
    from pipelines.settings import Settings

    out = root / "results"
    analyze(Settings(warehouse=base_root / "levelcare.duckdb"), out, None,
            ["level_of_care", "level_group", "site", "quarter"], rule=case.rule, compare=True, period=period)
    return out


def build_outputs(root: Path, case: Case, base_root: Path | None = None) -> Built:
    """The case's analysis, then the report in every format and the accreditation export.

    The Report object the checks read is the one write_report wrote. A writer that fails is
    recorded (``report_error``) and the other formats are written from the same Report, so
    that one broken format does not hide what the others would show."""
    from pipelines.export.command import write_accreditation_export
    from pipelines.report import build
    from pipelines.report.command import write_report

    seconds = {}
    period = _period(case)
    t0, c0 = time.perf_counter(), time.process_time()
    results_dir = analyse(root, case, base_root)
    seconds["analysis"], seconds["analysis_cpu"] = time.perf_counter() - t0, time.process_time() - c0
    results = json.loads((results_dir / "results.json").read_text(encoding="utf-8"))

    reports = []
    real_build = build.build_report

    def spy(*args, **kwargs):
        reports.append(real_build(*args, **kwargs))
        return reports[-1]

    out = root / "report"
    error = None
    t0, c0 = time.perf_counter(), time.process_time()
    with mock.patch.object(build, "build_report", spy):
        try:
            write_report(out, results_dir=results_dir, period=period, formats=REPORT_FORMATS)
        except Exception:
            if len(reports) != 1:  # the results could not be read or the report not built
                raise
            error = traceback.format_exc()
            _write_the_others(reports[0], out)
    seconds["report"], seconds["report_cpu"] = time.perf_counter() - t0, time.process_time() - c0
    assert len(reports) == 1
    t0, c0 = time.perf_counter(), time.process_time()
    export_dir = root / "export"
    export_paths = write_accreditation_export(export_dir, results_dir=results_dir, period=period)
    seconds["export"], seconds["export_cpu"] = time.perf_counter() - t0, time.process_time() - c0

    discharges, teds, followups = read_extracts((base_root or root) / "data", case)
    paths = {fmt: out / FILE_OF[fmt] for fmt in REPORT_FORMATS if (out / FILE_OF[fmt]).exists()}
    return Built(case=case, root=root, results=results, report=reports[0], report_paths=paths,
                 report_error=error, export_dir=export_dir, export_paths=list(export_paths),
                 html=paths["html"].read_text(encoding="utf-8") if "html" in paths else "",
                 discharges=discharges, teds=teds, followups=followups, seconds=seconds)


def _write_the_others(report, out: Path) -> None:
    from pipelines.report.html import write_html
    from pipelines.report.pdf import write_brief_pdf, write_pdf
    from pipelines.report.xlsx import write_report_xlsx

    for fmt, writer in (("html", write_html), ("pdf", write_pdf), ("xlsx", write_report_xlsx),
                        ("brief", write_brief_pdf)):
        path = out / FILE_OF[fmt]
        if not path.exists():
            try:
                writer(report, path)
            except Exception:  # noqa: BLE001 - the first failure is the one recorded
                path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the rule
def forbidden(v: float, rule: str) -> bool:
    """A count the rule forbids to show, from the rules' definitions: CMS hides 1-10; OpenSAFELY
    hides 1-7 and shows every other count rounded to a multiple of 5."""
    if rule == "cms":
        return 1 <= v <= 10
    return 1 <= v <= 7 or v % 5 != 0


def _high(rule: str) -> int:
    return 10 if rule == "cms" else 7


def _number(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return None if isinstance(v, float) and math.isnan(v) else float(v)
    if hasattr(v, "item"):
        return _number(v.item())
    try:
        return float(str(v).replace(",", "").strip())
    except ValueError:
        return None


# --------------------------------------------------------------------------- the invariants
def check_files(b: Built) -> None:
    """Every document is written, whole and readable; no writer raised; charts are page-sized
    (a Kaplan-Meier chart whose risk-table labels lay beyond its axis was once millions of
    pixels wide and crashed the PDF)."""
    from PIL import Image

    assert b.report_error is None, b.report_error
    assert sorted(b.report_paths) == sorted(REPORT_FORMATS)
    assert b.report_paths["pdf"].read_bytes()[:5] == b"%PDF-"
    # the board brief holds on every shape: at most two pages (counted by poppler's pdfinfo)
    info = subprocess.run(["pdfinfo", str(b.report_paths["brief"])], capture_output=True, text=True, check=True)
    assert 1 <= int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1)) <= 2, info.stdout
    for c in b.report.charts():
        size = Image.open(io.BytesIO(c.png)).size  # PIL's own limit refuses absurd sizes too
        assert max(size) <= MAX_CHART_PIXELS, (c.id, size)
        m = re.search(r'<svg[^>]*\bwidth="([\d.]+)pt"', c.svg)
        assert m and float(m.group(1)) < 2000, (c.id, m and m.group(1))
    for fmt, p in b.report_paths.items():
        assert p.is_file() and p.stat().st_size > 2000, (fmt, p)
    assert b.html.lstrip().lower().startswith("<!doctype html") and b.html.rstrip().endswith("</html>")
    for section in SECTIONS:
        assert f'<section id="{section}">' in b.html, section
    import openpyxl

    wb = openpyxl.load_workbook(b.report_paths["xlsx"], read_only=True)
    # a contents sheet first, listing every other sheet with its section; every section has a sheet
    assert len(b.report.sections) == len(SECTIONS)
    listed = list(itertools.takewhile(any, wb["Contents"].iter_rows(min_row=3, values_only=True)))
    assert wb.sheetnames[0] == "Contents" and len(wb.sheetnames) == 1 + len(listed)
    assert list(dict.fromkeys(r[1] for r in listed)) == [s.title for s in b.report.sections]
    wb.close()
    names = {p.name for p in b.export_paths}
    assert {"accreditation.xlsx", "manifest.json", "carf-indicators.csv", "definitions.csv"} <= names, names
    for p in b.export_paths:
        assert p.is_file() and p.stat().st_size > 20, p
    wb = openpyxl.load_workbook(b.export_dir / "accreditation.xlsx", read_only=True)
    assert {"Data quality", "Definitions", "Manifest"} <= set(wb.sheetnames), wb.sheetnames
    wb.close()
    manifest = json.loads((b.export_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["disclosure_rule"] == b.case.rule and manifest["period"] == b.results["period"]["label"]


def check_documents_disclose_nothing(b: Built) -> None:
    """No count the rule forbids is shown in the report's tables or the export's CSVs, and no
    shown numerator sits beside a shown denominator 1..high above it (a small complement)."""
    rule = b.case.rule
    assert b.results["disclosure"]["rule"] == rule
    checked = 0
    for t in b.report.tables():
        for c in t.count_cols:
            for i, v in enumerate(t.frame[c]):
                n = _number(v)
                if n is None or t.is_hidden(i, c):
                    continue
                checked += 1
                assert not forbidden(n, rule), (t.id, c, i, v)
        if {"numerator", "denominator"} <= set(t.frame.columns):
            for i in range(len(t.frame)):
                num, den = _number(t.frame.iloc[i]["numerator"]), _number(t.frame.iloc[i]["denominator"])
                if num is None or den is None or t.is_hidden(i, "numerator") or t.is_hidden(i, "denominator"):
                    continue
                assert not 1 <= den - num <= _high(rule), (t.id, i, num, den)
    for p in b.export_paths:
        if p.suffix != ".csv":
            continue
        for k, row in enumerate(_read_csv(p)):
            for c in EXPORT_COUNT_COLS:
                n = _number(row.get(c))
                if n is not None:
                    checked += 1
                    assert not forbidden(n, rule), (p.name, k, c, row[c])
            num, den = _number(row.get("numerator")), _number(row.get("denominator"))
            if num is not None and den is not None:
                assert not 1 <= den - num <= _high(rule), (p.name, k, num, den)
    assert checked > 0


def results_counts(results: dict[str, Any]):
    """(where, field, value) of every person/episode count in the results model."""
    def rows(name, section, keys):
        for i, x in enumerate(section or []):
            for k in keys:
                n = _number(x.get(k))
                if n is not None:
                    yield f"{name}[{i}]", k, n

    yield from rows("rates", results["rates"], ("numerator", "denominator"))
    yield from rows("trends", results["trends"], ("numerator", "denominator"))
    yield from rows("comparisons", results["comparisons"], ("n_arm", "n_reference"))
    yield from rows("diagnostics.adjusted", results["diagnostics"]["adjusted"], ("n_arm", "n_reference"))
    yield from rows("modification", results["modification"], ("n",))
    yield from rows("cohort", results["cohort"]["rows"], ("episodes", "persons"))
    yield from rows("table_one", (results["table_one"] or {}).get("cells"), ("n",))
    yield from rows("instruments", results["instruments"], ("n",))
    dq = results["data_quality"]
    yield from rows("ledger", dq["ledger"], ("rows_read", "rows_loaded", "rows_quarantined"))
    yield from rows("quarantine", dq["quarantine"], ("n_rows",))
    yield from rows("validation.checks", dq["validation"]["checks"], ("failing_rows",))
    prop = results["diagnostics"].get("propensity") or {}
    for arm, values in (prop.get("counts") or {}).items():
        yield from (("propensity", arm, n) for n in values if n is not None)
    km = (results["survival"] or {}).get("readmission") or {}
    for g, values in ((km.get("risk_table") or {}).get("at_risk") or {}).items():
        yield from (("survival.risk_table", g, n) for n in values if n is not None)
    yield from (("survival.events", g, n) for g, n in (km.get("events") or {}).items() if n is not None)
    sv = results["services"]
    for key, cols in (("dose", ("n", "below", "within", "above")), ("length_of_stay", ("n", "below", "within", "above")),
                      ("sessions", ("n",)), ("completion_by_los", ("n", "completed")), ("costs", ("n",)),
                      ("cost_per_success", ("n", "successes")), ("family_rates", ("n", "successes")),
                      ("family_effects", ("n_involved", "n_not_involved")), ("cost_effectiveness", ("n_arm", "n_reference")),
                      ("dose_response", ("n",))):
        yield from rows(f"services.{key}", sv[key], cols)


def check_results_model_discloses_nothing(b: Built) -> None:
    """results.json leaves the warehouse too: none of its counts is one the rule forbids
    (subgroup sizes were once published unrounded under OpenSAFELY)."""
    bad = [(w, k, n) for w, k, n in results_counts(b.results) if forbidden(n, b.case.rule)]
    assert not bad, bad[:10]


def _same(a: Any, b: Any) -> bool:
    a, b = _number(a), _number(b)
    if a is None or b is None:
        return a is None and b is None
    return a == b


def check_rates_are_the_models(b: Built) -> None:
    """Every rate row the report or the export shows is the results model's row for the same
    (definition, group): counts, rate and interval equal, hidden exactly where the model hid."""
    shown_rate_tables = {t.id for t in b.report.tables() if "rate" in t.frame.columns}
    assert shown_rate_tables <= set(RATE_TABLE_SOURCES) | {"table-trend"}, shown_rate_tables
    for t in b.report.tables():
        if t.id not in RATE_TABLE_SOURCES:
            continue
        section, group_bys = RATE_TABLE_SOURCES[t.id]
        for i in range(len(t.frame)):
            row = t.frame.iloc[i]
            model = [x for x in b.results[section] if x["group_by"] in group_bys
                     and x["definition_id"] == row["definition_id"] and shown_group(x["group"]) == row["group"]]
            same = [x for x in model if all(_same(row[c], x[c]) for c in RATE_COLS)]
            assert same, (t.id, dict(row), model)
            x = same[0]
            for c in RATE_COLS:
                if x[c] is None and x["suppressed"]:
                    assert t.reason(i, c) == (x["suppression"] or "small"), (t.id, c, dict(row), x)
                elif x[c] is not None:
                    assert not t.is_hidden(i, c), (t.id, c, dict(row), x)
    trend = next((t for t in b.report.tables() if t.id == "table-trend"), None)
    if trend is not None:
        d = re.search(r"Definition (\S+)\.", trend.note).group(1)
        for i in range(len(trend.frame)):
            row = trend.frame.iloc[i]
            if row["group"] == "All levels":
                model = [x for x in b.results["trends"] if x["group_by"] == "quarter" and x["definition_id"] == d
                         and x["group"] == row["quarter"]]
            else:
                model = [x for x in b.results["trends"] if x["group_by"] == "level_group,quarter"
                         and x["definition_id"] == d
                         and f"{shown_group(x['group'].split('|')[0])}|{x['group'].split('|')[1]}"
                         == f"{row['group']}|{row['quarter']}"]
            assert len(model) <= 1, model
            if not model:  # a quarter without data: nothing shown, nothing hidden
                assert all(_number(row[c]) is None for c in RATE_COLS), dict(row)
                assert not any(trend.is_hidden(i, c) for c in RATE_COLS), dict(row)
                continue
            for c in RATE_COLS:
                assert _same(row[c], model[0][c]), ("table-trend", c, dict(row), model[0])
    # the export: CARF indicators, Joint Commission rates, follow-up response
    by_key = {(x["definition_id"], x["group_by"], x["group"]): x for x in b.results["rates"]}
    for row in _read_csv(b.export_dir / "carf-indicators.csv"):
        key = (row["indicator"], "all", None) if row["level_of_care"] == "all levels" else \
            (row["indicator"], "level_group", row["level_of_care"])
        assert key in by_key, key
        _same_csv_row(row, by_key[key], b, "carf-indicators.csv")
    for name in ("jc-rates.csv", "followup-response.csv"):
        if (b.export_dir / name).exists():
            for row in _read_csv(b.export_dir / name):
                key = (row["definition_id"], "level_group", row["group"])
                assert key in by_key, (name, key)
                _same_csv_row(row, by_key[key], b, name)


def _same_csv_row(row: dict[str, str], model: dict[str, Any], b: Built, name: str) -> None:
    d = b.results["disclosure"]
    markers = {d["marker"], d["complementary_marker"]}
    for c in RATE_COLS:
        if model[c] is None:
            assert row[c] in markers | {""}, (name, c, row, model)
            if model["suppressed"] and row[c]:
                want = d["complementary_marker"] if model["suppression"] == "complementary" else d["marker"]
                assert row[c] == want, (name, c, row, model)
        else:
            assert _number(row[c]) == float(model[c]), (name, c, row, model)


def expected_not_applicable(b: Built) -> set[str]:
    """Definitions that need follow-ups of a window the extracts hold none of (read from the
    registry's definition files and the extracts, not from the analysis)."""
    import yaml

    if not b.discharges and not b.teds:
        return set()
    held = Counter() if b.followups is None else Counter(int(r["window_days"]) for r in b.followups)
    out = set()
    for path in DEFINITIONS_DIR.glob("*.yaml"):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        needs = {int(m.group(1)) for f in spec.get("requires") or [] if (m := re.match(r"fu(\d+)_", str(f)))}
        if any(not held[w] for w in needs):
            out.add(spec["id"])
    return out


def check_not_applicable(b: Built) -> None:
    """A definition the data cannot answer is listed with its reason, appears in no rate,
    comparison or non-inferiority row, and the documents say "not applicable", never 0.0%."""
    na = {x["id"] for x in b.results["not_applicable"]}
    assert na == {d["id"] for d in b.results["definitions"] if not d["applicable"]}
    if b.case.quarter is None and b.case.period is None:  # a period may leave more out
        assert expected_not_applicable(b) <= na, sorted(expected_not_applicable(b) - na)
    for section in ("comparisons", "noninferiority", "modification"):
        assert not [x for x in b.results[section] if x["definition_id"] in na], section
    for x in b.results["rates"]:  # the 'all' row saying why (and a period's empty quarter): never a rate
        if x["definition_id"] in na:
            assert x["rate"] is None and not x["numerator"] and not x["denominator"], x
    if b.case.quarter is None and b.case.period is None:  # else the trend reaches before the period
        assert not [x for x in b.results["trends"] if x["definition_id"] in na and x["denominator"]]
    labels = {d["id"]: d["label"] for d in b.results["definitions"]}
    for t in b.report.tables():
        if "definition_id" in t.frame.columns:
            assert not set(t.frame["definition_id"]) & na, (t.id, set(t.frame["definition_id"]) & na)
        if t.id in ("table-noninferiority", "table-modification", "table-comparisons"):
            assert not set(t.frame["definition"]) & {labels[d] for d in na}, t.id
    paragraphs = [p for s in b.report.sections for p in (*s.paragraphs, *s.bullets, *s.unavailable)]
    for d in na:
        mine = [p for p in paragraphs if d in p]
        assert any("not applicable" in p for p in mine), (d, mine)
        assert not any("0.0%" in p for p in mine if f"[{d}]" in p), (d, mine)
        assert f"Definition {d}: not applicable" in b.html, d
    for name in ("carf-indicators.csv", "followup-response.csv", "jc-rates.csv"):
        path = b.export_dir / name
        if path.exists():
            ids = {r.get("indicator") or r.get("definition_id") for r in _read_csv(path)}
            assert not ids & na, (name, ids & na)
    defs = {r["id"]: r for r in _read_csv(b.export_dir / "definitions.csv")}
    for d in na:
        assert defs[d]["applicable"].startswith("no"), defs[d]


def check_cohort_from_extracts(b: Built) -> None:
    """The discharges the report counts are the extracts' (exactly under CMS, when shown)."""
    total = len(b.discharges) + len(b.teds)
    assert total, "a period with no discharge is refused by the analysis (see the refusal test)"
    total_row = next(r for r in b.results["cohort"]["rows"] if r["level_group"] == "all levels")
    summary = next(s for s in b.report.sections if s.id == "summary")
    if total_row["episodes"] is None:
        return
    if b.case.rule == "cms":
        assert total_row["episodes"] == total, (total_row, total)
        assert f"Who was served: {total:,} discharges" in summary.paragraphs[0], summary.paragraphs[0]
    else:  # the total is the sum of the levels' shown cells: each rounded to 5 (off by 2 at most)
        # or redacted (a level of 1-7 adds 0), so it is a multiple of 5 within that of the truth
        levels = len(b.results["cohort"]["rows"]) - 1
        assert total_row["episodes"] % 5 == 0 and -7 * levels <= total_row["episodes"] - total <= 2 * levels, \
            (total_row, total)


# --------------------------------------------------------------------------- per shape
def _section(b: Built, sid: str):
    return next(s for s in b.report.sections if s.id == sid)


def _text(section) -> str:
    return "\n".join([*section.paragraphs, *section.bullets, *section.unavailable,
                      *(f"{b.status}: {b.name}: {b.detail}" for b in section.badges),
                      *(f"{p.title}\n{_text(p)}" for p in section.parts)])


def check_one_quarter(b: Built) -> None:
    assert b.discharges and {_quarter_of(r["discharge_date"]) for r in b.discharges} == {"2025Q3"}
    p = b.results["period"]
    assert p["first_data_quarter"] == p["last_data_quarter"] == "2025Q3", p
    assert "2025Q3" in b.report.period and "2025Q3" in p["label"]
    assert re.search(r"<title>[^<]*2025Q3[^<]*</title>", b.html)
    quarters = {x["group"] for x in b.results["rates"] if x["group_by"] == "quarter"}
    assert quarters <= {"2025Q3"}, quarters


def check_one_level(b: Built) -> None:
    assert b.discharges and {r["level_of_care"] for r in b.discharges} == {"iop"}
    comparison = _section(b, "comparison")
    assert any(u.startswith("comparison: not available") for u in comparison.unavailable), comparison.unavailable
    assert not [t for t in comparison.tables if t.id in ("table-comparisons", "table-noninferiority")]
    summary = _text(_section(b, "summary"))
    assert "Non-inferiority of IOP to residential: not available" in summary
    assert "Residential no data" in summary
    assert not [x for x in b.results["comparisons"] if x["estimate"] is not None]
    groups = {x["group"] for x in b.results["rates"] if x["group_by"] == "level_group" and x["denominator"]}
    assert groups <= {"iop"}, groups


def check_teds_d(b: Built) -> None:
    assert b.teds and not b.discharges and b.followups is None
    assert b.results["cohort"]["sources"] == ["teds-d"]
    followup = [x for x in b.results["rates"] if x["definition_id"].startswith(FOLLOWUP_PREFIX) and x["denominator"]]
    assert not followup, followup  # TEDS-D holds no follow-ups
    assert "TEDS-D" in _text(_section(b, "cohort"))
    assert "TEDS-D" in _text(_section(b, "summary")), _text(_section(b, "summary"))
    survival = _section(b, "survival")  # TEDS-D cannot link people: no readmission curve
    assert survival.charts or any("not available" in u for u in survival.unavailable)


def check_followups_30d_only(b: Built) -> None:
    assert b.followups and {r["window_days"] for r in b.followups} == {"30"}
    na = {x["id"] for x in b.results["not_applicable"]}
    assert {f"{FOLLOWUP_PREFIX}{w}d" for w in (90, 180, 365)} <= na, na
    assert f"{FOLLOWUP_PREFIX}30d" not in na
    rows = _read_csv(b.export_dir / "followup-response.csv")
    assert rows and {r["definition_id"] for r in rows} == {f"{FOLLOWUP_PREFIX}30d"}, rows
    dq = _text(_section(b, "data-quality"))
    for w in (90, 180, 365):
        assert f"Follow-up at {w} days: not applicable" in dq, dq


def check_no_followups(b: Built) -> None:
    assert b.followups is None
    na = {x["id"] for x in b.results["not_applicable"]}
    assert {f"{FOLLOWUP_PREFIX}{w}d" for w in WINDOWS} <= na, na
    path = b.export_dir / "followup-response.csv"
    assert not path.exists() or not _read_csv(path)
    assert not [t for t in b.report.tables() if t.id == "table-followup"]
    dq = _text(_section(b, "data-quality"))
    for w in WINDOWS:
        assert f"Follow-up at {w} days: not applicable" in dq, dq


def check_no_stepdown(b: Built) -> None:
    residential = {r["person_id"] for r in b.discharges if r["level_of_care"].startswith("residential")}
    assert residential
    assert not [r for r in b.discharges if r["level_of_care"] == "iop" and r["person_id"] in residential]
    # no residential discharge is followed by an IOP admission: a step-down shown is a true 0
    shown = [x for x in b.results["rates"] + b.results["trends"]
             if x["definition_id"] == "stepdown_iop_14d" and x["numerator"] is not None]
    assert all(x["numerator"] == 0 for x in shown), shown
    assert _section(b, "stepdown").tables or _section(b, "stepdown").unavailable


def check_everything_suppressed(b: Built) -> None:
    # the extracts: nearly every site x level of care cell holds 1-10 discharges
    cells = Counter((r["site_id"], r["level_of_care"]) for r in b.discharges)
    assert sum(1 for n in cells.values() if 1 <= n <= 10) >= 0.9 * len(cells), cells
    # the results: nearly every rate with people in it is hidden
    rows = [x for x in b.results["rates"] + b.results["trends"] if x["denominator"] != 0]
    hidden = [x for x in rows if x["suppressed"]]
    assert len(hidden) >= 0.8 * len(rows), (len(hidden), len(rows))
    sites = [x for x in b.results["rates"] if x["group_by"] == "site" and x["denominator"] != 0]
    assert sites and sum(x["suppressed"] for x in sites) >= 0.9 * len(sites)
    assert "table-rates" in {t.id for t in b.report.tables()}
    sites_text = _text(_section(b, "sites"))
    assert "not shown (small numbers)" in sites_text or "too small to show" in sites_text, sites_text


def check_zero_counts(b: Built) -> None:
    assert b.discharges and {_quarter_of(r["discharge_date"]) for r in b.discharges} == {"2026Q3"}
    p = b.results["period"]
    assert p["quarters"] == ["2026Q3"] and p["data_end_quarter"] == "2026Q3"
    # a window that had not ended by the data's last day: no one in the population, said so
    zero = [x for x in b.results["rates"] if x["group_by"] == "level_group" and x["denominator"] == 0]
    assert zero, "no zero-denominator rate in the data's last quarter"
    for x in zero:
        assert x["rate"] is None and not x["numerator"], x
    table = next(t for t in b.report.tables() if t.id == "table-rates")
    for i in range(len(table.frame)):
        if _number(table.frame.iloc[i]["denominator"]) == 0:  # never a 0.0% over no one
            assert table.text(i, "rate", "*") in ("*", "†", "–"), dict(table.frame.iloc[i])
    summary = _text(_section(b, "summary"))
    heads = {x["definition_id"] for x in zero if f"[{x['definition_id']}]" in summary}
    assert not heads or "no one in the population" in summary, summary


def check_opensafely(b: Built) -> None:
    d = b.results["disclosure"]
    assert d["rule"] == "opensafely" and d["round_to"] == 5 and d["high"] == 7 and d["marker"] == "[REDACTED]"
    shown = [_number(v) for t in b.report.tables() for c in t.count_cols for i, v in enumerate(t.frame[c])
             if _number(v) is not None and not t.is_hidden(i, c)]
    assert shown and all(n % 5 == 0 for n in shown)
    assert "[REDACTED]" in b.html and "* not shown" not in b.html


SHAPE_CHECKS = {
    "one_quarter": check_one_quarter,
    "one_level": check_one_level,
    "teds_d": check_teds_d,
    "followups_30d_only": check_followups_30d_only,
    "no_followups": check_no_followups,
    "no_stepdown": check_no_stepdown,
}
CASE_CHECKS = {
    **SHAPE_CHECKS,
    "everything_suppressed": check_everything_suppressed,
    "zero_counts": check_zero_counts,
    "opensafely": check_opensafely,
}


def check_everything(b: Built) -> None:
    """Every invariant a data set must hold (the property test checks these for any draw)."""
    check_files(b)
    check_documents_disclose_nothing(b)
    check_results_model_discloses_nothing(b)
    check_rates_are_the_models(b)
    check_not_applicable(b)  # under OpenSAFELY too: rounding must not hide that a definition does not apply
    check_cohort_from_extracts(b)
    if b.case.quarter is None and b.case.period is None and b.case.shape in SHAPE_CHECKS:
        SHAPE_CHECKS[b.case.shape](b)
    if b.case.rule == "opensafely":
        check_opensafely(b)


# --------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Each case built once per module (every test of a case reads the same build)."""
    cache: dict[str, Built | BaseException] = {}

    def get(name: str) -> Built:
        if name not in cache:
            case = CASES[name]
            try:
                base = get(case.base).root if case.base else None
                cache[name] = build_outputs(tmp_path_factory.mktemp(name), case, base)
            except Exception as exc:  # noqa: BLE001 - raised again for every test of the case
                cache[name] = exc
        if isinstance(cache[name], BaseException):
            raise cache[name]
        return cache[name]

    yield get
    timings = {k: {s: round(v, 1) for s, v in b.seconds.items()} for k, b in cache.items() if isinstance(b, Built)}
    print(f"\ntest_shapes build seconds: {json.dumps(timings)}")


def _cases(xfail: dict[str, str] | None = None, names=CASES) -> list:
    """The cases as parameters: a strict xfail where a known package bug breaks the check, and
    ``slow`` on SLOW_CASES."""
    xfail = xfail or {}
    out = []
    for n in names:
        marks = [pytest.mark.xfail(strict=True, reason=xfail[n])] if n in xfail else []
        marks += [pytest.mark.slow] if n in SLOW_CASES else []
        out.append(pytest.param(n, marks=marks, id=n))
    return out


@pytest.mark.parametrize("name", _cases())
def test_every_document_is_written(outputs, name):
    check_files(outputs(name))


@pytest.mark.parametrize("name", _cases())
def test_no_document_shows_a_count_the_rule_forbids(outputs, name):
    check_documents_disclose_nothing(outputs(name))


@pytest.mark.parametrize("name", _cases())
def test_the_results_model_shows_no_count_the_rule_forbids(outputs, name):
    check_results_model_discloses_nothing(outputs(name))


@pytest.mark.parametrize("name", _cases())
def test_every_rate_shown_is_the_results_models(outputs, name):
    check_rates_are_the_models(outputs(name))


@pytest.mark.parametrize("name", _cases())
def test_not_applicable_is_said_never_zero(outputs, name):
    check_not_applicable(outputs(name))


@pytest.mark.parametrize("name", _cases())
def test_the_discharges_counted_are_the_extracts(outputs, name):
    check_cohort_from_extracts(outputs(name))


@pytest.mark.parametrize("name", _cases(names=CASE_CHECKS))
def test_what_the_data_set_implies(outputs, name):
    CASE_CHECKS[name](outputs(name))


def test_a_period_without_discharges_is_refused_in_one_line(outputs, tmp_path):
    """Zero discharges in the period asked: a clear user error from analyze, and the documents
    refuse results that cover another period (not a traceback, not an empty report)."""
    from pipelines.analysis.command import analyze
    from pipelines.errors import UserError
    from pipelines.export.command import write_accreditation_export
    from pipelines.report.command import write_report
    from pipelines.results.periods import parse_period
    from pipelines.settings import Settings

    b = outputs("one_quarter")
    settings = Settings(warehouse=b.root / "levelcare.duckdb")
    for period in (parse_period(quarter="2025Q2"), parse_period("2023Q1..2023Q4")):
        with pytest.raises(UserError, match="no discharge in the warehouse falls in it"):
            analyze(settings, tmp_path / "empty", None, ["level_group"], period=period)
    assert not (tmp_path / "empty" / "results.json").exists()
    results_dir = b.root / "results"
    with pytest.raises(UserError, match="results cover 2025Q3, not 2025Q2"):
        write_report(tmp_path / "r", results_dir=results_dir, period=parse_period(quarter="2025Q2"))
    with pytest.raises(UserError, match="results cover 2025Q3, not 2025Q2"):
        write_accreditation_export(tmp_path / "e", results_dir=results_dir, period=parse_period(quarter="2025Q2"))


def test_every_readmission_in_one_arm_does_not_crash_the_analysis(tmp_path):
    """Every readmission in one arm: the Cox model's information is 0, so the hazard ratio is
    not estimable and said so (no ZeroDivisionError, no traceback), and every document is written."""
    b = build_outputs(tmp_path, ONE_ARM_READMITTED)
    check_everything(b)
    cox = b.results["survival"]["readmission"]["cox"]
    assert "not_estimable" in cox and "every readmission in one arm" in cox["not_estimable"], cox


# --------------------------------------------------------------------------- property test
@st.composite
def cases(draw) -> Case:
    shape = draw(st.sampled_from((*NATIVE_SHAPES, "teds_d")))
    quarters = [f"{TEDS_YEAR}Q{i}" for i in range(1, 5)] if shape == "teds_d" else list(NATIVE_QUARTERS)
    kind = draw(st.sampled_from(("all data", "one quarter", "range")))
    quarter = period = None
    if kind == "one quarter":
        quarter = draw(st.sampled_from(quarters))
    elif kind == "range":
        i = draw(st.integers(0, len(quarters) - 1))
        period = f"{quarters[i]}..{quarters[draw(st.integers(i, len(quarters) - 1))]}"
    return Case(name="drawn", shape=shape, records=draw(st.integers(150, 1500)), seed=draw(st.integers(0, 2**31 - 1)),
                rule=draw(st.sampled_from(("cms", "opensafely"))), quarter=quarter, period=period)


@pytest.mark.slow
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=cases())
def test_any_legitimate_data_set_builds_every_document(case):
    """A drawn shape, size, seed, rule and period: every document is written and holds every
    invariant above. A period holding no discharge of the extracts must be refused in one line."""
    from pipelines.errors import UserError

    with tempfile.TemporaryDirectory(prefix="levelcare-shapes-") as tmp:
        root = Path(tmp)
        try:
            b = build_outputs(root, case)
        except UserError as exc:
            discharges, teds, _ = read_extracts(root / "data", case)
            assert not discharges and not teds and "no discharge in the warehouse falls in it" in str(exc), exc
            return
        check_everything(b)
