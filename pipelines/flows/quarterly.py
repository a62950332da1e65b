"""The quarterly job as Prefect flows.

``quarterly`` = ``ingest`` → ``validate`` → ``analyze`` → ``report``, then the run is recorded
in the run registry with its manifest. Tasks wrap plain functions (ingestion, analysis,
report); retries only around reading input files. A file refused by error-severity
validation fails the ``validate`` flow and with it the run (after the other files loaded,
so nothing already validated is lost).

Task results carry ledger lines and counts, never a person's values.

Scale-out (``task_runner="dask"``): the sub-flows ``ingest`` and ``analyze`` run their
independent tasks on a Dask cluster through prefect-dask's ``DaskTaskRunner`` — the one at
``dask_address``, or a local multi-process cluster started for the run (``LOCAL_CLUSTER``,
shared by both sub-flows). What goes to the workers:

* ``prepare-file``, one task per input file: sha256, reading, identifier gate, typing, row
  checks and great-expectations validation (:mod:`pipelines.ingest.staged`), in an in-memory
  DuckDB on the worker; the typed batch comes back as Parquet bytes;
* ``comparative-statistics``: the comparisons, survival and effect modification of the
  analysis, from ``mart_episodes`` shipped as Parquet, while the flow computes the rates.

DuckDB is written by the flow's process only: ``load-files`` takes the prepared files in the
order the default runner ingests them (discharges before follow-ups, then by path), whatever
order the workers finish in, and runs the cross-record checks and loads under the warehouse
write lock. The results are the default runner's (tests/functional/test_dask.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from pipelines.errors import ValidationFailed
from pipelines.settings import Settings

# The quarterly report shows rates by level of care, trends by quarter and a site funnel.
DEFAULT_BY = ["level_of_care", "level_group", "site", "quarter"]
TASK_RUNNERS = ("default", "dask")
# The local cluster of `--task-runner dask` without `--dask-address`: one process per core of
# the 2-core reference machine, one thread each (DuckDB and numpy bring their own threads).
LOCAL_CLUSTER: dict[str, Any] = {"n_workers": 2, "processes": True, "threads_per_worker": 1,
                                 "dashboard_address": ":0"}


def progress(step: str, detail: str) -> None:
    """One progress line on stderr: step and what it did (files, counts)."""
    print(f"[{dt.datetime.now():%H:%M:%S}] {step:<9} {detail}", file=sys.stderr, flush=True)


def _progress_rows(rows) -> None:
    for row in rows:
        progress("ingest", row.line())
        for detail in row.detail_lines():
            progress("ingest", detail)


@task(name="ingest-files", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def ingest_task(warehouse: str, paths: list[str], run_id: str, kind: str | None = None,
                opts: Any = None) -> list[dict[str, Any]]:
    # retried: reading files from shared storage can fail transiently; each file loads in
    # one transaction and a loaded file is skipped as a duplicate, so a retry is safe.
    from dataclasses import asdict

    from pipelines.ingest.core import ingest_paths

    skipped: list[str] = []
    if opts is not None:
        rows = ingest_paths(Settings(warehouse=Path(warehouse)), paths, kind=opts.kind, site=opts.site,
                            run_id=run_id, mapping=opts.mapping, sheet=opts.sheet, skipped=skipped)
    else:
        rows = ingest_paths(Settings(warehouse=Path(warehouse)), paths, kind=kind, run_id=run_id, skipped=skipped)
    for note in skipped:
        progress("ingest", note)
    _progress_rows(rows)
    return [asdict(r) for r in rows]


# retried like ingest-files: reading shared storage; a prepared file is only returned, never loaded
@task(name="prepare-file", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def prepare_task(path: str, kind: str | None, skip: list[str], opts: Any = None):
    from pipelines.ingest.staged import prepare_file

    return prepare_file(path, kind=kind, skip=skip, opts=opts)


@task(name="load-files", cache_policy=NO_CACHE)
def load_task(warehouse: str, prepared: list[Any], run_id: str, kind: str | None,
              opts: Any = None) -> list[dict[str, Any]]:
    """Load the prepared files in the order given, waiting for each in turn; the only writer."""
    from dataclasses import asdict

    from pipelines.ingest.staged import load_prepared

    def arrived():
        for future in prepared:  # passed quoted: futures, not waited for up front
            state = future.wrapped_future.result()  # not kept by the future: one batch in memory at a time
            item = state.result()
            future.wrapped_future.release()  # and off the worker
            yield item

    rows = load_prepared(Settings(warehouse=Path(warehouse)), arrived(), kind=kind, run_id=run_id, opts=opts)
    _progress_rows(rows)
    return [asdict(r) for r in rows]


@flow(name="ingest")
def ingest_flow(warehouse: str, input_dir: str, run_id: str, kind: str | None = None,
                parallel: bool = False, site: str | None = None, mapping: str | None = None,
                sheet: str | None = None) -> list[dict[str, Any]]:
    """``mapping``: a mapping file's path (None: the one saved for ``site``, if any)."""
    from pipelines.ingest.core import resolve_options

    opts = resolve_options(Settings(warehouse=Path(warehouse)), kind, site, mapping, sheet)
    if not parallel:
        return ingest_task(warehouse, [input_dir], run_id, opts.kind, opts)
    from pipelines.ingest.staged import loaded_sha256s, plan_files

    skipped: list[str] = []
    files = plan_files([input_dir], opts.kind, opts.mapping, skipped)
    for note in skipped:
        progress("ingest", note)
    skip = sorted(loaded_sha256s(Settings(warehouse=Path(warehouse))))
    progress("ingest", f"{len(files)} files to prepare on the Dask cluster")
    futures = [prepare_task.submit(str(f), opts.kind, skip, opts) for f in files]
    return load_task(warehouse, quote(futures), run_id, opts.kind, opts)


@task(name="validation-gate")
def validation_gate(ledger: list[dict[str, Any]]) -> dict[str, int]:
    refused = [r for r in ledger if r["status"] == "refused"]
    counts = {
        "files": len(ledger),
        "refused": len(refused),
        "rows_loaded": sum(r["rows_loaded"] for r in ledger),
        "rows_quarantined": sum(r["rows_quarantined"] for r in ledger),
    }
    progress("validate", f"{counts['files']} files, {counts['rows_loaded']} rows loaded, "
             f"{counts['rows_quarantined']} quarantined, {counts['refused']} files refused")
    if refused:
        first = refused[0]
        raise ValidationFailed(
            f"{len(refused)} file(s) refused by validation; first: {first['file']}: "
            f"{first['message'].removeprefix(first['file'] + ': ')}"
        )
    return counts


@flow(name="validate")
def validate_flow(ledger: list[dict[str, Any]]) -> dict[str, int]:
    return validation_gate(ledger)


@task(name="comparative-statistics", cache_policy=NO_CACHE)
def comparative_task(marts: bytes, definitions: list[Any], options: dict[str, Any]) -> dict[str, Any]:
    from pipelines.analysis.command import comparative_from_marts

    return comparative_from_marts(marts, definitions, options)


def _submit_comparative(marts: bytes, definitions: list[Any], options: dict[str, Any]):
    return comparative_task.submit(marts, list(definitions), options)


@task(name="analyze")
def analyze_task(warehouse: str, out_dir: str, run_id: str, definitions: list[str] | None,
                 by: list[str] | None, definitions_dir: str | None, parallel: bool = False,
                 period: str | None = None) -> dict[str, Any]:
    from pipelines.analysis.command import analyze
    from pipelines.results.periods import parse_period

    settings = Settings(warehouse=Path(warehouse), definitions_dir=Path(definitions_dir) if definitions_dir else None)
    results = analyze(settings, Path(out_dir), definitions, by, run_id=run_id,
                      offload=_submit_comparative if parallel else None, period=parse_period(period))
    progress("analyze", f"{len(results['definitions'])} definitions, {len(results['rates'])} rate rows, "
             f"{len(results.get('comparisons', []))} comparison rows")
    return {"run_id": results["run_id"], "definitions": len(results["definitions"]),
            "rates": len(results["rates"]), "comparisons": len(results.get("comparisons", []))}


@flow(name="analyze")
def analyze_flow(warehouse: str, out_dir: str, run_id: str, definitions: list[str] | None = None,
                 by: list[str] | None = None, definitions_dir: str | None = None,
                 parallel: bool = False, period: str | None = None) -> dict[str, Any]:
    return analyze_task(warehouse, out_dir, run_id, definitions, by, definitions_dir, parallel, period)


@task(name="report")
def report_task(out_dir: str, period: str | None, formats: list[str]) -> list[str]:
    from pipelines.report.command import write_report
    from pipelines.results.periods import parse_period

    files = write_report(Path(out_dir), period=parse_period(period), formats=formats)
    progress("report", ", ".join(p.name for p in files))
    return [str(p) for p in files]


@flow(name="report")
def report_flow(out_dir: str, period: str | None = None, formats: list[str] | None = None) -> list[str]:
    return report_task(out_dir, period, formats or ["html", "pdf", "xlsx"])


@flow(name="quarterly")
def quarterly_flow(
    input_dir: str,
    out_dir: str,
    warehouse: str = "levelcare.duckdb",
    period: str | None = None,
    definitions: list[str] | None = None,
    by: list[str] | None = None,
    formats: list[str] | None = None,
    definitions_dir: str | None = None,
    run_id: str | None = None,
    task_runner: str = "default",
    dask_address: str | None = None,
    kind: str | None = None,
    site: str | None = None,
    mapping: str | None = None,
    sheet: str | None = None,
) -> dict[str, Any]:
    """Ingest every file in ``input_dir``, validate, analyze and report into ``out_dir``;
    ``period`` (``FROM..TO`` quarters; None = all data) is what the numbers count.

    ``task_runner="dask"`` runs the independent tasks on the Dask scheduler at
    ``dask_address`` (``tcp://HOST:PORT``), or on a local cluster started for the run.
    ``kind``, ``site``, ``mapping`` (a mapping file's path), ``sheet``: as for ``levelcare ingest``.
    """
    from pipelines.ingest.core import resolve_options
    from pipelines.runs import new_run_id

    run_id = run_id or new_run_id()
    progress("run", f"{run_id}: input {input_dir}, warehouse {warehouse}")
    # the mapping is checked (and a site's saved one found) before any file is read
    opts = resolve_options(Settings(warehouse=Path(warehouse)), kind, site, mapping, sheet)
    with dask_scheduler(task_runner, dask_address) as address:
        parallel = address is not None
        ledger = on_dask(ingest_flow, address)(warehouse, input_dir, run_id, parallel=parallel, kind=kind,
                                               site=site, mapping=mapping, sheet=sheet)
        validate_flow(ledger)
        summary = on_dask(analyze_flow, address)(warehouse, out_dir, run_id, definitions, by or DEFAULT_BY,
                                                 definitions_dir, parallel=parallel, period=period)
    files = report_flow(out_dir, period, formats)
    record_task(warehouse, run_id, out_dir, {
        "input_dir": input_dir, "period": period, "definitions": definitions, "by": by or DEFAULT_BY,
        "formats": formats, "definitions_dir": definitions_dir, "task_runner": task_runner,
        "dask_address": dask_address, "kind": kind, "site": site, "sheet": sheet,
        "mapping": None if opts.mapping is None else {"file": mapping or opts.mapping.name,
                                                      "sha256": opts.mapping.sha256},
    })
    return {"run_id": run_id, "out_dir": out_dir, "files": files, "analysis": summary}


@task(name="record-run")
def record_task(warehouse: str, run_id: str, out_dir: str, parameters: dict[str, Any]) -> str:
    from pipelines.runs import record_analysis_run

    record_analysis_run(Settings(warehouse=Path(warehouse)), run_id, Path(out_dir), parameters)
    return run_id


@contextlib.contextmanager
def dask_scheduler(task_runner: str, address: str | None) -> Iterator[str | None]:
    """The address of the Dask scheduler the run's tasks go to: ``address``, or a local
    cluster's (started here, stopped after); None for the default runner."""
    if task_runner not in TASK_RUNNERS:
        raise ValueError(f"task_runner must be one of {TASK_RUNNERS}, not {task_runner!r}")
    if task_runner != "dask":
        yield None
        return
    # the scheduler's and nannies' connection chatter is not the batch job's output
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if address:
        yield address
    else:
        from distributed import LocalCluster

        progress("run", f"starting a local Dask cluster ({LOCAL_CLUSTER['n_workers']} worker processes)")
        with LocalCluster(**LOCAL_CLUSTER) as cluster:
            yield cluster.scheduler_address


def on_dask(subflow, address: str | None):
    """``subflow`` with prefect-dask's DaskTaskRunner on the scheduler at ``address`` (unchanged if None)."""
    if address is None:
        return subflow
    from prefect_dask import DaskTaskRunner

    return subflow.with_options(task_runner=DaskTaskRunner(address=address))
