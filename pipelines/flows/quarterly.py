"""The quarterly job as Prefect flows.

``quarterly`` = ``ingest`` → ``validate`` → ``analyze`` → ``report``, then the run is recorded
in the run registry with its manifest. Tasks wrap plain functions (ingestion, analysis,
report); retries only around reading input files. A file refused by error-severity
validation fails the ``validate`` flow and with it the run (after the other files loaded,
so nothing already validated is lost).

Task results carry ledger lines and counts, never a person's values.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

from prefect import flow, task

from pipelines.errors import ValidationFailed
from pipelines.settings import Settings

# The quarterly report shows rates by level of care, trends by quarter and a site funnel.
DEFAULT_BY = ["level_of_care", "level_group", "site", "quarter"]


def progress(step: str, detail: str) -> None:
    """One progress line on stderr: step and what it did (files, counts)."""
    print(f"[{dt.datetime.now():%H:%M:%S}] {step:<9} {detail}", file=sys.stderr, flush=True)


@task(name="ingest-files", retries=2, retry_delay_seconds=2)
def ingest_task(warehouse: str, paths: list[str], run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
    # retried: reading files from shared storage can fail transiently; each file loads in
    # one transaction and a loaded file is skipped as a duplicate, so a retry is safe.
    from dataclasses import asdict

    from pipelines.ingest.core import ingest_paths

    rows = ingest_paths(Settings(warehouse=Path(warehouse)), paths, kind=kind, run_id=run_id)
    for row in rows:
        progress("ingest", row.line())
    return [asdict(r) for r in rows]


@flow(name="ingest")
def ingest_flow(warehouse: str, input_dir: str, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
    return ingest_task(warehouse, [input_dir], run_id, kind)


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
            f"{len(refused)} file(s) refused by validation; first: {first['file']}: {first['message']}"
        )
    return counts


@flow(name="validate")
def validate_flow(ledger: list[dict[str, Any]]) -> dict[str, int]:
    return validation_gate(ledger)


@task(name="analyze")
def analyze_task(warehouse: str, out_dir: str, run_id: str, definitions: list[str] | None,
                 by: list[str] | None, definitions_dir: str | None) -> dict[str, Any]:
    from pipelines.analysis.command import analyze

    settings = Settings(warehouse=Path(warehouse), definitions_dir=Path(definitions_dir) if definitions_dir else None)
    results = analyze(settings, Path(out_dir), definitions, by, run_id=run_id)
    progress("analyze", f"{len(results['definitions'])} definitions, {len(results['rates'])} rate rows, "
             f"{len(results.get('comparisons', []))} comparison rows")
    return {"run_id": results["run_id"], "definitions": len(results["definitions"]),
            "rates": len(results["rates"]), "comparisons": len(results.get("comparisons", []))}


@flow(name="analyze")
def analyze_flow(warehouse: str, out_dir: str, run_id: str, definitions: list[str] | None = None,
                 by: list[str] | None = None, definitions_dir: str | None = None) -> dict[str, Any]:
    return analyze_task(warehouse, out_dir, run_id, definitions, by, definitions_dir)


@task(name="report")
def report_task(warehouse: str, out_dir: str, quarter: str | None, formats: list[str]) -> list[str]:
    from pipelines.report.command import write_report

    files = write_report(Settings(warehouse=Path(warehouse)), Path(out_dir), quarter=quarter, formats=formats)
    progress("report", ", ".join(p.name for p in files))
    return [str(p) for p in files]


@flow(name="report")
def report_flow(warehouse: str, out_dir: str, quarter: str | None = None,
                formats: list[str] | None = None) -> list[str]:
    return report_task(warehouse, out_dir, quarter, formats or ["html", "pdf", "xlsx"])


@flow(name="quarterly")
def quarterly_flow(
    input_dir: str,
    out_dir: str,
    warehouse: str = "levelcare.duckdb",
    quarter: str | None = None,
    definitions: list[str] | None = None,
    by: list[str] | None = None,
    formats: list[str] | None = None,
    definitions_dir: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Ingest every file in ``input_dir``, validate, analyze and report into ``out_dir``."""
    from pipelines.runs import new_run_id

    run_id = run_id or new_run_id()
    progress("run", f"{run_id}: input {input_dir}, warehouse {warehouse}")
    ledger = ingest_flow(warehouse, input_dir, run_id)
    validate_flow(ledger)
    summary = analyze_flow(warehouse, out_dir, run_id, definitions, by or DEFAULT_BY, definitions_dir)
    files = report_flow(warehouse, out_dir, quarter, formats)
    record_task(warehouse, run_id, out_dir, {
        "input_dir": input_dir, "quarter": quarter, "definitions": definitions, "by": by or DEFAULT_BY,
        "formats": formats, "definitions_dir": definitions_dir,
    })
    return {"run_id": run_id, "out_dir": out_dir, "files": files, "analysis": summary}


@task(name="record-run")
def record_task(warehouse: str, run_id: str, out_dir: str, parameters: dict[str, Any]) -> str:
    from pipelines.runs import record_analysis_run

    record_analysis_run(Settings(warehouse=Path(warehouse)), run_id, Path(out_dir), parameters)
    return run_id
