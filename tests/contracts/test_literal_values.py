"""Literals in definitions are checked against the values their column can hold:
``level_group = 'IOP'`` is refused when the file is loaded instead of silently giving a
denominator of 0. Also ``definitions list --json``."""

from __future__ import annotations

import json
import textwrap

import pytest

from pipelines.cli import main
from pipelines.definitions import registry
from pipelines.definitions.expression import (
    BOOL,
    DATE,
    NUMBER,
    TEXT,
    ExpressionError,
    check_condition,
    literal_problems,
    parse,
)
from pipelines.errors import Problems, UserError

# Written by hand from data_contracts/{discharges,teds_d,followups}.yaml and the SQL models
# (sql/intermediate/int_episodes.sql: level_group, source, use_frequency_* of native rows),
# not read from the code under test.
LEVELS = ["outpatient", "iop", "php", "residential_short", "residential_long", "residential_hospital",
          "inpatient", "detox"]
STATUSES = ["reached", "unreachable", "refused", "deceased"]
EXPECTED_VALUES = {
    "source": ["native", "teds-d"],
    "level_of_care": LEVELS,
    "level_group": ["outpatient", "iop", "php", "residential", "inpatient", "detox"],
    "discharge_reason": ["completed", "transferred", "dropped_out", "terminated", "incarcerated", "death", "other"],
    # discharges.yaml's bands, and TEDS-D's 55+ (the top code of its 2006-2014 files)
    "age_band": ["12-14", "15-17", "18-20", "21-24", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54",
                 "55-64", "65+", "55+"],
    "sex": ["female", "male", "other", "unknown"],
    "race": ["alaska_native", "american_indian", "asian", "black", "white", "pacific_islander", "other",
             "multiple", "unknown"],
    "ethnicity": ["hispanic", "not_hispanic", "unknown"],
    "primary_substance": ["alcohol", "opioids", "stimulants", "cannabis", "sedatives", "other", "none"],
    "use_frequency_admit": ["none", "some", "daily"],
    "use_frequency_discharge": ["none", "some", "daily"],
    "payer": ["medicaid", "medicare", "private", "self", "other", "none", "unknown"],
    "referral_source": ["self", "court", "provider", "school", "employer", "community", "other"],
    **{f"fu{w}_status": STATUSES for w in (30, 90, 180, 365)},
}
# text columns any text may be compared with: ids, keys, and the quarter (from a date)
OPEN_TEXT = {"episode_key", "episode_id", "person_id", "site_id", "discharge_quarter"}

GROUPS = "outpatient, iop, php, residential, inpatient, detox"

DEFINITION = textwrap.dedent("""\
    id: {id}
    version: 1
    label: Test
    description: A definition with literals to check.
    population: "{population}"
    success: "{success}"
    missing: exclude
    window_days: null
    references: ["tests/contracts"]
    requires: []
""")


def _write(folder, def_id, population="source = 'native'", success="is_completed"):
    path = folder / f"{def_id}.yaml"
    path.write_text(DEFINITION.format(id=def_id, population=population, success=success), encoding="utf-8")
    return path


def _problems(tmp_path, population="source = 'native'", success="is_completed") -> list[str]:
    with pytest.raises(Problems) as info:
        registry.load_file(_write(tmp_path, "d", population, success))
    assert "\n" not in str(info.value)
    return info.value.problems


# ------------------------------------------------------------------ the mart's value sets


def test_the_categorical_columns_of_the_mart_and_their_values():
    values = registry.mart_values()
    assert {c: sorted(v) for c, v in values.items()} == {c: sorted(v) for c, v in EXPECTED_VALUES.items()}
    # in the contracts' order (native rows first), the way a person reads them
    assert list(values["level_group"]) == EXPECTED_VALUES["level_group"]
    assert list(values["discharge_reason"]) == EXPECTED_VALUES["discharge_reason"]
    text = {c for c, kind in registry.mart_schema().items() if kind == TEXT}
    assert text == set(EXPECTED_VALUES) | OPEN_TEXT


def test_every_value_of_a_closed_column_is_accepted(tmp_path):
    # the whole allowed set in one 'in' list each, and each value alone with '='
    for column, allowed in EXPECTED_VALUES.items():
        quoted = ", ".join("'" + v + "'" for v in allowed)
        registry.load_file(_write(tmp_path, "d", f"{column} in ({quoted})", f"{column} = '{allowed[-1]}'"))


# ------------------------------------------------------------------ definitions check and loading


def test_cli_check_refuses_a_level_group_in_capitals(tmp_path, capsys):
    path = _write(tmp_path, "iop_only", population="level_group = 'IOP'")
    assert main(["definitions", "check", str(path)], environ={}) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"levelcare: error: {path}: definition iop_only refused "
                      "(1 problem with its literal values; see docs/definitions.md)")
    assert err[1:] == [
        (f"  - definition iop_only: level_group = 'IOP': not an allowed value of level_group; allowed: {GROUPS}; "
        "did you mean 'iop'? (population, position 15)")
    ]


def test_every_problem_of_a_file_is_one_line(tmp_path):
    problems = _problems(
        tmp_path,
        population="level_group in ('iop', 'PHP', 'day') and sex != 'F' and discharge_date >= 'July 2026'",
        success="'complete' = discharge_reason or fu90_status not in ('reached', 'lost') or fu30_status = null",
    )
    reasons = ", ".join(EXPECTED_VALUES["discharge_reason"])
    assert problems == [
        (f"definition d: level_group in ('iop', 'PHP', 'day'): 'PHP' is not an allowed value of level_group; "
        f"allowed: {GROUPS}; did you mean 'php'? (population, position 24)"),
        (f"definition d: level_group in ('iop', 'PHP', 'day'): 'day' is not an allowed value of level_group; "
        f"allowed: {GROUPS} (population, position 31)"),
        ("definition d: sex != 'F': not an allowed value of sex; allowed: female, male, other, unknown "
        "(population, position 49)"),
        ("definition d: discharge_date >= 'July 2026': not a date; write dates as 'YYYY-MM-DD' "
        "(population, position 75)"),
        (f"definition d: 'complete' = discharge_reason: not an allowed value of discharge_reason; "
        f"allowed: {reasons}; did you mean 'completed'? (success, position 1)"),
        ("definition d: fu90_status not in ('reached', 'lost'): 'lost' is not an allowed value of fu90_status; "
        "allowed: reached, unreachable, refused, deceased (success, position 65)"),
        ("definition d: fu30_status = null: never true (a comparison with null is unknown); "
        "write 'is null' or 'is not null' (success, position 90)"),
    ]


@pytest.mark.parametrize("condition", [
    "discharge_date >= '2026-07-01'",  # a date column with an ISO date
    "discharge_date in ('2026-01-31', '2026-02-28')",
    "site_id = 'North Clinic'",  # open columns take any text
    "discharge_quarter = '2026Q3'",
    "age_band >= '30-34'",  # order comparisons of text are not checked against the set
    "fu30_status is null or fu30_status != 'deceased'",
    "phq9_admit >= 10 and employed_admit = false",
])
def test_literals_that_can_match_are_accepted(tmp_path, condition):
    assert registry.load_file(_write(tmp_path, "d", population=condition)).population == condition


@pytest.mark.parametrize(("condition", "message"), [
    ("discharge_date < '2026-02-30'", "discharge_date < '2026-02-30': not a date"),
    ("discharge_date < '2026-7-1'", "discharge_date < '2026-7-1': not a date"),
    ("source = 'TEDS-D'", "allowed: native, teds-d; did you mean 'teds-d'?"),
    ("level_of_care = 'residential'", "not an allowed value of level_of_care; allowed: " + ", ".join(LEVELS)),
])
def test_one_bad_literal(tmp_path, condition, message):
    [problem] = _problems(tmp_path, population=condition)
    assert message in problem


@pytest.mark.parametrize(("condition", "message"), [
    ("employed_admit = 'true'", "'=' compares boolean with text (write true or false without quotes)"),
    ("phq9_admit >= '10'", "'>=' compares number with text (write numbers without quotes)"),
    ("discharge_date > 2026", "'>' compares date with number (write dates in quotes, as 'YYYY-MM-DD')"),
    ("level_group = 1", "'=' compares text with number at"),
    ("employed_admit in (1)", "'in' compares boolean with number at"),
])
def test_a_literal_of_the_wrong_type_is_one_line_naming_the_field(tmp_path, condition, message):
    path = _write(tmp_path, "d", population=condition)
    with pytest.raises(UserError) as info:
        registry.load_file(path)
    assert str(info.value).startswith(f"{path}: field population: {message}")
    assert not isinstance(info.value, Problems)


def test_the_registry_refuses_a_user_file_with_a_bad_value(tmp_path, capsys):
    # load_registry is what analyze, rerun and the manifest use
    _write(tmp_path, "iop_only", population="level_group = 'Iop'")
    with pytest.raises(Problems) as info:
        registry.load_registry(tmp_path)
    assert "did you mean 'iop'?" in info.value.problems[0]
    assert main(["definitions", "--definitions-dir", str(tmp_path), "list"], environ={}) == 2
    assert "level_group = 'Iop': not an allowed value of level_group" in capsys.readouterr().err


def test_explicit_values_replace_the_marts():
    schema = {"kind": TEXT, "n": NUMBER, "flag": BOOL, "day": DATE}
    tree = parse("kind in ('a', 'B') and n = 1 and flag and day = '2026-13-01' and 'x' = 'y'")
    check_condition(tree, schema)
    problems = literal_problems(tree, schema, {"kind": ("a", "b")})
    assert [(str(p), p.position) for p in problems] == [
        ("kind in ('a', 'B'): 'B' is not an allowed value of kind; allowed: a, b; did you mean 'b'?", 15),
        ("day = '2026-13-01': not a date; write dates as 'YYYY-MM-DD'", 49),
    ]
    assert literal_problems(tree, schema, {}) == problems[1:]  # no value set: any text
    with pytest.raises(ExpressionError, match="compares boolean with text"):
        check_condition(parse("flag = 'yes'"), schema)


# ------------------------------------------------------------------ definitions list --json


def test_cli_list_json_has_the_tables_fields(tmp_path, capsys):
    _write(tmp_path, "mine", population="level_group = 'iop'")
    assert main(["definitions", "--definitions-dir", str(tmp_path), "list"], environ={}) == 0
    table = capsys.readouterr().out.splitlines()
    assert main(["definitions", "--definitions-dir", str(tmp_path), "list", "--json"], environ={}) == 0
    listed = json.loads(capsys.readouterr().out)
    assert isinstance(listed, list) and len(listed) == len(table)
    assert all(set(row) == {"id", "version", "origin", "label"} for row in listed)
    by_id = {row["id"]: row for row in listed}
    assert by_id["mine"] == {"id": "mine", "version": 1, "origin": "user", "label": "Test"}
    assert by_id["completion"] == {"id": "completion", "version": 1, "origin": "built-in",
                                   "label": "Treatment completed"}
    # the same rows as the table, in its order
    assert [line.split()[0] for line in table] == [row["id"] for row in listed]
    for line, row in zip(table, listed, strict=True):
        assert line.split(None, 3) == [row["id"], f"v{row['version']}", row["origin"], row["label"]]
