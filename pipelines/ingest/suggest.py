"""Draft a mapping file (docs/mapping.md) from a sender's export: ``levelcare map suggest``.

``suggest_mapping(paths, kind)`` reads each file into an in-memory DuckDB (the ingest readers, so
the headers are the ones ingest will see) and guesses, for the contract of ``kind``:

* which contract field each column is: the contract name (high), a known header wording from
  ``data_contracts/synonyms.yaml`` (high), a header containing a known wording of two or more
  words (medium), or a header merely close to one (low, difflib);
* for the columns that map to an enumeration, a boolean or ``asam_level``, a contract code for
  each distinct label (the same three levels of confidence, from the same file);
* for date fields, the date format (tried with DuckDB's ``try_strptime``, which is what the
  mapping applies at ingest), including day/month order, decided by any value that only one
  order can read.

``render_yaml(suggestion)`` writes the draft: valid mapping YAML where every guess carries a
``# high|medium|low: why`` comment, followed by comment blocks for what was not found.

What the draft shows of the data, on purpose: the headers, and the distinct labels of columns
that map to a category field, when a column has at most 60 of them (more is not a category list)
and none is longer than 80 characters. No other value leaves the file: ids, dates, numbers and
free text are only counted or tried against patterns. A column whose name says it holds a direct
identifier (:data:`pipelines.ingest.identifiers.NAME_RULES`) is never mapped nor ignored, only
listed as refused; the identifier gate's value probes run too, and their findings are reported
as counts, as ingest would report them.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import contracts
from pipelines.errors import UserError, one_line
from pipelines.ingest import identifiers
from pipelines.ingest.readers import SRC_TABLE, file_facts, load_source, quote_ident, quote_lit, trimmed
from pipelines.resources import contracts_dir

if TYPE_CHECKING:
    import duckdb

KINDS = ("discharges", "followups")
HIGH, MEDIUM, LOW = "high", "medium", "low"
RANK = {HIGH: 3, MEDIUM: 2, LOW: 1}
MAX_CATEGORIES = 60  # a column with more distinct values is not a category: none is shown
MAX_LABEL_CHARS = 80  # a longer value is free text, not a label: none of the column's is shown
# difflib ratios (on the words joined by spaces): a low-confidence guess of a header's field, of a
# label's code, and a hint on what is left unmapped. Short strings score high by chance
# ("clinician" and "clinic" are 80% alike), so a header needs more than a label.
CLOSE_HEADER = 0.84
CLOSE_LABEL = 0.8
CLOSE_HINT = 0.7
CLOSE_TIE = 0.03  # two targets this close to equally close: neither is guessed
# Words the batch reads as booleans already (pipelines/ingest/batch.py typed_expr).
NATIVE_BOOL = frozenset({"true", "yes", "y", "1", "false", "no", "n", "0"})
# ISO dates as the batch reads them without a format (batch.typed_expr).
ISO_DATE = r"\d{4}-\d{2}-\d{2}([ T]00:00(:00(\.0+)?)?)?"
# Date formats tried, in order of preference when two read the same rows (so an ambiguous
# d/m order falls to the first: month first with slashes and dashes, day first with dots).
DATE_PARTS = (
    "%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y", "%Y/%m/%d", "%d.%m.%Y", "%m.%d.%Y",
    "%d.%m.%y", "%m-%d-%Y", "%d-%m-%Y", "%m-%d-%y", "%d-%m-%y", "%Y.%m.%d", "%Y%m%d", "%d-%b-%Y",
    "%d-%b-%y", "%d %b %Y", "%b %d, %Y", "%B %d, %Y", "%d %B %Y", "%b %d %Y", "%B %d %Y",
)
TIME_PARTS = ("", " %H:%M", " %H:%M:%S", "T%H:%M", "T%H:%M:%S", " %I:%M %p", " %I:%M:%S %p", " %I:%M%p")
DATE_FORMATS = tuple(d + t for d in DATE_PARTS for t in TIME_PARTS)
# A label carrying one of these words, inside which only a wording without it is found, is left
# unmapped ("Not completed" contains "completed").
NEGATIONS = frozenset({"not", "non", "no", "never", "without", "un", "unable", "failed", "incomplete"})


# --------------------------------------------------------------------------------------------
# The suggestion


@dataclass(frozen=True)
class Guess:
    """A guessed target (a field, a code or a date format), how sure, and why."""

    target: str
    confidence: str  # high, medium or low
    why: str


@dataclass
class Suggestion:
    kind: str
    files: list[str]
    columns: dict[str, Guess] = field(default_factory=dict)  # header -> field (file order)
    values: dict[str, dict[str, Guess]] = field(default_factory=dict)  # field -> label -> code
    passing: dict[str, list[str]] = field(default_factory=dict)  # field -> labels needing no recode
    unmapped_labels: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # field -> (label, hint)
    value_notes: dict[str, str] = field(default_factory=dict)  # field -> why no label is listed
    dates: dict[str, Guess] = field(default_factory=dict)  # date field or "*" -> format
    date_notes: dict[str, str] = field(default_factory=dict)  # date field -> note (no entry needed / none)
    refused: dict[str, str] = field(default_factory=dict)  # header -> what its name says it holds
    identifier_findings: list[str] = field(default_factory=list)  # the gate's value findings (counts)
    unmapped: dict[str, str] = field(default_factory=dict)  # header -> hint (closest field, ...)
    ignore: list[str] = field(default_factory=list)  # headers close to no field at all
    missing_required: list[str] = field(default_factory=list)  # one line per required field
    notes: list[str] = field(default_factory=list)

    def column_of(self, field_name: str) -> str | None:
        for header, guess in self.columns.items():
            if guess.target == field_name:
                return header
        return None


# --------------------------------------------------------------------------------------------
# Words


def norm_header(name: str) -> str:
    """lower case, every run of non-alphanumerics one '_', none at the ends."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def words(text: Any) -> tuple[str, ...]:
    """The words of a header, label or synonym: lower case; a number right after a short word
    joins it ("PHQ-9" and "phq9" are both ``phq9``)."""
    out: list[str] = []
    for w in re.findall(r"[a-z0-9+]+", str(text).lower()):
        if w.isdigit() and out and out[-1].isalpha() and len(out[-1]) <= 4:
            out[-1] += w
        else:
            out.append(w)
    return tuple(out)


def _squash(ws: Sequence[str]) -> str:
    return "".join(ws)


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return any(tuple(haystack[i:i + n]) == tuple(needle) for i in range(len(haystack) - n + 1))


def _q(text: str) -> str:
    """``text`` quoted for a comment: one line, JSON-style quotes."""
    return one_line(json.dumps(text, ensure_ascii=False))


# --------------------------------------------------------------------------------------------
# Synonyms


@cache
def synonyms() -> dict[str, Any]:
    """data_contracts/synonyms.yaml."""
    import yaml

    doc = yaml.safe_load((contracts_dir() / "synonyms.yaml").read_text(encoding="utf-8"))
    return {"columns": doc.get("columns") or {}, "values": doc.get("values") or {}}


@dataclass(frozen=True)
class _Phrase:
    words: tuple[str, ...]
    target: str
    text: str  # as written in the contract or synonyms.yaml
    is_name: bool  # the target's own name (a field name or a code)


class _Index:
    """Wordings of a set of targets, for exact, containment and close matching."""

    def __init__(self, phrases: Iterable[_Phrase]):
        self.phrases = [p for p in phrases if p.words]
        self.exact: dict[str, list[_Phrase]] = {}
        for p in self.phrases:
            self.exact.setdefault(_squash(p.words), []).append(p)

    def lookup(self, ws: tuple[str, ...]) -> _Phrase | None:
        found = self.exact.get(_squash(ws), [])
        targets = {p.target for p in found}
        if len(targets) != 1:
            return None
        return next((p for p in found if p.is_name), found[0])

    def contained(self, ws: tuple[str, ...], min_words: int) -> tuple[_Phrase | None, list[str]]:
        """The longest wording inside ``ws`` (None and the rival targets when two tie)."""
        hits = [p for p in self.phrases
                if len(p.words) >= min_words and len(_squash(p.words)) >= 3 and _contains(ws, p.words)]
        if not hits:
            return None, []
        longest = max(len(p.words) for p in hits)
        best = [p for p in hits if len(p.words) == longest]
        targets = sorted({p.target for p in best})
        return (best[0], []) if len(targets) == 1 else (None, targets)

    def close(self, ws: tuple[str, ...], cutoff: float) -> tuple[_Phrase | None, float, list[str]]:
        """The closest wording, its ratio, and the targets about as close (within
        CLOSE_TIE) when they are several: then the phrase is None."""
        text = " ".join(ws)
        by_target: dict[str, tuple[float, _Phrase]] = {}
        for p in self.phrases:
            r = difflib.SequenceMatcher(None, text, " ".join(p.words)).ratio()
            held = by_target.get(p.target)
            if held is None or r > held[0] or (r == held[0] and p.is_name and not held[1].is_name):
                by_target[p.target] = (r, p)
        if not by_target:
            return None, 0.0, []
        score, best = max(by_target.values(), key=lambda x: x[0])
        rivals = sorted(t for t, (r, _) in by_target.items() if r >= max(score - CLOSE_TIE, cutoff))
        if score < cutoff:
            return None, score, []
        if len(rivals) > 1:
            return None, score, rivals
        return best, score, []


@cache
def _column_index(kind: str) -> _Index:
    syn = synonyms()["columns"]
    phrases = []
    for f in contracts.load(kind).fields:
        phrases.append(_Phrase(words(f.name), f.name, f.name, True))
        phrases += [_Phrase(words(s), f.name, str(s), False) for s in syn.get(f.name) or ()]
    return _Index(phrases)


def _codes(f: contracts.Field) -> list[str]:
    if f.type == "bool":
        return ["true", "false"]
    return [str(v) for v in f.values or ()]


def is_category(f: contracts.Field) -> bool:
    """Fields whose labels a mapping may recode (and whose labels the draft may show)."""
    return f.type in ("enum", "bool") or (f.name == "asam_level" and f.values is not None)


@cache
def _value_index(kind: str, field_name: str) -> _Index:
    f = contracts.load(kind).field(field_name)
    codes = _codes(f)
    table = synonyms()["values"]
    own = table.get(field_name)
    groups = [own] if own else []
    if f.type == "bool":
        groups.append(table.get("_bool") or {})
    if "unknown" in codes:
        groups.append(table.get("_missing") or {})
    phrases = [_Phrase(words(c), c, c, True) for c in codes]
    for group in groups:
        for code, wordings in group.items():
            code = str(code).lower() if isinstance(code, bool) else str(code)
            if code in codes:
                phrases += [_Phrase(words(w), code, str(w), False) for w in wordings or ()]
    return _Index(phrases)


@cache
def _missing_words() -> frozenset[str]:
    missing = (synonyms()["values"].get("_missing") or {}).get("unknown") or ()
    return frozenset(_squash(words(w)) for w in missing)


# --------------------------------------------------------------------------------------------
# Matching a header


@dataclass(frozen=True)
class _Match:
    field: str
    confidence: str
    why: str
    score: float  # for ties between two headers wanting one field


def match_header(header: str, kind: str) -> tuple[_Match | None, str]:
    """The field ``header`` most likely is (or None), and a hint when it is None."""
    index = _column_index(kind)
    ws = words(header)
    exact = index.lookup(ws)
    if exact is not None:
        if exact.is_name:
            why = ("the contract name" if norm_header(header) == exact.target
                   else "the contract name, written differently")
        else:
            why = f"known header for {exact.target}"
        return _Match(exact.target, HIGH, why, 1.0 if exact.is_name else 0.99), ""
    inside, rivals = index.contained(ws, min_words=2)
    if inside is not None:
        what = "the field name" if inside.is_name else f"a known header for {inside.target}"
        return _Match(inside.target, MEDIUM, f"contains {_q(inside.text)} ({what})", 0.9), ""
    if rivals:
        return None, f"could be {' or '.join(rivals)}"
    for other in KINDS:
        theirs = _column_index(other).lookup(ws) if other != kind else None
        if theirs is not None and theirs.is_name:
            return None, f"a {other} field ({theirs.target}): is this a {other} file?"
    near, score, tied = index.close(ws, CLOSE_HINT)
    if tied:
        return None, f"could be {' or '.join(tied)}"
    if near is not None and score >= CLOSE_HEADER:
        why = (f"close to {_q(near.target)}" if near.is_name
               else f"close to {_q(near.text)} (a known header for {near.target})")
        return _Match(near.target, LOW, why, score), ""
    if near is not None:
        return None, f"closest field: {near.target} ({score:.0%} alike)"
    return None, ""


# --------------------------------------------------------------------------------------------
# Matching a label


_AGE_RANGE = re.compile(r"(\d{1,3})\s*(?:-|–|—|to|through|thru)\s*(\d{1,3})(?:\s*(?:years?|yrs?|y)(?:\s+old)?)?")
_AGE_TOP = re.compile(r"(\d{1,3})\s*(?:\+|(?:years?\s+)?(?:and|or)\s+(?:older|over|above|more))(?:\s*years?)?")


def _age_band(label: str, codes: list[str]) -> Guess | None:
    text = label.strip().lower()
    m = _AGE_RANGE.fullmatch(text)
    if m:
        code = f"{int(m.group(1))}-{int(m.group(2))}"
        return Guess(code, HIGH, f"the band {code} written differently") if code in codes else None
    m = _AGE_TOP.fullmatch(text)
    if m:
        code = f"{int(m.group(1))}+"
        return Guess(code, HIGH, f"the band {code} written differently") if code in codes else None
    if text.isdigit():
        age = int(text)
        for code in codes:
            lo, _, hi = code.partition("-")
            if code.endswith("+") and age >= int(code[:-1]) or hi and int(lo) <= age <= int(hi):
                return Guess(code, MEDIUM, f"an age, in the band {code}")
    return None


_ASAM = re.compile(r"(?:asam\s*)?(?:level\s*(?:of\s*care\s*)?)?:?\s*(\d)(?:\.(\d))?\s*(?:-|\s)?\s*(wm)?\b(.*)")


def _asam(label: str, codes: list[str]) -> Guess | None:
    text = label.strip().lower()
    m = _ASAM.fullmatch(text)
    if not m:
        return None
    major, minor, wm, rest = m.group(1), m.group(2), m.group(3), m.group(4).strip(" -:,()")
    if "withdrawal management" in rest:
        wm, rest = "wm", rest.replace("withdrawal management", "").strip(" -:,()")
    code = major + (f".{minor}" if minor and minor != "0" else "") + ("-wm" if wm else "")
    if code not in codes:
        return None
    if rest:
        return Guess(code, MEDIUM, f"starts with ASAM level {code}")
    return Guess(code, HIGH, f"ASAM level {code} written differently")


@dataclass(frozen=True)
class _LabelResult:
    status: str  # code (already one), native (a yes/no word), recode, unmapped
    guess: Guess | None = None
    hint: str = ""


def match_label(kind: str, field_name: str, label: str) -> _LabelResult:
    f = contracts.load(kind).field(field_name)
    codes = _codes(f)
    low = label.strip().lower()
    if low in codes:
        return _LabelResult("code")
    if f.type == "bool" and low in NATIVE_BOOL:
        return _LabelResult("native")
    if f.name == "asam_level":
        g = _asam(label, codes)
        if g is not None:
            return _LabelResult("recode", g)
    if f.name == "age_band":
        g = _age_band(label, codes)
        if g is not None:
            return _LabelResult("recode", g)
    index = _value_index(kind, field_name)
    ws = words(label)
    if not ws:
        return _LabelResult("unmapped", hint="no letters or digits")
    exact = index.lookup(ws)
    if exact is not None:
        why = (f"the code {exact.target} written differently" if exact.is_name
               else f"known wording for {exact.target}")
        return _LabelResult("recode", Guess(exact.target, HIGH, why))
    inside, rivals = index.contained(ws, min_words=1)
    if inside is not None:
        negated = (set(ws) & NEGATIONS) - set(inside.words)
        if negated:  # "Not completed" is not completed: left to the reader
            return _LabelResult("unmapped", hint=f"contains {_q(inside.text)} ({inside.target}), but also "
                                                 f"{_q(min(negated))}")
        return _LabelResult("recode", Guess(inside.target, MEDIUM, f"contains {_q(inside.text)}"))
    if rivals:
        return _LabelResult("unmapped", hint=f"could be {' or '.join(rivals)}")
    near, score, tied = index.close(ws, CLOSE_HINT)
    if tied:
        return _LabelResult("unmapped", hint=f"could be {' or '.join(tied)}")
    if near is not None and score >= CLOSE_LABEL:
        return _LabelResult("recode", Guess(near.target, LOW, f"close to {_q(near.text)}"))
    if _squash(ws) in _missing_words() and "unknown" not in codes:
        return _LabelResult("unmapped", hint=f"a missing-value label; {field_name} has no 'unknown' code "
                                             "(leave the cell empty, or choose a code)")
    if near is not None:
        return _LabelResult("unmapped", hint=f"closest: {near.target}")
    return _LabelResult("unmapped")


# --------------------------------------------------------------------------------------------
# Reading the files


@dataclass
class _Column:
    """What the draft learns of one header across the files (kept in memory, never printed
    except the labels of a category column)."""

    files: list[str] = field(default_factory=list)
    labels: dict[str, list[Any]] = field(default_factory=dict)  # lower label -> [spellings counts, rows]
    too_many: bool = False
    too_long: bool = False
    filled: int = 0
    not_number: int = 0
    date_rows: int = 0
    iso_rows: int = 0
    date_reads: dict[str, int] = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)  # identifier findings (what)


def _load(con: duckdb.DuckDBPyConnection, path: Path, kind: str) -> list[str]:
    """The file's header names; of a workbook, the first sheet with two or more headers that
    match a field of ``kind`` (a cover sheet of prose is passed over)."""
    def accept(names: list[str]) -> bool:
        return sum(match_header(n, kind)[0] is not None for n in names) >= 2

    loaded = load_source(con, path, file_facts(path), accept=accept)
    return [str(n) for n in loaded.names]


def _collect_labels(con: duckdb.DuckDBPyConnection, column: str, data: _Column) -> None:
    if data.too_many:
        return
    v = trimmed(quote_ident(column))
    rows = con.execute(f"SELECT v, count(*) FROM (SELECT {v} AS v FROM {SRC_TABLE}) WHERE v IS NOT NULL "
                       f"GROUP BY v LIMIT {MAX_CATEGORIES + 1}").fetchall()
    for value, n in rows:
        if len(value) > MAX_LABEL_CHARS:
            data.too_long = True
        entry = data.labels.setdefault(value.lower(), [{}, 0])
        entry[0][value] = entry[0].get(value, 0) + n
        entry[1] += n
    if len(data.labels) > MAX_CATEGORIES:
        data.too_many = True
        data.labels.clear()  # not a category: nothing of it is kept


def _collect_numbers(con: duckdb.DuckDBPyConnection, columns: list[str], data: dict[str, _Column]) -> None:
    if not columns:
        return
    items = []
    for c in columns:
        v = trimmed(quote_ident(c))
        items += [f"count({v})", f"count({v}) - count(TRY_CAST({v} AS DOUBLE))"]
    row = con.execute(f"SELECT {', '.join(items)} FROM {SRC_TABLE}").fetchone()
    for i, c in enumerate(columns):
        data[c].filled += int(row[2 * i])
        data[c].not_number += int(row[2 * i + 1])


_DIRECTIVE_SHAPES = {"Y": "9999", "y": "99", "m": "99?", "d": "99?", "H": "99?", "I": "99?", "M": "99",
                     "S": "99", "b": "a", "B": "a", "p": "a"}


@cache
def _shape_pattern(fmt: str) -> re.Pattern[str]:
    """What a value ``fmt`` reads looks like once every digit is 9 and every run of letters is
    one 'a' (the shapes ``_collect_dates`` groups values by)."""
    parts = re.split(r"(%.)", fmt)
    return re.compile("".join(_DIRECTIVE_SHAPES[p[1]] if p.startswith("%")
                              else re.escape(re.sub("[A-Za-z]+", "a", re.sub("[0-9]", "9", p)))
                              for p in parts if p))


def _collect_dates(con: duckdb.DuckDBPyConnection, column: str, data: _Column) -> None:
    """Rows (of ``column``'s filled values) each candidate format reads, ISO dates counting as
    read (the mapping keeps them). Values are grouped by shape first, so only the formats that
    could read some shape are tried (trying all of them in one statement takes DuckDB seconds)."""
    v = trimmed(quote_ident(column))
    distinct = f"(SELECT v, count(*) AS n FROM (SELECT {v} AS v FROM {SRC_TABLE}) WHERE v IS NOT NULL GROUP BY v)"
    shapes = con.execute(
        "SELECT s, sum(n) FROM (SELECT regexp_replace(regexp_replace(v, '[0-9]', '9', 'g'), "
        f"'[A-Za-z]+', 'a', 'g') AS s, n FROM {distinct}) GROUP BY s").fetchall()
    candidates = [f for f in DATE_FORMATS if any(_shape_pattern(f).fullmatch(sh) for sh, _ in shapes)]
    iso = f"regexp_full_match(v, {quote_lit(ISO_DATE)})"
    reads = [f"coalesce(sum(n) FILTER (WHERE {iso} OR try_strptime(v, {quote_lit(fmt)}) BETWEEN "
             "TIMESTAMP '1900-01-01' AND TIMESTAMP '2100-12-31 23:59:59'), 0)" for fmt in candidates]
    row = con.execute(f"SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (WHERE {iso}), 0)"
                      f"{''.join(', ' + r for r in reads)} FROM {distinct}").fetchone()
    data.date_rows += int(row[0])
    data.iso_rows += int(row[1])
    for fmt in DATE_FORMATS:  # a format no shape fits reads the ISO dates only
        n = int(row[2 + candidates.index(fmt)]) if fmt in candidates else int(row[1])
        data.date_reads[fmt] = data.date_reads.get(fmt, 0) + n


def _read_file(path: Path, kind: str, tentative: dict[str, tuple[_Match | None, str]],
               refused: dict[str, str], data: dict[str, _Column], findings: list[str]) -> list[str]:
    import duckdb

    contract = contracts.load(kind)
    fields = {f.name: f for f in contract.fields}
    con = duckdb.connect()
    try:
        names = _load(con, path, kind)
        for finding in identifiers.by_name(names):
            refused.setdefault(finding.column, finding.what)
        usable = [n for n in names if n not in refused]
        for n in usable:
            if n not in tentative:
                tentative[n] = match_header(n, kind)
            data.setdefault(n, _Column()).files.append(path.name)
        numbers = []
        for n in usable:
            m = tentative[n][0]
            f = fields.get(m.field) if m else None
            if f is None:
                continue
            if is_category(f):
                _collect_labels(con, n, data[n])
            elif f.type == "date":
                _collect_dates(con, n, data[n])
            elif f.type in ("int", "number"):
                numbers.append(n)
        _collect_numbers(con, numbers, data)
        for n in numbers:  # an "Age" column holding bands is age_band: its labels are needed
            m = tentative[n][0]
            if m.field == "age" and "age_band" in fields and data[n].not_number * 2 > data[n].filled:
                _collect_labels(con, n, data[n])
        # the identifier gate's value probes, as ingest runs them (counts only)
        pseudonyms = {f.name for f in contract.fields if f.sensitivity == "pseudonym"}
        amounts = {f.name for f in contract.fields if f.type == "number"}
        target = {n: (tentative[n][0].field if tentative[n][0] else None) for n in usable}
        for finding in identifiers.scan(
                con, SRC_TABLE, usable,
                name_checked=[n for n in usable if target[n] is None or target[n] in pseudonyms],
                distinct=[n for n in usable if target[n] in pseudonyms | amounts]):
            if finding.rows is None:
                continue
            data[finding.column].flagged.append(finding.what)
            findings.append(f"{path.name}: column {_q(finding.column)}: {finding.rows} of its values look like "
                            f"{finding.what}")
        return names
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# Deciding


def _date_guess(header: str, data: _Column) -> tuple[Guess | None, str]:
    total = data.date_rows
    if total == 0:
        return None, f"column {_q(header)} is empty: no date format to detect"
    if data.iso_rows == total:
        return None, f"column {_q(header)}: ISO dates (2026-07-15), understood already"
    best = max(DATE_FORMATS, key=lambda f: (data.date_reads[f], -DATE_FORMATS.index(f)))
    n = data.date_reads[best]
    if n == 0:
        return None, (f"column {_q(header)}: no known date pattern reads its values; write the format "
                      "yourself (strptime directives, docs/mapping.md)")
    swapped = best.replace("%m", "\0").replace("%d", "%m").replace("\0", "%d")
    ambiguous = swapped != best and data.date_reads.get(swapped, -1) == n
    reads = f"reads every value of {_q(header)}" if n == total else f"reads {n} of {total} values of {_q(header)}"
    if ambiguous:
        return Guess(best, LOW, f"ambiguous: {reads}, but so does {swapped!r} (no day above 12); "
                                "check which comes first"), ""
    if n == total:
        return Guess(best, HIGH, reads), ""
    return Guess(best, MEDIUM if n * 10 >= total * 9 else LOW, reads + " (the rest would be type failures)"), ""


def _label_share(kind: str, field_name: str, labels: Iterable[str], parse_only: bool = False) -> float:
    labels = list(labels)
    if not labels:
        return 0.0
    f = contracts.load(kind).field(field_name)
    good = 0
    for label in labels:
        if parse_only:
            codes = _codes(f)
            good += (_asam(label, codes) if field_name == "asam_level" else _age_band(label, codes)) is not None
            continue
        r = match_label(kind, field_name, label)
        good += r.status in ("code", "native") or (r.status == "recode" and r.guess.confidence != LOW)
    return good / len(labels)


NOT_SHOWN = "(not shown: shaped like a person's name, an id, a date or an address)"
_PERSON_NAME = re.compile(identifiers.PERSON_NAME)
_PRIVATE = re.compile(r".*(\d{5,}|\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}|@|\d+\s+\w+\s+(st|street|ave|avenue|rd|road)\b).*",
                      re.IGNORECASE)


def _looks_private(label: str) -> bool:
    """A label of a category column that no wording matched, shaped like what must not be shown
    (a person's name, a long number, a date, an e-mail or street address): a category column
    may still hold free text in a small export. Some real labels ("Sober Living") look like
    names too: the draft says one label is not shown, and the reader looks in the file."""
    text = label.strip()
    return bool(_PRIVATE.fullmatch(text) or _PERSON_NAME.fullmatch(text))


def _spelling(entry: list[Any]) -> str:
    spellings: dict[str, int] = entry[0]
    return max(sorted(spellings), key=lambda s: spellings[s])


def suggest_mapping(paths: Sequence[str | Path], kind: str) -> Suggestion:
    """A draft mapping for ``paths`` (exports of one kind from one sender) onto ``kind``."""
    if kind not in KINDS:
        raise UserError(f"map suggest: --kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not paths:
        raise UserError("map suggest: give at least one FILE")
    contract = contracts.load(kind)
    fields = {f.name: f for f in contract.fields}
    tentative: dict[str, tuple[_Match | None, str]] = {}
    refused: dict[str, str] = {}
    data: dict[str, _Column] = {}
    findings: list[str] = []
    headers: list[str] = []
    files: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            raise UserError(f"{path.name or path}: a folder; give the export files themselves")
        files.append(path.name)
        for n in _read_file(path, kind, tentative, refused, data, findings):
            if n not in headers:
                headers.append(n)

    s = Suggestion(kind=kind, files=files, refused={h: refused[h] for h in headers if h in refused},
                   identifier_findings=findings)
    usable = [h for h in headers if h not in refused]

    # switches the values call for
    matches: dict[str, _Match] = {}
    for h in usable:
        m = tentative[h][0]
        if m is None:
            continue
        d = data[h]
        if (m.field == "age" and "age_band" in fields and d.filled and d.not_number * 2 > d.filled
                and not d.too_many and _label_share(kind, "age_band", d.labels, parse_only=True) >= 0.5):
            m = _Match("age_band", MEDIUM, "named like age, but its values are age bands, not whole numbers",
                       m.score)
        elif (m.field == "level_of_care" and "asam_level" in fields and not d.too_many
              and _label_share(kind, "asam_level", d.labels, parse_only=True) >= 0.5):
            m = _Match("asam_level", MEDIUM, "named like level_of_care, but its values are ASAM levels", m.score)
        matches[h] = m

    # one column per field: the surest keeps it
    winners: dict[str, str] = {}
    for h in usable:
        m = matches.get(h)
        if m is None:
            continue
        held = winners.get(m.field)
        if held is None or (RANK[m.confidence], m.score) > (RANK[matches[held].confidence], matches[held].score):
            winners[m.field] = h
    for h in usable:
        m = matches.get(h)
        if m is not None and winners[m.field] == h:
            s.columns[h] = Guess(m.field, m.confidence, m.why)
        elif m is not None:
            held = winners[m.field]
            s.unmapped[h] = f"also looks like {m.field} ({m.confidence}: {m.why}), which {_q(held)} takes"
            if norm_header(h) in fields:
                s.notes.append(f"column {_q(h)} is named like the field {norm_header(h)}, so ingest reads it as "
                               f"that field unless the mapping ignores it (two columns would then give "
                               f"{m.field})")
            if not set(data[h].files) & set(data[held].files):
                s.notes.append(f"the files name {m.field} differently ({_q(held)} in "
                               f"{', '.join(sorted(set(data[held].files)))}; {_q(h)} in "
                               f"{', '.join(sorted(set(data[h].files)))}); a mapping gives a field one "
                               "column: write one mapping per layout")
        elif data[h].flagged:  # ignoring it would not help: the gate reads ignored columns too
            s.unmapped[h] = (f"the identifier gate finds {data[h].flagged[0]} in it (see REFUSED): remove it "
                             "from the export; ignoring it does not help")
        elif tentative[h][1]:
            s.unmapped[h] = tentative[h][1]
        else:
            s.ignore.append(h)
            s.unmapped[h] = "no contract field is close (see the ignore suggestion)"

    # labels of category columns
    for h, g in s.columns.items():
        f = fields[g.target]
        d = data[h]
        if not is_category(f):
            continue
        if d.flagged:
            s.value_notes[f.name] = (f"column {_q(h)}: labels not shown; the identifier gate finds "
                                     f"{d.flagged[0]} in it")
            continue
        if d.too_many:
            s.value_notes[f.name] = (f"column {_q(h)} has more than {MAX_CATEGORIES} different values: "
                                     "not a category list, no value shown")
            continue
        if d.too_long:
            s.value_notes[f.name] = (f"column {_q(h)} has values longer than {MAX_LABEL_CHARS} characters "
                                     "(free text?): no value shown")
            continue
        if not d.labels:
            s.value_notes[f.name] = f"column {_q(h)} is empty"
            continue
        if g.confidence == LOW and _label_share(kind, f.name, d.labels) < 0.5:
            s.value_notes[f.name] = (f"column {_q(h)}: labels not shown, since the column is only a low guess "
                                     f"for {f.name} and its values do not read as {f.name} codes")
            continue
        for label in [_spelling(d.labels[low]) for low in sorted(d.labels)]:
            r = match_label(kind, f.name, label)
            if r.status in ("code", "native"):
                s.passing.setdefault(f.name, []).append(label)
            elif r.status == "recode":
                s.values.setdefault(f.name, {})[label] = r.guess
            else:
                shown = label if not _looks_private(label) else NOT_SHOWN
                s.unmapped_labels.setdefault(f.name, []).append((shown, r.hint))

    # dates
    date_guesses: dict[str, Guess] = {}
    for h, g in s.columns.items():
        if fields[g.target].type != "date":
            continue
        guess, note = _date_guess(h, data[h])
        if guess is None:
            s.date_notes[g.target] = note
        else:
            date_guesses[g.target] = guess
    formats = {g.target for g in date_guesses.values()}
    if len(date_guesses) > 1 and len(formats) == 1:
        worst = min(date_guesses.values(), key=lambda g: RANK[g.confidence])
        why = "; ".join(g.why for g in date_guesses.values())
        s.dates["*"] = Guess(formats.pop(), worst.confidence, why)
    else:
        s.dates.update(date_guesses)

    # numbers that are not
    for h, g in s.columns.items():
        f, d = fields[g.target], data[h]
        if f.type in ("int", "number") and d.not_number:
            s.notes.append(f"column {_q(h)} ({f.name}): {d.not_number} of {d.filled} filled values are not "
                           "numbers; they will be type failures (clean them in the export)")

    # required fields
    given = {g.target for g in s.columns.values()}
    for f in contract.fields:
        if not f.required or f.name in given or (f.alternative and f.alternative in given):
            continue
        either = f" (or {f.alternative})" if f.alternative else ""
        if f.name == "site_id":
            line = "site_id: no column; --site fills it, or add `constants: {site_id: <your site>}`"
        else:
            near = [h for h in s.unmapped if h not in s.ignore]
            hint = _closest_header(f.name, near + s.ignore)
            line = f"{f.name}{either}: no column found" + (f"; closest header: {_q(hint)}" if hint else "")
        s.missing_required.append(line)

    # the other kind's fields fit better?
    other = next(k for k in KINDS if k != kind)
    theirs = sum(_column_index(other).lookup(words(h)) is not None for h in usable)
    ours = sum(g.confidence == HIGH for g in s.columns.values())
    if theirs > ours:
        s.notes.append(f"{theirs} headers are known {other} headers, {ours} known {kind} headers: "
                       f"is --kind {other} meant?")

    # headers missing from some files
    if len(files) > 1:
        for h in headers:
            if h in data and len(set(data[h].files)) < len(set(files)):
                s.notes.append(f"column {_q(h)} is only in {', '.join(sorted(set(data[h].files)))}")
    return s


def _closest_header(field_name: str, headers: list[str]) -> str | None:
    wordings = [field_name] + [str(w) for w in synonyms()["columns"].get(field_name) or ()]
    best, score = None, CLOSE_HINT
    for h in headers:
        for w in wordings:
            r = difflib.SequenceMatcher(None, " ".join(words(h)), " ".join(words(w))).ratio()
            if r >= score:
                best, score = h, r
    return best


# --------------------------------------------------------------------------------------------
# Writing the draft


_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .+/()-]*")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})


def yaml_scalar(text: str) -> str:
    """``text`` as a YAML scalar that reads back as the same string (plain when safe)."""
    import yaml

    if _PLAIN.fullmatch(text) and not text.endswith(" ") and text.lower() not in _YAML_WORDS:
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text, ensure_ascii=False)


def _comment(text: str) -> str:
    return one_line(text)


class _Lines:
    """YAML lines; ``entry`` lines get their ``# comment`` aligned in one column at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str | None]] = []

    def raw(self, *lines: str) -> None:
        self.rows += [(line, None) for line in lines]

    def entry(self, text: str, comment: str) -> None:
        self.rows.append((text, _comment(comment)))

    def text(self) -> str:
        width = min(max((len(t) for t, c in self.rows if c is not None), default=0), 60)
        return "\n".join(t if c is None else f"{t.ljust(width)}  # {c}" for t, c in self.rows) + "\n"


def _guesses(out: _Lines, key: str, guesses: dict[str, Guess], when_empty: str = "") -> None:
    """A mapping section of ``key: target`` guesses, each with its confidence as a comment."""
    if not guesses:
        out.raw(f"{key}: {{}}{when_empty}")
        return
    out.raw(f"{key}:")
    for k, g in guesses.items():
        out.entry(f"  {yaml_scalar(k)}: {yaml_scalar(g.target)}", f"{g.confidence}: {g.why}")


def render_yaml(s: Suggestion) -> str:
    """The draft mapping file (docs/mapping.md, format version 1) with every guess commented."""
    contract = contracts.load(s.kind)
    fields = {f.name: f for f in contract.fields}
    out = _Lines()
    out.raw(
        f"# Draft mapping for {_comment(', '.join(s.files))} onto levelcare's {s.kind} records,",
        "# written by `levelcare map suggest` (docs/mapping.md). Every guess is marked high (a known name or",
        "# label), medium (contains one) or low (only looks like one): check them all, fix the low ones,",
        "# then: levelcare ingest FILE --mapping THIS-FILE. Headers appear lower-case, as ingest reads",
        "# them (matching is case-insensitive). Of the data, only the labels of category columns are shown.",
        "levelcare_mapping: 1",
        f"kind: {s.kind}",
    )
    _guesses(out, "columns", s.columns, "  # no column matched a contract field")

    order = [f.name for f in contract.fields]
    out.raw("values:" if s.values else "values: {}")
    for name in order:
        column = _q(s.column_of(name) or "")
        if name in s.values:
            out.entry(f"  {name}:", f"column {column}")
            for label, g in s.values[name].items():
                out.entry(f"    {yaml_scalar(label)}: {yaml_scalar(g.target)}", f"{g.confidence}: {g.why}")
        indent, head = ("    ", "") if name in s.values else ("  ", f"{name} (column {column}): ")
        if name in s.passing:
            what = "read as yes/no already" if fields[name].type == "bool" else "already codes"
            labels = ", ".join(_q(x) for x in s.passing[name])
            out.raw(f"{indent}# {_comment(f'{head}{what}, no recode needed: {labels}')}")
        if name in s.unmapped_labels:
            out.raw(f"{indent}# {_comment(f'{head}labels not mapped, listed at the end')}")
        if name in s.value_notes:
            out.raw(f"  # {_comment(name + ': ' + s.value_notes[name])}")

    _guesses(out, "dates", s.dates)
    for name, note in s.date_notes.items():
        out.raw(f"  # {_comment(name + ': ' + note)}")

    if s.ignore:
        out.raw("# Columns no contract field is close to. Uncomment to leave them out on purpose (no",
                "# 'unknown column' warning); the identifier gate still reads them:",
                f"# ignore: [{_comment(', '.join(yaml_scalar(h) for h in s.ignore))}]")

    if s.refused or s.identifier_findings:
        out.raw("", "# REFUSED: looks like a direct identifier. Never mapped nor ignored: the identifier gate",
                "# refuses any file carrying such a column, whatever the mapping says. Remove it from the",
                "# export (records must be anonymized, records-v1):")
        for h, what in s.refused.items():
            out.raw(f"#   refused: looks like a direct identifier ({_comment(what)}): {_comment(_q(h))}")
        for x in s.identifier_findings:
            out.raw(f"#   refused by the gate's value probes: {_comment(x)}")
    if s.missing_required:
        out.raw("", "# Required fields not found (map a column, or the rows fail the required check):")
        out.raw(*(f"#   {_comment(x)}" for x in s.missing_required))
    if s.unmapped:
        out.raw("", "# Columns not mapped (ingest warns of each, unless it is mapped or ignored):")
        for h, hint in s.unmapped.items():
            out.raw(f"#   {_comment(_q(h))}: {_comment(hint)}")
    if s.unmapped_labels:
        out.raw("", "# Labels not mapped (they pass through unchanged and fail the allowed-values check):")
        for name, items in s.unmapped_labels.items():
            out.raw(f"#   {name} (codes: {', '.join(_codes(fields[name]))}):")
            out.raw(*(f"#     {_comment(_q(label))}" + (f": {_comment(hint)}" if hint else "")
                      for label, hint in items))
    if s.notes:
        out.raw("", "# Notes:")
        out.raw(*(f"#   {_comment(x)}" for x in s.notes))
    return out.text()


__all__ = ["Guess", "Suggestion", "match_header", "match_label", "render_yaml", "suggest_mapping", "synonyms"]
