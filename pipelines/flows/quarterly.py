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
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from pipelines.errors import UserError, ValidationFailed
from pipelines.progress import line as progress
from pipelines.settings import Settings

# The quarterly report shows rates by level of care, trends by quarter and a site funnel.
DEFAULT_BY = ["level_of_care", "level_group", "site", "quarter"]
TASK_RUNNERS = ("default", "dask")
# The local cluster of `--task-runner dask` without `--dask-address`: one process per core of
# the 2-core reference machine, one thread each (DuckDB and numpy bring their own threads).
LOCAL_CLUSTER: dict[str, Any] = {"n_workers": 2, "processes": True, "threads_per_worker": 1,
                                 "dashboard_address": ":0"}


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


@flow(name="ingest", flow_run_name="levelcare-{run_id}-ingest")
def ingest_flow(warehouse: str, input_dir: str, run_id: str, kind: str | None = None,
                parallel: bool = False, site: str | None = None, mapping: str | None = None,
                sheet: str | None = None) -> list[dict[str, Any]]:
    """``mapping``: a mapping file's path (None: the one saved for ``site``, if any)."""
    from pipelines.ingest.core import resolve_options

    opts = resolve_options(Settings(warehouse=Path(warehouse)), kind, site, mapping, sheet)
    if not parallel:
        return ingest_task(warehouse, [input_dir], run_id, opts.kind, opts)
    from pipelines.ingest.staged import loaded_sha256s
    from pipelines.ingest.steps import plan_files

    skipped: list[str] = []
    files = plan_files([input_dir], opts.kind, opts.mapping, skipped, opts.sheet)
    for note in skipped:
        progress("ingest", note)
    skip = sorted(loaded_sha256s(Settings(warehouse=Path(warehouse))))
    progress("ingest", f"{len(files)} files to prepare on the Dask cluster")
    futures = [prepare_task.submit(str(f), opts.kind, skip, opts) for f in files]
    return load_task(warehouse, quote(futures), run_id, opts.kind, opts)


@task(name="validation-gate")
def validation_gate(ledger: list[dict[str, Any]], strict: bool = False) -> dict[str, int]:
    """Counts of the run's files; fails the run when there was no record file (UserError, exit
    2), when a file was refused (ValidationFailed, exit 4), or, with ``strict``, when any row
    was quarantined (exit 4)."""
    if not ledger:
        raise UserError("no record files in the input folder (every file was skipped: see the lines above)")
    refused = [r for r in ledger if r["status"] == "refused"]
    partial = [r for r in ledger if r["status"] == "partial"]
    counts = {
        "files": len(ledger),
        "refused": len(refused),
        "partial": len(partial),
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
    if strict and counts["rows_quarantined"]:
        files = [r for r in ledger if r["rows_quarantined"]]
        raise ValidationFailed(
            f"--strict: {counts['rows_quarantined']} rows of {len(files)} file(s) were quarantined "
            f"(first: {files[0]['file']}); see `levelcare quarantine`; nothing was analyzed")
    return counts


@flow(name="validate", flow_run_name="levelcare-{run_id}-validate")
def validate_flow(ledger: list[dict[str, Any]], run_id: str = "", strict: bool = False) -> dict[str, int]:
    return validation_gate(ledger, strict)


@task(name="comparative-statistics", cache_policy=NO_CACHE)
def comparative_task(marts: bytes, definitions: list[Any], options: dict[str, Any]) -> dict[str, Any]:
    from pipelines.analysis.command import comparative_from_marts

    return comparative_from_marts(marts, definitions, options)


def _submit_comparative(marts: bytes, definitions: list[Any], options: dict[str, Any]):
    return comparative_task.submit(marts, list(definitions), options)


@task(name="analyze")
def analyze_task(warehouse: str, out_dir: str, run_id: str, definitions: list[str] | None,
                 by: list[str] | None, definitions_dir: str | None, parallel: bool = False,
                 period: str | None = None, reference_warehouse: str | None = None) -> dict[str, Any]:
    from pipelines.analysis.command import analyze
    from pipelines.results.periods import parse_period

    settings = Settings(warehouse=Path(warehouse), definitions_dir=Path(definitions_dir) if definitions_dir else None)
    results = analyze(settings, Path(out_dir), definitions, by, run_id=run_id,
                      offload=_submit_comparative if parallel else None, period=parse_period(period),
                      reference_warehouse=Path(reference_warehouse) if reference_warehouse else None)
    progress("analyze", f"{len(results['definitions'])} definitions, {len(results['rates'])} rate rows, "
             f"{len(results.get('comparisons', []))} comparison rows")
    return {"run_id": results["run_id"], "definitions": len(results["definitions"]),
            "rates": len(results["rates"]), "comparisons": len(results.get("comparisons", []))}


@flow(name="analyze", flow_run_name="levelcare-{run_id}-analyze")
def analyze_flow(warehouse: str, out_dir: str, run_id: str, definitions: list[str] | None = None,
                 by: list[str] | None = None, definitions_dir: str | None = None,
                 parallel: bool = False, period: str | None = None,
                 reference_warehouse: str | None = None) -> dict[str, Any]:
    return analyze_task(warehouse, out_dir, run_id, definitions, by, definitions_dir, parallel, period,
                        reference_warehouse)


@task(name="report")
def report_task(out_dir: str, period: str | None, formats: list[str]) -> list[str]:
    from pipelines.report.command import write_report
    from pipelines.results.periods import parse_period

    files = write_report(Path(out_dir), period=parse_period(period), formats=formats)
    progress("report", ", ".join(p.name for p in files))
    return [str(p) for p in files]


@flow(name="report", flow_run_name="levelcare-{run_id}-report")
def report_flow(out_dir: str, period: str | None = None, formats: list[str] | None = None,
                run_id: str = "") -> list[str]:
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
    strict: bool = False,
    reference_warehouse: str | None = None,
) -> dict[str, Any]:
    """Ingest every file in ``input_dir``, validate, analyze and report into ``out_dir``;
    ``period`` (``FROM..TO`` quarters; None = all data) is what the numbers count.

    ``task_runner="dask"`` runs the independent tasks on the Dask scheduler at
    ``dask_address`` (``tcp://HOST:PORT``), or on a local cluster started for the run.
    ``kind``, ``site``, ``mapping`` (a mapping file's path), ``sheet``: as for ``levelcare ingest``.
    ``strict``: a quarantined row fails the run (exit 4) instead of being reported.

    The run holds the warehouse's write lock from start to end (a second run is refused), is
    named ``levelcare-<run id>`` in Prefect and tagged with its run id and period, and writes
    its outputs into ``out_dir`` only when it has completed (:func:`pipelines.runs.staged_outputs`).
    """
    from prefect import tags

    from pipelines.ingest.core import resolve_options
    from pipelines.runs import new_run_id, staged_outputs
    from pipelines.warehouse import run_lock

    run_id = run_id or new_run_id()
    run_tags = [run_id, f"period:{period or 'all'}"]
    label_flow_run(f"levelcare-{run_id}", run_tags)
    progress("run", f"{run_id}: input {input_dir}, warehouse {warehouse}")
    settings = Settings(warehouse=Path(warehouse))
    with run_lock(settings.warehouse, settings.lock_timeout_seconds), tags(*run_tags), \
            staged_outputs(Path(out_dir), run_id) as work:
        # the mapping is checked (and a site's saved one found) before any file is read
        opts = resolve_options(settings, kind, site, mapping, sheet)
        with dask_scheduler(task_runner, dask_address) as address:
            parallel = address is not None
            ledger = on_dask(ingest_flow, address)(warehouse, input_dir, run_id, parallel=parallel, kind=kind,
                                                   site=site, mapping=mapping, sheet=sheet)
            counts = validate_flow(ledger, run_id, strict)
            summary = on_dask(analyze_flow, address)(warehouse, str(work), run_id, definitions, by or DEFAULT_BY,
                                                     definitions_dir, parallel=parallel, period=period,
                                                     reference_warehouse=reference_warehouse)
        files = report_flow(str(work), period, formats, run_id)
        record_task(warehouse, run_id, str(work), {
            "input_dir": input_dir, "period": period, "definitions": definitions, "by": by or DEFAULT_BY,
            "formats": formats, "definitions_dir": definitions_dir, "task_runner": task_runner,
            "dask_address": dask_address, "kind": kind, "site": site, "sheet": sheet, "strict": strict,
            "reference_warehouse": reference_warehouse,
            "mapping": None if opts.mapping is None else {"file": mapping or opts.mapping.name,
                                                          "sha256": opts.mapping.sha256},
        }, out_dir)
        artifacts_task(run_id, ledger, str(work), out_dir)
    return {"run_id": run_id, "out_dir": out_dir, "files": [str(Path(out_dir) / Path(f).name) for f in files],
            "analysis": summary, "ingest": counts}


def label_flow_run(name: str, run_tags: list[str]) -> None:
    """Name the current flow run and add tags to it (a flow run's name is chosen before its
    parameters are known: a scheduled run's run id is made inside the flow)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if not flow_run.id:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, name=name, tags=sorted({*flow_run.tags, *run_tags}))
    except Exception as exc:  # noqa: BLE001 - a name in the UI is not worth failing the run for
        logging.getLogger(__name__).warning("could not name the Prefect flow run %s (%s)", name,
                                            type(exc).__name__)


@task(name="record-run")
def record_task(warehouse: str, run_id: str, work_dir: str, parameters: dict[str, Any], out_dir: str) -> str:
    """The manifest into ``work_dir`` (it moves to ``out_dir`` with the outputs); the registry
    records ``out_dir``."""
    from pipelines.runs import record_analysis_run

    record_analysis_run(Settings(warehouse=Path(warehouse)), run_id, Path(work_dir), parameters,
                        recorded_out=Path(out_dir))
    return run_id


LEDGER_COLUMNS = ("file", "kind", "status", "rows_read", "rows_loaded", "rows_quarantined")
HEADLINE_GROUPS = ("all", "level_group")
RATE_COLUMNS = ("definition_id", "group_by", "group", "numerator", "denominator", "rate", "ci_low", "ci_high")
HEADLINE_METHODS = ("crude", "aipw")
COMPARISON_COLUMNS = ("definition_id", "arm", "reference", "method", "estimate", "ci_low", "ci_high")


@task(name="artifacts")
def artifacts_task(run_id: str, ledger: list[dict[str, Any]], work_dir: str, out_dir: str) -> None:
    """Prefect artifacts of the run (shown on the run's page in the UI): the ingest ledger,
    the headline rates and comparisons (as disclosed in results.json: aggregates only) and a
    link to the report."""
    import json

    from prefect.artifacts import create_link_artifact, create_table_artifact

    key = f"levelcare-{run_id}".lower()
    create_table_artifact(key=f"{key}-ledger", description=f"levelcare {run_id}: the files ingested",
                          table=[{k: r.get(k) for k in LEDGER_COLUMNS} for r in ledger])
    results = json.loads((Path(work_dir) / "results.json").read_text(encoding="utf-8"))
    rates = [{k: r.get(k) for k in RATE_COLUMNS} for r in results["rates"] if r["group_by"] in HEADLINE_GROUPS]
    create_table_artifact(key=f"{key}-rates", table=rates, description=(
        f"levelcare {run_id}: success rates, all and by level of care ({results['period']['label']})"))
    comparisons = [{k: r.get(k) for k in COMPARISON_COLUMNS} for r in results["comparisons"]
                   if r.get("method") in HEADLINE_METHODS and r.get("estimand") == "rd"]
    create_table_artifact(key=f"{key}-comparisons", table=comparisons,
                          description=f"levelcare {run_id}: risk differences, crude and adjusted (AIPW)")
    report = Path(out_dir).resolve() / "report.html"
    create_link_artifact(key=f"{key}-report", link=report.as_uri(), link_text=report.name,
                         description=f"levelcare {run_id}: the quarterly report (on the machine that ran it)")


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
