"""The success-rate disclosure sheet: the one page a family can ask a program for.

Families choosing a program are told to ask what data it uses to measure success. This page
answers for each headline success rate: the rate with its 95% interval and "N of M", what the
definition counts as a success (its description's first sentence), who is in the denominator
(the definition's population and missing-data policy in plain words), the follow-up response
that applies, and then what the same discharges give under every other common definition.

Everything comes from the results model (results.json): the overall rates (``group_by`` "all"),
already disclosed; a hidden value prints the disclosure rule's marker, never a number. Numbers
are written by :mod:`pipelines.report.numbers` only.

``success_sheet`` / ``sheet_summary`` take the report's build context; the ``*_from_results``
functions take the results dict alone (they are what the context versions call).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipelines import definitions as definitions_pkg
from pipelines.report import numbers, tables
from pipelines.report.model import Section, Table

SHEET_ID = "success-sheet"
SUMMARY_ID = "summary-sheet"
SHEET_PDF = "success-sheet.pdf"
SHEET_KIND = "how we measure success"  # the sheet's title after the report's
MAX_HEADLINES = 4
FOLLOWUP_PREFIX = "followup_reached_"
FOLLOWUP_TARGET = 0.80  # GPRA's follow-up target, as in the brief's badge
SUCCESS_CHARS = 100  # the table's "what counts as success", cut at a word beyond this
# the report's title (pipelines.report.build), over the printed page: the page is fitted under it
REPORT_TITLE = "Outcomes after intensive outpatient and residential treatment"
OVERALL = "all"
NBSP = "\u00a0"


# --------------------------------------------------------------------------- the results, read
class _Sheet:
    """What the sheet reads from the results: definitions by id, overall rate rows by id, the
    disclosure markers."""

    def __init__(self, results: Mapping[str, Any]) -> None:
        self.results = results
        self.definitions = {str(d.get("id")): d for d in results.get("definitions") or []}
        self.overall = {str(x.get("definition_id")): x for x in results.get("rates") or []
                        if str(x.get("group_by")) == OVERALL}
        d = results.get("disclosure") or {}
        self.marker = str(d.get("marker") or "*")
        self.complementary = str(d.get("complementary_marker") or self.marker)
        self.note = str(d.get("note") or "")
        # 'native' (the program's own records) says something only beside TEDS-D records
        self.native_only = set((results.get("cohort") or {}).get("sources") or ["native"]) <= {"native"}

    def marker_of(self, row: Mapping[str, Any]) -> str:
        return self.complementary if row.get("suppression") == "complementary" else self.marker

    def label(self, d: str) -> str:
        return str((self.definitions.get(d) or {}).get("label") or d)

    def shown(self, d: str) -> bool:
        """The definition has an overall row that is not a response rate (shown or hidden)."""
        return d in self.overall and not d.startswith(FOLLOWUP_PREFIX)

    def rated(self, d: str) -> bool:
        return self.shown(d) and self.overall[d].get("rate") is not None

    def tabled(self, d: str) -> bool:
        """A rate to show in the table: a value, or the marker of a hidden one (not a rate over
        no one: a follow-up window not yet over, or no follow-up interviews in the data)."""
        if not self.shown(d):
            return False
        x = self.overall[d]
        if x.get("denominator") == 0 or str(x.get("note") or "").startswith("not applicable"):
            return False
        return x.get("rate") is not None or bool(x.get("suppressed"))


def _value(row: Mapping[str, Any], key: str, fmt, marker: str) -> str:
    """A value of a disclosed row: the rule's marker when hidden (the row suppressed, or the
    value withheld), else the value in the one number style."""
    v = row.get(key)
    if v is None:
        return marker if row.get("suppressed") or row.get("denominator") != 0 else numbers.NOT_APPLICABLE
    return fmt(v)


def rate_words(row: Mapping[str, Any] | None, marker: str, unit: str = "discharges") -> str:
    """'46.5% (95% CI 44.7% to 48.3%; 1,395 of 3,000 discharges)'; a hidden rate is the marker
    with why, never a number."""
    if row is None:
        return "not available in these results"
    if row.get("rate") is None:
        if row.get("denominator") == 0:
            return "no one in the population yet"
        why = ("withheld so that a small count elsewhere cannot be worked out"
               if row.get("suppression") == "complementary" else "not shown: too few people")
        return f"{marker} ({why})"
    ci = (f"95% CI {numbers.pct_range(row['ci_low'], row['ci_high'])}; "
          if row.get("ci_low") is not None and row.get("ci_high") is not None else "")
    n = (f"{_value(row, 'numerator', numbers.count, marker)} of "
         f"{_value(row, 'denominator', numbers.count, marker)} {unit}")
    return f"{numbers.pct(row['rate'])} ({ci}{n})"


# --------------------------------------------------------------------------- plain words


def _top_level(text: str, sep: str) -> int:
    """Where ``sep`` first occurs outside parentheses in ``text`` (-1 if it does not)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and text.startswith(sep, i):
            return i
    return -1


def _no_brackets(text: str) -> str:
    while True:
        out = re.sub(r"\s*\([^()]*\)", "", text)
        if out == text:
            return " ".join(out.split())
        text = out


def _at_least(text: str, *, short: bool = False) -> str:
    """'PHQ-9 >= 10' -> 'PHQ-9 of 10 or more' ('PHQ-9 of 10+' when short): the page's font has
    no '≥', and a family reads words."""
    return re.sub(r"(\S+) >= (\d+(?:\.\d+)?)", r"\1 of \2+" if short else r"\1 of \2 or more", text)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:(") + " …"


def _drop_prefix(sentence: str) -> str:
    """'Complete case: among ...' -> 'among ...' (a short name before a colon)."""
    i = _top_level(sentence, ": ")
    if 0 < i and len(sentence[:i].split()) <= 4:
        return sentence[i + 2:]
    return sentence


_POPULATION_END = re.compile(r"\b(discharges|admission|people|persons|episodes|patients|clients)$")


def _among_end(sentence: str) -> int:
    """Where the 'Among ..., ' clause of a sentence ends: the first comma outside brackets after
    a word naming people or discharges ('Among residential (short, long and hospital), detox and
    inpatient discharges, an outpatient ...'), else the first comma outside brackets; -1 if none."""
    cuts, i = [], _top_level(sentence, ", ")
    while i >= 0:
        cuts.append(i)
        j = _top_level(sentence[i + 2:], ", ")
        i = -1 if j < 0 else i + 2 + j
    for i in cuts:
        if _POPULATION_END.search(_no_brackets(sentence[:i])):
            return i
    return cuts[0] if cuts else -1


def among(defn: Mapping[str, Any], *, short: bool = False) -> str | None:
    """Who a description says the rate is among ('Among people with PHQ-9 >= 10 at admission,
    ...' -> 'people with PHQ-9 of 10 or more at admission'), or None."""
    s = _drop_prefix(tables.first_sentence(defn.get("description")))
    if not s.lower().startswith("among "):
        return None
    i = _among_end(s)
    if i < 0:
        return None
    return _at_least(_no_brackets(s[len("among "):i]), short=short).replace("native ", "")


def definition_sentence(defn: Mapping[str, Any]) -> str:
    """The definition in one sentence: its description's first, without a closing reference in
    brackets, nor what follows a colon when that is code ('Still in treatment 90 days after
    admission (NOMs retention): los_days >= 90 for native records.' -> 'Still in treatment 90
    days after admission.')."""
    s = tables.first_sentence(defn.get("description")).removesuffix(".")
    i = _top_level(s, ": ")
    if i > 0 and re.search(r"\w_\w|[<>=]=?", s[i:]) and len(s[:i].split()) > 4:
        s = s[:i]
    s = re.sub(r"\s*\([^()]*\)$", "", s)
    return f"{s}." if s else str(defn.get("label") or defn.get("id") or "")


# the interview definitions' 'success is a follow-up ... that reached the person and found X':
# the table says X, and its 'who counts' says what becomes of the people not reached
_REACHED_AND_FOUND = re.compile(r"^a follow-up\b.*?\breached the person and found ", re.IGNORECASE)


def success_phrase(defn: Mapping[str, Any], limit: int = SUCCESS_CHARS) -> str:
    """What counts as a success, in a few words, from the description's first sentence: its
    short name and its 'among ...' population dropped, before any colon, without brackets."""
    s = _drop_prefix(tables.first_sentence(defn.get("description"))).rstrip(".")
    if not s:
        return str(defn.get("label") or defn.get("id") or "")
    if "; success is " in s:
        s = _REACHED_AND_FOUND.sub("", s.split("; success is ", 1)[1])
    elif s.lower().startswith("among ") and _among_end(s) > 0:
        s = s[_among_end(s) + 2:]
    i = _top_level(s, ": ")
    if i > 0:
        s = s[:i]
    s = _no_brackets(s)
    for cut in (" among ", ", or "):  # '... among all discharges', '..., or a lower TEDS frequency level'
        k = _top_level(s, cut)
        if k > 0:
            s = s[:k].rstrip(",")
    s = _at_least(s, short=True).replace(" of the same person", "")
    return _clip(s[:1].upper() + s[1:], limit)


def _window_of(defn: Mapping[str, Any]) -> int | None:
    w = defn.get("window_days")
    if w is not None:
        return int(w)
    m = re.search(r"\bfu(\d+)_reached\b|\bdays_observed\s*>=\s*(\d+)", str(defn.get("population") or ""))
    return int(m.group(1) or m.group(2)) if m else None


def is_followup(defn: Mapping[str, Any]) -> bool:
    """Success is read from a follow-up interview (not from the program's own records)."""
    return defn.get("followup") == "interview"


def who_counts(defn: Mapping[str, Any], *, short: bool = False, response: str | None = None) -> str:
    """Who is in the denominator, in plain words, from the definition's population, its
    missing-data policy ("exclude": left out; "failure": counted as not successful) and its
    window; ``short`` for a table cell; ``response``: the follow-up response of an interview
    definition's window in words ('32.1% of those due were reached'), said with who is counted."""
    pop = str(defn.get("population") or "")
    missing = defn.get("missing")
    w = _window_of(defn)
    reached = re.search(r"\bfu(\d+)_reached\b", pop)
    observed = re.search(r"\bdays_observed\s*>=\s*(\d+)", pop)
    said = f": {response}" if response else ""
    if is_followup(defn):
        if short:
            return "only those reached" if reached or missing != "failure" else "everyone; not reached = failure"
        if missing == "failure":
            who = (f"everyone discharged at least {observed.group(1)} days before the data end" if observed
                   else among(defn) or "every discharge")
            return f"{who}; those not reached at follow-up count as not successful"
        return f"only the people reached at the {w}-day follow-up{said}; the others are left out"
    who = among(defn, short=short) or ("everyone" if short else "every discharge")
    if short:  # a table cell: 'PHQ-9 of 10+ at intake', 'residential, detox and inpatient'
        who = re.sub(r"^people (with )?", "", who).replace(" at admission", " at intake")
        if len(who) > 20:
            who = who.removesuffix(" discharges")
    if missing == "failure":
        rule = "unknown = failure" if short else "an unknown outcome is counted as not successful"
    elif w is not None:
        rule = (f"last {w} days left out" if short
                else f"discharges less than {w} days before the data end are left out (too soon to know)")
    else:
        rule = "unknown left out" if short else "people whose outcome is unknown are left out"
    return f"{who}; {rule}"


# --------------------------------------------------------------------------- the sheet
def _headlines(sh: _Sheet, headlines: Sequence[str] | None) -> list[str]:
    asked = list(headlines) if headlines is not None else list(definitions_pkg.HEADLINE)
    return [d for d in dict.fromkeys(map(str, asked)) if sh.rated(d)][:MAX_HEADLINES]


def _order(sh: _Sheet, headlines: Sequence[str]) -> list[str]:
    """Every definition with an overall row: the headlines, then HEADLINE, then the registry's order."""
    ids = [*headlines, *definitions_pkg.HEADLINE, *sh.definitions, *sh.overall]
    return [d for d in dict.fromkeys(map(str, ids)) if sh.shown(d)]


def _empty(sh: _Sheet, ids: Sequence[str]) -> list[str]:
    """The definitions of ``ids`` whose overall rate is over no one (not in the table)."""
    return [d for d in ids if not sh.tabled(d)]


def _response_row(sh: _Sheet, defn: Mapping[str, Any]) -> tuple[str, Mapping[str, Any] | None]:
    """(definition id, overall row) of the follow-up response of an interview definition's window."""
    d = f"{FOLLOWUP_PREFIX}{_window_of(defn)}d"
    return d, sh.overall.get(d)


def response_words(sh: _Sheet, defn: Mapping[str, Any], *, window: bool = True) -> str | None:
    """An interview definition's follow-up response: '32.1% of those due were reached at 90 days
    (95% CI 30.3% to 33.9%; 852 of 2,658; target 80.0%)' ('at 90 days' only with ``window``),
    the marker when hidden; None when not an interview definition or the results hold no
    response rate for its window."""
    if not is_followup(defn):
        return None
    _, row = _response_row(sh, defn)
    if row is None:
        return None
    target = f"target {numbers.pct(FOLLOWUP_TARGET)}"
    if row.get("rate") is None:
        if row.get("denominator") == 0:
            return f"no one is due a follow-up yet ({target})"
        why = ("withheld to protect a small count" if row.get("suppression") == "complementary"
               else "too few people")
        return f"the share reached is not shown ({sh.marker_of(row)}: {why}; {target})"
    ci = (f"95% CI {numbers.pct_range(row['ci_low'], row['ci_high'])}; "
          if row.get("ci_low") is not None and row.get("ci_high") is not None else "")
    n = (f"{_value(row, 'numerator', numbers.count, sh.marker_of(row))} of "
         f"{_value(row, 'denominator', numbers.count, sh.marker_of(row))}; ")
    when = f" at {_window_of(defn)} days" if window else ""
    return f"{numbers.pct(row['rate'])} of those due were reached{when} ({ci}{n}{target})"


def followup_words(sh: _Sheet, defn: Mapping[str, Any]) -> str:
    """The follow-up response that applies to a definition, as a sentence's end."""
    if not is_followup(defn):
        return "not needed (from the program's records)."
    said = response_words(sh, defn)
    if said is None:
        return f"not available (these results hold no {_window_of(defn)}-day follow-up response rate)."
    return f"{said}."


def _opening(sh: _Sheet) -> str:
    period = (sh.results.get("period") or {}).get("label") or "the period"
    sites = (sh.results.get("cohort") or {}).get("sites")
    where = (f"{numbers.count(sites)} program{'' if sites == 1 else 's'}" if sites is not None
             else "the programs in these results")
    rated = [sh.overall[d]["rate"] for d in sh.overall if sh.rated(d)]
    spread = (f"; here it runs from {numbers.pct(min(rated))} to {numbers.pct(max(rated))} depending on the "
              "definition" if len(rated) > 1 else "")
    return (f"Discharges from {where}, all levels of care, {period}. A success rate is the share of the people "
            f"counted who met the definition of success{spread}. Ask for all three: the definition, who is "
            "counted, and how many were reached at follow-up.")


def _headline(sh: _Sheet, d: str) -> str:
    """One headline rate: the rate, the definition, who is counted, the follow-up response (with
    who is counted when only the people reached are)."""
    defn, row = sh.definitions.get(d) or {"id": d}, sh.overall[d]
    sentence = definition_sentence(defn)
    if sh.native_only:
        sentence = re.sub(r"\bnative (?=discharges?\b)", "", sentence)
    head = f"{sh.label(d)} [{d}]: {rate_words(row, sh.marker_of(row))}. Definition: {sentence}"
    said = response_words(sh, defn, window=False)
    if said is not None and defn.get("missing") != "failure":
        return f"{head} Who is counted, and the follow-up response: {who_counts(defn, response=said)}."
    return f"{head} Who is counted: {who_counts(defn)}. Follow-up response: {followup_words(sh, defn)}"


def _glued(text: str | None) -> str | None:
    """Text kept on one line (no-break spaces): a rate with its interval, the end of who counts;
    so that the definitions get most of the table's width."""
    return None if text is None else text.replace(" ", NBSP)


def _who_cell(who: str) -> str:
    """Who counts as a table cell: what becomes of the unknown kept on one line."""
    *pop, rule = who.split("; ")
    return "; ".join([*pop, _glued(rule)])


def definition_cell(label: str, success: str) -> str:
    """The table's first cell: the definition's name and what counts as success ('PHQ-9
    response: a drop of at least 50% by discharge'); the name alone when the phrase only says
    it again ('Not homeless at discharge')."""
    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z0-9-]+", text.lower()))

    if not success or words(success) <= words(label):
        return label
    acronym = re.match(r"[A-Z][A-Z0-9-]+\b", success)  # 'PHQ-9 below 5', not 'A drop'
    return f"{label}: {success if acronym else success[:1].lower() + success[1:]}"


def _others_table(sh: _Sheet, ids: Sequence[str], note: str) -> Table:
    """Every definition's overall rate: its name and what counts as success, who counts, the
    rate with its 95% interval (the marker when hidden)."""
    recs, hidden = [], []
    for d in ids:
        defn, row = sh.definitions.get(d) or {"id": d}, sh.overall[d]
        recs.append({"definition": definition_cell(sh.label(d), success_phrase(defn)),
                     "who": _who_cell(who_counts(defn, short=True)),
                     "rate": _glued(tables.rate_text(row))})
        hidden.append({"rate": tables.row_reason(row) if row.get("rate") is None and row.get("denominator") != 0
                       else None})
    t = tables.simple_table(
        f"table-{SHEET_ID}", "The same people under other common definitions", recs, ["definition", "who", "rate"],
        headers={"definition": "definition: what counts as success", "who": "who counts",
                 "rate": "rate (95% CI)"}, note=note)
    t.hidden = pd.DataFrame(hidden, columns=["rate"], dtype=object).reindex(columns=list(t.frame.columns))
    t.complementary_marker = sh.complementary
    t.compact = True
    return t


def _closing(sh: _Sheet, left_out: Sequence[str], empty: Sequence[str] = ()) -> str:
    """The table's note: what the interval is, the definitions not listed, the small-numbers
    rule, and where the full numbers are."""
    run = sh.results.get("run_id")
    more = f" Also computed, not listed for want of room: {', '.join(sh.label(d) for d in left_out)}." if left_out else ""
    if empty:
        more += (" Nothing to count in these data (what they need is not recorded, or their window is not yet "
                 f"over): {', '.join(sh.label(d) for d in empty)}.")
    return (f"95% CI: 95% confidence interval.{more} Small numbers: {sh.note} "
            f"Full numbers by level of care, site and quarter: report.pdf, report.html, report.xlsx and rates.csv"
            f"{f' (results run {run})' if run else ''}; every definition in full: the report's appendix.")


def _sheet(sh: _Sheet, heads: Sequence[str], ids: Sequence[str], rows: int) -> Section:
    """The sheet with the first ``rows`` of ``ids`` (those with a rate or a marker to show) in
    its table, the rest named in its note, as are the definitions over no one."""
    s = Section(SHEET_ID, "How we measure success")
    s.paragraphs.append(_opening(sh))
    if not heads:
        s.unavailable.append("not available: no definition of success has an overall rate shown in these results")
    s.bullets += [_headline(sh, d) for d in heads]
    tabled, empty = [d for d in ids if sh.tabled(d)], _empty(sh, ids)
    if tabled:
        s.tables.append(_others_table(sh, tabled[:rows], _closing(sh, tabled[rows:], empty)))
    else:
        s.paragraphs.append(_closing(sh, (), empty))
    return s


def sheet_pages(results: Mapping[str, Any], section: Section, title: str = REPORT_TITLE) -> int:
    """The pages ``section`` takes when printed by :func:`pipelines.report.pdf.write_brief_pdf`
    in a report titled ``title`` with the results' disclosure note."""
    import tempfile
    from pathlib import Path

    from pipelines.report import pdf
    from pipelines.report.build import disclosure_note
    from pipelines.report.model import Report

    d = results.get("disclosure") or {}
    marker = str(d.get("marker") or "*")
    complementary = str(d.get("complementary_marker") or marker)
    note = disclosure_note(d)
    report = Report(title=title, period=str((results.get("period") or {}).get("label") or ""),
                    run_id=str(results.get("run_id") or ""), created_at=str(results.get("created_at") or ""),
                    rule_name=str(d.get("rule") or ""), marker=marker, disclosure_note=note, sections=[section],
                    complementary_marker=complementary)
    with tempfile.TemporaryDirectory(prefix="levelcare-sheet-") as tmp:
        path = pdf.write_brief_pdf(report, Path(tmp) / SHEET_PDF, section_id=section.id, kind=SHEET_KIND, max_pages=1)
        data = Path(path).read_bytes()
    return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", data))


def success_sheet_from_results(results: Mapping[str, Any], headlines: Sequence[str] | None = None, *,
                               fit: bool = True, title: str = REPORT_TITLE) -> Section:
    """The success-rate disclosure sheet, section "success-sheet", one A4 portrait page through
    :func:`pipelines.report.pdf.write_brief_pdf` with ``section_id="success-sheet"``: an
    opening line; the headline rates one by one (the first MAX_HEADLINES of ``headlines``,
    default HEADLINE, with a shown overall rate); the table of every definition's overall rate,
    HEADLINE first, whose note is the small-numbers rule and where the full numbers are.

    With ``fit`` the page is printed once to check it (in a report titled ``title``); should
    the table run over, its last rows are left out and named in its note."""
    sh = _Sheet(results)
    heads = _headlines(sh, headlines)
    ids = _order(sh, heads)
    n = sum(1 for d in ids if sh.tabled(d))
    s = _sheet(sh, heads, ids, n)
    if not fit or not n or sheet_pages(results, s, title) <= 1:
        return s
    lo, hi = 0, n - 1  # the most rows that fit: at least lo (0 rows may not fit either)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sheet_pages(results, _sheet(sh, heads, ids, mid), title) <= 1:
            lo = mid
        else:
            hi = mid - 1
    return _sheet(sh, heads, ids, lo)


def success_sheet(ctx: Any, headlines: Sequence[str]) -> Section:
    """The sheet from the report's build context (see :func:`success_sheet_from_results`)."""
    return success_sheet_from_results(ctx.results, headlines)


def sheet_summary_from_results(results: Mapping[str, Any], headlines: Sequence[str] | None = None) -> Section:
    """The board brief's part on how success is measured, section "summary-sheet": the
    headline definition, who is counted, its follow-up response, and where the full sheet is."""
    sh = _Sheet(results)
    s = Section(SUMMARY_ID, "How success is measured")
    heads = _headlines(sh, headlines)
    if not heads:
        s.paragraphs.append(f"No definition of success has an overall rate shown in these results ({SHEET_PDF}).")
        return s
    d = heads[0]
    defn, row = sh.definitions.get(d) or {"id": d}, sh.overall[d]
    rated = [sh.overall[x]["rate"] for x in sh.overall if sh.rated(x)]
    spread = (f"The same discharges give {numbers.pct(min(rated))} to {numbers.pct(max(rated))} under the "
              f"{len(rated)} definitions shown: " if len(rated) > 1 else "")
    head = (f"Headline definition: {sh.label(d)} [{d}], {rate_words(row, sh.marker_of(row))}, all levels of care "
            f"together. Who is counted: {who_counts(defn)}.")
    response = f"Follow-up response: {followup_words(sh, defn)}"
    asked = next((x for x in heads if is_followup(sh.definitions.get(x) or {}) and x != d), None)
    if not is_followup(defn) and asked is not None:  # the headline needs none: say it for the one that does
        said = response_words(sh, sh.definitions[asked])
        if said is not None:
            response = (f"Follow-up response: not needed for {sh.label(d)} (from the program's records); "
                        f"{sh.label(asked)} [{asked}] rests on follow-up interviews: {said}.")
    where = (f"the success-rate disclosure sheet for families ({SHEET_PDF}) gives each headline rate's definition, "
             "who is counted and the follow-up response, and the rate under every other definition.")
    s.paragraphs += [head, response, (spread + where)[:1].upper() + (spread + where)[1:]]
    return s


def sheet_summary(ctx: Any, headlines: Sequence[str]) -> Section:
    """The brief's part from the report's build context (see :func:`sheet_summary_from_results`)."""
    return sheet_summary_from_results(ctx.results, headlines)
