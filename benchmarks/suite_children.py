"""Child programs of ``bench_suite.py``: each runs in a fresh process and prints one JSON line.

    python benchmarks/suite_children.py ROLE [ARGS...]

Roles: ``startup`` (imports + great-expectations context, what every levelcare process pays
before its first row), ``ingest`` (ingest + validation of a folder), ``data`` (marts and crude
rates only, for national scale), ``analyze`` (marts,
rates of every definition, comparative statistics, as ``levelcare run``'s analyze step
calls them, each sub-stage timed with its own peak RSS), ``baseline`` (the compare() models
fitted directly with statsmodels ``Logit`` on in-memory arrays), ``report``, ``floor`` (plain
DuckDB SQL) and ``peer`` (an analyst's pandas + great-expectations + statsmodels script).

Timings inside a child start after its imports: the start-up is measured once, by itself.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipelines import heap

heap.configure()  # as the levelcare command does, before any thread (importing pipelines does not)

# The groupings levelcare run's analyze step uses (pipelines.flows.quarterly.DEFAULT_BY,
# repeated here so that the child does not import Prefect).
RUN_BY = ["level_of_care", "level_group", "site", "quarter"]
# Crude rates every baseline computes by level of care.
FLOOR_DEFINITIONS = ("completion", "completion_or_transfer", "abstinent_90d_itt", "abstinent_90d_cc",
                     "no_readmission_30d")


class Probe:
    """Wall and CPU seconds and peak RSS (this process and its children) per named stage."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._proc = psutil.Process()
        self._peak = 0
        self._stop = False
        self.stages: dict[str, dict[str, float]] = {}
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._thread.start()

    def rss(self) -> int:
        import psutil

        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            with suppress(psutil.Error):  # a child that just ended
                total += child.memory_info().rss
        return total

    def _sample(self, interval: float) -> None:
        while not self._stop:
            self._peak = max(self._peak, self.rss())
            time.sleep(interval)

    @contextmanager
    def stage(self, name: str):
        self._peak = self.rss()
        t, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self._peak = max(self._peak, self.rss())
            self.stages[name] = {"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c,
                                 "peak_mib": self._peak / 2**20}


def _emit(payload: dict) -> None:
    print(json.dumps(payload, default=str))


def startup() -> None:
    probe = Probe()
    with probe.stage("startup"):
        import duckdb  # noqa: F401
        import polars  # noqa: F401

        import pipelines.analysis.command
        import pipelines.ingest.core  # noqa: F401
        from pipelines.validation import _context

        _context()
    _emit(probe.stages)


def ingest(data: str, warehouse: str) -> None:
    from pipelines.ingest.core import ingest_paths
    from pipelines.settings import Settings
    from pipelines.validation import _context

    _context()  # paid once per process: the start-up, measured by itself
    probe = Probe()
    with probe.stage("ingest+validate"):
        rows = ingest_paths(Settings(warehouse=Path(warehouse)), [data])
    phases: dict[str, float] = {}
    for row in rows:
        if row.docs:
            doc = Path(row.docs.replace("index.html", "validation.json"))
            if doc.exists():
                for k, v in json.loads(doc.read_text()).get("seconds", {}).items():
                    phases[k] = phases.get(k, 0.0) + v
    _emit({**probe.stages, "phases": phases,
           "files": [{"file": r.file, "status": r.status, "rows_loaded": r.rows_loaded,
                      "rows_quarantined": r.rows_quarantined} for r in rows]})


def analyze(warehouse: str, out: str) -> None:
    """analyze() as the flow calls it, with marts, rates and statistics timed one by one."""
    import pipelines.analysis.rates as rates_mod
    from pipelines import marts
    from pipelines.analysis import comparative, comparisons
    from pipelines.analysis.command import analyze as run_analyze
    from pipelines.settings import Settings

    probe = Probe()

    def timed(module, attr: str, stage: str):
        inner = getattr(module, attr)

        def wrapper(*args, **kwargs):
            work = [args, kwargs]
            del args, kwargs  # the arguments are handed over, not kept (see _hand_over)
            with probe.stage(stage):
                return _hand_over(inner, work)

        setattr(module, attr, wrapper)

    timed(marts, "build", "marts")
    timed(rates_mod, "rates", "definitions (crude rates)")
    timed(comparative, "comparative_results", "adjusted statistics")
    timed(comparisons, "compare", "compare()")
    with probe.stage("analyze (total)"):
        results = run_analyze(Settings(warehouse=Path(warehouse)), Path(out), None, RUN_BY)
    rates = [r for r in results["rates"] if r["group_by"] == "level_of_care" and r["definition_id"] in FLOOR_DEFINITIONS]
    _emit({**probe.stages, "rates": {f"{r['definition_id']}|{r['group']}": [r["numerator"], r["denominator"]]
                                     for r in rates}})


def _hand_over(inner, work: list) -> object:
    """``inner(*args, **kwargs)`` for ``work = [args, kwargs]``, keeping none of the arguments alive
    while ``inner`` runs.

    compare() lets go of the frame it is given once it has read it (at 25 M episodes 4 GB, free
    for the rest of the statistics), as ``levelcare run`` calls it. A wrapper calling
    ``inner(*args, **kwargs)`` holds the argument tuple until ``inner`` returns: with it, the
    analyze role's statistics peaked at 14.4 GiB at 25 M against 10.6 GiB without a wrapper.
    CPython (3.11 on) hands the arguments of a call written out by name over to the function
    called; ``*`` and ``**`` calls keep them. So the call is written out, every argument by name.
    """
    import inspect

    signature = inspect.signature(inner)
    # names: the parameters of inner (identifiers, not input), each of which can be given by name
    if any(p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values()):
        raise TypeError(f"{inner.__name__}: a parameter that cannot be given by name")
    args, kwargs = work.pop(0), work.pop(0)
    named = signature.bind(*args, **kwargs).arguments
    names, values = list(named), list(named.values())[::-1]
    del args, kwargs, named
    call = eval(f"lambda _fn, _vals: _fn({', '.join(f'{n}=_vals.pop()' for n in names)})")
    return call(inner, values)


def data(warehouse: str) -> None:
    """Marts and the crude rates of every definition only (the data stages after ingest): the
    national-scale measurement of those stages, apart from the statistics (``statistics``),
    which take another quarter of an hour there."""
    from pipelines import marts
    from pipelines.analysis.rates import rates
    from pipelines.definitions import registry
    from pipelines.settings import Settings
    from pipelines.warehouse import connect

    settings = Settings(warehouse=Path(warehouse))
    definitions = registry.select(registry.load_registry(settings.definitions_dir), None)
    probe = Probe()
    with connect(settings.warehouse) as con:
        with probe.stage("marts"):
            marts.build(con)
        with probe.stage("definitions (crude rates)"):
            rows = rates(con, definitions, RUN_BY)
    _emit({**probe.stages, "rate_rows": len(rows)})


def statistics_inputs(warehouse: str | Path):
    """(settings, every built-in definition, analyze()'s arms): what ``levelcare run``'s
    analyze step hands ``comparative_results`` (also benchmarks/bench_heap.py)."""
    import inspect

    from pipelines.analysis.command import analyze as run_analyze
    from pipelines.definitions import registry
    from pipelines.settings import Settings

    settings = Settings(warehouse=Path(warehouse))
    definitions = registry.select(registry.load_registry(settings.definitions_dir), None)
    return settings, definitions, inspect.signature(run_analyze).parameters["arms"].default


def statistics(warehouse: str) -> None:
    """The adjusted statistics alone (comparative_results, with analyze()'s arms) on a warehouse
    whose marts are built: the national-scale measurement after ``data``."""
    from pipelines.analysis.comparative import comparative_results
    from pipelines.warehouse import connect

    settings, definitions, arms = statistics_inputs(warehouse)
    probe = Probe()
    with connect(settings.warehouse) as con, probe.stage("adjusted statistics"):
        out = comparative_results(con, definitions, arms=arms)
    _emit({**probe.stages, "comparison_rows": len(out.get("comparisons", []))})


def fit_baseline(frame, definitions, arm: str = "iop", reference: str = "residential") -> tuple[float, float, int]:
    """statsmodels ``Logit`` fits of compare()'s models on the same arrays: (seconds, CPU seconds, fits).

    As ``benchmarks/bench_stats.py``'s baseline (one propensity model per distinct population,
    one outcome model per arm and definition, one follow-up model per follow-up definition), skipping
    what compare() does not fit either (an arm under 20 people, fewer than 5 successes or
    failures); a fit statsmodels cannot finish (singular Hessian) still counts its time.
    """
    import warnings

    import numpy as np
    import polars as pl
    import statsmodels.api as sm

    from pipelines.analysis.comparison_plan import arm_mask, mask_key, plan_tasks
    from pipelines.analysis.comparisons import MIN_ARM, MIN_EVENTS
    from pipelines.stats.design import DEFAULT_COVARIATES, build_design, subset, with_column

    in_arm = arm_mask(frame, arm)
    keep = in_arm | (arm_mask(frame, reference) & ~in_arm)
    sub = frame.filter(pl.Series(keep))
    a = in_arm[keep]
    # statsmodels takes the dense float64 matrix (levelcare's own designs are compact from
    # 1.7 M episodes on)
    design = build_design(sub, DEFAULT_COVARIATES, compact=False)

    def enough(y, m):
        return all(min(int(y[r].sum()), int(r.sum()) - int(y[r].sum())) >= MIN_EVENTS for r in (m, ~m))

    def fit(y, X):
        try:
            sm.Logit(y, X).fit(disp=0)
        except np.linalg.LinAlgError:
            pass

    warnings.simplefilter("ignore")
    t0, c0 = time.perf_counter(), time.process_time()
    fits = 0
    groups: dict[str, list] = {}
    for t in plan_tasks(sub, definitions):
        groups.setdefault(mask_key(t.mask), []).append(t)
    for tasks in groups.values():
        mask = tasks[0].mask
        am = a[mask]
        if min(int(am.sum()), int((~am).sum())) < MIN_ARM:
            continue
        d = design if mask.all() else subset(design, mask)
        fit(am.astype(float), d.matrix)
        fits += 1
        Xa = with_column(d.matrix, am.astype(float))
        for t in tasks:
            y = np.nan_to_num(t.y[mask])
            if t.kind == "followup":
                if not enough(np.where(t.reached[mask], y, 0.0), am):
                    continue
                fit(t.reached[mask].astype(float), Xa)
                fits += 1
            else:
                if not enough(y, am):
                    continue
                for rows in (am, ~am):  # one outcome model per arm (g-computation, AIPW)
                    fit(y[rows], d.matrix[rows])
                    fits += 1
    return time.perf_counter() - t0, time.process_time() - c0, fits


def baseline(warehouse: str) -> None:
    """The models of compare() fitted directly with statsmodels on in-memory arrays."""
    import duckdb

    from pipelines.analysis.comparative import analysis_frame
    from pipelines.definitions import registry

    con = duckdb.connect(warehouse, read_only=True)
    definitions = list(registry.load_registry(None).values())
    frame = analysis_frame(con, definitions)
    con.close()
    import statsmodels.api  # noqa: F401  loaded (with scipy's BLAS) before the clock and the BLAS setting

    from pipelines.stats.blas import single_blas_thread

    probe = Probe()
    # the BLAS setting levelcare's statistics run with, so that the two compare like with like
    with probe.stage("statsmodels baseline"), single_blas_thread():
        seconds, cpu, fits = fit_baseline(frame, definitions)
    _emit({**probe.stages, "fit_seconds": seconds, "fit_cpu_seconds": cpu, "fits": fits})


def report(warehouse: str, out: str) -> None:
    """The report from the analysis in ``out`` (it reads results.json only; ``warehouse`` is
    kept for the role's calling convention)."""
    from pipelines.report.command import write_report

    probe = Probe()
    with probe.stage("report"):
        write_report(Path(out))
    _emit(probe.stages)


def floor(data: str, store: str = "") -> None:
    """The floor's crude rates; with ``store`` (a folder), first the files loaded into tables of
    a DuckDB file there, and the rates read from the tables (``store_seconds``: the loading)."""
    import duckdb
    from suite_floor import STORE_SQL, floor_sql

    probe = Probe()
    with Path(data, "discharges.csv").open(encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")

    def fill(sql: str) -> str:
        return sql.replace("$DATA", data.replace("'", "''")).replace(
            "$PLANNED", "planned_los_days" if "planned_los_days" in header else "NULL")

    extra = {}
    with probe.stage("floor, stored" if store else "floor"):
        con = duckdb.connect(str(Path(store) / "floor.duckdb") if store else ":memory:")
        con.execute("set enable_progress_bar = false")
        if store:
            t = time.perf_counter()
            for statement in STORE_SQL:
                con.execute(fill(statement))
            extra["store_seconds"] = time.perf_counter() - t
        rows = con.execute(fill(floor_sql(stored=bool(store)))).fetchall()
        con.close()
    _emit({**probe.stages, **extra, "rates": {f"{d}|{g}": [k, n] for d, g, k, n in rows}})


def peer(data: str) -> None:
    from suite_peer import run_peer

    probe = Probe()
    with probe.stage("peer"):
        out = run_peer(Path(data), probe)
    _emit({**probe.stages, **out})


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    {"startup": startup, "ingest": ingest, "analyze": analyze, "data": data, "statistics": statistics,
     "baseline": baseline, "report": report, "floor": floor, "peer": peer}[role](*rest)
