"""``levelcare network package``: a site's study package — aggregates only, disclosure-controlled.

The site runs the study's analysis on its own warehouse (``analyze``, the study's definitions,
arm, reference and period) and keeps of it only:

* ``counts.csv``: crude successes and episodes per definition, overall, by level of care and by
  level group, as ``analyze`` disclosed them together (no count of 1-10 under the CMS rule, none
  derivable);
* ``estimates.csv``: the comparison's estimates (risk differences) of the study's methods with
  their standard errors, or why a method is not estimable (for a follow-up-interview definition,
  the estimate under its own missing-data policy; the other policy's sensitivity row is left out);
* ``strata.csv`` (with the method ``ps_stratified``): each definition's 2x2 tables within
  propensity-score strata (:mod:`pipelines.network.strata`), for a one-shot pooled adjusted
  estimate;
* ``balance.csv``: covariate balance on each definition's population, per weighting, with the
  moments a network pools (each arm's size, mean and SD before and after weighting, and total
  weight), as ``analyze`` disclosed them;
* ``study.json``: the specification as run (definitions in full), its hash, the levelcare
  version and code hash, the period in quarters and the disclosure rule;
* ``manifest.json``: every file and its SHA-256.

Every table passes the last disclosure guard before it is written, as the report's files do.
No file holds a row, an episode or person id, or a date finer than a quarter.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.network import strata as strata_columns
from pipelines.network import study as st

FORMAT = "levelcare-network-package/1"
COUNT_COLUMNS = ["definition_id", "definition_version", "group_by", "group", "numerator", "denominator",
                 "suppression"]
#: the rates' groupings a package holds: the level-group rows are each site's 2x2 table of the
#: comparison (the arm's and the reference's successes and episodes), what a one-shot pooled
#: Mantel-Haenszel estimate needs
COUNT_GROUPINGS = ("all", "level_of_care", "level_group")
ESTIMATE_COLUMNS = ["definition_id", "definition_version", "arm", "reference", "method", "estimand",
                    "estimate", "se", "ci_low", "ci_high", "n_arm", "n_reference", "variance", "note"]
BALANCE_COLUMNS = ["definition_id", "definition_version", "method", "covariate", "binary", "n_arm", "n_reference",
                   "mean_arm_before", "mean_reference_before", "sd_arm_before", "sd_reference_before", "weight_arm",
                   "weight_reference", "mean_arm_after", "mean_reference_after", "sd_arm_after", "sd_reference_after",
                   "smd_before", "smd_after", "suppression"]
STRATA_COLUMNS = strata_columns.COLUMNS
FILES = ("study.json", "counts.csv", "estimates.csv", "balance.csv", "strata.csv", "manifest.json")
LABEL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}"


def code_hash() -> str:
    """SHA-256 over levelcare's code, SQL models (and their materialization) and contracts (path
    and bytes of each file, sorted): the same for the same code whether or not it runs from a git
    checkout."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for sub, pattern in (("pipelines", "*.py"), ("sql", "*.sql"), ("sql", "*.yaml"), ("data_contracts", "*.yaml")):
        for path in sorted((root / sub).rglob(pattern)):
            h.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
            h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _se_from_interval(row: dict[str, Any]) -> float | None:
    """A crude risk difference's standard error (the comparison writes its Newcombe interval, no
    standard error, and no group sizes that would let a reader rebuild small counts): the 95%
    interval's width / (2 x 1.96), which Newcombe's nearly symmetric interval makes close to the
    Wald standard error at a site's sizes."""
    lo, hi = row.get("ci_low"), row.get("ci_high")
    return None if lo is None or hi is None else (hi - lo) / (2 * 1.959963984540054)


def _balance(results: dict[str, Any], definitions: Any) -> list[dict[str, Any]]:
    """Each definition's balance rows: those of the population its own comparison rows were
    estimated on (the rows are disclosed already)."""
    from pipelines.analysis.comparison_plan import missing_data_policy

    out = []
    for d in definitions:
        # the crude rows of a definition's own missing-data policy: one per definition, always
        own = (None, missing_data_policy(d))
        population = next((x["population"] for x in results["comparisons"] if x["definition_id"] == d.id
                           and x["method"] == "crude" and x.get("missing_data") in own), None)
        out += [{**{k: x.get(k) for k in BALANCE_COLUMNS}, "definition_id": d.id, "definition_version": d.version}
                for x in results["balance"] if population is not None and x["population"] == population]
    return out


def write_package(settings: Any, out_dir: Path, study: st.Study | None, label: str, rule: str = "cms") -> list[Path]:
    """Run the study on ``settings.warehouse`` and write its package into ``out_dir``."""
    import re

    from pipelines import __version__, disclosure
    from pipelines.analysis.command import analyze
    from pipelines.analysis.comparison_plan import missing_data_policy
    from pipelines.definitions import registry
    from pipelines.results.periods import parse_period
    from pipelines.writers import file_sha256, write_csv

    if not re.fullmatch(LABEL_PATTERN, label):
        raise UserError(f"--label {label!r}: 1-64 letters, digits, spaces, '.', '_' or '-'")
    reg = registry.load_registry(settings.definitions_dir)
    study = study or st.default_study(reg)
    definitions = st.check_definitions(study, reg)
    spec = st.specification(study, definitions)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: not empty (a package is written into an empty or new folder)")
    with tempfile.TemporaryDirectory(prefix="levelcare-package-") as tmp:
        results = analyze(settings, Path(tmp), [d.id for d in definitions], list(COUNT_GROUPINGS[1:]),
                          arm=study.arm, reference=study.reference, period=parse_period(study.period), rule=rule)
    versions = {d.id: d.version for d in definitions}
    counts = [{"definition_id": x["definition_id"], "definition_version": x["definition_version"],
               "group_by": x["group_by"], "group": "all" if x["group_by"] == "all" else x["group"],
               "numerator": x["numerator"], "denominator": x["denominator"], "suppression": x["suppression"]}
              for x in results["rates"] if x["group_by"] in COUNT_GROUPINGS]
    own = {d.id: (None, missing_data_policy(d), "ipfw") for d in definitions}
    chosen = [x for x in results["comparisons"] if x["estimand"] == "rd" and x["method"] in study.methods
              and x["definition_id"] in versions and x.get("missing_data") in own[x["definition_id"]]]
    estimates = [{k: x.get(k) for k in ESTIMATE_COLUMNS} for x in chosen]
    for x, full in zip(estimates, chosen, strict=True):
        if x["estimate"] is None and not x["note"]:
            x["note"] = "hidden: " + (full.get("suppression") or "not estimable")
        if x["estimate"] is not None and x["se"] is None:
            x["se"], x["variance"] = _se_from_interval(full), "from the 95% interval: width / (2 x 1.96)"
    balance = _balance(results, definitions)
    strata = []
    if st.PS_STRATIFIED in study.methods:
        from pipelines.network.strata import site_strata
        from pipelines.results.warehouse_sections import period_where
        from pipelines.warehouse import connect

        with connect(settings.warehouse, timeout_seconds=settings.lock_timeout_seconds) as con:
            where, params = period_where(parse_period(study.period))
            strata = site_strata(con, definitions, study.arm, study.reference, where, params, counts, rule)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows, columns in (("counts.csv", counts, COUNT_COLUMNS), ("estimates.csv", estimates, ESTIMATE_COLUMNS),
                                ("balance.csv", balance, BALANCE_COLUMNS), ("strata.csv", strata, STRATA_COLUMNS)):
        disclosure.check_artifact(rows, rule=rule, name=name)
        write_csv(out / name, rows, columns)
    period = results["period"]
    info = {"format": FORMAT, "label": label, "specification": spec, "spec_sha256": st.spec_hash(spec),
            "levelcare": __version__, "code_sha256": code_hash(), "disclosure_rule": rule,
            "period": {"asked": period["asked"], "label": period["label"],
                       "first_quarter": period["first_data_quarter"], "last_quarter": period["last_data_quarter"]}}
    (out / "study.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    manifest = {"format": FORMAT, "spec_sha256": info["spec_sha256"],
                "files": {name: file_sha256(out / name) for name in FILES if name != "manifest.json"}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [out / name for name in FILES]
