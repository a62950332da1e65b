"""``levelcare export accreditation``: indicator evidence for CARF 1.M and Joint Commission
CTS.03.01.09 as an XLSX workbook and CSVs. ``write_accreditation_export`` is the plain
function the demo and the Prefect flow call.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from pipelines.settings import Settings

log = logging.getLogger(__name__)

WORKBOOK = "accreditation.xlsx"


def configure_export(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="export_kind", metavar="KIND", required=True)
    acc = sub.add_parser("accreditation", help="CARF 1.M indicators and the Joint Commission CTS.03.01.09 view")
    acc.add_argument("--out", required=True, type=Path, metavar="DIR",
                     help="folder for the workbook and CSVs; its results.json is used when present")
    acc.add_argument("--standard", choices=("carf", "joint-commission"),
                     help="only this standard's view (default: both)")
    acc.add_argument("--targets", type=Path, metavar="FILE", help="YAML file of indicator domains, objectives "
                     "and targets (defaults: pipelines/export/accreditation.py)")
    acc.add_argument("--results", type=Path, metavar="DIR", help="folder holding results.json when --out has none")
    acc.add_argument("--quarter", metavar="YYYYQn", help="reporting quarter (default: the data's last)")
    acc.add_argument("--disclosure", default="cms", choices=("cms", "opensafely"), help="small-number rule")


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    paths = write_accreditation_export(settings, args.out, standard=args.standard, targets=args.targets,
                                       results_dir=args.results, quarter=args.quarter, rule=args.disclosure)
    for p in paths:
        print(p)
    return 0


def write_accreditation_export(
    settings: Settings,
    out_dir: Path,
    *,
    standard: str | None = None,
    targets: Path | None = None,
    results_dir: Path | None = None,
    quarter: str | None = None,
    rule: str = "cms",
) -> list[Path]:
    """Write accreditation.xlsx, one CSV per table and manifest.json into ``out_dir``."""
    from pipelines import disclosure
    from pipelines.errors import UserError
    from pipelines.export import accreditation as acc
    from pipelines.report import build, inputs, tables
    from pipelines.report.xlsx import write_csv, write_workbook

    if standard not in (None, *acc.STANDARDS):
        raise UserError(f"--standard: {standard!r} is not one of {', '.join(acc.STANDARDS)}")
    out_dir = Path(out_dir)
    indicators = acc.load_targets(targets)
    results_path = inputs.find_results(out_dir, results_dir)
    results = inputs.load_results(results_path)
    q = quarter or build.report_quarter(results, inputs.WarehouseAggregates(), None)
    window = build.last_quarters(q) if q else None
    agg = inputs.read_warehouse(settings.warehouse, window)
    r = disclosure.get_rule(rule)
    raw = [dict(x) for x in results.get("rates") or []]
    shown = disclosure.apply_rates(raw, rule=r)
    labels = tables.definition_labels(results.get("definitions") or [])
    period = f"{window[0]} to {window[-1]}" if window else "all data"

    sheets: list[tuple[str, list, list[str]]] = []
    if standard in (None, "carf"):
        t, missing = acc.indicator_table(shown, raw, indicators, labels, period)
        sheets.append(("CARF 1.M indicators", [t], [
            "CARF behavioral health standard 1.M: indicators of effectiveness, efficiency, service access and "
            "satisfaction/experience, each with an objective and a target.", *missing]))
    if standard in (None, "joint-commission"):
        instruments = inputs.read_instruments(settings.warehouse, window)
        jc, missing = acc.joint_commission_tables(instruments, raw, shown, labels, r.name)
        sheets.append(("Joint Commission CTS.03.01.09", jc, [
            "CTS.03.01.09: a standardized instrument monitors each person's progress (EP1), results inform the "
            "plan (EP2), and the data are aggregated and analyzed for the population served (EP3, below).",
            *missing]))
    dq = []
    if agg.ledger:
        dq.append(tables.ledger_table(agg.ledger, r.name))
    if agg.quarantine:
        dq.append(tables.quarantine_table(agg.quarantine, r.name))
    if agg.followup:
        dq.append(tables.rates_table(agg.followup, disclosure.apply_rates(agg.followup, rule=r),
                                     {f"followup_response_{w}d": f"Follow-up reached, {w} days" for w in (30, 90, 180, 365)},
                                     id="followup-response", title="Follow-up response rate (GPRA target 80%)"))
    dq_lines = ["Data reliability, validity, completeness and accuracy (CARF 1.M): files received, rows "
                "quarantined with reasons, and follow-up response against the 80% target."]
    dq_lines += [f"not available: {why}" for why in agg.missing.values()]
    sheets.append(("Data quality", dq, dq_lines))
    defs = [{"id": d.get("id"), "version": d.get("version"), "label": d.get("label"),
             "description": d.get("description"), "population": d.get("population") or "every episode",
             "success": d.get("success"), "missing": d.get("missing"),
             "references": "; ".join(d.get("references") or [])} for d in results.get("definitions") or []]
    def_table = tables.simple_table("definitions", "Success definitions", defs,
                                    ["id", "version", "label", "description", "population", "success", "missing",
                                     "references"])
    sheets.append(("Definitions", [def_table], []))
    man = acc.manifest(results, results_path, agg.ledger, targets, standard, r.name)
    man_rows = [{"key": k, "value": json.dumps(v) if isinstance(v, (list, dict)) else v} for k, v in man.items()]
    sheets.append(("Manifest", [tables.simple_table("manifest", "Manifest", man_rows, ["key", "value"])], []))

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_workbook(out_dir / WORKBOOK, sheets, r.marker, r.name)]
    for _, tabs, _ in sheets:
        for t in tabs:
            written.append(write_csv(out_dir / f"{t.id}.csv", t, r.marker, r.name))
    man_path = out_dir / "manifest.json"
    man_path.write_text(json.dumps(man, indent=2) + "\n", encoding="utf-8")
    written.append(man_path)
    log.info("export accreditation: %d files", len(written))
    return written
