"""``levelcare demo``: synthesize data with a known true effect and run the whole quarterly job.

The warehouse defaults to ``<out>/levelcare.duckdb`` so that a demo never touches the
user's own warehouse; the synthetic extracts go to ``<out>/data``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipelines.errors import UserError
from pipelines.settings import Settings


def configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", required=True, type=Path, help="output folder")
    parser.add_argument("--records", metavar="N", type=int, default=20_000, help="episodes to synthesize (20000)")
    parser.add_argument("--seed", metavar="S", type=int, default=20261123, help="random seed")
    parser.add_argument("--format", metavar="FORMATS", default="html,pdf,xlsx,brief,sheet", help="report formats")


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.flows.command import run_quarterly
    from pipelines.synth import write_synthetic

    if args.records < 100:
        raise UserError("--records: the demo needs at least 100 records")
    out: Path = args.out
    warehouse = Path(args.warehouse) if args.warehouse else out / "levelcare.duckdb"
    data = out / "data"
    truth = write_synthetic(data, records=args.records, seed=args.seed)
    (data / "truth.json").rename(out / "truth.json")  # not an extract: keep it out of the input folder
    outcome = run_quarterly({
        "input_dir": str(data), "out_dir": str(out), "warehouse": str(warehouse),
        "formats": [f.strip() for f in args.format.split(",") if f.strip()],
        "definitions_dir": str(settings.definitions_dir) if settings.definitions_dir else None,
    }, args.verbose)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    print(f"demo run {outcome['run_id']}: {args.records} synthetic episodes (seed {args.seed})")
    _print_truth_vs_estimate(truth, results)
    for f in outcome["files"]:
        print(f"  {f}")
    print(f"  {out / 'results.json'}")
    return 0


def _print_truth_vs_estimate(truth: dict, results: dict) -> None:
    """The point of synthetic data: show the known true effect beside what levelcare found."""
    effects = truth.get("effects") or truth.get("true_effects") or {}
    rows = {(r["definition_id"], r["method"]): r for r in results.get("comparisons", [])
            if r.get("estimand") == "rd" and r.get("estimate") is not None}
    for def_id in ("completion", "abstinent_90d_itt", "no_readmission_90d"):
        true = effects.get(def_id, {})
        ate = true.get("ate") if isinstance(true, dict) else true
        crude, aipw = rows.get((def_id, "crude")), rows.get((def_id, "aipw"))
        if ate is None or crude is None or aipw is None:
            continue
        print(f"  {def_id}: true IOP-residential difference {ate:+.3f}; crude {crude['estimate']:+.3f}; "
              f"adjusted (AIPW) {aipw['estimate']:+.3f} [{aipw['ci_low']:+.3f}, {aipw['ci_high']:+.3f}]")
