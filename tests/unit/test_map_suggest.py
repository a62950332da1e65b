"""`levelcare map suggest`: a draft mapping from a messy export (pipelines/ingest/suggest.py).

The expectations are written by hand from the export below: which field each header is, which
code each label is, the date format, what is refused or left to ignore, and that no value of
the file other than category labels appears in the draft.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import pytest
import yaml

from pipelines.errors import UserError
from pipelines.ingest.map_command import configure_map, run_map
from pipelines.ingest.suggest import (
    HIGH,
    LOW,
    MEDIUM,
    NOT_SHOWN,
    match_header,
    match_label,
    render_yaml,
    suggest_mapping,
    synonyms,
    words,
)
from pipelines.settings import Settings

HEADER = ["Episode ID", "Client Number", "Level of Care", "Discharge Reason", "Admission Date",
          "Discharge Date", "Gender", "Age", "Primary Substance", "Co-Occurring MH", "Counselor", "Patient Name"]
ROWS = [
    ["EP-90417", "CL-55821", "Residential Short-Term", "AMA", "9/14/2026", "10/3/2026", "F", "47", "Heroin",
     "Y", "T-07", "Jane Roe"],
    ["EP-90418", "CL-55822", "Intensive Outpatient", "Successful completion", "8/2/2026", "9/30/2026", "M", "58",
     "Alcohol", "N", "T-09", "John Poe"],
    ["EP-90419", "CL-55823", "intensive outpatient ", "Administrative discharge", "7/21/2026", "8/13/2026",
     "F", "23", "Cocaine/Crack", "Y", "T-07", "Ann Coe"],
    ["EP-90420", "CL-55824", "Outpatient", "Transferred to another program", "6/5/2026", "7/22/2026", "Unknown",
     "61", "Marijuana", "N", "T-11", "Bob Loe"],
    ["EP-90421", "CL-55825", "Detoxification", "Incarcerated/Jail", "5/6/2026", "5/9/2026", "X", "39",
     "Benzodiazepines", "", "T-09", "Sue Moe"],
]
EXPECTED_COLUMNS = {
    "episode_id": "episode_id",
    "client_number": "person_id",
    "level_of_care": "level_of_care",
    "discharge_reason": "discharge_reason",
    "admission_date": "admit_date",
    "discharge_date": "discharge_date",
    "gender": "sex",
    "age": "age",
    "primary_substance": "primary_substance",
    "co_occurring_mh": "co_occurring_mh",
}
EXPECTED_VALUES = {
    "level_of_care": {"Residential Short-Term": "residential_short", "Intensive Outpatient": "iop",
                      "Detoxification": "detox"},
    "discharge_reason": {"AMA": "dropped_out", "Successful completion": "completed",
                         "Administrative discharge": "terminated", "Transferred to another program": "transferred",
                         "Incarcerated/Jail": "incarcerated"},
    "sex": {"F": "female", "M": "male", "X": "other"},
    "primary_substance": {"Heroin": "opioids", "Cocaine/Crack": "stimulants", "Marijuana": "cannabis",
                          "Benzodiazepines": "sedatives"},
}


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("suggest") / "north-export.csv", HEADER, ROWS)


@pytest.fixture(scope="module")
def drafted(export: Path):
    suggestion = suggest_mapping([export], "discharges")
    text = render_yaml(suggestion)
    return suggestion, text, yaml.safe_load(text)


def test_each_column_gets_its_field(drafted):
    suggestion, _, doc = drafted
    assert doc["levelcare_mapping"] == 1
    assert doc["kind"] == "discharges"
    assert doc["columns"] == EXPECTED_COLUMNS
    assert {h: g.target for h, g in suggestion.columns.items()} == EXPECTED_COLUMNS
    assert all(g.confidence == HIGH for g in suggestion.columns.values())


def test_labels_are_recoded(drafted):
    suggestion, _, doc = drafted
    assert doc["values"] == EXPECTED_VALUES
    assert suggestion.values["discharge_reason"]["AMA"].confidence == HIGH
    # labels that are codes already, and Y/N, pass through: listed in comments, not recoded
    assert suggestion.passing["level_of_care"] == ["Outpatient"]
    assert suggestion.passing["sex"] == ["Unknown"]
    assert suggestion.passing["co_occurring_mh"] == ["N", "Y"]
    assert "co_occurring_mh" not in doc["values"]
    assert suggestion.passing["primary_substance"] == ["Alcohol"]
    assert suggestion.unmapped_labels == {}


def test_us_dates_are_detected(drafted):
    suggestion, _, doc = drafted
    assert doc["dates"] == {"*": "%m/%d/%Y"}
    assert suggestion.dates["*"].confidence == HIGH


def test_patient_name_is_refused_not_mapped_nor_ignored(drafted):
    suggestion, text, doc = drafted
    assert suggestion.refused == {"patient_name": "person names"}
    assert "patient_name" not in doc["columns"]
    assert "patient_name" not in suggestion.ignore
    assert "patient_name" not in suggestion.unmapped
    assert '# refused: looks like a direct identifier (person names): "patient_name"' in "\n".join(
        line.replace("#   ", "# ") for line in text.splitlines())
    assert "identifier gate" in text and "refuses any file carrying such a column" in text
    assert not re.search(r"^# ignore:.*patient name", text, re.MULTILINE)


def test_counselor_is_suggested_to_ignore(drafted):
    suggestion, text, doc = drafted
    assert suggestion.ignore == ["counselor"]
    assert "ignore" not in doc  # a commented suggestion only
    assert "# ignore: [counselor]" in text.splitlines()
    assert yaml.safe_load("ignore: [counselor]")["ignore"] == ["counselor"]


def test_required_fields_not_found_are_listed(drafted):
    suggestion, text, _ = drafted
    assert [line.split(":")[0] for line in suggestion.missing_required] == ["site_id"]
    assert "# Required fields not found" in text


def test_every_guess_is_commented(drafted):
    _, text, doc = drafted
    lines = text.splitlines()
    # a header may be written as its field is ("discharge_reason"): look in the columns block only
    columns = lines[lines.index("columns:"):lines.index("values:")]
    for header in doc["columns"]:
        (line,) = [x for x in columns if x.startswith(f"  {header}:")]
        assert re.search(r"# (high|medium|low): \S", line), line
    for table in doc["values"].values():
        for label in table:
            (line,) = [x for x in lines if x.startswith(f"    {label}:")]
            assert re.search(r"# (high|medium|low): \S", line), line
    (line,) = [x for x in lines if x.startswith('  "*":')]
    assert "# high: reads every value" in line


def test_no_row_value_other_than_category_labels_is_shown(drafted):
    _, text, _ = drafted
    labels = {label for table in EXPECTED_VALUES.values() for label in table} | {
        "Outpatient", "Unknown", "Alcohol", "Y", "N", "intensive outpatient"}
    for row in ROWS:
        for column, value in zip(HEADER, row, strict=True):
            value = value.strip()
            if not value or value in labels or value.lower() in {x.lower() for x in labels}:
                continue
            assert not re.search(rf"(?<![\w/.-]){re.escape(value)}(?![\w/.-])", text), (column, value)
    for secret in ("EP-904", "CL-558", "/2026", "Roe", "Poe", "T-07", "T-11"):
        assert secret not in text


def test_the_draft_passes_the_mapping_checks(drafted):
    mapping = pytest.importorskip("pipelines.ingest.mapping")
    checked = mapping.parse_mapping(drafted[1], "north.yaml")
    assert checked.columns == EXPECTED_COLUMNS
    assert checked.values["discharge_reason"]["ama"] == "dropped_out"
    assert checked.dates == {"*": "%m/%d/%Y"}


def test_day_first_dates_and_ambiguous_ones(tmp_path: Path):
    day_first = write_csv(tmp_path / "eu.csv", ["episode_id", "admit_date", "discharge_date"],
                          [["e1", "14.09.2026", "03.10.2026"], ["e2", "01.08.2026", "30.09.2026"]])
    s = suggest_mapping([day_first], "discharges")
    assert {k: (g.target, g.confidence) for k, g in s.dates.items()} == {"*": ("%d.%m.%Y", HIGH)}

    both = write_csv(tmp_path / "amb.csv", ["episode_id", "admit_date", "discharge_date"],
                     [["e1", "3/4/2026", "2026-05-06"], ["e2", "1/2/2026", "2026-02-28"]])
    s = suggest_mapping([both], "discharges")
    assert list(s.dates) == ["admit_date"]
    assert s.dates["admit_date"].target == "%m/%d/%Y"
    assert s.dates["admit_date"].confidence == LOW
    assert "ambiguous" in s.dates["admit_date"].why
    assert "understood already" in s.date_notes["discharge_date"]
    text = render_yaml(s)
    assert "3/4/2026" not in text and "2026-05-06" not in text


def test_day_above_twelve_decides_the_order(tmp_path: Path):
    path = write_csv(tmp_path / "gb.csv", ["episode_id", "admit_date"],
                     [["e1", "01/02/2026 10:15"], ["e2", "25/02/2026 08:00"]])
    s = suggest_mapping([path], "discharges")
    assert s.dates["admit_date"].target == "%d/%m/%Y %H:%M"
    assert s.dates["admit_date"].confidence == HIGH


def test_more_than_60_values_is_not_a_category(tmp_path: Path):
    rows = [[f"e{i}", f"Substance number {i}"] for i in range(61)]
    path = write_csv(tmp_path / "many.csv", ["episode_id", "primary_substance"], rows)
    s = suggest_mapping([path], "discharges")
    text = render_yaml(s)
    assert "primary_substance" not in s.values and "primary_substance" not in s.passing
    assert "more than 60" in s.value_notes["primary_substance"]
    assert "Substance number" not in text

    path = write_csv(tmp_path / "sixty.csv", ["episode_id", "primary_substance"], rows[:60])
    s = suggest_mapping([path], "discharges")
    assert len(s.unmapped_labels["primary_substance"]) == 60


def test_low_and_medium_header_guesses():
    m, _ = match_header("PHQ9 Admt", "discharges")
    assert (m.field, m.confidence) == ("phq9_admit", LOW)
    assert "close to \"phq9_admit\"" in m.why
    m, _ = match_header("Admission Date (MM/DD/YYYY)", "discharges")
    assert (m.field, m.confidence) == ("admit_date", MEDIUM)
    m, hint = match_header("Followup_ID", "discharges")
    assert m is None and "followups" in hint
    assert match_header("Counselor", "discharges") == (None, "")


def test_label_guesses():
    assert match_label("discharges", "level_of_care", "IOP").status == "code"
    r = match_label("discharges", "discharge_reason", "Not completed")
    assert r.status == "unmapped" and "not" in r.hint  # never guessed as its opposite
    r = match_label("discharges", "level_of_care", "Residential")
    assert r.status == "unmapped" and "residential_long" in r.hint and "residential_short" in r.hint
    r = match_label("discharges", "asam_level", "Level 3.2-WM")
    assert (r.guess.target, r.guess.confidence) == ("3.2-wm", HIGH)
    r = match_label("discharges", "age_band", "25 to 29 years")
    assert (r.guess.target, r.guess.confidence) == ("25-29", HIGH)
    r = match_label("discharges", "co_occurring_mh", "Checked")
    assert (r.guess.target, r.guess.confidence) == ("true", HIGH)
    assert match_label("discharges", "co_occurring_mh", "Yes").status == "native"
    r = match_label("followups", "status", "Unable to reach")
    assert r.guess.target == "unreachable"


def test_names_in_an_unmapped_column_are_reported_not_shown(tmp_path: Path):
    path = write_csv(tmp_path / "staff.csv", ["episode_id", "admit_date", "Counselor"],
                     [["e1", "2026-01-02", "Jane Doe"], ["e2", "2026-01-03", "Mary Jones"]])
    s = suggest_mapping([path], "discharges")
    text = render_yaml(s)
    assert s.ignore == []  # ignoring it would not help: the gate reads ignored columns too
    assert "person names" in s.unmapped["counselor"]
    assert any("counselor" in x and "2 of its values look like person names" in x for x in s.identifier_findings)
    assert "Jane" not in text and "Jones" not in text


def test_unmatched_labels_shaped_like_names_or_ids_are_not_shown(tmp_path: Path):
    path = write_csv(tmp_path / "ref.csv", ["episode_id", "Referred By"],
                     [["e1", "Court"], ["e2", "Probation"], ["e3", "Walter Smith"], ["e4", "case 4471123"],
                      ["e5", "Bus station"]])
    s = suggest_mapping([path], "discharges")
    text = render_yaml(s)
    assert s.columns["referred_by"].target == "referral_source"
    assert s.values["referral_source"] == {"Probation": s.values["referral_source"]["Probation"]}
    assert [label for label, _ in s.unmapped_labels["referral_source"]] == [
        "Bus station", NOT_SHOWN, NOT_SHOWN]
    assert "Smith" not in text and "4471123" not in text


def test_followups(tmp_path: Path):
    path = write_csv(tmp_path / "fu.csv",
                     ["Contact ID", "Episode Number", "Follow-up Window", "Interview Date", "Contact Status",
                      "Abstinent Past 30 Days", "Readmitted"],
                     [["F1", "E1", "30", "10/13/2026", "Completed Interview", "Yes", "Unchecked"],
                      ["F2", "E2", "90", "11/4/2026", "No answer", "", "Checked"],
                      ["F3", "E3", "180", "12/5/2026", "Declined", "", ""]])
    s = suggest_mapping([path], "followups")
    doc = yaml.safe_load(render_yaml(s))
    assert doc["columns"] == {"contact_id": "followup_id", "episode_number": "episode_id",
                              "follow_up_window": "window_days", "interview_date": "contact_date",
                              "contact_status": "status", "abstinent_past_30_days": "abstinent_30d",
                              "readmitted": "readmitted"}
    assert doc["values"] == {"status": {"Completed Interview": "reached", "No answer": "unreachable",
                                        "Declined": "refused"},
                             "readmitted": {"Checked": "true", "Unchecked": "false"}}
    assert doc["dates"] == {"contact_date": "%m/%d/%Y"}
    assert s.missing_required == ["site_id: no column; --site fills it, or add `constants: {site_id: <your site>}`"]


def test_synonyms_name_known_fields_and_codes_without_clashes():
    from pipelines import contracts

    syn = synonyms()
    native = {f.name: f for k in ("discharges", "followups") for f in contracts.load(k).fields}
    assert set(syn["columns"]) <= set(native)
    for kind in ("discharges", "followups"):
        seen: dict[str, str] = {}
        for f in contracts.load(kind).fields:
            for w in [f.name] + list(syn["columns"].get(f.name) or ()):
                key = "".join(words(w))
                assert seen.setdefault(key, f.name) == f.name, (kind, w, seen[key], f.name)
    for name, table in syn["values"].items():
        if name.startswith("_"):
            continue
        codes = {"true", "false"} if native[name].type == "bool" else {str(v) for v in native[name].values}
        seen = {}
        for code, wordings in table.items():
            assert str(code) in codes, (name, code)
            for w in wordings:
                key = "".join(words(w))
                assert seen.setdefault(key, str(code)) == str(code), (name, w)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="levelcare map")
    configure_map(parser)
    return parser


def test_run_map_writes_the_draft(export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    settings = Settings.from_options(warehouse=tmp_path / "w.duckdb", environ={})
    out = tmp_path / "north.yaml"
    args = _parser().parse_args(["suggest", str(export), "--kind", "discharges", "--out", str(out)])
    assert run_map(args, settings) == 0
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["columns"] == EXPECTED_COLUMNS
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(UserError, match="already exists"):
        run_map(args, settings)
    args = _parser().parse_args(["suggest", str(export), "--kind", "discharges", "--out", str(out), "--force"])
    assert run_map(args, settings) == 0
    assert not list(tmp_path.glob(".north.yaml.*"))  # no temporary file left

    args = _parser().parse_args(["suggest", str(export), "--kind", "discharges"])
    assert run_map(args, settings) == 0
    printed = capsys.readouterr()
    assert yaml.safe_load(printed.out)["dates"] == {"*": "%m/%d/%Y"}
    assert "draft mapping" in printed.err


def test_run_map_errors_name_the_file(tmp_path: Path):
    settings = Settings.from_options(warehouse=tmp_path / "w.duckdb", environ={})
    args = _parser().parse_args(["suggest", str(tmp_path / "missing.csv"), "--kind", "followups"])
    with pytest.raises(UserError, match=r"^missing\.csv: ") as info:
        run_map(args, settings)
    assert "\n" not in str(info.value)
    with pytest.raises(SystemExit):
        _parser().parse_args(["suggest", str(tmp_path / "x.csv")])  # --kind is required
    with pytest.raises(SystemExit):
        _parser().parse_args(["suggest", str(tmp_path / "x.csv"), "--kind", "teds-d"])


def test_through_the_cli_once_registered(export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]):
    from pipelines import cli

    # the registration cli.py holds (set here too, so this test does not depend on who adds it when)
    monkeypatch.setitem(cli.COMMANDS, "map", ("pipelines.ingest.map_command", "draft a mapping file"))
    out = tmp_path / "north.yaml"
    assert cli.main(["map", "suggest", str(export), "--kind", "discharges", "--out", str(out)], environ={}) == 0
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["values"] == EXPECTED_VALUES
    assert cli.main(["map", "suggest", str(tmp_path / "gone.csv"), "--kind", "discharges"], environ={}) == 2
    assert capsys.readouterr().err.startswith("levelcare: error: gone.csv: ")
