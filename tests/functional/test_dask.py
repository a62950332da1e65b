"""Scale-out on Dask: the quarterly flow on Dask worker processes gives the default runner's numbers.

One small synthetic extract (1,000 episodes) is run three times into separate warehouses and
output folders — real embedded Prefect, real DuckDB files, real Dask worker processes:

* the default runner;
* ``task_runner="dask"`` (``levelcare run --task-runner dask``): the local 2-process cluster
  levelcare starts;
* ``--dask-address`` pointing at a ``distributed.LocalCluster`` this test starts (the
  sub-flows with Dask tasks).

The flows run in this process, so the session's one temporary Prefect server serves them all.

The Dask runs must leave identical ``results.json`` numbers (apart from run id and time),
identical CSVs and warehouse tables with identical content. Four definitions (a plain one,
a follow-up one with ITT policy, a readmission one and a PHQ-9 one) keep the statistics
cheap while still exercising populations, follow-up weighting, the multinomial comparison
and effect modification.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

DEFINITIONS = ["completion", "abstinent_90d_itt", "no_readmission_90d", "phq9_response"]
# columns that differ between any two runs by design: when and under which run id
RUN_COLUMNS = {"ingested_at", "run_id"}


def levelcare(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], check=False, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def run_in_process(data: Path, root: Path, **runner) -> Path:
    from pipelines.flows.quarterly import quarterly_flow

    out = root / "out"
    quarterly_flow(input_dir=str(data), out_dir=str(out), warehouse=str(root / "levelcare.duckdb"),
                   definitions=DEFINITIONS, formats=["html"], **runner)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dask-data")
    made = levelcare("synth", "--out", str(out), "--records", "1000", "--seed", "11")
    assert made.returncode == 0, made.stderr
    return out


@pytest.fixture(scope="module")
def default_run(data, tmp_path_factory) -> Path:
    return run_in_process(data, tmp_path_factory.mktemp("default"), task_runner="default")


def numbers(root: Path) -> dict:
    results = json.loads((root / "out" / "results.json").read_text())
    for f in results["data_quality"]["validation"]["files"]:  # where each run kept its Data Docs
        f["data_docs"] = f["data_docs"] and Path(f["data_docs"]).relative_to(root).as_posix()
    return {k: v for k, v in results.items() if k not in ("run_id", "created_at")}


def warehouse(root: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(root / "levelcare.duckdb"), read_only=True)
    try:
        tables = [t for (t,) in con.execute(
            "select table_name from information_schema.tables where table_name <> 'run_registry' "
            "order by table_name").fetchall()]
        dump = {}
        for table in tables:
            cols = [c for (c,) in con.execute(
                "select column_name from information_schema.columns where table_name = ? order by ordinal_position",
                [table]).fetchall() if c not in RUN_COLUMNS]
            # identical content: every row, every column, as a sorted multiset
            dump[table] = con.execute(f"select {', '.join(chr(34) + c + chr(34) for c in cols)} "
                                      f"from {table} order by all").fetchall()
        return dump
    finally:
        con.close()


def assert_same_as_default(root: Path, default: Path) -> None:
    assert numbers(root) == numbers(default)
    for name in ("rates.csv", "comparisons.csv", "balance.csv"):
        assert (root / "out" / name).read_bytes() == (default / "out" / name).read_bytes(), name
    theirs, ours = warehouse(default), warehouse(root)
    assert ours.keys() == theirs.keys()
    for table in theirs:
        assert ours[table] == theirs[table], table


def test_dask_run_gives_the_default_runners_results_and_warehouse(data, default_run, tmp_path, capfd):
    # the quarterly flow as `levelcare run --task-runner dask` runs it: a local 2-process cluster
    root = run_in_process(data, tmp_path, task_runner="dask")
    printed = "".join(capfd.readouterr())  # this process's output and its worker processes'
    results = numbers(default_run)
    # a run that loaded and compared something (an empty comparison would match trivially)
    assert results["inputs"] and sum(i["rows_loaded"] for i in results["inputs"]) > 2000
    assert len(results["comparisons"]) > 50 and results["modification"]
    assert_same_as_default(root, default_run)
    manifest = json.loads((root / "out" / "manifest.json").read_text())
    assert manifest["parameters"]["task_runner"] == "dask"
    assert "files to prepare on the Dask cluster" in printed  # the Dask path ran
    # neither the flow nor the worker processes print a person's values: no episode or person id
    with (data / "discharges.csv").open(newline="") as fh:
        ids = {v for row in csv.DictReader(fh) for k, v in row.items() if k in ("episode_id", "person_id") and v}
    assert ids and not [v for v in ids if v in printed]


@pytest.mark.slow  # a third full run; the default suite runs the local-cluster test above
def test_dask_address_runs_on_a_cluster_started_elsewhere(data, default_run, tmp_path):
    """The ingest and analyze sub-flows (the ones with Dask tasks) on a scheduler given by address."""
    import distributed
    from distributed.diagnostics.plugin import SchedulerPlugin

    from pipelines.flows.quarterly import DEFAULT_BY, analyze_flow, ingest_flow, on_dask

    class Finished(SchedulerPlugin):
        def __init__(self) -> None:
            self.keys: list[str] = []

        def transition(self, key, start, finish, *args, **kwargs) -> None:
            if finish == "memory":
                self.keys.append(str(key))

    finished = Finished()
    warehouse_path, out = str(tmp_path / "levelcare.duckdb"), str(tmp_path / "out")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as cluster:
        cluster.scheduler.add_plugin(finished)
        address = cluster.scheduler_address
        on_dask(ingest_flow, address)(warehouse_path, str(data), "run-on-address", parallel=True)
        on_dask(analyze_flow, address)(warehouse_path, out, "run-on-address", DEFINITIONS, DEFAULT_BY,
                                       parallel=True)
    # the work went to this cluster: one task per input file, and the comparative statistics
    assert len(finished.keys) >= 3, finished.keys
    assert_same_as_default(tmp_path, default_run)


def test_run_and_schedule_take_the_runner_options(tmp_path):
    from pipelines.cli import build_parser
    from pipelines.flows.command import flow_parameters
    from pipelines.settings import Settings

    settings = Settings(warehouse=tmp_path / "w.duckdb")
    (tmp_path / "discharges.csv").write_text("episode_id\n", encoding="utf-8")  # not an empty input
    for command in ("run", "schedule"):
        extra = ["--cron", "0 6 1 1,4,7,10 *"] if command == "schedule" else []
        args = build_parser(command).parse_args([command, "--input", str(tmp_path), "--out", "x", *extra,
                                                 "--task-runner", "dask", "--dask-address", "tcp://h:8786"])
        params = flow_parameters(args, settings)
        assert (params["task_runner"], params["dask_address"]) == ("dask", "tcp://h:8786")
        default = flow_parameters(build_parser(command).parse_args([command, "--input", str(tmp_path), "--out",
                                                                    "x", *extra]), settings)
        assert (default["task_runner"], default["dask_address"]) == ("default", None)


def test_dask_address_errors_are_one_line():
    wrong = levelcare("run", "--input", ".", "--out", "x", "--dask-address", "tcp://127.0.0.1:9")
    assert wrong.returncode == 2 and wrong.stderr.strip() == "levelcare: error: --dask-address needs --task-runner dask"
