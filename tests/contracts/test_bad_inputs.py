"""A corpus of bad inputs, each named by its failure, with the status, quarantined count and
reason it must produce. Files are generated here (nothing large is committed). Expected
counts are written by hand from the fixture rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import csv_text, discharge, followup, ingest, query, write
from teds_fixtures import teds_csv, teds_record

D = discharge
F = followup


@dataclass
class Case:
    name: str
    build: Callable[[Path], Path]  # writes the file under test, returns its path
    status: str
    quarantined: int
    reason: str
    preload: Callable[[Path], list[Path]] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


def dis(rows, **kw) -> Callable[[Path], Path]:
    return lambda tmp: write(tmp / "in" / "discharges.csv", csv_text(rows, **kw))


def fol(rows, **kw) -> Callable[[Path], Path]:
    return lambda tmp: write(tmp / "in" / "followups.csv", csv_text(rows, **kw))


def raw(name: str, content: str | bytes) -> Callable[[Path], Path]:
    return lambda tmp: write(tmp / "in" / name, content)


def pre_discharges(*rows) -> Callable[[Path], list[Path]]:
    return lambda tmp: [write(tmp / "pre" / "pre_discharges.csv", csv_text(list(rows)))]


OK = D("ok")
DROP = ...  # leaves a field out of the row (and so out of the header when no other row has it)

CASES = [
    # conformance: types
    Case("date_not_iso", dis([OK, D("e2", admit_date="01/05/2026")]), "partial", 1, "admit_date is not a date"),
    Case("date_impossible", dis([OK, D("e2", discharge_date="2026-02-30")]), "partial", 1,
         "discharge_date is not a date"),
    Case("bool_not_a_word", dis([OK, D("e2", co_occurring_mh="maybe")]), "partial", 1,
         "co_occurring_mh is not a boolean"),
    Case("int_with_fraction", dis([OK, D("e2", phq9_admit="3.5")]), "partial", 1, "phq9_admit is not an integer"),
    Case("int_is_text", dis([OK, D("e2", phq9_admit="high")]), "partial", 1, "phq9_admit is not an integer"),
    Case("number_is_text", dis([OK, D("e2", episode_cost="lots")]), "partial", 1, "episode_cost is not a number"),
    # conformance: enumerations
    Case("enum_unknown_sex", dis([OK, D("e2", sex="robot")]), "partial", 1, "sex is not one of the allowed"),
    Case("enum_unknown_level", dis([OK, D("e2", level_of_care="spa")]), "partial", 1,
         "level_of_care is not one of the allowed"),
    Case("enum_unknown_reason", dis([OK, D("e2", discharge_reason="graduated")]), "partial", 1,
         "discharge_reason is not one of"),
    Case("age_band_unknown", dis([OK, D("e2", age_band="30-40")]), "partial", 1, "age_band is not one of"),
    Case("asam_unknown", dis([OK, D("e2", level_of_care="", asam_level="9.9")]), "partial", 1,
         "asam_level is not one of"),
    Case("asam_without_harmonized_level", dis([OK, D("e2", level_of_care="", asam_level="0.5")]), "partial", 1,
         "asam_level has no harmonized level_of_care"),
    Case("site_differs_from_option", dis([OK, D("e2", site_id="s2")]), "partial", 1,
         "site_id differs from the --site", kwargs={"site": "s1"}),
    # completeness
    Case("required_value_empty", dis([OK, D("e2", sex="")]), "partial", 1, "sex is missing"),
    Case("level_and_asam_both_empty", dis([OK, D("e2", level_of_care="", asam_level="")]), "partial", 1,
         "level_of_care is missing (and so is asam_level)"),
    Case("age_band_and_age_empty", dis([OK, D("e2", age_band="", age="")]), "partial", 1,
         "age_band is missing (and so is age)"),
    Case("missing_required_column", dis([D("e1", discharge_reason=DROP)]), "refused", 1,
         "missing required column discharge_reason"),
    Case("missing_site_column_without_option", dis([D("e1", site_id=DROP)]), "refused", 1,
         "missing required column site_id"),
    # plausibility
    Case("phq9_out_of_range", dis([OK, D("e2", phq9_admit="28")]), "partial", 1, "phq9_admit outside 0 to 27"),
    Case("age_too_young", dis([OK, D("e2", age_band="", age="8")]), "partial", 1, "age outside 12 to 120"),
    Case("discharge_before_admit", dis([OK, D("e2", discharge_date="2026-01-01")]), "partial", 1,
         "discharge_date is before admit_date"),
    Case("discharge_in_future", dis([OK, D("e2", discharge_date="2026-07-01")]), "partial", 1,
         "discharge_date is after the ingest date"),
    Case("detox_over_30_days_is_a_warning", dis([OK, D("e2", level_of_care="detox")]), "loaded", 0,
         "warnings detox_long_stay 1"),
    Case("tolerance_exceeded_refuses_file", dis([D(f"e{i}", phq9_admit="99") for i in range(12)]), "refused", 12,
         "phq9_admit fails range on 12 of 12 rows"),
    Case("every_row_bad_below_tolerance_floor", dis([D("e1", sex="x"), D("e2", sex="y")]), "refused", 2,
         "every one of 2 rows failed"),
    # keys: duplicates and conflicts
    Case("identical_row_twice", dis([OK, D("e2"), D("e2")]), "partial", 1, "repeats data row 2 of this file"),
    Case("episode_conflict_in_file", dis([OK, D("e2"), D("e2", sex="male")]), "partial", 2,
         "key repeats with different content within this file"),
    Case("episode_conflict_with_warehouse", dis([OK, D("e2", sex="male")]), "partial", 1,
         "key already loaded with different content", preload=pre_discharges(D("e2"))),
    # a resend: the copy already loaded is not loaded twice, and is no error of the sender's
    Case("episode_already_loaded_identical", dis([OK, D("e2")]), "loaded", 1,
         "identical to a record already loaded", preload=pre_discharges(D("e2"))),
    # follow-ups
    Case("followup_without_discharge", fol([F("f1"), F("f2", episode_id="nope")]), "partial", 1,
         "no discharge of the same site", preload=pre_discharges(D("e1"))),
    Case("followup_discharge_of_other_site", fol([F("f1"), F("f2", site_id="s2")]), "partial", 1,
         "no discharge of the same site", preload=pre_discharges(D("e1"))),
    Case("followup_before_discharge", fol([F("f1"), F("f2", contact_date="2026-02-10")]), "partial", 1,
         "contact is before the discharge date", preload=pre_discharges(D("e1"))),
    Case("followup_outside_window", fol([F("f1"), F("f2", contact_date="2026-06-20")]), "partial", 1,
         "outside the tolerance of the 30-day window", preload=pre_discharges(D("e1"))),
    Case("followup_window_not_planned", fol([F("f1"), F("f2", window_days="45")]), "partial", 1,
         "window_days is not one of", preload=pre_discharges(D("e1"))),
    Case("followup_negative_days", fol([F("f1"), F("f2", contact_date="", days_after_discharge="-3")]), "partial", 1,
         "days_after_discharge outside 0 to 1000", preload=pre_discharges(D("e1"))),
    Case("followup_no_date_no_days", fol([F("f1"), F("f2", contact_date="")]), "partial", 1,
         "contact_date is missing (and so is days_after_discharge)", preload=pre_discharges(D("e1"))),
    Case("followup_id_conflict", fol([F("f1"), F("f1", status="refused")]), "refused", 2,
         "every one of 2 rows failed", preload=pre_discharges(D("e1"))),
    # whole-file refusals: unreadable
    Case("empty_file", raw("empty.csv", b""), "refused", 0, "empty file"),
    Case("unbalanced_quote_truncated", raw("t.csv", csv_text([D("e1")]) + 'e2,"p2,s1\n'), "refused", 0,
         "truncated CSV"),
    Case("short_row", raw("short.csv", csv_text([D("e1")]) + "e2,p2,s1\n"), "refused", 0, "truncated CSV"),
    Case("header_column_twice", raw("dup.csv", "episode_id,Episode_ID\ne1,e1\n"), "refused", 0, "appears twice"),
    Case("unknown_kind", raw("what.csv", "a,b,c\n1,2,3\n"), "refused", 1, "unknown kind"),
    Case("xlsx_corrupt", raw("bad.xlsx", b"PK\x03\x04garbage-not-a-zip"), "refused", 0, "unreadable or truncated XLSX"),
    Case("parquet_truncated", raw("bad.parquet", b"PAR1\x00\x01\x02"), "refused", 0,
         "unreadable or truncated Parquet"),
    # whole-file refusals: direct identifiers (name or values)
    Case("identifier_first_name_column", dis([D("e1", first_name="Q")]), "refused", 1, "'first_name'"),
    Case("identifier_ssn_column_name", dis([D("e1", ssn="x")]), "refused", 1, "'ssn'"),
    Case("identifier_mrn_column_name", dis([D("e1", MRN="x")]), "refused", 1, "'mrn'"),
    Case("identifier_email_column_name", dis([D("e1", **{"E-Mail": "x"})]), "refused", 1, "'e_mail'"),
    Case("identifier_ssn_values", dis([D("e1", notes="123-45-6789")]), "refused", 1, "social security numbers"),
    Case("identifier_email_values", dis([D("e1", contact="someone@example.org")]), "refused", 1, "e-mail addresses"),
    Case("identifier_phone_values", dis([D("e1", contact="(555) 123-4567")]), "refused", 1, "phone numbers"),
    Case("identifier_address_values", dis([D("e1", home="12 Elm Street")]), "refused", 1, "street addresses"),
    Case("identifier_zip5", dis([D("e1", zip="02139")]), "refused", 1, "5-digit ZIP"),
    Case("identifier_birth_date", dis([D("e1", dob="1990-04-01")]), "refused", 1, "full birth dates"),
    Case("identifier_names_as_person_id", dis([D("e1", person_id="Jane Doe")]), "refused", 1, "person names"),
    # TEDS-D
    Case("teds_unknown_services_code",
         raw("tedsd_puf_2019.csv", teds_csv([teds_record(), teds_record(CASEID="2", SERVICES_D="9")], "2017-2020")),
         "partial", 1, "SERVICES_D code is not in the 2017-2020 code table"),
    Case("teds_reason_missing_code",
         raw("tedsd_puf_2019.csv", teds_csv([teds_record(), teds_record(CASEID="2", REASON="-9")], "2017-2020")),
         "partial", 1, "discharge_reason is missing"),
    Case("teds_unknown_label_2021",
         raw("tedsd_puf_2021.csv", teds_csv([teds_record(), teds_record(CASEID="2", REASON="Graduated")], "2021")),
         "partial", 1, "REASON is not a known label"),
    Case("teds_missing_reason_column",
         raw("tedsd_puf_2019.csv", teds_csv([teds_record()], "2017-2020", drop=("REASON",))),
         "refused", 1, "missing required column REASON"),
    Case("teds_code_not_a_number",
         raw("tedsd_puf_2019.csv", teds_csv([teds_record(), teds_record(CASEID="2", LOS="x")], "2017-2020")),
         "partial", 1, "LOS is not a code"),
]


def test_corpus_is_large_and_names_unique():
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(tmp_path, case: Case):
    if case.preload:
        pre = ingest(tmp_path, *case.preload(tmp_path))
        assert [r.status for r in pre] == ["loaded"], pre
    path = case.build(tmp_path)
    (row,) = ingest(tmp_path, path, **case.kwargs)
    reasons = [r[0] for r in query(tmp_path, "select reason from ingest_quarantine where file_name = ?", [path.name])]
    assert row.status == case.status, (row, reasons)
    assert row.rows_quarantined == case.quarantined, (row, reasons)
    assert case.reason in row.message or any(case.reason in r for r in reasons), (row.message, reasons)
    # reconciliation: every row loaded or quarantined, and the warehouse agrees with the ledger
    assert row.rows_read == row.rows_loaded + row.rows_quarantined
    if row.sha256:
        (q_rows,) = query(tmp_path, "select count(distinct row_number) from ingest_quarantine where file_sha256 = ?",
                          [row.sha256])[0]
        assert q_rows == row.rows_quarantined
        table = {"discharges": "raw_discharges", "followups": "raw_followups", "teds-d": "raw_teds_d"}.get(row.kind)
        if table:
            (loaded,) = query(tmp_path, f"select count(*) from {table} where _file_sha256 = ?", [row.sha256])[0]
            assert loaded == row.rows_loaded
    if case.status == "refused":
        assert "\n" not in row.message
        assert row.rows_loaded == 0


def test_refusal_messages_never_echo_values(tmp_path):
    canary = "Zqxcanary Wvuname"
    path = write(tmp_path / "in" / "d.csv", csv_text([D("e1", person_id=canary, notes="zz-canary@example.org")]))
    (row,) = ingest(tmp_path, path)
    assert row.status == "refused"
    assert "person_id" in row.message
    dumped = repr(query(tmp_path, "select * from ingest_quarantine")) + repr(query(tmp_path, "select * from ingest_ledger"))
    for fragment in ("Zqxcanary", "Wvuname", "zz-canary"):
        assert fragment not in row.message and fragment not in dumped


def test_ordinary_columns_are_not_identifiers(tmp_path):
    rows = [D("e1", program_id="prog-7", program_name="North Clinic", zip3="021", birth_year="1990",
              referral_date="2026-01-02", payer="medicaid")]
    (row,) = ingest(tmp_path, write(tmp_path / "in" / "d.csv", csv_text(rows)))
    assert row.status == "loaded", row.message
