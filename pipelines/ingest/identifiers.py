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
A cheap pass over column lengths first skips columns too short to hold any identifier, so
a 76-column TEDS-D file costs one aggregate scan plus regexes on its few long columns.
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
) -> list[IdentifierFinding]:
    """Findings for ``table`` (all-VARCHAR). ``name_checked``: columns where person-name
    shaped values count (id columns, undeclared columns)."""
    findings = by_name(columns)
    flagged = {f.column for f in findings}
    rest = [c for c in columns if c not in flagged]
    if not rest:
        return findings
    # Shortest identifier shape: a 5-digit ZIP; anything shorter cannot be one. A column of plain
    # integers cannot hold an SSN, e-mail, phone (shapes with separators), address or name, so
    # only ZIP- or birth-named ones need the value probes (TEDS-D codes and CASEID skip them).
    # Lengths first (cheap), the integer test only on the few long columns.
    lengths = con.execute(
        "SELECT " + ", ".join(f"max(length({quote_ident(c)}))" for c in rest) + f" FROM {table}"
    ).fetchone()
    wide = [c for c, m in zip(rest, lengths, strict=True) if m is not None and m >= 5]
    long_cols = [c for c in wide if re.search(ZIP_NAME, _norm(c)) or re.search(BIRTH_NAME, _norm(c))]
    others = [c for c in wide if c not in long_cols]
    if others:
        non_integers = con.execute(
            "SELECT " + ", ".join(
                f"count_if({quote_ident(c)} IS NOT NULL AND TRY_CAST(trim({quote_ident(c)}) AS BIGINT) IS NULL)"
                for c in others) + f" FROM {table}"
        ).fetchone()
        long_cols += [c for c, n in zip(others, non_integers, strict=True) if n]
    if not long_cols:
        return findings
    name_checked = set(name_checked)
    probes: list[tuple[str, str, str]] = []  # (column, what, sql expression)
    for c in long_cols:
        q = quote_ident(c)
        v = f"trim({q})"
        n = _norm(c)
        probes.append((c, "social security numbers", f"count_if(regexp_full_match({v}, {quote_lit(SSN)}))"))
        probes.append((c, "e-mail addresses", f"count_if(contains({q}, '@') AND regexp_full_match({v}, {quote_lit(EMAIL)}))"))
        probes.append((c, "phone numbers", f"count_if(regexp_full_match({v}, {quote_lit(PHONE)}))"))
        probes.append((c, "street addresses", f"count_if(regexp_full_match({v}, {quote_lit(ADDRESS)}))"))
        if re.search(ZIP_NAME, n):
            probes.append((c, "5-digit ZIP codes", f"count_if(regexp_full_match({v}, {quote_lit(ZIP5)}))"))
        if re.search(BIRTH_NAME, n):
            probes.append((c, "full birth dates", f"count_if(regexp_full_match({v}, {quote_lit(FULL_DATE)}))"))
        if c in name_checked and not re.search(ORG_NAME, n):
            probes.append((c, "person names",
                           f"CASE WHEN count_if(regexp_full_match({v}, {quote_lit(PERSON_NAME)})) >= "
                           f"greatest(1, {PERSON_NAME_SHARE} * count({q})) "
                           f"THEN count_if(regexp_full_match({v}, {quote_lit(PERSON_NAME)})) ELSE 0 END"))
    counts = con.execute("SELECT " + ", ".join(p[2] for p in probes) + f" FROM {table}").fetchone()
    for (col, what, _), count in zip(probes, counts, strict=True):
        if count and col not in flagged:
            findings.append(IdentifierFinding(col, what, int(count)))
            flagged.add(col)
    return findings
