"""The results model, declared once: pydantic models, their JSON Schema, reading and writing.

Everything in it is aggregate and already disclosed: :mod:`pipelines.analysis.command`
applies :mod:`pipelines.disclosure` once, before the model is built, and records the rule in
``disclosure``. A hidden number is ``null`` with a ``suppression`` reason beside it:
``small`` (a count the rule forbids, or a statistic over too few people) or
``complementary`` (withheld so that another hidden cell cannot be worked out).

``docs/results.schema.json`` is generated from these models (``python -m
pipelines.results.schema``); a test keeps the two equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.errors import UserError

SCHEMA_VERSION = 3
RESULTS_FILE = "results.json"

Reason = Literal["small", "complementary"] | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PeriodInfo(_Model):
    """The period the headline numbers cover."""

    asked: str | None = Field(description="the period asked for (FROM..TO), or null for all data")
    first_quarter: str | None = Field(description="first quarter of the period (as asked, or the first with data)")
    last_quarter: str | None = Field(description="last quarter of the period")
    quarters: list[str] = Field(description="every quarter of the period")
    first_data_quarter: str | None = Field(description="first quarter of the period holding a native discharge")
    last_data_quarter: str | None = Field(description="last quarter of the period holding a native discharge")
    data_end_quarter: str | None = Field(description="quarter of the last day the data can show")
    teds_years: list[int] = Field(description="TEDS-D discharge years counted (years wholly inside the period)")
    trend_quarters: list[str] = Field(description="quarters of the trends: 8 ending at the period's end")
    label: str = Field(description="the period in words, as titles state it")


class DisclosureInfo(_Model):
    rule: Literal["cms", "opensafely"]
    marker: str = Field(description="how a cell hidden as small is written")
    complementary_marker: str = Field(description="how a cell withheld to protect another is written")
    note: str
    high: int = Field(description="counts 1..high are never shown")
    round_to: int = Field(description="counts are rounded to a multiple of this (1 = exact)")
    statistic_floor: int = Field(description="no rate, mean or interval over this many people or fewer")


class InputFile(_Model):
    file_name: str
    file_sha256: str
    kind: str
    rows_loaded: int
    mapping_sha256: str | None = None  # the mapping file applied while reading it (docs/mapping.md)
    status: Literal["loaded", "partial"] | None = Field(
        default=None, description="partial: some of its rows were quarantined (levelcare quarantine)")
    rows_quarantined: int | None = Field(
        default=None, description="rows quarantined, under the disclosure rule (null: 1 to 10, not shown)")


class DefinitionInfo(_Model):
    id: str
    version: int
    label: str
    description: str
    population: str | None
    success: str
    missing: Literal["failure", "exclude"]
    window_days: int | None
    followup: Literal["interview"] | None = Field(
        default=None, description="interview: success is read from the follow-up interview")
    references: list[str]
    requires: list[str]
    origin: str
    applicable: bool = Field(description="false when the data hold nothing a required field needs")
    not_applicable_reason: str | None = None


class NotApplicable(_Model):
    id: str
    note: str


class RateRow(_Model):
    definition_id: str
    definition_version: int
    group_by: str = Field(description="all, level_of_care, level_group, site, quarter, or level_group,quarter")
    group: str | None = Field(description="the group's value; level_group,quarter rows join them: iop|2026Q3")
    numerator: int | None
    denominator: int | None
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    ci_method: str | None
    suppressed: bool
    suppression: Reason = None
    note: str | None


class ComparisonRow(_Model):
    definition_id: str
    definition_version: str
    arm: str
    reference: str
    estimand: str = Field(description="rd (risk difference, 0-1 scale) or rr (risk ratio)")
    method: str
    target: str | None
    missing_data: str | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    se: float | None
    p_value: float | None
    p_holm: float | None = None
    p_bh: float | None = None
    n_arm: int | None
    n_reference: int | None
    risk_arm: float | None
    risk_reference: float | None
    e_value: float | None
    e_value_ci: float | None
    population: str | None
    note: str | None
    variance: str | None = Field(
        default=None, description="the variance behind se and the interval: 'HC0 sandwich' (person-level) or "
                                  "'CR2, G clusters, t(G-1)' (cluster-robust, at least min_clusters clusters)")
    suppressed: bool = False
    suppression: Reason = None


class BalanceRow(_Model):
    population: str
    method: str = Field(description="the weighting: iptw_ate, iptw_att or overlap")
    covariate: str
    smd_before: float | None
    smd_after: float | None
    variance_ratio_before: float | None
    variance_ratio_after: float | None
    n_arm: int | None = Field(None, description="the arm's head count in the population (hidden when small)")
    n_reference: int | None = Field(None, description="the reference's head count in the population")
    binary: bool | None = Field(None, description="the covariate column holds only 0 and 1 (a level)")
    mean_arm_before: float | None = Field(None, description="the arm's mean before weighting")
    mean_reference_before: float | None = None
    sd_arm_before: float | None = Field(None, description="the arm's SD before weighting (divisor n)")
    sd_reference_before: float | None = None
    mean_arm_after: float | None = Field(None, description="the arm's weighted mean")
    mean_reference_after: float | None = None
    sd_arm_after: float | None = Field(None, description="the arm's weighted SD (divisor the weight total)")
    sd_reference_after: float | None = None
    weight_arm: float | None = Field(None, description="the arm's total weight after weighting")
    weight_reference: float | None = None
    suppression: Reason = Field(None, description="why the means and SDs are hidden: a 0/1 covariate's "
                                "mean times its arm's size is a head count")


class DiagnosticRow(_Model):
    population: str
    definitions: str
    method: str
    n_arm: int | None
    n_reference: int | None
    c_statistic: float | None
    equipoise: float | None
    ess_arm: float | None
    ess_reference: float | None
    share_truncated: float | None
    converged: bool | None
    max_abs_smd_after: float | None
    balance_passed: bool | None
    overlap_passed: bool | None
    passed: bool | None
    note: str | None


class Propensity(_Model):
    bin_edges: list[float]
    counts: dict[str, list[int | None]]


class Diagnostics(_Model):
    data_end_quarter: str | None
    groupings: list[str]
    disclosure_rule: str
    arm: str
    reference: str
    margin_pp: float = Field(description="absolute non-inferiority margin, percentage points")
    margin_ratio: float = Field(description="relative non-inferiority margin, a risk ratio")
    margin_basis: Literal["auto", "absolute", "relative"] = Field(
        description="the basis asked for the headline verdicts (auto: relative when the reference rate is "
        "below 20%, else absolute)")
    min_clusters: int = Field(default=30, description="clusters (sites) needed before a cluster-robust variance")
    variance: str | None = Field(default=None, description="the variance rule as applied to the adjusted rows")
    adjusted: list[DiagnosticRow] = Field(default_factory=list)
    propensity: Propensity | None = None
    not_estimable: str | None = None


class NonInferiorityRow(_Model):
    """Both verdicts of one definition: absolute (risk difference against ``margin_pp``: the
    fields without a suffix) and relative (risk ratio against ``margin_ratio``: ``rr*`` and
    ``*_relative``); ``conclusion`` is the one of ``margin_basis``."""

    definition_id: str
    arm: str
    reference: str
    method: str
    margin_pp: float = Field(description="absolute margin, percentage points")
    estimate: float | None = Field(description="risk difference, arm minus reference")
    ci95_low: float | None
    ci95_high: float | None
    ci90_low: float | None
    ci90_high: float | None
    noninferior: bool | None = Field(description="absolute: 95% lower limit of the difference above -margin")
    equivalent: bool | None = Field(description="absolute: 90% interval of the difference within ±margin")
    p_noninferiority: float | None
    p_equivalence: float | None
    conclusion: str = Field(description="the conclusion on the margin_basis")
    margin_ratio: float = Field(description="relative margin, a risk ratio (arm over reference)")
    rr: float | None = Field(description="risk ratio, arm over reference")
    rr_ci95_low: float | None
    rr_ci95_high: float | None
    rr_ci90_low: float | None
    rr_ci90_high: float | None
    noninferior_relative: bool | None = Field(description="relative: 95% lower limit of the ratio above margin_ratio")
    equivalent_relative: bool | None = Field(
        description="relative: 90% interval of the ratio within (margin_ratio, 1/margin_ratio)")
    p_noninferiority_relative: float | None
    p_equivalence_relative: float | None
    conclusion_absolute: str
    conclusion_relative: str
    margin_basis: Literal["absolute", "relative"] | None = Field(
        description="the basis of conclusion (null when the row is hidden)")
    margin_basis_reason: str = Field(description="why that basis, in words")
    suppression: Reason = None


class ModificationRow(_Model):
    definition_id: str
    modifier: str
    level: str | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None
    note: str | None
    interaction_p_value: float | None
    suppression: Reason = None


class Curve(_Model):
    time: list[float]
    survival: list[float | None]
    ci_low: list[float | None]
    ci_high: list[float | None]
    at_risk: list[int | None] | None = Field(description="null: the curve was reduced to disclosed grid points")
    weighted: bool = False


class RiskTable(_Model):
    times: list[float]
    at_risk: dict[str, list[int | None]]


class Readmission(_Model):
    groups: dict[str, Curve] = Field(default_factory=dict)
    risk_table: RiskTable | None = None
    events: dict[str, int | None] = Field(default_factory=dict)
    logrank: dict[str, Any] = Field(default_factory=dict)
    cox: dict[str, Any] = Field(default_factory=dict)
    weights: str | None = None
    not_estimable: str | None = None


class Survival(_Model):
    readmission: Readmission | None = None
    not_available: str | None = None


class CohortRow(_Model):
    level_group: str = Field(description="a level group, or 'all levels' for the total row")
    episodes: int | None
    persons: int | None
    sites: int | None
    suppression: dict[str, Reason] = Field(default_factory=dict, description="count column -> reason")


class TableOneCell(_Model):
    """One cell of Table 1: a category's count and column share, or a mean (SD), by level."""

    covariate: str
    category: str = Field(description="a category, or 'mean (SD)' for a continuous covariate")
    level_group: str = Field(description="a level group, or 'all'")
    n: int | None
    share: float | None = Field(description="n / the level's discharges (categorical rows)")
    mean: float | None = None
    sd: float | None = None
    n_suppression: Reason = None
    stat_suppression: Reason = None


class TableOneSmd(_Model):
    covariate: str
    category: str
    smd: float | None = Field(description="standardized mean difference, arm vs reference, before adjustment")


class TableOne(_Model):
    arm: str
    reference: str
    cells: list[TableOneCell] = Field(default_factory=list)
    smd: list[TableOneSmd] = Field(default_factory=list)


class InstrumentRow(_Model):
    instrument: str
    level_group: str
    n: int | None = Field(description="people with an admission and a discharge score")
    mean_admit: float | None
    mean_discharge: float | None
    suppression: Reason = None


class LedgerRow(_Model):
    file_name: str
    file_sha256: str
    kind: str | None
    status: str
    rows_read: int | None
    rows_loaded: int | None
    rows_quarantined: int | None
    contract_version: str | None
    ingested_on: str | None
    suppression: dict[str, Reason] = Field(default_factory=dict)


class QuarantineRow(_Model):
    check_id: str
    field: str | None
    reason: str
    n_rows: int | None
    files: int
    suppression: Reason = None


class ValidationCheck(_Model):
    file_name: str
    file_sha256: str
    source: Literal["levelcare", "great_expectations"]
    check_id: str
    category: str | None
    severity: str | None
    status: str
    failing_rows: int | None
    suppression: Reason = None


class ValidationFile(_Model):
    file_name: str
    file_sha256: str
    suite: str | None
    rows_validated: int | None
    sampled: bool | None
    success: bool | None
    data_docs: str | None = Field(description="absolute path of the file's great-expectations Data Docs")


class Validation(_Model):
    files: list[ValidationFile] = Field(default_factory=list)
    checks: list[ValidationCheck] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list, description="files whose validation report was not found")


class DataQuality(_Model):
    ledger: list[LedgerRow] = Field(default_factory=list)
    quarantine: list[QuarantineRow] = Field(default_factory=list)
    validation: Validation = Field(default_factory=Validation)


class Cohort(_Model):
    rows: list[CohortRow] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    sites: int = Field(0, description="programs with a discharge in the period (programs, not people)")


Counts = dict[str, Literal["small", "complementary"]]


class BandRow(_Model):
    """Episodes of a level below, within (bounds included) and above a band: scheduled hours
    against the ASAM band (dose), or IOP length of stay against 6-12 weeks."""

    level_of_care: str
    measure: str = Field(description="hours_per_week or los_days")
    band: str = Field(description="the band in words")
    lower: float
    upper: float | None = Field(description="null: no upper bound")
    group_by: str = Field(description="all, site or quarter")
    group: str
    n: int | None
    below: int | None
    within: int | None
    above: int | None
    below_share: float | None
    below_ci_low: float | None
    below_ci_high: float | None
    within_share: float | None
    within_ci_low: float | None
    within_ci_high: float | None
    above_share: float | None
    above_ci_low: float | None
    above_ci_high: float | None
    median: float | None
    suppression: Counts = Field(default_factory=dict, description="count column -> reason")


class SessionsRow(_Model):
    level_of_care: str
    n: int | None
    median_sessions_per_week: float | None = Field(description="sessions attended per week of stay")
    q1: float | None
    q3: float | None
    median_scheduled_hours: float | None
    suppression: Counts = Field(default_factory=dict)


class LosCompletionRow(_Model):
    source: str
    los_band: str = Field(description="TEDS length-of-stay band, or all")
    n: int | None
    completed: int | None
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    suppression: Counts = Field(default_factory=dict)


class CostRow(_Model):
    level_of_care: str
    n: int | None = Field(description="episodes with a cost recorded")
    mean_cost: float | None
    ci_low: float | None
    ci_high: float | None
    median_cost: float | None
    total_cost: float | None
    ci_method: str
    note: str | None
    suppression: Counts = Field(default_factory=dict)


class CostPerSuccessRow(_Model):
    definition_id: str
    definition_version: int
    level_of_care: str
    n: int | None = Field(description="episodes of the definition's population with a cost")
    successes: int | None
    total_cost: float | None
    cost_per_success: float | None = Field(description="total cost / successes")
    note: str | None
    suppression: Counts = Field(default_factory=dict)


class FamilyRateRow(_Model):
    definition_id: str
    level_of_care: str
    family_involved: bool
    n: int | None
    successes: int | None
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    suppression: Counts = Field(default_factory=dict)


class FamilyEffectRow(_Model):
    """Within one level of care: the adjusted odds ratio of success for family involvement."""

    definition_id: str
    level_of_care: str
    n_involved: int | None
    n_not_involved: int | None
    odds_ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    method: str
    note: str | None


class NmbPoint(_Model):
    wtp: float = Field(description="willingness to pay for one more success, dollars")
    nmb: float | None = Field(description="net monetary benefit per episode: wtp x effect - cost")
    ci_low: float | None
    ci_high: float | None
    probability_cost_effective: float | None = Field(description="the acceptability curve: P(NMB > 0)")


class CostEffectRow(_Model):
    definition_id: str
    arm: str
    reference: str
    method: str = Field(description="crude, iptw_ate or aipw")
    n_arm: int | None
    n_reference: int | None
    cost_difference: float | None = Field(description="arm minus reference, dollars per episode")
    cost_ci_low: float | None
    cost_ci_high: float | None
    effect_difference: float | None = Field(description="risk difference of success, arm minus reference")
    effect_ci_low: float | None
    effect_ci_high: float | None
    icer: float | None = Field(description="cost difference / effect difference: dollars per extra success")
    icer_ci_low: float | None
    icer_ci_high: float | None
    icer_note: str | None
    dominance: str | None = Field(description="the comparison in words")
    ci_method: str
    cost_model: str
    nmb: list[NmbPoint] = Field(default_factory=list)
    note: str | None


class DoseCurve(_Model):
    """Within one level: the adjusted probability of success by scheduled hours per week."""

    definition_id: str
    level_of_care: str
    n: int | None
    grid: list[float] = Field(default_factory=list)
    probability: list[float | None] = Field(default_factory=list)
    ci_low: list[float | None] = Field(default_factory=list)
    ci_high: list[float | None] = Field(default_factory=list)
    log_odds_per_hour: float | None
    log_odds_ci_low: float | None
    log_odds_ci_high: float | None
    p_value: float | None
    nonlinearity_p_value: float | None
    knots: list[float] = Field(default_factory=list)
    method: str
    note: str | None


class Services(_Model):
    """Dose, length of stay, cost, cost-effectiveness, family involvement (docs/results.md)."""

    dose: list[BandRow] = Field(default_factory=list)
    sessions: list[SessionsRow] = Field(default_factory=list)
    length_of_stay: list[BandRow] = Field(default_factory=list)
    completion_by_los: list[LosCompletionRow] = Field(default_factory=list)
    costs: list[CostRow] = Field(default_factory=list)
    cost_per_success: list[CostPerSuccessRow] = Field(default_factory=list)
    family_rates: list[FamilyRateRow] = Field(default_factory=list)
    family_effects: list[FamilyEffectRow] = Field(default_factory=list)
    cost_effectiveness: list[CostEffectRow] = Field(default_factory=list)
    dose_response: list[DoseCurve] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="what could not be computed, and why")


class BenchmarkRow(_Model):
    """A program's observed against expected successes (indirect standardization, benchmark.csv)."""

    definition_id: str
    group_by: str = Field(description="all, site, level_of_care or quarter")
    group: str
    n: int | None = Field(description="the group's episodes that were scored")
    observed: int | None
    expected: float | None = Field(description="the national model's expected successes")
    expected_se: float | None = Field(
        default=None, description="standard error of expected from the national model's coefficients")
    oe_ratio: float | None
    oe_ci_low: float | None
    oe_ci_high: float | None
    risk_standardized_rate: float | None = Field(description="O/E x the national rate")
    rsr_ci_low: float | None
    rsr_ci_high: float | None
    national_rate: float | None = Field(description="the reference rows' crude rate over the group's settings")
    verdict: str | None = Field(description="better than expected / as expected / worse than expected")
    shrunk: bool = Field(default=False, description="O/E shrunk toward 1 (--shrink)")
    suppression: Reason = None
    note: str | None = None


class BenchmarkModel(_Model):
    """The national case-mix model of one definition and level of care, and how well it predicts
    held-out national rows."""

    definition_id: str
    level_of_care: str
    n_fit: int | None
    n_holdout: int | None
    national_rate: float | None
    terms: int = Field(description="coefficients, intercept included")
    converged: bool
    c_statistic: float | None
    calibration_in_the_large: float | None = Field(
        description="held-out observed minus predicted rate")
    calibration_intercept: float | None = Field(
        description="logistic recalibration: intercept with the linear predictor as offset (0 = calibrated)")
    calibration_slope: float | None = Field(description="logistic recalibration slope (1 = calibrated)")
    note: str | None = None


class CalibrationBin(_Model):
    definition_id: str
    level_of_care: str
    decile: int
    n: int
    predicted: float
    observed: float


class CovariateUse(_Model):
    covariate: str
    used: bool
    reason: str | None = None
    missing_share_program: float | None = Field(
        default=None, description="share of your episodes with no value (scored with the national 'missing' level)")
    missing_share_reference: float | None = None


class Overlap(_Model):
    """Program episodes whose covariates are rare or absent among the reference rows of their setting."""

    definition_id: str
    n: int
    absent: int | None
    rare: int | None
    share: float | None = Field(description="(absent + rare) / n")
    warning: str | None = None


class Benchmark(_Model):
    """How the program compares with the nation: case-mix-adjusted O/E against TEDS-D."""

    reference: str = Field(description="e.g. TEDS-D 2017-2022 (1,500,000 discharges)")
    years: list[int]
    n_reference: int
    n_program: int
    rows: list[BenchmarkRow] = Field(default_factory=list)
    models: list[BenchmarkModel] = Field(default_factory=list)
    calibration: list[CalibrationBin] = Field(default_factory=list)
    overlap: list[Overlap] = Field(default_factory=list)
    covariates: list[CovariateUse] = Field(default_factory=list)
    not_applicable: list[NotApplicable] = Field(default_factory=list)
    unmatched_levels: dict[str, int | None] = Field(
        default_factory=dict, description="program levels of care with no national counterpart -> episodes")
    shrink: bool = False
    method: str
    notes: list[str] = Field(default_factory=list)


class Results(_Model):
    """One analysis, as everything after it reads it."""

    schema_version: Literal[3] = SCHEMA_VERSION
    run_id: str
    created_at: str
    levelcare_version: str
    period: PeriodInfo
    disclosure: DisclosureInfo
    inputs: list[InputFile]
    definitions: list[DefinitionInfo]
    not_applicable: list[NotApplicable]
    rates: list[RateRow] = Field(description="the period's rates (rates.csv)")
    trends: list[RateRow] = Field(description="rates by quarter over the trend window (trends.csv)")
    comparisons: list[ComparisonRow]
    balance: list[BalanceRow]
    diagnostics: Diagnostics
    noninferiority: list[NonInferiorityRow]
    modification: list[ModificationRow]
    survival: Survival
    cohort: Cohort
    table_one: TableOne | None
    instruments: list[InstrumentRow]
    data_quality: DataQuality
    services: Services = Field(default_factory=Services)
    benchmark: Benchmark | None = Field(default=None, description="null: no TEDS-D rows to compare with")

    def as_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def write_results(results: Results, path: Path) -> Path:
    """Write atomically: a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(results.as_json(), encoding="utf-8")
    tmp.replace(path)
    return path


def find_results(out_dir: Path | None, results_dir: Path | None = None) -> Path:
    """``results.json`` in ``out_dir`` (where ``levelcare analyze --out`` wrote it), else in ``results_dir``."""
    tried = []
    for folder in (out_dir, results_dir):
        if folder is None:
            continue
        path = Path(folder) / RESULTS_FILE
        tried.append(str(path))
        if path.is_file():
            return path
    raise UserError(
        f"no {RESULTS_FILE} found (looked at {', '.join(tried) or 'nothing'}); run "
        "`levelcare analyze --out DIR` first or pass --results DIR"
    )


def load_results(path: Path) -> Results:
    """The results model at ``path``; a one-line UserError naming what is wrong or missing."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON (line {exc.lineno})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from None
    if not isinstance(data, dict) or "rates" not in data:
        raise UserError(f"{path}: not a levelcare results file (no rates)")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(
            f"{path}: written by an older levelcare (results schema {version or 1}, this version reads "
            f"{SCHEMA_VERSION}); run `levelcare analyze --out {path.parent}` again")
    missing = [name for name, f in Results.model_fields.items() if f.is_required() and name not in data]
    if missing:
        raise UserError(f"{path}: results file is missing section(s) {', '.join(missing)}; "
                        f"run `levelcare analyze --out {path.parent}` again")
    try:
        return Results.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: results file does not match the results schema at {where}: "
                        f"{first['msg']} ({exc.error_count()} problem(s))") from None


def load_checked(out_dir: Path, results_dir: Path | None, period, rule: str | None) -> tuple[Path, dict]:
    """The results model a document is written from, as a dict, checked against the period
    and the disclosure rule asked for (a clear error naming the command to run otherwise)."""
    path = find_results(out_dir, results_dir)
    results = load_results(path).model_dump(mode="json")
    held = results["period"]
    if period is not None and period.asked and period.text() != held["asked"]:
        asked = period.first if period.first == period.last else period.text()
        option = f"--quarter {period.first}" if period.first == period.last else f"--period {period.text()}"
        raise UserError(f"{path}: the results cover {held['label']}, not {asked}; run "
                        f"`levelcare analyze --out {path.parent} {option}` first")
    if rule is not None and rule != results["disclosure"]["rule"]:
        raise UserError(f"{path}: the results were disclosed under the {results['disclosure']['rule']} rule, not "
                        f"{rule}; run `levelcare analyze --out {path.parent} --disclosure {rule}` first")
    return path, results


def json_schema() -> dict[str, Any]:
    schema = Results.model_json_schema()
    schema["$id"] = f"https://levelcare.invalid/results-v{SCHEMA_VERSION}.schema.json"
    schema["title"] = "levelcare results.json"
    return schema
