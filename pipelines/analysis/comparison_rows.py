"""The rows a comparison writes — ``comparisons.csv``, ``balance.csv``, the diagnostics and the
non-inferiority verdicts — as dataclasses: a row's fields are its table's columns, in order,
with their types, so a table's schema is read from its row class and never kept beside it."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True, slots=True, kw_only=True)
class ComparisonRow:
    """One estimate (a risk difference or ratio) of one method for one definition; every number
    is None when the method is not estimable, and ``note`` says why."""

    definition_id: str
    definition_version: str
    arm: str
    reference: str
    estimand: str  # "rd" or "rr"
    method: str
    target: str | None = None
    missing_data: str | None = None
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    se: float | None = None
    p_value: float | None = None
    n_arm: int | None = None
    n_reference: int | None = None
    risk_arm: float | None = None
    risk_reference: float | None = None
    e_value: float | None = None
    e_value_ci: float | None = None
    population: str | None = None
    note: str | None = None
    variance: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BalanceRow:
    """One covariate level's balance under one weighting of one population, and the moments it
    is made of (:class:`pipelines.stats.results.BalanceRow`): what a network study pools."""

    population: str
    method: str
    covariate: str
    smd_before: float | None = None
    smd_after: float | None = None
    variance_ratio_before: float | None = None
    variance_ratio_after: float | None = None
    n_arm: int | None = None
    n_reference: int | None = None
    binary: bool | None = None
    mean_arm_before: float | None = None
    mean_reference_before: float | None = None
    sd_arm_before: float | None = None
    sd_reference_before: float | None = None
    mean_arm_after: float | None = None
    mean_reference_after: float | None = None
    sd_arm_after: float | None = None
    sd_reference_after: float | None = None
    weight_arm: float | None = None
    weight_reference: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DiagnosticRow:
    """One weighting's diagnostics on one population (or why its propensity model failed)."""

    population: str
    definitions: str
    method: str
    n_arm: int | None = None
    n_reference: int | None = None
    c_statistic: float | None = None
    equipoise: float | None = None
    ess_arm: float | None = None
    ess_reference: float | None = None
    share_truncated: float | None = None
    converged: bool | None = None
    max_abs_smd_after: float | None = None
    balance_passed: bool | None = None
    overlap_passed: bool | None = None
    passed: bool | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NoninferiorityRow:
    """The absolute and relative non-inferiority verdicts of one definition's primary estimate."""

    definition_id: str
    arm: str
    reference: str
    method: str
    margin_pp: float | None = None
    estimate: float | None = None
    ci95_low: float | None = None
    ci95_high: float | None = None
    ci90_low: float | None = None
    ci90_high: float | None = None
    noninferior: bool | None = None
    equivalent: bool | None = None
    p_noninferiority: float | None = None
    p_equivalence: float | None = None
    conclusion: str | None = None
    margin_ratio: float | None = None
    rr: float | None = None
    rr_ci95_low: float | None = None
    rr_ci95_high: float | None = None
    rr_ci90_low: float | None = None
    rr_ci90_high: float | None = None
    noninferior_relative: bool | None = None
    equivalent_relative: bool | None = None
    p_noninferiority_relative: float | None = None
    p_equivalence_relative: float | None = None
    conclusion_absolute: str | None = None
    conclusion_relative: str | None = None
    margin_basis: str | None = None
    margin_basis_reason: str | None = None


def schema(row_class: type) -> dict[str, Any]:
    """The polars schema of a row class: its fields in order, each as the polars type of its
    annotation (``str``, ``float``, ``int`` or ``bool``, optional or not)."""
    import polars as pl

    polars_type = {str: pl.String, float: pl.Float64, int: pl.Int64, bool: pl.Boolean}
    hints = typing.get_type_hints(row_class)
    out = {}
    for f in dataclasses.fields(row_class):
        kinds = [t for t in (typing.get_args(hints[f.name]) or (hints[f.name],)) if t is not type(None)]
        out[f.name] = polars_type[kinds[0]]
    return out


def to_frame(rows: Sequence[Any], row_class: type) -> pl.DataFrame:
    """The rows (instances of ``row_class``) as a polars frame with the row class's schema."""
    import polars as pl

    names = [f.name for f in dataclasses.fields(row_class)]
    return pl.DataFrame([tuple(getattr(r, n) for n in names) for r in rows], schema=schema(row_class),
                        orient="row")


def with_adjusted_p(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` (comparison rows) with Holm and Benjamini–Hochberg p-values across definitions
    within each (arm, method, estimand, missing_data) family."""
    import polars as pl

    from pipelines.stats.sensitivity import adjust_pvalues

    df = df.with_row_index("_i")
    holm = np.full(df.height, np.nan)
    bh = np.full(df.height, np.nan)
    keys = ["arm", "method", "estimand", "missing_data"]
    for _, part in df.group_by(keys, maintain_order=True):
        idx = part.get_column("_i").to_numpy()
        adj = adjust_pvalues(part.get_column("p_value").to_list())
        holm[idx] = adj.p_holm
        bh[idx] = adj.p_bh
    return df.drop("_i").with_columns(
        pl.Series("p_holm", holm, nan_to_null=True), pl.Series("p_bh", bh, nan_to_null=True)
    )


def noninferiority_row(definition: Any, rd: Any, rr: Any, margin_pp: float, arm: str, reference: str,
                       margin_ratio: float = 0.8, margin_basis: str = "auto") -> NoninferiorityRow:
    """The absolute and relative verdicts of one definition's primary estimate (``rd``, ``rr``)."""
    from pipelines.stats.noninferiority import noninferiority

    r = noninferiority(rd, definition.id, margin_pp, arm, reference, rr=rr, margin_ratio=margin_ratio,
                       basis=margin_basis)
    known = {"definition_id": definition.id, "arm": arm, "reference": reference,
             "method": getattr(rd, "method", "")}
    values = {f.name: known[f.name] if f.name in known else getattr(r, f.name)
              for f in dataclasses.fields(NoninferiorityRow)}
    # an unbounded ratio limit (a degenerate standard error) is no number JSON can hold
    return NoninferiorityRow(**{k: None if isinstance(v, float) and not np.isfinite(v) else v
                                for k, v in values.items()})
