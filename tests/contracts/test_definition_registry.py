"""The registry: built-in files, user workspaces, the version rule, one-line errors; the CLI."""

from __future__ import annotations

import textwrap

import pytest

from pipelines.cli import main
from pipelines.definitions import registry
from pipelines.errors import UserError

BUILTIN_IDS = {
    "completion", "completion_or_transfer", "retention_90d", "abstinent_discharge", "use_reduction",
    *(f"abstinent_{w}d_{kind}" for w in (30, 90, 180, 365) for kind in ("itt", "cc")),
    "no_readmission_30d", "no_readmission_90d", "stepdown_iop_14d", "employment_gain", "housing_stable",
    "no_arrests", "phq9_response", "phq9_remission", "phq9_reliable_improvement",
    "gad7_reliable_improvement", *(f"followup_reached_{w}d" for w in (30, 90, 180, 365)),
    "aftercare_7d", "aftercare_30d", "stepdown_14d", "stepdown_30d", "further_care_iop_30d",
}


def _write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


VALID = textwrap.dedent("""\
    id: {id}
    version: {version}
    label: My completion
    description: Completed among IOP discharges only.
    population: "level_group = 'iop'"
    success: "{success}"
    missing: exclude
    window_days: null
    references: ["Our own rule, 2026."]
    requires: [discharge_reason]
""")


def test_every_builtin_loads_with_its_fixed_id_and_references():
    defs = registry.load_registry(None)
    assert set(defs) == BUILTIN_IDS
    for d in defs.values():
        assert d.references and d.origin == "built-in"
        assert d.missing in ("failure", "exclude")
        assert set(d.requires) <= set(registry.mart_schema())


def test_the_mart_schema_is_read_from_the_contract_without_building(monkeypatch):
    from pipelines import marts
    from pipelines.contracts import marts as mart_contracts

    def no_build(*args, **kwargs):
        raise AssertionError("the schema needs no build")

    monkeypatch.setattr(marts, "build", no_build)
    schema = registry.mart_schema()
    assert list(schema) == [c.name for c in mart_contracts.load("mart_episodes").columns]
    assert (schema["source"], schema["fu365_reached"], schema["episode_cost"]) == ("text", "boolean", "number")


def test_missing_policies_of_the_paired_abstinence_definitions():
    defs = registry.load_registry(None)
    for w in (30, 90, 180, 365):
        assert (defs[f"abstinent_{w}d_itt"].missing, defs[f"abstinent_{w}d_cc"].missing) == ("failure", "exclude")
        assert defs[f"abstinent_{w}d_itt"].window_days == w


def test_a_user_definition_joins_the_registry(tmp_path):
    _write(tmp_path, "iop_completion.yaml", VALID.format(id="iop_completion", version=1,
                                                          success="discharge_reason = 'completed'"))
    defs = registry.load_registry(tmp_path)
    assert defs["iop_completion"].origin == "user"
    assert set(defs) == BUILTIN_IDS | {"iop_completion"}


def test_a_builtin_id_needs_a_higher_version(tmp_path):
    _write(tmp_path, "completion.yaml", VALID.format(id="completion", version=1,
                                                      success="discharge_reason = 'completed'"))
    with pytest.raises(UserError, match="completion.yaml: field version: 'completion' is a built-in"):
        registry.load_registry(tmp_path)
    _write(tmp_path, "completion.yaml", VALID.format(id="completion", version=2,
                                                      success="discharge_reason = 'completed'"))
    defs = registry.load_registry(tmp_path)
    assert (defs["completion"].version, defs["completion"].origin) == (2, "user")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (VALID.format(id="x", version=1, success="nonsense_col = 1"),
         "x.yaml: field success: unknown column 'nonsense_col' at position 1"),
        (VALID.format(id="x", version=1, success="discharge_reason = 'a'; drop table t"),
         "x.yaml: field success: unexpected character ';' at position " + str(len("discharge_reason = 'a'") + 1)),
        (VALID.format(id="x", version=1, success="upper(discharge_reason) = 'A'"),
         "x.yaml: field success: function calls are not allowed (upper) at position 1"),
        (VALID.format(id="y", version=1, success="is_completed"), "x.yaml: field id: 'y' does not match"),
        (VALID.format(id="x", version=0, success="is_completed"), "x.yaml: field version: must be a positive"),
        (VALID.format(id="x", version=1, success="is_completed").replace("exclude", "ignore"),
         "x.yaml: field missing: must be one of failure, exclude"),
        (VALID.format(id="x", version=1, success="is_completed") + "colour: red\n",
         "x.yaml: field colour: unknown field"),
        (VALID.format(id="x", version=1, success="is_completed").replace("[discharge_reason]", "[nope]"),
         "x.yaml: field requires: unknown column 'nope'"),
        (VALID.format(id="x", version=1, success="is_completed").replace('["Our own rule, 2026."]', "[]"),
         "x.yaml: field references: must be a non-empty list"),
        ("id: [unclosed\n", "x.yaml: not valid YAML at line"),
        (VALID.format(id="x", version=1, success="los_days"),
         "x.yaml: field success: a condition must be true/false"),
    ],
)
def test_bad_files_give_one_line_naming_file_and_field(tmp_path, text, message):
    path = _write(tmp_path, "x.yaml", text)
    with pytest.raises(UserError) as info:
        registry.load_file(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_select_keeps_order_and_refuses_unknown_ids():
    defs = registry.load_registry(None)
    assert [d.id for d in registry.select(defs, ["retention_90d", "completion"])] == ["retention_90d", "completion"]
    with pytest.raises(UserError, match="unknown definition 'nope'"):
        registry.select(defs, ["nope"])


def test_cli_list_show_and_check(tmp_path, capsys):
    assert main(["definitions", "list"], environ={}) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(BUILTIN_IDS)
    assert main(["definitions", "show", "phq9_response"], environ={}) == 0
    shown = capsys.readouterr().out
    assert "2 * (phq9_admit - phq9_discharge) >= phq9_admit" in shown and "Löwe" in shown

    good = _write(tmp_path, "mine.yaml", VALID.format(id="mine", version=1, success="is_completed"))
    assert main(["definitions", "check", str(good)], environ={}) == 0
    assert capsys.readouterr().out.strip() == "ok: mine version 1"

    bad = _write(tmp_path, "bad.yaml", VALID.format(id="bad", version=1, success="is_completed or"))
    assert main(["definitions", "check", str(bad)], environ={}) == 2
    assert "bad.yaml: field success: unexpected end of expression at position 16" in capsys.readouterr().err


def test_cli_uses_the_workspace_from_option_or_environment(tmp_path, capsys):
    _write(tmp_path, "mine.yaml", VALID.format(id="mine", version=1, success="is_completed"))
    assert main(["definitions", "--definitions-dir", str(tmp_path), "show", "mine"], environ={}) == 0
    assert "origin:      user" in capsys.readouterr().out
    assert main(["definitions", "show", "mine"], environ={"LEVELCARE_DEFINITIONS": str(tmp_path)}) == 0
    assert main(["definitions", "show", "mine"], environ={}) == 2


def test_only_interview_outcomes_are_marked_followup_interview():
    # the follow-up sensitivity rows (ITT / complete case / IPW of follow-up) belong to outcomes
    # read from the interview; readmission has a window but is known from the records
    defs = registry.load_registry(None)
    marked = {d.id for d in defs.values() if d.followup == "interview"}
    assert marked == {f"abstinent_{w}d_{kind}" for w in (30, 90, 180, 365) for kind in ("itt", "cc")}
    assert defs["no_readmission_90d"].window_days == 90 and defs["no_readmission_90d"].followup is None
    assert defs["abstinent_90d_cc"].as_dict()["followup"] == "interview"


@pytest.mark.parametrize("extra, message", [
    ("followup: phone\n", "field followup: must be interview, or omitted"),
    ("followup: interview\n", "field followup: an interview outcome needs window_days"),
])
def test_a_bad_followup_marker_is_one_line_naming_the_field(tmp_path, extra, message):
    text = VALID.format(id="mine", version=1, success="discharge_reason = 'completed'") + extra
    path = _write(tmp_path, "mine.yaml", text)
    with pytest.raises(UserError) as err:
        registry.load_file(path)
    assert str(err.value) == f"{path}: {message}" or str(err.value).startswith(f"{path}: {message}")
    assert "\n" not in str(err.value)
