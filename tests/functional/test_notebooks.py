"""Every notebook in notebooks/ runs end to end on synthetic data and leaves sane key numbers.

The notebooks are jupytext percent-format ``.py`` files. Each is converted to a notebook and
executed by nbclient on this interpreter's ``python3`` kernel (a kernelspec is written to a temp
folder only when none is installed; nothing is registered globally). They share one workdir, as
a researcher's session would: 01 synthesizes and ingests the native extract, 02 and 03 find it
already loaded (the ledger says duplicate), 04 loads its own TEDS-D file into its own
warehouse. Each notebook leaves
``<workdir>/<name>.json`` with its key numbers, checked here.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
RECORDS = 2000
TEDS_RECORDS = 20000  # hospital residential is ~0.2% of TEDS-D: enough of it to be shown
SEED = 20261123
SENSITIVITY_DEFINITIONS = ["completion", "completion_or_transfer", "abstinent_discharge", "abstinent_90d_itt",
                           "abstinent_90d_cc"]
SENSITIVITY_METHODS = ["crude", "gcomp", "iptw_ate", "overlap", "aipw"]
TIMINGS: dict[str, float] = {}


def test_every_notebook_is_tested():
    names = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    assert names == ["01_rerun_and_explore", "02_custom_definition", "03_sensitivity", "04_teds_d_completion"]
    assert not list(NOTEBOOKS.glob("*.ipynb")), "the .py files are the source of truth; do not commit .ipynb"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory) -> dict[str, str]:
    """Environment for the kernels; adds a temp kernelspec for this interpreter if none exists."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    env = dict(os.environ)
    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        root = tmp_path_factory.mktemp("jupyter")
        spec = root / "kernels" / "python3"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (levelcare tests)", "language": "python",
        }))
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("JUPYTER_PATH")]))
        env["JUPYTER_PATH"] = os.environ["JUPYTER_PATH"]
    return env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebook-workdir")


def run_notebook(name: str, workdir: Path, env: dict[str, str], **params: str):
    """Execute notebooks/<name>.py; return the executed notebook and its key numbers."""
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    kernel_env = {
        **env,
        "LEVELCARE_NOTEBOOK_WORKDIR": str(workdir),
        "LEVELCARE_NOTEBOOK_RECORDS": str(RECORDS),
        "LEVELCARE_NOTEBOOK_SEED": str(SEED),
        "MPLBACKEND": "agg",
        **params,
    }
    kernel_env.pop("LEVELCARE_NOTEBOOK_WAREHOUSE", None)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(workdir)}})
    started = time.perf_counter()
    client.execute(env=kernel_env)  # raises CellExecutionError, with the cell and traceback, on any error
    TIMINGS[name] = time.perf_counter() - started
    print(f"{name}: {TIMINGS[name]:.0f} s")
    key_file = workdir / f"{name}.json"
    assert key_file.is_file(), f"{name} left no key numbers"
    return nb, json.loads(key_file.read_text())


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def check_rate(row: dict, *, allow_hidden: bool = True) -> None:
    """A disclosed rate row: hidden entirely, or a count pair and a rate inside its interval."""
    if row["rate"] is None:
        assert allow_hidden, row
        return
    assert 0.0 <= row["ci_low"] <= row["rate"] <= row["ci_high"] <= 1.0, row
    if row.get("numerator") is not None and row.get("denominator"):
        assert 0 <= row["numerator"] <= row["denominator"], row
        assert math.isclose(row["rate"], row["numerator"] / row["denominator"], rel_tol=1e-9), row


def test_01_rerun_and_explore(workdir, kernel_env):
    nb, key = run_notebook("01_rerun_and_explore", workdir, kernel_env)
    # a run was recorded (fresh warehouse), rerun from its manifest, and reproduced exactly
    assert key["run_id"].startswith("run-") and key["rerun_of"] == key["run_id"]
    assert key["rerun_id"] != key["run_id"]
    assert key["reproduced"] is True and key["rows_differing"] == 0 and key["comparisons_differing"] == 0
    text = outputs_text(nb)
    assert "\nREPRODUCED" in text and "COMPARISONS REPRODUCED" in text
    # the notebook's run: three definitions, rates by level of care, level group and quarter, comparisons
    assert key["definitions"] == ["completion", "followup_reached_180d", "followup_reached_90d"]
    assert key["rate_rows"] > 10 * len(key["definitions"])
    assert key["comparison_rows"] > 0
    assert key["episodes_total"] == RECORDS
    assert len(key["quarters"]) >= 4 and all(len(q) == 6 and q[4] == "Q" for q in key["quarters"])
    assert {"iop", "residential_short", "residential_long"} <= set(key["levels_of_care"])
    assert set(key["overall_rates"]) == set(key["definitions"])
    assert all(r is not None and 0.0 <= r <= 1.0 for r in key["overall_rates"].values())
    response = key["followup_response"]
    assert {r["definition_id"] for r in response} == {"followup_reached_90d", "followup_reached_180d"}
    for r in response:
        check_rate(r)
    overall_90 = next(r for r in response if r["definition_id"] == "followup_reached_90d" and r["group"] == "all")
    assert overall_90["rate"] is not None and 0.05 < overall_90["rate"] < 0.95
    for png in ("episodes_by_quarter.png", "followup_response.png"):
        assert (workdir / "01_rerun_and_explore" / png).stat().st_size > 5_000
    # the run is in the warehouse's registry
    from pipelines import runs
    from pipelines.warehouse import connect

    with connect(Path(key["warehouse"]), read_only=True) as con:
        assert key["run_id"] in {r.run_id for r in runs.list_runs(con)}


def test_02_custom_definition(workdir, kernel_env):
    nb, key = run_notebook("02_custom_definition", workdir, kernel_env)
    custom = key["custom_id"]
    assert custom == "completed_abstinent_90d_reached"
    assert Path(key["custom_file"]).is_file()
    assert key["check"] == f"ok: {custom} version 1"
    errors = key["check_errors"]
    assert "field success: unknown column 'fu90_abstinant'" in errors[f"{custom}.yaml"]
    assert "field version" in errors["completion.yaml"] and "higher version" in errors["completion.yaml"]
    assert key["registry_user_ids"] == [custom]
    assert key["definitions"][0] == custom and "abstinent_90d_cc" in key["definitions"]
    overall = key["overall"]
    assert set(overall) == set(key["definitions"])
    for row in overall.values():
        check_rate(row, allow_hidden=False)
    # completed-and-abstinent is a subset of abstinent (same reached population) and of completed
    assert overall[custom]["numerator"] <= overall["abstinent_90d_cc"]["numerator"]
    assert overall[custom]["numerator"] <= overall["completion"]["numerator"]
    assert overall[custom]["rate"] < overall["abstinent_90d_cc"]["rate"]
    by_level = {r["group"]: r for r in key["by_level_of_care"]}
    assert {"iop", "residential_short"} <= set(by_level)
    assert all(r[custom] is None or 0 <= r[custom] <= 1 for r in by_level.values())
    rows = [r for r in key["comparisons"] if r["definition_id"] == custom]
    assert {r["method"] for r in rows} == {"crude", "aipw"}
    for r in key["comparisons"]:
        if r["estimate"] is not None:
            assert -1 <= r["ci_low"] <= r["estimate"] <= r["ci_high"] <= 1, r
    assert (workdir / "02_custom_definition" / "rates_by_level_group.png").stat().st_size > 5_000
    assert "ok: completed_abstinent_90d_reached version 1" in outputs_text(nb)


def test_03_sensitivity(workdir, kernel_env):
    _, key = run_notebook("03_sensitivity", workdir, kernel_env,
                          LEVELCARE_NOTEBOOK_DEFINITIONS=",".join(SENSITIVITY_DEFINITIONS),
                          LEVELCARE_NOTEBOOK_METHODS=",".join(SENSITIVITY_METHODS))
    assert key["definitions"] == SENSITIVITY_DEFINITIONS and key["methods"] == SENSITIVITY_METHODS
    assert (key["arm"], key["reference"]) == ("iop", "residential")
    assert "fu90_reached" in key["followup_columns_joined"]
    rows = key["rows"]
    # every definition x method has its row (estimate or the reason it is not shown)
    have = {(r["definition_id"], r["method"]) for r in rows}
    assert {(d, m) for d in SENSITIVITY_DEFINITIONS for m in SENSITIVITY_METHODS} <= have
    # follow-up definitions also get the other missing-data policy and the IPFW estimate
    assert {("abstinent_90d_itt", "ipw_followup"), ("abstinent_90d_cc", "ipw_followup")} <= have
    estimated = [r for r in rows if r["estimate"] is not None]
    assert len(estimated) >= 0.8 * len(rows)
    for r in estimated:
        assert -1 <= r["ci_low"] <= r["estimate"] <= r["ci_high"] <= 1, r
        expected = ("iop lower" if r["ci_high"] < 0 else "iop higher" if r["ci_low"] > 0
                    else "no clear difference")
        assert r["direction"] == expected, r
    assert all(r["estimate"] is not None for r in rows if r["method"] == "crude")
    assert {s["definition_id"] for s in key["summary"]} == set(SENSITIVITY_DEFINITIONS)
    # synthetic data: the true effects are known for every definition compared
    assert set(key["truth"]) == set(SENSITIVITY_DEFINITIONS)
    assert all(-1 < v < 1 for v in key["truth"].values())
    assert {r["definition_id"] for r in key["noninferiority"]} == set(SENSITIVITY_DEFINITIONS)
    assert Path(key["forest_plot"]).stat().st_size > 20_000


def test_04_teds_d_completion(workdir, kernel_env):
    _, key = run_notebook("04_teds_d_completion", workdir, kernel_env,
                          LEVELCARE_NOTEBOOK_TEDS_RECORDS=str(TEDS_RECORDS))
    assert key["synthetic"] is True and key["teds_file"] == "tedsd_puf.csv"
    assert [r["status"] for r in key["ledger"]] in (["loaded"], ["duplicate"])
    rows = key["completion_by_setting"]
    for r in rows:
        check_rate(r)
    overall = {r["definition_id"]: r for r in rows if r["setting"] == "all settings"}
    assert overall["completion"]["denominator"] == TEDS_RECORDS
    shown = {(r["definition_id"], r["setting"]): r for r in rows if r["rate"] is not None and r["setting"] != "all settings"}
    completion_settings = {s for d, s in shown if d == "completion"}
    assert len(key["settings"]) >= 5 and len(completion_settings) >= 5, completion_settings
    assert {"iop", "outpatient", "detox", "residential_short"} <= completion_settings
    for (d, s), r in shown.items():
        if d == "completion" and ("completion_or_transfer", s) in shown:
            # completed is part of completed-or-transferred, over the same discharges
            other = shown[("completion_or_transfer", s)]
            assert r["denominator"] == other["denominator"] and r["numerator"] <= other["numerator"]
    # the settings' discharges add up to at most the total (hidden settings are left out)
    assert sum(r["denominator"] for (d, _), r in shown.items() if d == "completion") <= TEDS_RECORDS
    assert (workdir / "04_teds_d_completion" / "completion_by_setting.png").stat().st_size > 5_000
