"""The accreditation export: CARF 1.M indicators, the Joint Commission CTS.03.01.09 view,
data-quality evidence, definitions and a manifest, as one XLSX workbook plus CSVs.

Indicator targets come from ``DEFAULT_INDICATORS`` unless a YAML targets file overrides them::

    indicators:
      completion: {domain: effectiveness, objective: "...", target: 0.55}
      retention_90d: {target: 0.6}          # keep the default domain and objective
      phq9_remission: null                  # drop an indicator

Defaults (documented here, the one place they are declared) are starting points an
organisation is expected to replace with its own: CARF asks that each indicator have an
objective and a target, not that every programme use the same numbers.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines import __version__
from pipelines.errors import UserError
from pipelines.report import tables
from pipelines.report.model import Table
from pipelines.writers import file_sha256

DOMAINS = ("effectiveness", "efficiency", "service access", "satisfaction/experience")
STANDARDS = ("carf", "joint-commission")

# id -> (CARF 1.M domain, objective, target rate)
DEFAULT_INDICATORS: dict[str, tuple[str, str, float]] = {
    "completion": ("effectiveness", "Persons served complete the planned treatment", 0.50),
    "abstinent_90d_itt": ("effectiveness", "Persons served are abstinent 90 days after discharge (missing = not)", 0.40),
    "abstinent_90d_cc": ("effectiveness", "Persons reached at 90 days are abstinent", 0.60),
    "no_readmission_30d": ("effectiveness", "Persons served are not readmitted within 30 days", 0.85),
    "no_readmission_90d": ("effectiveness", "Persons served are not readmitted within 90 days", 0.75),
    "phq9_response": ("effectiveness", "Depressive symptoms (PHQ-9) fall by at least half", 0.50),
    "phq9_remission": ("effectiveness", "Depressive symptoms (PHQ-9) remit (score below 5)", 0.35),
    "gad7_reliable_improvement": ("effectiveness", "Anxiety (GAD-7) improves reliably (4+ points)", 0.50),
    "retention_90d": ("efficiency", "Persons stay engaged 90 days: treatment time is not lost to early drop-out", 0.50),
    "completion_or_transfer": ("efficiency", "Episodes end in completion or a planned transfer", 0.65),
    "stepdown_iop_14d": ("service access", "Residential discharges reach IOP within 14 days", 0.50),
    "followup_reached_90d": ("service access", "Persons served are reached for after-care contact at 90 days", 0.80),
    "satisfaction_4plus": ("satisfaction/experience", "Persons served rate their care 4 or 5 of 5", 0.80),
}
JC_RATES = ("phq9_response", "phq9_remission", "phq9_reliable_improvement", "gad7_reliable_improvement")


def load_targets(path: Path | None) -> dict[str, tuple[str, str, float]]:
    """The indicator set: defaults, overridden by the YAML file at ``path``."""
    indicators = dict(DEFAULT_INDICATORS)
    if path is None:
        return indicators
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"{path}: targets file not found") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    items = data.get("indicators") if isinstance(data, dict) else None
    if not isinstance(items, dict):
        raise UserError(f"{path}: expected a mapping 'indicators: {{id: {{domain, objective, target}}}}'")
    for ind, spec in items.items():
        if spec is None:
            indicators.pop(ind, None)
            continue
        if not isinstance(spec, dict):
            raise UserError(f"{path}: indicator {ind!r}: expected a mapping of domain, objective, target")
        unknown = set(spec) - {"domain", "objective", "target"}
        if unknown:
            raise UserError(f"{path}: indicator {ind!r}: unknown key {min(unknown)!r}")
        domain, objective, target = indicators.get(ind, (None, None, None))
        domain = spec.get("domain", domain)
        objective = spec.get("objective", objective)
        target = spec.get("target", target)
        if domain not in DOMAINS:
            raise UserError(f"{path}: indicator {ind!r}: domain must be one of {', '.join(DOMAINS)}")
        if not objective:
            raise UserError(f"{path}: indicator {ind!r}: an objective is required")
        if not isinstance(target, (int, float)) or isinstance(target, bool) or not 0 <= target <= 1:
            raise UserError(f"{path}: indicator {ind!r}: target must be a rate between 0 and 1")
        indicators[ind] = (domain, str(objective), float(target))
    return indicators


def indicator_table(shown_rates: Sequence[Mapping[str, Any]], indicators: Mapping[str, tuple[str, str, float]],
                    labels: Mapping[str, str], period: str, not_applicable: Mapping[str, str] = ()
                    ) -> tuple[Table, list[str]]:
    """CARF 1.M: one row per indicator and level of care (plus all levels), grouped by domain,
    from the disclosed rates of the results model. A not-applicable indicator is a line saying
    why, never a row of zeros."""
    recs, hid, missing = [], [], []
    not_applicable = dict(not_applicable or {})
    order = {d: i for i, d in enumerate(DOMAINS)}
    for ind, (domain, objective, target) in sorted(indicators.items(), key=lambda kv: (order[kv[1][0]], kv[0])):
        if ind in not_applicable:
            missing.append(f"{domain}: {ind}: {not_applicable[ind]}")
            continue
        rows = [b for b in shown_rates if str(b.get("definition_id")) == ind
                and str(b.get("group_by")) in ("all", "level_group")]
        if not rows:
            missing.append(f"{domain}: {ind}: not available: no rates for this definition in the results")
            continue
        rows.sort(key=lambda b: (b.get("group_by") != "all", tables.level_order(b.get("group"))))
        for b in rows:
            rate = b.get("rate")
            recs.append({
                "domain": domain, "indicator": ind, "label": labels.get(ind, ind), "objective": objective,
                "target": target, "level_of_care": b.get("group") or "all levels",
                "numerator": b.get("numerator"), "denominator": b.get("denominator"), "rate": rate,
                "ci_low": b.get("ci_low"), "ci_high": b.get("ci_high"), "period": period,
                "target_met": None if rate is None else ("yes" if rate >= target else "no"),
            })
            hid.append({c: tables.row_reason(b) if b.get(c) is None else None
                        for c in ("numerator", "denominator", "rate", "ci_low", "ci_high")})
    import pandas as pd

    cols = ["domain", "indicator", "label", "objective", "target", "level_of_care", "numerator", "denominator",
            "rate", "ci_low", "ci_high", "period", "target_met"]
    frame = pd.DataFrame(recs, columns=cols)
    frame = frame.astype(object).where(frame.notna(), None)
    hidden = pd.DataFrame(hid, columns=["numerator", "denominator", "rate", "ci_low", "ci_high"], dtype=object)
    t = Table(id="carf-indicators", title="CARF 1.M performance indicators", frame=frame,
              count_cols=("numerator", "denominator"), hidden=hidden,
              formats={"target": "pct", "numerator": "int", "denominator": "int", "rate": "pct", "ci_low": "pct",
                       "ci_high": "pct"},
              headers={"ci_low": "95% CI low", "ci_high": "95% CI high", "level_of_care": "level of care"},
              note="Domains: effectiveness, efficiency, service access, satisfaction/experience (CARF 1.M).")
    return t, missing


def joint_commission_tables(instruments: Sequence[Mapping[str, Any]], shown_rates: Sequence[Mapping[str, Any]],
                            labels: Mapping[str, str]) -> tuple[list[Table], list[str]]:
    """CTS.03.01.09 EP3: standardized instruments aggregated for the population served."""
    import pandas as pd

    out, missing = [], []
    if instruments:
        rows = sorted(instruments, key=lambda r: (r["instrument"], tables.level_order(r["level_group"])))
        recs, hid = [], []
        for x in rows:
            ok = x.get("mean_admit") is not None and x.get("mean_discharge") is not None
            recs.append({"instrument": x["instrument"].upper().replace("PHQ9", "PHQ-9").replace("GAD7", "GAD-7"),
                         "level_of_care": x["level_group"], "n_with_both_scores": x["n"],
                         "mean_admission": x["mean_admit"] if ok else None,
                         "mean_discharge": x["mean_discharge"] if ok else None,
                         "mean_change": x["mean_discharge"] - x["mean_admit"] if ok else None})
            why = x.get("suppression")
            hid.append({"n_with_both_scores": why if x["n"] is None else None,
                        **{c: why for c in ("mean_admission", "mean_discharge", "mean_change") if not ok}})
        frame = pd.DataFrame(recs)
        frame = frame.astype(object).where(frame.notna(), None)
        out.append(Table(id="jc-instruments", title="Standardized instruments: admission and discharge means",
                         frame=frame, count_cols=("n_with_both_scores",),
                         hidden=pd.DataFrame(hid, columns=["n_with_both_scores", "mean_admission", "mean_discharge",
                                                           "mean_change"], dtype=object),
                         formats={"n_with_both_scores": "int", "mean_admission": "num2", "mean_discharge": "num2",
                                  "mean_change": "num2"},
                         note="People with both an admission and a discharge score."))
    else:
        missing.append("instrument means: not available: no PHQ-9/GAD-7 admission and discharge scores")
    sel = [b for b in shown_rates
           if str(b.get("definition_id")) in JC_RATES and str(b.get("group_by")) == "level_group"]
    if sel:
        out.append(tables.rates_table(sel, labels, id="jc-rates", level_labels=False,
                                      title="Response, remission and reliable improvement by level of care",
                                      note="PHQ-9: response = 50% drop, remission < 5, reliable change >= 5 "
                                           "points (Löwe et al. 2004); GAD-7 reliable change >= 4 points."))
    else:
        missing.append("response/remission rates: not available: no PHQ-9/GAD-7 definitions in the results")
    return out, missing


def code_commit() -> str | None:
    """The git commit of the code, when run from a checkout (None from an installed wheel)."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], check=False, capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def manifest(results: Mapping[str, Any], results_path: Path, targets_path: Path | None, standard: str | None
             ) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "export_run_id": f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        "created_at": now.isoformat(timespec="seconds"),
        "levelcare_version": __version__,
        "code_commit": code_commit(),
        "analysis_run_id": results.get("run_id"),
        "results_file": {"name": results_path.name, "sha256": file_sha256(results_path)},
        "targets_file": None if targets_path is None else {"name": Path(targets_path).name,
                                                            "sha256": file_sha256(Path(targets_path))},
        "standard": standard or "carf+joint-commission",
        "period": results["period"]["label"],
        "period_quarters": results["period"]["quarters"],
        "disclosure_rule": results["disclosure"]["rule"],
        "definitions": [{"id": d.get("id"), "version": d.get("version")} for d in results.get("definitions") or []],
        "inputs": [{"file_name": x.get("file_name"), "file_sha256": x.get("file_sha256"), "kind": x.get("kind")}
                   for x in (results.get("inputs") or [])],
    }
