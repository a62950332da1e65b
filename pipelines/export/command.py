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
    from pipelines.analysis.command import add_period_arguments

    add_period_arguments(acc)
    acc.add_argument("--disclosure", default=None, choices=("cms", "opensafely"),
                     help="check that the results were disclosed under this rule (the analysis applies it)")


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.results.periods import parse_period

    paths = write_accreditation_export(args.out, standard=args.standard, targets=args.targets,
                                       results_dir=args.results, period=parse_period(args.period, args.quarter),
                                       rule=args.disclosure)
    for p in paths:
        print(p)
    return 0


def write_accreditation_export(
    out_dir: Path,
    *,
    standard: str | None = None,
    targets: Path | None = None,
    results_dir: Path | None = None,
    period=None,
    rule: str | None = None,
) -> list[Path]:
    """Write accreditation.xlsx, one CSV per table and manifest.json into ``out_dir``, from the
    results model alone (aggregate and disclosed already; the warehouse is not opened)."""
    from pipelines.errors import UserError
    from pipelines.export import accreditation as acc
    from pipelines.report import tables
    from pipelines.report.xlsx import write_csv, write_workbook
    from pipelines.results.model import load_checked

    if standard not in (None, *acc.STANDARDS):
        raise UserError(f"--standard: {standard!r} is not one of {', '.join(acc.STANDARDS)}")
    out_dir = Path(out_dir)
    indicators = acc.load_targets(targets)
    results_path, results = load_checked(out_dir, results_dir, period, rule)
    d = results["disclosure"]
    marker, other = d["marker"], d["complementary_marker"]
    shown = results["rates"]
    not_applicable = {x["id"]: x["note"] for x in results["not_applicable"]}
    labels = tables.definition_labels(results["definitions"])
    period_label = results["period"]["label"]
    dq = results["data_quality"]

    sheets: list[tuple[str, list, list[str]]] = []
    if standard in (None, "carf"):
        t, missing = acc.indicator_table(shown, indicators, labels, period_label, not_applicable)
        sheets.append(("CARF 1.M indicators", [t], [
            f"Period: {period_label}.",
            "CARF behavioral health standard 1.M: indicators of effectiveness, efficiency, service access and "
            "satisfaction/experience, each with an objective and a target.", *missing]))
    if standard in (None, "joint-commission"):
        jc, missing = acc.joint_commission_tables(results["instruments"], shown, labels)
        sheets.append(("Joint Commission CTS.03.01.09", jc, [
            f"Period: {period_label}.",
            "CTS.03.01.09: a standardized instrument monitors each person's progress (EP1), results inform the "
            "plan (EP2), and the data are aggregated and analyzed for the population served (EP3, below).",
            *missing]))
    dq_tables = []
    if dq["ledger"]:
        dq_tables.append(tables.ledger_table(dq["ledger"]))
    if dq["quarantine"]:
        dq_tables.append(tables.quarantine_table(dq["quarantine"]))
    followup = [x for x in shown if str(x["definition_id"]).startswith("followup_reached_")
                and x["group_by"] == "level_group"]
    if followup:
        dq_tables.append(tables.rates_table(followup, labels, id="followup-response",
                                            title="Follow-up response rate (GPRA target 80%)"))
    dq_lines = ["Data reliability, validity, completeness and accuracy (CARF 1.M): files received, rows "
                "quarantined with reasons, and follow-up response against the 80% target."]
    dq_lines += [f"{k}: {v}" for k, v in not_applicable.items() if k.startswith("followup_reached_")]
    validation = dq["validation"]
    if validation["files"]:
        failed = [c for c in validation["checks"] if c["status"] != "passed"]
        dq_lines.append(f"Validation: {len(validation['checks'])} checks over {len(validation['files'])} file(s) "
                        f"(levelcare checks and great-expectations suites); {len(failed)} did not pass.")
    dq_lines += [f"validation report not found for {name}" for name in validation["missing"]]
    sheets.append(("Data quality", dq_tables, dq_lines))
    defs = [{"id": x.get("id"), "version": x.get("version"), "label": x.get("label"),
             "description": x.get("description"), "population": x.get("population") or "every episode",
             "success": x.get("success"), "missing": x.get("missing"),
             "applicable": "yes" if x.get("applicable") else f"no: {x.get('not_applicable_reason')}",
             "references": "; ".join(x.get("references") or [])} for x in results["definitions"]]
    def_table = tables.simple_table("definitions", "Success definitions", defs,
                                    ["id", "version", "label", "description", "population", "success", "missing",
                                     "applicable", "references"])
    sheets.append(("Definitions", [def_table], []))
    man = acc.manifest(results, results_path, targets, standard)
    man_rows = [{"key": k, "value": json.dumps(v) if isinstance(v, (list, dict)) else v} for k, v in man.items()]
    sheets.append(("Manifest", [tables.simple_table("manifest", "Manifest", man_rows, ["key", "value"])], []))
    for _, tabs, _ in sheets:
        for t in tabs:
            t.complementary_marker = other

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_workbook(out_dir / WORKBOOK, sheets, marker, d["rule"])]
    for _, tabs, _ in sheets:
        for t in tabs:
            written.append(write_csv(out_dir / f"{t.id}.csv", t, marker, d["rule"]))
    man_path = out_dir / "manifest.json"
    man_path.write_text(json.dumps(man, indent=2) + "\n", encoding="utf-8")
    written.append(man_path)
    log.info("export accreditation: %d files", len(written))
    return written
