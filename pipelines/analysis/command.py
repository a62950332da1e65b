"""``levelcare analyze --out DIR``: build the marts, evaluate definitions, write rates.

Writes ``rates.csv`` and ``results.json`` (docs/interfaces.md). ``analyze`` is the plain
function behind the command; it returns the results dict so that comparisons and other
sections can be added by their own modules.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.settings import Settings

log = logging.getLogger(__name__)

RateRows = list[dict[str, Any]]


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


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
                        help="non-inferiority margin in percentage points (default 5)")
    parser.add_argument("--disclosure", choices=("cms", "opensafely"), default="cms",
                        help="small-cell rule for everything written (default cms: no count 1-10)")
    parser.add_argument(
        "--data-end-date", metavar="YYYY-MM-DD", type=dt.date.fromisoformat, default=None,
        help="last day the data cover (default: latest admission or discharge date)",
    )


def run_analyze(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.definitions.command import with_definitions_dir

    settings = with_definitions_dir(settings, args.definitions_dir)
    results = analyze(settings, args.out, args.definitions, args.by, data_end_date=args.data_end_date,
                      arm=args.arm, reference=args.reference, margin_pp=args.margin, rule=args.disclosure)
    not_applicable = len(results["not_applicable"])
    print(
        f"wrote {args.out / 'rates.csv'} and {args.out / 'results.json'}: "
        f"{len(results['definitions'])} definitions ({not_applicable} not applicable), "
        f"{len(results['rates'])} rate rows"
    )
    return 0


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
    rule: str = "cms",
    offload: Callable[[bytes, Sequence[Any], dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Build marts, compute every selected definition's rates and the comparisons of ``arm``
    with ``reference``; write rates.csv, comparisons.csv, balance.csv and results.json.

    Everything written passes :mod:`pipelines.disclosure` under ``rule`` (``cms`` by default,
    or ``opensafely``). ``disclose`` sees (and may change) the rate rows before that step;
    nothing bypasses it. ``run_id`` is given by callers that record the run
    (flows, rerun); otherwise a new one.

    ``offload`` runs the comparative statistics in another process (a Dask worker) while the
    rates are computed here: it is called with ``mart_episodes`` as Parquet bytes, the
    definitions and the options of ``comparative_results``, and returns a future whose
    ``result()`` is :func:`comparative_from_marts` of them. The comparisons couple the
    definitions (one propensity fit per population, Holm/BH across definitions), so they
    leave as one unit; the numbers are those computed here.
    """
    import polars as pl

    from pipelines import __version__, marts
    from pipelines.analysis import rates as rates_mod
    from pipelines.definitions import registry
    from pipelines.warehouse import connect

    definitions = registry.select(registry.load_registry(settings.definitions_dir), definition_ids)
    groupings = list(by) if by else list(rates_mod.DEFAULT_BY)
    if not Path(settings.warehouse).exists():
        raise UserError(f"{settings.warehouse}: no warehouse here yet (run `levelcare ingest` first)")

    with connect(settings.warehouse, timeout_seconds=settings.lock_timeout_seconds) as con:
        marts.build(con, data_end_date=data_end_date)
        options = {"arm": arm, "reference": reference, "arms": arms, "margin_pp": margin_pp}
        pending = offload(_marts_parquet(con), definitions, options) if compare and offload else None
        table = rates_mod.rates(con, definitions, groupings)
        inputs = _inputs(con)
        comparative: dict[str, Any] = {}
        if pending is not None:
            comparative = pending.result()
        elif compare:
            from pipelines.analysis.comparative import comparative_results

            comparative = comparative_results(con, definitions, **options)
        end_date = data_end_date or con.execute(
            "select max(data_end_date) from mart_pathways"
        ).fetchall()[0][0]
    from pipelines import disclosure

    rows: RateRows = table.to_dicts()
    if disclose is not None:
        rows = disclose(rows)
    rows = disclosure.apply_rates(rows, rule)
    comparative = disclosure.apply_comparative(comparative, rows, rule)

    not_applicable = [
        {"id": r["definition_id"], "note": r["note"]}
        for r in rows
        if r["denominator"] == 0 and r["group_by"] == "all" and (r["note"] or "").startswith("not applicable")
    ]
    now = dt.datetime.now(dt.UTC)
    results: dict[str, Any] = {
        "run_id": run_id or f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        "created_at": now.isoformat(timespec="seconds"),
        "levelcare_version": __version__,
        "inputs": inputs,
        "definitions": [d.as_dict() for d in definitions],
        "rates": rows,
        "not_applicable": not_applicable,
        "comparisons": comparative.get("comparisons", []),
        "balance": comparative.get("balance", []),
        # dates leave the warehouse no finer than a quarter
        "diagnostics": {
            "data_end_quarter": _quarter(end_date), "groupings": ["all", *groupings],
            "disclosure_rule": rule, "arm": arm, "reference": reference, "margin_pp": margin_pp,
            "adjusted": comparative.get("diagnostics", []),
            "propensity": comparative.get("propensity"),
            "not_estimable": comparative.get("not_estimable"),
        },
        "survival": comparative.get("survival", {}),
        "noninferiority": comparative.get("noninferiority", []),
        "modification": comparative.get("modification", []),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    disclosure.check_artifact(rows, rule=rule, name="rates.csv")  # the last guard comes before the file, not after
    frame = pl.DataFrame(rows, schema=table.schema)
    # group labels come from the data (site ids): a spreadsheet must not run "=..." as a formula
    frame = frame.with_columns(
        pl.when(pl.col(c).str.contains(r"^[=+\-@\t\r]")).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c, t in frame.schema.items() if t == pl.String)
    frame.write_csv(out_dir / "rates.csv")
    _write_csv(out_dir / "comparisons.csv", results["comparisons"], COMPARISON_COLUMNS)
    _write_csv(out_dir / "balance.csv", results["balance"], BALANCE_COLUMNS)
    (out_dir / "results.json").write_text(
        json.dumps(results, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    log.info("analyze: %d definitions, %d rate rows", len(definitions), len(rows))
    return results


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


# comparisons.csv and balance.csv lead with the columns of issue 5's contract, then the rest.
COMPARISON_COLUMNS = ("definition_id", "arm", "reference", "estimand", "method", "estimate", "ci_low",
                      "ci_high", "p_value", "n_arm", "n_reference", "note")
BALANCE_COLUMNS = ("covariate", "smd_before", "smd_after", "variance_ratio_after")


def _write_csv(path: Path, rows: list[dict[str, Any]], leading: Sequence[str]) -> None:
    import csv

    from pipelines.report.xlsx import safe_cell

    extra = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in leading]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*leading, *extra], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else safe_cell(v)) for k, v in row.items()})


def _quarter(day: dt.date | None) -> str | None:
    return None if day is None else f"{day.year}Q{(day.month - 1) // 3 + 1}"


def _inputs(con) -> list[dict[str, Any]]:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_name = 'ingest_ledger'"
    ).fetchall()[0][0]
    if not exists:
        return []
    cursor = con.execute(
        "select file_name, file_sha256, kind, rows_loaded from ingest_ledger "
        "where status in ('loaded', 'partial') order by ingested_at, file_sha256"
    )
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
