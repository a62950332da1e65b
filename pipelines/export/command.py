"""``levelcare export accreditation``: indicator evidence for CARF 1.M and Joint Commission
CTS.03.01.09 as an XLSX workbook and CSVs. ``accreditation_export`` is the plain function
behind the command and tells what it wrote (``--json``); ``write_accreditation_export``
returns the paths only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.settings import Settings

log = logging.getLogger(__name__)

WORKBOOK = "accreditation.xlsx"
REASONS = ("small", "complementary")

EXPORT_JSON_FIELDS = """\
status          "ok". An error prints no JSON: its line goes to stderr and the exit code is
                2 (a user error)
kind            "accreditation"
out             the export folder (absolute path)
results         the results.json exported (absolute path)
analysis_run_id its run id; export_run_id: the export's own id (as in manifest.json)
standard        carf, joint-commission, or carf+joint-commission
period          {label, first_quarter, last_quarter, data_end_quarter} of the results
disclosure      the small-cell rule the results were disclosed under
markers         {small, complementary}: how a hidden cell is written in the files
files           [{name, path, bytes, sha256}]: every file written (accreditation.xlsx, one CSV
                per table, manifest.json)
tables          [{id, file, rows, suppressed: {small, complementary}}]: each table's CSV, its
                data rows and the cells hidden by the rule, by reason (the workbook holds the
                same tables)
suppressed      {small, complementary}: hidden cells over all the tables
warnings        [text]: indicators and views not available from these results, validation
                reports not found"""


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
    from pipelines.jsonout import add_json_argument

    add_period_arguments(acc)
    acc.add_argument("--disclosure", default=None, choices=("cms", "opensafely"),
                     help="check that the results were disclosed under this rule (the analysis applies it)")
    add_json_argument(acc, EXPORT_JSON_FIELDS)


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.jsonout import print_json, stdout_to_stderr
    from pipelines.results.periods import parse_period

    with stdout_to_stderr() if args.json else contextlib.nullcontext():
        written = accreditation_export(args.out, standard=args.standard, targets=args.targets,
                                       results_dir=args.results, period=parse_period(args.period, args.quarter),
                                       rule=args.disclosure)
    if args.json:
        print_json(written.outcome())
        return 0
    for p in written.paths:
        print(p)
    return 0


@dataclass(frozen=True)
class AccreditationExport:
    """What an export wrote: the files, the manifest, each table's CSV with its rows and hidden
    cells, and what it could not show."""

    out_dir: Path
    paths: list[Path]
    results_path: Path
    period: dict[str, Any]
    manifest: dict[str, Any]
    markers: dict[str, str]
    tables: list[dict[str, Any]]
    warnings: list[str]

    def outcome(self) -> dict[str, Any]:
        """What ``export accreditation --json`` prints (``EXPORT_JSON_FIELDS``)."""
        from pipelines.analysis.command import period_fields
        from pipelines.jsonout import file_entries

        m = self.manifest
        return {
            "status": "ok",
            "kind": "accreditation",
            "out": str(Path(self.out_dir).absolute()),
            "results": str(Path(self.results_path).absolute()),
            "analysis_run_id": m["analysis_run_id"],
            "export_run_id": m["export_run_id"],
            "standard": m["standard"],
            "period": period_fields(self.period),
            "disclosure": m["disclosure_rule"],
            "markers": self.markers,
            "files": file_entries(self.paths),
            "tables": self.tables,
            "suppressed": {r: sum(t["suppressed"][r] for t in self.tables) for r in REASONS},
            "warnings": self.warnings,
        }


def write_accreditation_export(out_dir: Path, **options: Any) -> list[Path]:
    """Write accreditation.xlsx, one CSV per table and manifest.json into ``out_dir``; returns
    their paths. ``options``: those of :func:`accreditation_export`."""
    return accreditation_export(out_dir, **options).paths


def _hidden_cells(t: Any) -> dict[str, int]:
    """Cells of table ``t`` hidden by the rule, by reason (each is written as a marker)."""
    counts = dict.fromkeys(REASONS, 0)
    for c in t.frame.columns:
        for i in range(t.frame.shape[0]):
            reason = t.reason(i, c)
            if reason is not None:
                counts[reason] += 1
    return counts


def accreditation_export(
    out_dir: Path,
    *,
    standard: str | None = None,
    targets: Path | None = None,
    results_dir: Path | None = None,
    period=None,
    rule: str | None = None,
) -> AccreditationExport:
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
    warnings: list[str] = []
    if standard in (None, "carf"):
        t, missing = acc.indicator_table(shown, indicators, labels, period_label, not_applicable)
        warnings += missing
        sheets.append(("CARF 1.M indicators", [t], [
            f"Period: {period_label}.",
            ("CARF behavioral health standard 1.M: indicators of effectiveness, efficiency, service access and "
             "satisfaction/experience, each with an objective and a target."), *missing]))
    if standard in (None, "joint-commission"):
        jc, missing = acc.joint_commission_tables(results["instruments"], shown, labels)
        warnings += missing
        sheets.append(("Joint Commission CTS.03.01.09", jc, [
            f"Period: {period_label}.",
            ("CTS.03.01.09: a standardized instrument monitors each person's progress (EP1), results inform the "
             "plan (EP2), and the data are aggregated and analyzed for the population served (EP3, below)."),
            *missing]))
    dq_tables = []
    if dq["ledger"]:
        dq_tables.append(tables.ledger_table(dq["ledger"]))
    if dq["quarantine"]:
        dq_tables.append(tables.quarantine_table(dq["quarantine"]))
    followup = [x for x in shown if str(x["definition_id"]).startswith("followup_reached_")
                and x["group_by"] == "level_group"]
    if followup:
        dq_tables.append(tables.rates_table(followup, labels, id="followup-response", level_labels=False,
                                            title="Follow-up response rate (GPRA target 80%)"))
    dq_lines = [("Data reliability, validity, completeness and accuracy (CARF 1.M): files received, rows "
                 "quarantined with reasons, and follow-up response against the 80% target.")]
    dq_lines += [f"{k}: {v}" for k, v in not_applicable.items() if k.startswith("followup_reached_")]
    validation = dq["validation"]
    if validation["files"]:
        failed = [c for c in validation["checks"] if c["status"] != "passed"]
        dq_lines.append(f"Validation: {len(validation['checks'])} checks over {len(validation['files'])} file(s) "
                        f"(levelcare checks and great-expectations suites); {len(failed)} did not pass.")
    not_found = [f"validation report not found for {name}" for name in validation["missing"]]
    dq_lines += not_found
    warnings += not_found
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
    csvs = []
    for _, tabs, _ in sheets:
        for t in tabs:
            written.append(write_csv(out_dir / f"{t.id}.csv", t, marker, d["rule"]))
            csvs.append({"id": t.id, "file": written[-1].name, "rows": int(t.frame.shape[0]),
                         "suppressed": _hidden_cells(t)})
    man_path = out_dir / "manifest.json"
    man_path.write_text(json.dumps(man, indent=2) + "\n", encoding="utf-8")
    written.append(man_path)
    log.info("export accreditation: %d files", len(written))
    return AccreditationExport(out_dir, written, results_path, results["period"], man,
                               {"small": marker, "complementary": other}, csvs, warnings)
