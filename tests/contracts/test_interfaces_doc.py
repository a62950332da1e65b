"""docs/interfaces.md's mart section is generated from the mart contracts
(data_contracts/marts/*.yaml) and sql/models.yaml, and kept current; the contract files are
checked when loaded."""

from __future__ import annotations

import importlib
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from pipelines.contracts import ContractError, followup_windows
from pipelines.contracts import marts as mart_contracts

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "interfaces.md"


def _mart_section(doc: str) -> str:
    return doc[doc.index("\n## Marts") + 1:doc.index("\n## Definitions")]


def test_committed_mart_section_is_generated():
    committed = DOC_PATH.read_text(encoding="utf-8")
    assert mart_contracts.with_section(committed) == committed, "run `python -m pipelines.contracts.marts`"
    assert mart_contracts.main(["--check"]) == 0


def test_only_the_mart_section_is_replaced():
    doc = "# Title\n\nintro\n\n## Marts (old)\n\nold text\n\n## Definitions\n\nkept\n"
    new = mart_contracts.with_section(doc)
    assert new.startswith("# Title\n\nintro\n\n## Marts (`sql/marts`")
    assert new.endswith("null.\n\n## Definitions\n\nkept\n")
    assert "old text" not in new


def test_the_section_lists_every_column_of_the_yaml_in_order():
    section = _mart_section(DOC_PATH.read_text(encoding="utf-8"))
    for mart in mart_contracts.MARTS:
        raw = yaml.safe_load((ROOT / "data_contracts" / "marts" / f"{mart}.yaml").read_text(encoding="utf-8"))
        body = section[section.index(f"### `{mart}`"):]
        body = body[:body.index("\n### ")] if "\n### " in body else body
        shown = re.findall(r"^\| `([^`]+)` \| ([A-Z]+) \|", body, flags=re.MULTILINE)
        assert shown == [(c["name"], c["type"]) for g in raw["groups"] for c in g["columns"]], mart


def test_the_section_names_only_what_exists():
    # it once named a pipelines.marts.RAW_DDL that never existed
    section = _mart_section(DOC_PATH.read_text(encoding="utf-8"))
    names = set(re.findall(r"`(pipelines(?:\.\w+)+)", section))
    assert "pipelines.marts.ensure_raw_tables" in names
    for name in names:
        module, _, attribute = name.rpartition(".")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            assert hasattr(importlib.import_module(module), attribute), name
    for path in re.findall(r"`((?:sql|data_contracts|tests)/[\w/.*]+)`", section):
        assert list(ROOT.glob(path)), path


def test_per_window_groups_repeat_for_each_window():
    columns = [c.name for c in mart_contracts.load("mart_episodes").columns]
    windows = followup_windows()
    per_window = [c for c in columns if c.startswith("fu") and c[2:].split("_")[0].isdigit()]
    assert len(per_window) == 15 * len(windows)
    assert per_window[:2] == [f"fu{windows[0]}_status", f"fu{windows[0]}_reached"]
    assert per_window[-1] == f"fu{windows[-1]}_er_visits"
    # mart_followups' columns after is_due are one window's, without the prefix
    long = [c.name for c in mart_contracts.load("mart_followups").columns]
    assert sorted(long[3:]) == sorted(c.removeprefix(f"fu{windows[0]}_") for c in per_window[:15])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mart: m\none_row_per: x\ngroups: [{columns: [{name: a, type: VARCHAR}]}]",
         "needs a name, a type and a description"),
        ("mart: m\none_row_per: x\ngroups: [{columns: [{name: a, type: VARCHAR, description: d, tests: [distinct]}]}]",
         "unknown test"),
        (("mart: m\none_row_per: x\ngroups: [{columns: [{name: a, type: VARCHAR, description: d, "
         "tests: [{accepted_values: b}]}]}]"), "unknown test"),
        ("mart: m\none_row_per: x\ngroups: [{per_window: true, columns: [{name: a, type: INTEGER, description: d}]}]",
         "per-window group"),
        (("mart: m\none_row_per: x\ngroups: [{columns: [{name: a, type: INTEGER, description: d}, "
         "{name: a, type: INTEGER, description: e}]}]"), "declared twice"),
        ("mart: m\none_row_per: x\nkey: [b]\ngroups: [{columns: [{name: a, type: INTEGER, description: d}]}]",
         "key names unknown columns"),
        ("mart: m\ngroups: []", "missing 'one_row_per'"),
        ("mart: m\none_row_per: x\nowner: me\ngroups: []", "unknown keys owner"),
    ],
)
def test_a_malformed_mart_contract_is_refused(tmp_path, text, message):
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ContractError, match=message):
        mart_contracts._parse(path)
