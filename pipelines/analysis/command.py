"""``levelcare analyze --out DIR``: build the marts, evaluate definitions, write rates.

Writes ``rates.csv`` and ``results.json`` (docs/interfaces.md). ``analyze`` is the plain
function behind the command; it returns the results dict so that comparisons and other
sections can be added by their own modules. ``--json`` prints one JSON object describing the
outcome instead of the summary line (``ANALYZE_JSON_FIELDS``; :mod:`pipelines.jsonout`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines import progress
from pipelines.errors import UserError
from pipelines.jsonout import add_json_argument, file_entries, print_json, stdout_to_stderr
from pipelines.settings import Settings

log = logging.getLogger(__name__)

RateRows = list[dict[str, Any]]

# what write_outputs writes into --out, in order (analyze --json lists them)
OUTPUT_FILES = ("rates.csv", "trends.csv", "comparisons.csv", "balance.csv", "dose.csv", "length_of_stay.csv",
                "costs.csv", "cost_effectiveness.csv", "results.json")

ANALYZE_JSON_FIELDS = """\
status          "ok". An error prints no JSON: its line goes to stderr and the exit code is
                not 0 (2 a user error, 3 the warehouse busy)
run_id          the analysis' id, as in results.json
registered      false: `levelcare analyze` does not record its run in the warehouse's run
                registry (`levelcare runs list`, `levelcare rerun`); `levelcare run` does
out             the output folder (absolute path)
results         results.json in it (absolute path)
files           [{name, path, bytes, sha256}]: every file written (rates.csv, trends.csv,
                comparisons.csv, balance.csv, dose.csv, length_of_stay.csv, costs.csv,
                cost_effectiveness.csv, results.json)
period          {label, first_quarter, last_quarter, data_end_quarter}
disclosure      the small-cell rule applied (cms or opensafely)
inputs          number of input files the numbers come from
definitions     number of definitions evaluated
not_applicable  [{id, note}]: definitions the data cannot answer
rates, trends, comparisons, balance
                data rows written to rates.csv, trends.csv, comparisons.csv, balance.csv
suppressed      {rates, trends, comparisons}: {small, complementary}, rows of that CSV hidden
                by the rule, by reason
noninferiority  [{definition_id, arm, reference, margin_basis, noninferior, equivalent,
                conclusion}]: the headline verdict of each definition, on its margin basis
                (null: not estimable, or hidden by the rule)
warnings        [text]: definitions not applicable, comparisons not estimable, weighting
                fits that failed their balance or overlap checks, validation reports missing
                or not passed"""


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def period_fields(period: Mapping[str, Any]) -> dict[str, Any]:
    """The results model's period as ``--json`` reports it."""
    return {k: period[k] for k in ("label", "first_quarter", "last_quarter", "data_end_quarter")}


def configure_analyze(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--definitions", metavar="IDS", type=_csv_list, default=None,
        help="comma-separated definition ids (default: all)",
    )
    parser.add_argument(
        "--by", metavar="GROUPS", type=_csv_list, default=None,
        help="comma-separated groupings: level_of_care, level_group, site, quarter "
        "(default: level_of_care,level_group; the overall rate is always included)",
    )
    parser.add_argument("--definitions-dir", metavar="DIR", help="folder of your own definition files")
    parser.add_argument("--arm", default="iop", help="level of care or group compared (default iop)")
    parser.add_argument("--reference", default="residential", help="comparison level or group (default residential)")
    parser.add_argument("--margin", metavar="PP", type=float, default=5.0,
                        help="absolute non-inferiority margin in percentage points (default 5)")
    parser.add_argument("--margin-ratio", metavar="R", type=float, default=0.8,
                        help="relative non-inferiority margin, a risk ratio between 0 and 1 (default 0.8)")
    parser.add_argument("--margin-basis", choices=("auto", "absolute", "relative"), default="auto",
                        help="margin behind the headline verdict (default auto: relative when the reference "
                        "rate is below 20%%, else absolute); both verdicts are always in the results")
    parser.add_argument("--min-clusters", metavar="G", type=int, default=30,
                        help="sites needed before intervals are cluster-robust (CR2, t(G-1)); with fewer, "
                        "the person-level sandwich with site as a fixed effect (default 30)")
    parser.add_argument("--multiarm-outcome-models", action="store_true",
                        help="with three or more levels, also g-computation and AIPW over all of them (one "
                        "outcome model per level; about twice the statistics' time)")
    parser.add_argument("--disclosure", choices=("cms", "opensafely"), default="cms",
                        help="small-cell rule for everything written (default cms: no count 1-10)")
    add_period_arguments(parser)
    parser.add_argument(
        "--data-end-date", metavar="YYYY-MM-DD", type=dt.date.fromisoformat, default=None,
        help="last day the data cover (default: latest admission or discharge date)",
    )
    parser.add_argument("--reference-warehouse", metavar="PATH", type=Path,
                        help="a warehouse of TEDS-D rows to benchmark against (benchmark.csv, the "
                             "report's national comparison); default: TEDS-D rows of --warehouse, if any")
    add_json_argument(parser, ANALYZE_JSON_FIELDS)


def add_period_arguments(parser: argparse.ArgumentParser) -> None:
    """``--period FROM..TO`` and ``--quarter Q`` (= ``Q..Q``), shared by analyze, run, report, export."""
    parser.add_argument("--period", metavar="FROM..TO",
                        help="quarters counted, inclusive, e.g. 2025Q3..2026Q2 (default: all data)")
    parser.add_argument("--quarter", metavar="YYYYQn",
                        help="one quarter: the same as --period Q..Q (trends: the 8 quarters ending at Q)")


def run_analyze(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.definitions.command import with_definitions_dir
    from pipelines.results.periods import parse_period

    settings = with_definitions_dir(settings, args.definitions_dir)
    period = parse_period(args.period, args.quarter)
    with stdout_to_stderr() if args.json else contextlib.nullcontext():
        results = analyze(settings, args.out, args.definitions, args.by, data_end_date=args.data_end_date,
                          arm=args.arm, reference=args.reference, margin_pp=args.margin, rule=args.disclosure,
                          margin_ratio=args.margin_ratio, margin_basis=args.margin_basis, period=period,
                          min_clusters=args.min_clusters, multiarm_outcomes=args.multiarm_outcome_models,
                          reference_warehouse=args.reference_warehouse)
    if args.json:
        print_json(analyze_outcome(results, args.out))
        return 0
    not_applicable = len(results["not_applicable"])
    print(
        f"wrote {args.out / 'results.json'} and its CSVs for {results['period']['label']}: "
        f"{len(results['definitions'])} definitions ({not_applicable} not applicable), "
        f"{len(results['rates'])} rate rows"
    )
    return 0


def analyze_outcome(results: Mapping[str, Any], out_dir: Path) -> dict[str, Any]:
    """What ``analyze --json`` prints (``ANALYZE_JSON_FIELDS``): from the results model and
    the files as written."""
    out_dir = Path(out_dir).absolute()

    def hidden(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        return {reason: sum(1 for x in rows if x.get("suppressed") and x.get("suppression") == reason)
                for reason in ("small", "complementary")}

    def verdict(x: Mapping[str, Any]) -> dict[str, Any]:
        suffix = "_relative" if x["margin_basis"] == "relative" else ""
        return {"definition_id": x["definition_id"], "arm": x["arm"], "reference": x["reference"],
                "margin_basis": x["margin_basis"], "noninferior": x[f"noninferior{suffix}"],
                "equivalent": x[f"equivalent{suffix}"], "conclusion": x["conclusion"]}

    return {
        "status": "ok",
        "run_id": results["run_id"],
        "registered": False,
        "out": str(out_dir),
        "results": str(out_dir / "results.json"),
        "files": file_entries(out_dir / name for name in OUTPUT_FILES),
        "period": period_fields(results["period"]),
        "disclosure": results["disclosure"]["rule"],
        "inputs": len(results["inputs"]),
        "definitions": len(results["definitions"]),
        "not_applicable": results["not_applicable"],
        **{key: len(results[key]) for key in ("rates", "trends", "comparisons", "balance")},
        "suppressed": {key: hidden(results[key]) for key in ("rates", "trends", "comparisons")},
        "noninferiority": [verdict(x) for x in results["noninferiority"]],
        "warnings": analyze_warnings(results),
    }


def analyze_warnings(results: Mapping[str, Any]) -> list[str]:
    """What a script should surface from a finished analysis, one line each."""
    diag, validation = results["diagnostics"], results["data_quality"]["validation"]
    out = [f"{x['id']}: {x['note']}" for x in results["not_applicable"]]
    if diag.get("not_estimable"):
        out.append(f"comparisons: {diag['not_estimable']}")
    fits = [x for x in diag.get("adjusted") or [] if x.get("passed") is not None]
    failed = [x for x in fits if not x["passed"]]
    if failed:
        methods = ", ".join(dict.fromkeys(str(x["method"]) for x in failed))
        out.append(f"weighting: {len(failed)} of {len(fits)} propensity fits ({methods}) did not pass their "
                   "balance or overlap checks (results.json diagnostics.adjusted)")
    out += [f"validation report not found for {name}" for name in validation.get("missing") or []]
    checks = validation.get("checks") or []
    not_passed = [c for c in checks if c.get("status") != "passed"]
    if not_passed:
        out.append(f"validation: {len(not_passed)} of {len(checks)} checks did not pass")
    return out


def analyze(
    settings: Settings,
    out_dir: Path,
    definition_ids: Sequence[str] | None = None,
    by: Sequence[str] | None = None,
    *,
    data_end_date: dt.date | None = None,
    disclose: Callable[[RateRows], RateRows] | None = None,
    run_id: str | None = None,
    compare: bool = True,
    arm: str = "iop",
    reference: str = "residential",
    arms: Sequence[str] | None = ("iop", "php", "residential"),
    margin_pp: float = 5.0,
    margin_ratio: float = 0.8,
    margin_basis: str = "auto",
    min_clusters: int = 30,
    multiarm_outcomes: bool = False,
    rule: str = "cms",
    offload: Callable[[bytes, Sequence[Any], dict[str, Any]], Any] | None = None,
    period: Any = None,
    docs_root: Path | None = None,
    reference_warehouse: Path | None = None,
) -> dict[str, Any]:
    """Build marts, compute every selected definition's rates and the comparisons of ``arm``
    with ``reference`` over ``period``; write the results model (results.json) and its CSVs
    (rates.csv, trends.csv, comparisons.csv, balance.csv).

    ``period`` (default: all data) limits every number to discharges of those quarters (TEDS-D:
    years wholly inside it); trends cover the 8 quarters ending at the period's end. Everything
    written passes :mod:`pipelines.disclosure` under ``rule`` (``cms`` by default, or
    ``opensafely``) once, here, and the model records the rule. ``disclose`` sees (and may
    change) the rate rows before that step; nothing bypasses it. ``run_id`` is given by
    callers that record the run (flows, rerun); otherwise a new one. ``docs_root``: where the
    files' validation reports are (default: beside the warehouse; a rerun's snapshot has none).
    ``margin_pp`` / ``margin_ratio`` / ``margin_basis``: the non-inferiority margins (absolute in
    percentage points, relative as a risk ratio) and which one gives the headline verdict
    (:mod:`pipelines.stats.noninferiority`); both verdicts are written. ``min_clusters``: sites
    needed before the adjusted intervals are cluster-robust (:mod:`pipelines.stats.inference`).

    ``offload`` runs the comparative statistics in another process (a Dask worker) while the
    rates are computed here: it is called with ``mart_episodes`` as Parquet bytes, the
    definitions and the options of ``comparative_results``, and returns a future whose
    ``result()`` is :func:`comparative_from_marts` of them. The comparisons couple the
    definitions (one propensity fit per population, Holm/BH across definitions), so they
    leave as one unit; the numbers are those computed here.
    """
    from pipelines import __version__, disclosure, marts
    from pipelines.analysis import rates as rates_mod
    from pipelines.analysis import services as svc
    from pipelines.definitions import registry
    from pipelines.ingest.core import docs_root_of
    from pipelines.results import model as m
    from pipelines.results import warehouse_sections as ws
    from pipelines.results.periods import Period
    from pipelines.stats.noninferiority import check_margins
    from pipelines.warehouse import connect

    definitions = registry.select(registry.load_registry(settings.definitions_dir), definition_ids)
    groupings = list(by) if by else list(rates_mod.DEFAULT_BY)
    rates_mod._validate_by(groupings)
    try:  # before any work: a margin is fixed before the data are looked at
        check_margins(margin_pp, margin_ratio, margin_basis)
    except ValueError as e:
        raise UserError(f"non-inferiority margin: {e}") from None
    if min_clusters < 2:
        raise UserError(f"--min-clusters {min_clusters}: must be at least 2 (one cluster gives a variance of 0)")
    period = period or Period()
    r = disclosure.get_rule(rule)
    if not Path(settings.warehouse).exists():
        raise UserError(f"{settings.warehouse}: no warehouse here yet (run `levelcare ingest` first)")

    with connect(settings.warehouse, timeout_seconds=settings.lock_timeout_seconds) as con:
        marts.build(con, data_end_date=data_end_date)
        end_date = data_end_date or con.execute(
            "select max(data_end_date) from mart_pathways"
        ).fetchall()[0][0]
        where, params = ws.period_where(period)
        info = ws.period_info(con, period, where, params, _quarter(end_date))
        if period.asked and not info.first_data_quarter and not info.teds_years:
            raise UserError(f"--period {period.text()}: no discharge in the warehouse falls in it "
                            f"({_data_span(con)})")
        options = {"arm": arm, "reference": reference, "arms": arms, "margin_pp": margin_pp,
                   "margin_ratio": margin_ratio, "margin_basis": margin_basis, "min_clusters": min_clusters,
                   "multiarm_outcomes": multiarm_outcomes, "where": where, "where_params": params}
        pending = offload(_marts_parquet(con), definitions, options) if compare and offload else None
        period_by = [g for g in groupings if g != "quarter"]
        progress.status("analyze", f"rates of {len(definitions)} definitions")
        table = rates_mod.rates(con, definitions, period_by, where=where, where_params=params)
        trend_rows: RateRows = []
        level_trend_rows: RateRows = []
        if info.trend_quarters:
            marks = ", ".join("?" for _ in info.trend_quarters)
            window = {"where": f"discharge_quarter in ({marks})", "where_params": info.trend_quarters}
            trend_rows = [x for x in rates_mod.rates(con, definitions, ["quarter"], **window).to_dicts()
                          if x["group_by"] == "quarter"]
            # by level of care too for the headline definitions (the report's trend; the disclosure
            # audit of a level x quarter table costs seconds a definition)
            level_trend_rows = [x for x in rates_mod.rates(con, _headline_definitions(definitions),
                                                           ["level_group,quarter"], **window).to_dicts()
                                if x["group_by"] == "level_group,quarter"]
        # a file's quarantined rows are episodes left out: a count like any other
        inputs = [{**x, "rows_quarantined": disclosure.shown_count(x["rows_quarantined"], r)} for x in _inputs(con)]
        progress.status("analyze", "cohort, table one, instruments, data quality")
        cohort = ws.cohort(con, where, params, r)
        table_one = ws.table_one(con, where, params, r, arm, reference)
        instruments = ws.instruments(con, where, params, r)
        quality = ws.data_quality(con, docs_root or docs_root_of(settings), r)
        progress.status("analyze", "dose, length of stay, costs, family involvement")
        services = svc.service_tables(con, where, params, r, definitions)
        services["family_rates"] = svc.family_rates(con, where, params, r, _headline_definitions(definitions))
        bench = _benchmark(con, definitions, where, params, r, reference_warehouse, settings.lock_timeout_seconds)
        comparative: dict[str, Any] = {}
        if pending is not None:
            progress.status("analyze", "comparisons (on the Dask cluster)")
            comparative = pending.result()
        elif compare:
            from pipelines.analysis.comparative import comparative_results

            comparative = comparative_results(con, definitions, **options)

    progress.clear()
    rows: RateRows = table.to_dicts()
    if disclose is not None:
        rows = disclose(rows)
    # read before disclosure: a rule that hides a denominator of 0 (OpenSAFELY) must not hide
    # that a definition does not apply
    not_applicable = {
        x["definition_id"]: x["note"] for x in rows
        if x["denominator"] == 0 and x["group_by"] == "all" and (x["note"] or "").startswith("not applicable")
    }
    shown = disclosure.apply_rates([*rows, *trend_rows], r, period_quarters=info.quarters)
    rows, trends = shown[:len(rows)], shown[len(rows):]
    trends += _level_trends([*rows, *trends], level_trend_rows, r, info.quarters)
    if "quarter" in groupings:  # the period's quarters: the same (disclosed) cells as the trend's
        rows += [x for x in trends if x["group_by"] == "quarter" and x["group"] in info.quarters]
    comparative = _without(comparative, not_applicable)
    # the columns of the published rates' groupings: a covariate among them (site_id) counts the
    # people of cells the rates show or withhold
    grouped = {rates_mod.GROUP_COLUMNS[part] for x in [*rows, *trends] for part in str(x["group_by"]).split(",")
               if part in rates_mod.GROUP_COLUMNS}
    comparative = disclosure.apply_comparative(comparative, rows, r, grouped)
    now = dt.datetime.now(dt.UTC)
    results = m.Results(
        run_id=run_id or f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        created_at=now.isoformat(timespec="seconds"),
        levelcare_version=__version__,
        period=info,
        disclosure=m.DisclosureInfo(rule=r.name, marker=r.marker,
                                    complementary_marker=r.complementary_marker or r.marker, note=r.note, high=r.high, round_to=r.round_to, statistic_floor=r.min_stat_n),
        inputs=inputs,
        definitions=[{**d.as_dict(), "applicable": d.id not in not_applicable,
                      "not_applicable_reason": not_applicable.get(d.id)} for d in definitions],
        not_applicable=[{"id": k, "note": v} for k, v in not_applicable.items()],
        rates=rows, trends=trends,
        comparisons=comparative.get("comparisons", []),
        balance=comparative.get("balance", []),
        # dates leave the warehouse no finer than a quarter
        diagnostics={
            "data_end_quarter": info.data_end_quarter, "groupings": ["all", *groupings],
            "disclosure_rule": r.name, "arm": arm, "reference": reference, "margin_pp": margin_pp,
            "margin_ratio": margin_ratio, "margin_basis": margin_basis,
            "min_clusters": min_clusters, "variance": comparative.get("variance"),
            "adjusted": comparative.get("diagnostics", []),
            "propensity": comparative.get("propensity"),
            "not_estimable": comparative.get("not_estimable"),
        },
        survival=comparative.get("survival", {}),
        noninferiority=comparative.get("noninferiority", []),
        modification=comparative.get("modification", []),
        cohort=cohort, table_one=table_one, instruments=instruments, data_quality=quality,
        services=svc.without(not_applicable, {**services, **svc.disclose_comparative(comparative.get("services") or {}, r)}),
        benchmark=bench,
    )
    write_outputs(results, Path(out_dir))
    log.info("analyze: %d definitions, %d rate rows, %d trend rows", len(definitions), len(rows), len(trends))
    return results.model_dump(mode="json")


def write_outputs(results: Any, out_dir: Path) -> None:
    """results.json and the CSVs, each passing the last disclosure guard before it is written."""
    from pipelines import disclosure
    from pipelines.results.model import write_results
    from pipelines.writers import write_csv

    out_dir.mkdir(parents=True, exist_ok=True)
    rule = results.disclosure.rule
    data = results.model_dump(mode="json")
    for name, key in (("rates.csv", "rates"), ("trends.csv", "trends")):
        disclosure.check_artifact(data[key], rule=rule, name=name)  # the last guard comes before the file
        # booleans as true/false, as rates.csv has always written them
        write_csv(out_dir / name, [{**x, "suppressed": str(x["suppressed"]).lower()} for x in data[key]],
                  RATE_CSV_COLUMNS)
    write_csv(out_dir / "comparisons.csv", data["comparisons"], COMPARISON_COLUMNS)
    write_csv(out_dir / "balance.csv", data["balance"], BALANCE_COLUMNS)
    from pipelines.analysis.services import csv_tables

    for name, (rows, leading) in csv_tables(data["services"]).items():
        disclosure.check_artifact(rows, rule=rule, name=name)
        write_csv(out_dir / name, rows, leading)
    if results.benchmark is not None:
        from pipelines.analysis.benchmark import write_files

        write_files(results.benchmark, out_dir, rule)
    write_results(results, out_dir / "results.json")


def _benchmark(con: Any, definitions: Any, where: str, params: list[Any], rule: Any,
               reference_warehouse: Path | None, timeout: float) -> Any:
    """The benchmark against TEDS-D (:mod:`pipelines.analysis.benchmark`) of the period's own
    episodes: against ``reference_warehouse`` when given (its problems are the user's errors),
    else when the warehouse holds TEDS-D rows and native ones; None otherwise."""
    from pipelines.analysis import benchmark as bm

    wanted = [d for d in definitions if d.id in bm.DEFAULT_DEFINITIONS]
    if reference_warehouse is not None:
        progress.status("analyze", "benchmark against TEDS-D")
        with bm.reference_table(con, reference_warehouse, timeout) as table:
            return bm.benchmark(con, wanted or definitions, where=where, where_params=params, rule=rule,
                                reference_table=table)
    sources = {x[0] for x in con.execute("select distinct source from mart_episodes").fetchall()}
    if not {"native", "teds-d"} <= sources or not wanted:
        return None
    progress.status("analyze", "benchmark against TEDS-D")
    try:
        return bm.benchmark(con, wanted, where=where, where_params=params, rule=rule)
    except UserError as exc:
        log.warning("analyze: no benchmark against TEDS-D: %s", exc)
        return None


def _data_span(con) -> str:
    first, last = con.execute("select min(discharge_quarter), max(discharge_quarter) from mart_episodes").fetchone()
    years = con.execute("select min(discharge_year), max(discharge_year) from mart_episodes "
                        "where source = 'teds-d'").fetchone()
    parts = [f"discharges from {first} to {last}"] if first else []
    if years[0] is not None:
        parts.append(f"TEDS-D years {years[0]}-{years[1]}")
    return "the data hold " + " and ".join(parts) if parts else "the warehouse holds no discharges"


def _level_trends(disclosed: RateRows, level_rows: RateRows, rule: Any, period_quarters: Any) -> RateRows:
    """The level-of-care x quarter trend rows that can be shown without costing a row already
    disclosed. All rows are disclosed again together (rows arriving hidden stay hidden); for a
    definition where that would hide a further row of the period or the all-levels trend (the
    complement protecting a small level x quarter cell), its level x quarter rows are left out
    and the first disclosure stands: a small program keeps its period's level rows."""
    from pipelines import disclosure

    if not level_rows:
        return []
    # only the rows a level x quarter cell adds up with: the all row, the level groups and the
    # quarters (site and level_of_care rows meet them only through rows whose visibility must
    # not change, which is checked below)
    disclosed = [x for x in disclosed if x["group_by"] in ("all", "level_group", "quarter")]
    again = disclosure.apply_rates([*disclosed, *level_rows], rule, period_quarters=period_quarters)
    before, crossed = again[:len(disclosed)], again[len(disclosed):]
    costly = {(a["definition_id"], a["definition_version"]) for a, b in zip(disclosed, before, strict=True)
              if a.get("rate") is not None and b.get("rate") is None}
    costly |= {(a["definition_id"], a["definition_version"]) for a, b in zip(disclosed, before, strict=True)
               if a.get("denominator") is not None and b.get("denominator") is None}
    return [x for x in crossed if (x["definition_id"], x["definition_version"]) not in costly]


def _headline_definitions(definitions: Sequence[Any]) -> list[Any]:
    """The headline definitions among ``definitions`` (else the first): the level x quarter
    trends and the family-involvement rates are computed for these only."""
    from pipelines.definitions import HEADLINE

    return [d for d in definitions if d.id in HEADLINE] or list(definitions)[:1]


def _without(comparative: dict[str, Any], not_applicable: dict[str, str]) -> dict[str, Any]:
    """Not-applicable definitions leave the comparisons, non-inferiority and subgroups: they
    are listed once, with the reason, in ``not_applicable``."""
    out = dict(comparative)
    for key in ("comparisons", "noninferiority", "modification"):
        out[key] = [x for x in comparative.get(key) or [] if x.get("definition_id") not in not_applicable]
    return out


def _marts_parquet(con) -> bytes:
    """``mart_episodes`` (all the comparative statistics read) as Parquet bytes, rows in table order."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="levelcare-marts-") as tmp:
        path = Path(tmp) / "mart_episodes.parquet"
        con.execute("copy mart_episodes to ? (format parquet)", [str(path)])
        return path.read_bytes()


def comparative_from_marts(marts: bytes, definitions: Sequence[Any], options: dict[str, Any]) -> dict[str, Any]:
    """``comparative_results`` over ``mart_episodes`` given as Parquet bytes, in an in-memory
    DuckDB of this process (a Dask worker never opens the warehouse)."""
    import tempfile

    import duckdb

    from pipelines.analysis.comparative import comparative_results
    from pipelines.warehouse import duckdb_config

    with tempfile.TemporaryDirectory(prefix="levelcare-marts-") as tmp:
        path = Path(tmp) / "mart_episodes.parquet"
        path.write_bytes(marts)
        con = duckdb.connect(config=duckdb_config())
        try:
            con.execute("create table mart_episodes as select * from read_parquet(?)", [str(path)])
            return comparative_results(con, definitions, **options)
        finally:
            con.close()


# comparisons.csv and balance.csv lead with their core columns (the estimate, its interval and
# the group sizes; a covariate's SMDs), then the rest.
COMPARISON_COLUMNS = ("definition_id", "arm", "reference", "estimand", "method", "estimate", "ci_low",
                      "ci_high", "p_value", "n_arm", "n_reference", "note")
BALANCE_COLUMNS = ("covariate", "smd_before", "smd_after", "variance_ratio_after")
# rates.csv and trends.csv: the rates' columns with the reason a row is hidden before the note
RATE_CSV_COLUMNS = ("definition_id", "definition_version", "group_by", "group", "numerator", "denominator",
                    "rate", "ci_low", "ci_high", "ci_method", "suppressed", "suppression", "note")


def _quarter(day: dt.date | None) -> str | None:
    return None if day is None else f"{day.year}Q{(day.month - 1) // 3 + 1}"


def _inputs(con) -> list[dict[str, Any]]:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_name = 'ingest_ledger'"
    ).fetchall()[0][0]
    if not exists:
        return []
    from pipelines.ingest.core import current_relation

    cursor = con.execute(
        "select file_name, file_sha256, kind, rows_loaded, mapping_sha256, status, rows_quarantined "
        f"from {current_relation(con, 'ingest_ledger')} "
        "where status in ('loaded', 'partial') order by ingested_at, file_sha256"
    )
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
