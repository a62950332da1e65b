"""great-expectations validation of an ingest batch: the validation report and Data Docs.

Design (measured with benchmarks/bench_ingest.py):

* Row-level decisions (which rows are quarantined, and why) are made by vectorised SQL in
  DuckDB (``pipelines.ingest.batch``), generated from the same contract as the suites here.
  DuckDB evaluates every check in one scan; great-expectations on pandas evaluates one
  expectation per pass and would dominate ingest time on a 1.7M-row TEDS-D year.
* great-expectations then validates the typed batch (before quarantine, so the report shows
  the file as received) with suites generated from the contracts (``contracts.suite_spec``).
  Batches of up to ``GE_FULL_ROWS`` rows are validated in full; larger ones on a deterministic
  systematic sample (every k-th data row, k = ceil(rows / GE_FULL_ROWS)), and the report says
  so. The SQL checks always cover every row.
* GE runs on its pandas datasource (``ctx.data_sources.add_pandas``) over the in-memory
  frame: GE 1.x on DuckDB through SQLAlchemy returns empty metrics here.
* Results use ``result_format=SUMMARY`` with ``partial_unexpected_count=0``: counts and
  indexes only, so neither the results nor the Data Docs HTML carry a row's value. Aggregate
  expectations that report an observed value (min, max, mean) are never generated.
* An expectation that raises (e.g. a column GE cannot evaluate) is status ``error``, never
  a pass; ingestion refuses such a file.

The context, datasource and one validation definition per contract are built once per
process (importing great_expectations costs seconds).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.contracts import Contract, suite_spec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

GE_FULL_ROWS = 50_000
RESULT_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
_LOCK = threading.Lock()
_STATE: dict[str, Any] = {}


@dataclass(frozen=True)
class ExpectationOutcome:
    check_id: str
    expectation: str
    column: str | None
    category: str
    severity: str
    status: str  # passed, failed, error
    unexpected_count: int | None
    element_count: int | None


@dataclass(frozen=True)
class ValidationReport:
    suite: str
    rows_validated: int
    rows_in_batch: int
    sampled: bool
    outcomes: tuple[ExpectationOutcome, ...] = field(default_factory=tuple)
    docs_path: Path | None = None

    @property
    def errors(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.status == "error"]

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def success(self) -> bool:
        return all(o.status == "passed" for o in self.outcomes)

    def summary(self) -> str:
        passed = sum(o.status == "passed" for o in self.outcomes)
        text = f"{passed}/{len(self.outcomes)} expectations passed"
        if self.errors:
            text += f", {len(self.errors)} errored"
        if self.sampled:
            text += f" (sample of {self.rows_validated} of {self.rows_in_batch} rows)"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "rows_validated": self.rows_validated, "rows_in_batch": self.rows_in_batch,
                "sampled": self.sampled, "success": self.success,
                "expectations": [o.__dict__ for o in self.outcomes]}


def sample_step(rows: int, full_rows: int = GE_FULL_ROWS) -> int:
    """k for the systematic sample: validate data rows 1, 1+k, 1+2k, ..."""
    return max(1, math.ceil(rows / full_rows)) if rows else 1


def _gx():
    # GE prints progress bars through tqdm; a batch job's stderr is for errors.
    os.environ.setdefault("TQDM_DISABLE", "1")
    import great_expectations as gx

    # GE sets some of its loggers to INFO on import; its chatter is not the batch job's output
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_expectations")]:
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    return gx


def _context():
    with _LOCK:
        if "ctx" not in _STATE:
            logging.getLogger("great_expectations").setLevel(logging.ERROR)
            gx = _gx()
            ctx = gx.get_context(mode="ephemeral")
            try:
                from great_expectations.data_context.types.base import ProgressBarsConfig

                ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
            except Exception:  # noqa: BLE001, S110 - GE without the knob: tqdm is silenced above
                pass
            _STATE["ctx"] = ctx
            _STATE["ds"] = ctx.data_sources.add_pandas("levelcare")
            _STATE["vds"] = {}
        return _STATE["ctx"]


def build_suite(contract: Contract, name: str | None = None):
    """A GE ExpectationSuite generated from the contract (not yet added to a context)."""
    gx = _gx()
    suite = gx.ExpectationSuite(name=name or f"{contract.name}-{contract.version}")
    for item in suite_spec(contract):
        cls = getattr(gx.expectations, item["type"])
        meta = {k: item[k] for k in ("check_id", "category", "severity")}
        suite.add_expectation(cls(**item["kwargs"], meta=meta))
    return suite


def _validation_definition(contract: Contract, suite=None):
    """One validation definition per contract (or per explicit suite, for tests)."""
    gx = _gx()
    ctx = _context()
    key = suite.name if suite is not None else f"{contract.name}-{contract.version}"
    with _LOCK:
        vds = _STATE["vds"]
        if key not in vds:
            added = ctx.suites.add(suite if suite is not None else build_suite(contract, key))
            asset = _STATE["ds"].add_dataframe_asset(f"asset-{key}")
            batch_def = asset.add_batch_definition_whole_dataframe(f"whole-{key}")
            vds[key] = ctx.validation_definitions.add(
                gx.ValidationDefinition(name=f"vd-{key}", data=batch_def, suite=added))
        return vds[key]


def _raised(info: Any) -> bool:
    """GE puts either {'raised_exception': bool, ...} or {metric_id: {...}} in exception_info."""
    if not isinstance(info, dict):
        return False
    if info.get("raised_exception"):
        return True
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def _outcomes(suite_result) -> list[ExpectationOutcome]:
    out = []
    for res in suite_result.results:
        cfg = res.expectation_config
        meta = cfg.meta or {}
        result = res.result or {}
        if _raised(res.exception_info):
            status = "error"
        else:
            status = "passed" if res.success else "failed"
        out.append(ExpectationOutcome(
            check_id=meta.get("check_id", cfg.type), expectation=cfg.type, column=cfg.kwargs.get("column"),
            category=meta.get("category", ""), severity=meta.get("severity", "error"), status=status,
            unexpected_count=result.get("unexpected_count"), element_count=result.get("element_count"),
        ))
    return out


def _forget_results(ctx) -> None:
    # The ephemeral context keeps every result in memory, and a docs site renders every stored
    # result: without this, one file's Data Docs would list earlier files and grow each run.
    store = ctx.validation_results_store
    for key in list(store.list_keys()):
        store.remove_key(key)


def validate_frame(contract: Contract, frame: pd.DataFrame, *, rows_in_batch: int | None = None,
                   docs_dir: Path | None = None, suite=None) -> ValidationReport:
    """Validate ``frame`` with the contract's suite; write Data Docs under ``docs_dir`` if given."""
    gx = _gx()
    ctx = _context()
    vd = _validation_definition(contract, suite)
    rows_in_batch = len(frame) if rows_in_batch is None else rows_in_batch
    if _STATE.setdefault("stale", set()).intersection([vd.suite.name]):
        # a docs run marks the suite changed (rendered content); GE refuses to run a stale suite
        vd.suite.save()
        _STATE["stale"].discard(vd.suite.name)
    if docs_dir is None:
        result = vd.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)
        outcomes = _outcomes(result)
        docs_path = None
    else:
        docs_dir = Path(docs_dir)
        docs_dir.mkdir(parents=True, exist_ok=True)
        site_name = f"site-{docs_dir.name}-{id(frame)}"
        ctx.add_data_docs_site(site_name=site_name, site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        checkpoint = ctx.checkpoints.add(gx.Checkpoint(
            name=f"cp-{site_name}", validation_definitions=[vd], result_format=RESULT_FORMAT,
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[site_name])]))
        try:
            cp_result = checkpoint.run(batch_parameters={"dataframe": frame})
        finally:
            _STATE["stale"].add(vd.suite.name)
            ctx.checkpoints.delete(checkpoint.name)
            ctx.delete_data_docs_site(site_name)
        (suite_result,) = cp_result.run_results.values()
        outcomes = _outcomes(suite_result)
        docs_path = docs_dir / "index.html"
    _forget_results(ctx)
    return ValidationReport(suite=vd.suite.name, rows_validated=len(frame), rows_in_batch=rows_in_batch,
                            sampled=len(frame) < rows_in_batch, outcomes=tuple(outcomes), docs_path=docs_path)
