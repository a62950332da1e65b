"""The identifier gate: refuse a whole file that shows any sign of direct identifiers.

records-v1 promises anonymized input: no names, SSN, MRN, phone, e-mail, street address,
5-digit ZIP or exact birth date. Two kinds of evidence refuse a file:

* a column *name* that says it holds one (``first_name``, ``ssn``, ``mrn``, ``phone``,
  ``email``, ``street_address``...); ZIP and birth columns only when their values are
  full ZIPs / full dates, since ``zip3`` or ``birth_year`` are allowed;
* column *values* shaped like one (SSN ``123-45-6789``, e-mail, North-American phone,
  ``12 Main St``), searched in every column; person-name shapes (``Jane Doe``) only in id
  columns and undeclared columns, because enumerations and TEDS-D 2021 labels ("New York",
  "Puerto Rican") look like names.

Ordinary columns (``site_id``, ``episode_id``, ``person_id`` pseudonyms, ``admit_date``,
``program_name``) pass. The refusal names the column and a count, never a value.
A cheap pass over column lengths first skips columns too short to hold any identifier (most
of a TEDS-D file). Each remaining column is grouped to its distinct values (but ids and
amounts, whose values are nearly all different, are read row by row), and every regex
runs behind a necessary condition on the raw text (SSN: 11+ characters with a '-'; e-mail:
an '@'; address and name: whitespace...), so a 1.7M-row file's dates, ids and codes cost a
GROUP BY and a few string tests instead of five regexes per value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.ingest.readers import quote_ident, quote_lit

if TYPE_CHECKING:
    import duckdb

# (pattern on the normalised column name, what it holds). Searched, so tokens may sit
# inside longer names (patient_first_name, home_phone_number).
NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"(^|_)(first|last|middle|given|family|full|maiden|sur)_?name($|_)", "person names"),
    (r"(^|_)(patient|client|person|member|resident|mother|father|guardian)_?name($|_)", "person names"),
    (r"^(name|surname|fname|lname|firstname|lastname)$", "person names"),
    (r"(^|_)ssn($|_)|social_?security|(^|_)ss_?num", "social security numbers"),
    (r"(^|_)mrn($|_)|medical_?record|(^|_)med_?rec|(^|_)chart_?(number|no|num)($|_)", "medical record numbers"),
    (r"(^|_)(phone|telephone|tel|fax|cellphone|cell_phone)($|_)|(^|_)mobile(_phone|_number)?$", "phone numbers"),
    (r"(^|_)e_?mail($|_)", "e-mail addresses"),
    (r"(^|_)(street|address|addr|address_?line)(_?\d)?($|_)", "street addresses"),
)
# Columns whose name says ZIP or birth: refused only when values are full ZIPs / dates.
ZIP_NAME = r"(^|_)(zip|zipcode|zip_code|postal_?code|postcode|zip5)($|_)"
BIRTH_NAME = r"(^|_)(dob|birth_?date|date_?of_?birth|birthdate|birthday)($|_)"

# Value shapes (RE2 syntax for DuckDB; full match on the trimmed value).
SSN = r"\d{3}-\d{2}-\d{4}"
EMAIL = r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"
PHONE = r"(\+?1[-. ]?)?(\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}"
ADDRESS = (r"(?i)\d{1,6}\s+([A-Za-z0-9.'-]+\s+){1,4}(street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|"
           r"drive|dr|court|ct|way|place|pl|terrace|ter|circle|cir|highway|hwy|parkway|pkwy)\.?(\s.*)?")
PERSON_NAME = r"[A-Z][a-z]+(\s[A-Z]\.?)?\s[A-Z][a-z]+(-[A-Z][a-z]+)?"
ZIP5 = r"\d{5}(-\d{4})?"
FULL_DATE = r"\d{4}-\d{1,2}-\d{1,2}.*|\d{1,2}/\d{1,2}/\d{2,4}|(19|20)\d{6}"
# Organisations' names look like people's ("North Clinic"); such columns are not name-probed.
ORG_NAME = (r"(^|_)(site|program|programme|facility|clinic|provider|agency|organi[sz]ation|org|county|state|"
            r"city|region|payer|plan|unit|team)(_|$)")
# Share of a column's filled values that must look like names before it counts as a name column
# (one "Jane Doe" in a free-text id column could be a pseudonym scheme; most of them is not).
PERSON_NAME_SHARE = 0.5


@dataclass(frozen=True)
class IdentifierFinding:
    column: str
    what: str
    rows: int | None  # rows whose values look like it (None: found by the column name)

    def message(self, file_name: str) -> str:
        evidence = (f"its name says it holds {self.what}" if self.rows is None
                    else f"{self.rows} of its values look like {self.what}")
        return (f"{file_name}: refused: column {self.column!r} looks like a direct identifier "
                f"({evidence}); records must be anonymized (records-v1)")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def by_name(columns: Iterable[str]) -> list[IdentifierFinding]:
    found = []
    for col in columns:
        n = _norm(col)
        for pattern, what in NAME_RULES:
            if re.search(pattern, n):
                found.append(IdentifierFinding(col, what, None))
                break
    return found


def scan(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    name_checked: Iterable[str] = (),
    distinct: Iterable[str] = (),
) -> list[IdentifierFinding]:
    """Findings for ``table`` (all-VARCHAR). ``name_checked``: columns where person-name
    shaped values count (id columns, undeclared columns). ``distinct``: columns whose values
    are expected to be (nearly) all different (ids, amounts): probed row by row, since grouping
    them would find as many groups as rows (the findings are the same either way)."""
    findings = by_name(columns)
    flagged = {f.column for f in findings}
    rest = [c for c in columns if c not in flagged]
    if not rest:
        return findings
    # Shortest identifier shape: a 5-digit ZIP; a column whose values are all shorter cannot
    # hold one. One cheap aggregate of lengths first.
    lengths = con.execute(
        "SELECT " + ", ".join(f"max(strlen({quote_ident(c)}))" for c in rest) + f" FROM {table}"
    ).fetchone()
    wide = [c for c, m in zip(rest, lengths, strict=True) if m is not None and m >= 5]
    name_checked, distinct = set(name_checked), set(distinct)
    for c in wide:
        probes = _probes(c, name_checked)
        if not probes:
            continue
        # Each distinct value is probed once, weighted by its number of rows (enumerations and
        # dates have a few thousand distinct values at most). Every regular expression sits
        # behind a necessary condition on the raw text (a length, a character it must contain),
        # so the regexes run on the few values that could match: trim and RE2 are the costs.
        col = quote_ident(c)
        values = (f"SELECT {col} AS v, 1 AS n FROM {table} WHERE {col} IS NOT NULL" if c in distinct else
                  f"SELECT {col} AS v, count(*) AS n FROM {table} WHERE {col} IS NOT NULL GROUP BY {col}")
        counts = con.execute("SELECT " + ", ".join(p[1] for p in probes) + f" FROM ({values})").fetchone()
        for (what, _), count in zip(probes, counts, strict=True):
            if count:
                findings.append(IdentifierFinding(c, what, int(count)))
                break
    return findings


# RE2's \s: the characters a value must contain for a whitespace-separated shape to match.
_WHITESPACE = " OR ".join(f"contains(v, chr({code}))" for code in (32, 9, 10, 12, 13))


def _rows_matching(guard: str, pattern: str) -> str:
    """Rows (sum of ``n``) whose trimmed value fully matches ``pattern``; ``guard`` is a
    condition on the raw value ``v`` that every match satisfies (the regex runs only there)."""
    return (f"coalesce(sum(CASE WHEN {guard} THEN CASE WHEN regexp_full_match(trim(v), {quote_lit(pattern)}) "
            "THEN n END END), 0)")


def _probes(column: str, name_checked: set[str]) -> list[tuple[str, str]]:
    """(what, SQL aggregate over (v, n) counting rows that look like it) for one column, in the
    order findings are reported."""
    n = _norm(column)
    probes = [
        ("social security numbers", _rows_matching("strlen(v) >= 11 AND contains(v, '-')", SSN)),
        ("e-mail addresses", _rows_matching("contains(v, '@')", EMAIL)),
        ("phone numbers", _rows_matching("strlen(v) >= 12", PHONE)),
        ("street addresses", _rows_matching(f"({_WHITESPACE})", ADDRESS)),
    ]
    if re.search(ZIP_NAME, n):
        probes.append(("5-digit ZIP codes", _rows_matching("strlen(v) >= 5", ZIP5)))
    if re.search(BIRTH_NAME, n):
        probes.append(("full birth dates", _rows_matching("strlen(v) >= 6", FULL_DATE)))
    if column in name_checked and not re.search(ORG_NAME, n):
        names = _rows_matching(f"({_WHITESPACE})", PERSON_NAME)
        share = f"CASE WHEN {names} >= greatest(1, {PERSON_NAME_SHARE} * sum(n)) THEN {names} ELSE 0 END"
        probes.append(("person names", share))
    return probes
