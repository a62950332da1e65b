"""The success-rate disclosure sheet (success-sheet.pdf): the page a family can ask for.

Read from the results of a real analysis (the session's ``report_model``). Every expected text
is worked out here from the raw results row (``f"{rate * 100:.1f}%"``), never through the
formatting code under test; a hidden rate is a real suppressed row of the same results put in
the place of an overall one.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import subprocess
from types import SimpleNamespace

import pytest

from pipelines.definitions import HEADLINE
from pipelines.report import html, pdf, sheet

PDFINFO, PDFTOTEXT = "/usr/bin/pdfinfo", "/usr/bin/pdftotext"
NBSP = "\u00a0"


def _pct(v: float) -> str:
    return f"{v * 100:.1f}%"


def _overall(results) -> dict[str, dict]:
    return {x["definition_id"]: x for x in results["rates"] if x["group_by"] == "all"}


def _definitions(results) -> dict[str, dict]:
    return {d["id"]: d for d in results["definitions"]}


def _expected_headlines(results) -> list[str]:
    """HEADLINE's definitions with a shown overall rate, at most four."""
    rows = _overall(results)
    return [d for d in HEADLINE if d in rows and rows[d]["rate"] is not None][:4]


def _bullet(section, d: str) -> str:
    return next(b for b in section.bullets if f"[{d}]:" in b)


def _table(section):
    return section.tables[0]


def _cell(table, d: str, label: str, col: str, marker: str = "*") -> str:
    i = next(i for i, x in enumerate(table.frame["definition"]) if x == label or x.startswith(f"{label}: "))
    return table.text(i, col, marker).replace(NBSP, " ")


def _pages(path) -> int:
    info = subprocess.run([PDFINFO, str(path)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"Pages:\s+(\d+)", info).group(1))


@pytest.fixture(scope="module")
def results(report_model):
    return report_model[0]


@pytest.fixture(scope="module")
def section(results):
    """The sheet as the report builds it: from its build context (the results are all it reads)."""
    return sheet.success_sheet(SimpleNamespace(results=results), list(HEADLINE))


# --------------------------------------------------------------------------- the headline rates
def test_each_headline_rate_is_the_results_row(results, section):
    rows, defs = _overall(results), _definitions(results)
    heads = _expected_headlines(results)
    assert len(heads) >= 2, "the fixture should have headline rates to explain"
    assert section.id == "success-sheet" and section.title == "How we measure success"
    assert [re.search(r"\[(\w+)\]:", b).group(1) for b in section.bullets] == heads
    for d in heads:
        x, line = rows[d], _bullet(section, d)
        rate = (f"{defs[d]['label']} [{d}]: {_pct(x['rate'])} (95% CI {_pct(x['ci_low'])} to {_pct(x['ci_high'])}; "
                f"{x['numerator']:,} of {x['denominator']:,} discharges).")
        assert line.startswith(rate), line
        first = re.split(r"(?<=[a-z0-9)'])\. (?=[A-Z(])", defs[d]["description"])[0]
        assert f"Definition: {' '.join(first.replace('native ', '').split()[:5])}" in line  # its first sentence
        assert "Who is counted" in line and "follow-up response" in line.lower()


def test_the_opening_says_programs_period_and_what_a_rate_is(results, section):
    opening = section.paragraphs[0]
    assert results["period"]["label"] in opening
    assert f"{results['cohort']['sites']} programs" in opening
    assert "A success rate is the share of the people counted" in opening
    shown = [x["rate"] for d, x in _overall(results).items() if x["rate"] is not None
             and not d.startswith("followup_reached_")]
    assert f"from {_pct(min(shown))} to {_pct(max(shown))}" in opening


def test_who_is_counted_in_plain_words(results, section):
    """Missing "exclude" on a follow-up outcome: only the people reached, with the follow-up
    response said; "failure": not reached counts as not successful; a discharge-record outcome
    needs no follow-up."""
    rows, defs = _overall(results), _definitions(results)
    heads = _expected_headlines(results)
    by_policy = {(defs[d].get("followup"), defs[d]["missing"]): d for d in reversed(heads)}
    cc, itt = by_policy.get(("interview", "exclude")), by_policy.get(("interview", "failure"))
    record = by_policy.get((None, "failure")) or by_policy.get((None, "exclude"))
    assert cc and itt and record, "the fixture's headlines should hold all three kinds"

    response = rows[f"followup_reached_{defs[cc]['window_days']}d"]
    who = _bullet(section, cc).split("Who is counted", 1)[1]
    assert f"only the people reached at the {defs[cc]['window_days']}-day follow-up" in who
    assert "follow-up response" in who and _pct(response["rate"]) in who, who
    assert f"{response['numerator']:,} of {response['denominator']:,}" in who
    assert "left out" in who

    who = _bullet(section, itt).split("Who is counted: ", 1)[1]
    assert "not reached" in who and "counted as not successful" in who.replace("count as", "counted as"), who
    assert _pct(response["rate"]) in who.split("Follow-up response: ", 1)[1]  # the response that applies

    assert _bullet(section, record).endswith("Follow-up response: not needed (from the program's records).")
    assert sheet.who_counts(defs[cc], short=True) == "only those reached"
    assert sheet.who_counts(defs[itt], short=True) == "everyone; not reached = failure"


# --------------------------------------------------------------------------- the table
def test_the_table_holds_every_definition_with_an_overall_rate(results, section):
    rows, defs = _overall(results), _definitions(results)
    shown = [d for d, x in rows.items() if not d.startswith("followup_reached_")
             and (x["rate"] is not None or (x["suppressed"] and x["denominator"] != 0))]
    t = _table(section)
    assert t.title == "The same people under other common definitions"
    assert [t.heading(c) for c in t.frame.columns] == ["definition: what counts as success", "who counts",
                                                       "rate (95% CI)"]
    labels = [str(x).split(": ")[0] for x in t.frame["definition"]]
    assert labels == [defs[d]["label"] for d in _ordered(shown, list(defs))]
    for d in shown:
        x = rows[d]
        want = f"{_pct(x['rate'])} ({_pct(x['ci_low'])} to {_pct(x['ci_high'])})"
        assert _cell(t, d, defs[d]["label"], "rate") == want
    assert results["disclosure"]["note"] in t.note and "rates.csv" in t.note


def _ordered(ids: list[str], registry: list[str]) -> list[str]:
    """HEADLINE first (in its order), then the others in the registry's order."""
    return [d for d in HEADLINE if d in ids] + [d for d in registry if d in ids and d not in HEADLINE]


def test_what_counts_as_success_reads_the_description():
    assert sheet.success_phrase({"description": "Among people with PHQ-9 >= 10 at admission, a drop of at least "
                                                "50% by discharge (Löwe et al. 2004). Missing discharge score is "
                                                "excluded."}) == "A drop of at least 50% by discharge"
    among = {"description": "Among residential (short, long and hospital), detox and inpatient discharges, an "
                            "outpatient, IOP or PHP admission of the same person 0-30 days after discharge (day 30 "
                            "counts): the HEDIS FUI construct."}
    assert sheet.among(among) == "residential, detox and inpatient discharges"
    assert sheet.success_phrase(among) == "An outpatient, IOP or PHP admission 0-30 days after discharge"
    assert sheet.definition_cell("Not homeless at discharge", "Not homeless at discharge") == \
        "Not homeless at discharge"


# --------------------------------------------------------------------------- hidden values
def _hidden_like(results, kind: str) -> dict:
    """A real suppressed rate row of these results (of the given kind) to put in an overall row's place."""
    return next(x for x in results["rates"] if x["suppressed"] and x.get("suppression") == kind
                and x["denominator"] != 0 and x["rate"] is None)


def test_a_suppressed_rate_shows_the_marker_never_a_number(report_model, tmp_path):
    results = report_model[0]
    mine = copy.deepcopy(results)
    rows, defs = _overall(mine), _definitions(mine)
    heads = _expected_headlines(mine)
    others = [d for d, x in rows.items() if d not in HEADLINE and x["rate"] is not None
              and not d.startswith("followup_reached_")]
    small, other = others[0], others[1]
    d = mine["disclosure"]
    hidden = {kind: dict(_hidden_like(mine, kind)) for kind in ("small", "complementary")}
    for target, kind in ((small, "small"), (other, "complementary")):
        rows[target].clear()
        rows[target].update({**hidden[kind], "definition_id": target, "group_by": "all", "group": None})
    cc = next(x for x in heads if defs[x].get("followup") == "interview" and defs[x]["missing"] == "exclude")
    response = rows[f"followup_reached_{defs[cc]['window_days']}d"]
    response.update({k: hidden["small"][k] for k in ("numerator", "rate", "ci_low", "ci_high", "suppressed", "suppression")})

    s = sheet.success_sheet_from_results(mine, list(HEADLINE))
    t = _table(s)
    assert _cell(t, small, defs[small]["label"], "rate", d["marker"]) == d["marker"]
    assert t.marker(next(i for i, x in enumerate(t.frame["definition"]) if x.startswith(defs[other]["label"])),
                    "rate", d["marker"]) == d["complementary_marker"]
    who = _bullet(s, cc).split("Who is counted", 1)[1]
    assert f"the share reached is not shown ({d['marker']}: too few people" in who, who
    assert not re.search(r"\d+\.\d%", who.replace("target 80.0%", "")), who
    # the page prints the markers
    path = pdf.write_brief_pdf(_report(report_model, s), tmp_path / "hidden.pdf", section_id="success-sheet",
                               kind=sheet.SHEET_KIND, max_pages=1)
    text = subprocess.run([PDFTOTEXT, "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    line = next(x for x in text.splitlines() if defs[small]["label"] in x)
    assert line.rstrip().endswith(d["marker"]) and not re.search(r"\d+\.\d%", line), line


# --------------------------------------------------------------------------- the page
def _report(report_model, section):
    """The report of the session's results, holding only ``section``."""
    return dataclasses.replace(report_model[1], sections=[section])


def test_the_sheet_prints_on_one_page(report_model, section, tmp_path):
    results, report = report_model
    one = dataclasses.replace(report, sections=[section])
    path = pdf.write_brief_pdf(one, tmp_path / "success-sheet.pdf", section_id="success-sheet",
                               kind=sheet.SHEET_KIND, max_pages=1)
    assert _pages(path) == 1
    text = subprocess.run([PDFTOTEXT, str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "How we measure success" in text and "The same people under other common definitions" in text
    x = _overall(results)[_expected_headlines(results)[0]]
    assert f"{_pct(x['rate'])} (95% CI {_pct(x['ci_low'])} to {_pct(x['ci_high'])}" in " ".join(text.split())
    assert "How we measure success" in html.render_html(one)


def test_a_longer_registry_still_fits_one_page(report_model, tmp_path):
    """Twice the definitions (each copied under a new id): the table keeps what fits and names the rest."""
    mine = copy.deepcopy(report_model[0])
    extra = [d for d in mine["definitions"] if not d["id"].startswith("followup_reached_")]
    rows = _overall(mine)
    for d in extra:
        mine["definitions"].append({**d, "id": f"{d['id']}_again", "label": f"{d['label']} again"})
        if d["id"] in rows:
            mine["rates"].append({**rows[d["id"]], "definition_id": f"{d['id']}_again"})
    s = sheet.success_sheet_from_results(mine, list(HEADLINE))
    t = _table(s)
    assert 0 < len(t.frame) < 2 * len(extra)
    assert "not listed for want of room" in t.note and " again" in t.note
    path = pdf.write_brief_pdf(_report(report_model, s), tmp_path / "long.pdf", section_id="success-sheet",
                               kind=sheet.SHEET_KIND, max_pages=1)
    assert _pages(path) == 1


# --------------------------------------------------------------------------- the board brief's part
def test_the_brief_part_names_the_headline_denominator_and_response(results):
    s = sheet.sheet_summary(SimpleNamespace(results=results), list(HEADLINE))
    assert (s.id, s.title) == ("summary-sheet", "How success is measured")
    assert 2 <= len(s.paragraphs) <= 4
    d = _expected_headlines(results)[0]
    x, label = _overall(results)[d], _definitions(results)[d]["label"]
    assert s.paragraphs[0].startswith(f"Headline definition: {label} [{d}], {_pct(x['rate'])} (95% CI")
    assert "Who is counted: " in s.paragraphs[0]
    assert s.paragraphs[1].startswith("Follow-up response: ")
    assert "success-sheet.pdf" in s.paragraphs[-1]
