"""Non-inferiority and equivalence of the arm (IOP) against the reference (residential), with
an absolute (risk difference) or a relative (risk ratio) margin.

"Comparable" is a claim with a stated margin, not "p > 0.05". Success is coded 1 (higher is
better). Two bases, each with its own verdicts:

* Absolute: RD = risk(arm) - risk(reference) against a margin of ``margin_pp`` percentage
  points. Non-inferior when the lower limit of the two-sided 95% interval is above -margin (a
  one-sided test at 2.5%, as in CONSORT's non-inferiority extension); equivalent (TOST) when
  the whole two-sided 90% interval lies within (-margin, +margin), i.e. two one-sided tests at
  5% each (Schuirmann 1987); the equivalence p-value is the larger of the two.
* Relative: RR = risk(arm) / risk(reference) against a risk-ratio margin ``margin_ratio``
  (e.g. 0.8: the arm keeps at least 80% of the reference's successes). Non-inferior when the
  lower 95% limit of RR is above the margin; equivalent when the 90% interval of RR lies within
  (margin, 1/margin). The tests are the same one-sided tests on log RR with its standard error.

Which basis gives the headline (``margin_basis="auto"``, the default): relative when the
reference rate is below 20%, absolute otherwise. With a rare success a fixed number of points
is most of the successes: at 5.1% in the reference, a 5-point margin calls an arm that keeps
only a third of them (1.7%) "equivalent". Both verdicts are always reported.

Notes
-----
Use an adjusted estimate (the default in comparisons is AIPW). Intervals are estimate +/- q * se
from the estimate's standard error, with q the normal quantile, or Student's t quantile when the
estimate carries degrees of freedom (``df``, e.g. for a cluster-robust variance over few
clusters). The margins (default 5 percentage points, risk ratio 0.8) must be fixed before
looking at the data.

References
----------
Piaggio G et al. Reporting of noninferiority and equivalence randomized trials: extension of
the CONSORT 2010 statement. JAMA 2012;308:2594–2604.
Schuirmann DJ. A comparison of the two one-sided tests procedure... J Pharmacokinet
Biopharm 1987;15:657–680.
Walker E, Nowacki AS. Understanding equivalence and noninferiority testing. J Gen Intern Med
2011;26:192–196.
Rothmann MD, Wiens BL, Chan ISF. Design and Analysis of Non-Inferiority Trials. Chapman &
Hall/CRC 2011 (ch. 11: margins on the risk-difference and risk-ratio scales).
"""

from __future__ import annotations

import math
from typing import Any

from scipy import stats

from pipelines.stats.results import Estimate, NonInferiority, NotEstimable

MARGIN_BASES = ("auto", "absolute", "relative")
RELATIVE_BELOW = 0.20  # auto: a reference rate below this takes the relative margin
METHOD = "ni-ci95-tost-ci90"


def _distribution(est: Any):
    """Student t with the estimate's degrees of freedom when it has them, else the normal."""
    df = getattr(est, "df", None)
    return stats.t(df) if df is not None else stats.norm


def _exp(x: float) -> float:
    """exp, infinite past the float range (a log-RR interval with a huge standard error)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _one_sided(dist, distance: float, se: float) -> float:
    """P(statistic >= distance / se) under the null; a zero se gives 0 or 1."""
    if se > 0:
        return float(dist.sf(distance / se))
    return 0.0 if distance > 0 else 1.0


def _tests(value: float, se: float, lower: float, upper: float, dist) -> dict[str, Any]:
    """Intervals and verdicts of ``value`` (an RD, or a log RR) against margins (lower, upper)."""
    q95, q90 = float(dist.ppf(0.975)), float(dist.ppf(0.95))
    lo95, hi95, lo90, hi90 = value - q95 * se, value + q95 * se, value - q90 * se, value + q90 * se
    p_ni = _one_sided(dist, value - lower, se)
    p_eq = max(p_ni, _one_sided(dist, upper - value, se))
    return {
        "lo95": lo95,
        "hi95": hi95,
        "lo90": lo90,
        "hi90": hi90,
        "ni": bool(lo95 > lower),
        "eq": bool(lo90 > lower and hi90 < upper),
        "p_ni": p_ni,
        "p_eq": p_eq,
    }


def _absolute_text(t: dict[str, Any], margin_pp: float, arm: str, reference: str) -> str:
    pp = f"{margin_pp:g} percentage points"
    lo95, hi95 = 100 * t["lo95"], 100 * t["hi95"]
    if t["eq"]:
        return (
            f"{arm} is equivalent to {reference} within ±{pp} "
            f"(90% CI {100 * t['lo90']:.1f} to {100 * t['hi90']:.1f} pp)"
        )
    if t["ni"] and t["lo95"] > 0:
        return f"{arm} is better than {reference} (95% CI {lo95:.1f} to {hi95:.1f} pp)"
    if t["ni"]:
        return (
            f"{arm} is non-inferior to {reference}: its success rate is at most {pp} lower "
            f"(95% CI lower limit {lo95:.1f} pp)"
        )
    if t["hi95"] < -margin_pp / 100.0:
        return f"{arm} is worse than {reference} by more than {pp} (95% CI {lo95:.1f} to {hi95:.1f} pp)"
    return (
        f"inconclusive: a success rate more than {pp} lower in {arm} than in {reference} "
        f"cannot be ruled out (95% CI {lo95:.1f} to {hi95:.1f} pp)"
    )


def _relative_text(t: dict[str, Any], rr: float, margin_ratio: float, arm: str, reference: str) -> str:
    lo95, hi95, lo90, hi90 = (_exp(t[k]) for k in ("lo95", "hi95", "lo90", "hi90"))
    ratio = f"risk ratio {rr:.2f}, 95% CI {lo95:.2f} to {hi95:.2f}"
    if t["eq"]:
        return (
            f"{arm} is equivalent to {reference} within a risk ratio of {margin_ratio:g} to "
            f"{1 / margin_ratio:.3g} (risk ratio {rr:.2f}, 90% CI {lo90:.2f} to {hi90:.2f})"
        )
    if t["ni"] and lo95 > 1:
        return f"{arm} is better than {reference} ({ratio})"
    if t["ni"]:
        return (
            f"{arm} is non-inferior to {reference}: its success rate is at least {margin_ratio:g} times "
            f"{reference}'s (risk ratio 95% CI lower limit {lo95:.2f})"
        )
    if hi95 < margin_ratio:
        return f"{arm} is worse than {reference}: its success rate is below {margin_ratio:g} times {reference}'s ({ratio})"
    return (
        f"inconclusive: a success rate in {arm} below {margin_ratio:g} times {reference}'s cannot be "
        f"ruled out ({ratio})"
    )


def check_margins(margin_pp: float, margin_ratio: float, basis: str = "auto") -> None:
    """ValueError unless the margins and the basis are usable (checked before any statistic)."""
    if not margin_pp > 0:
        raise ValueError(f"the absolute margin must be positive, not {margin_pp!r}")
    if not 0 < margin_ratio < 1:
        raise ValueError(f"the risk-ratio margin must lie strictly between 0 and 1, not {margin_ratio!r}")
    if basis not in MARGIN_BASES:
        raise ValueError(f"margin basis must be one of {MARGIN_BASES}, not {basis!r}")


def _percent_beside(rate: float, threshold: float) -> str:
    """``rate`` as a percentage with one decimal, or more when one would round it onto the
    threshold's side it is not on (19.96% is not "20.0%" where 20% is the line)."""
    for digits in range(1, 9):
        text = f"{100 * rate:.{digits}f}"
        if (float(text) / 100 < threshold) == (rate < threshold):
            break
    return f"{text}%"


def margin_basis(
    reference_rate: float | None,
    basis: str = "auto",
    margin_pp: float = 5.0,
    margin_ratio: float = 0.8,
    reference: str = "residential",
    adjusted: bool = False,
) -> tuple[str, str]:
    """(``"absolute"`` or ``"relative"``, the reason in words) for a reference rate and a basis
    option: ``auto`` is relative when the reference rate is below 20%, else absolute.
    ``adjusted``: the rate is the estimate's standardized (adjusted) risk, not the crude rate."""
    check_margins(margin_pp, margin_ratio, basis)
    if basis != "auto":
        return basis, f"{basis}: set in the analysis options"
    if reference_rate is None or not math.isfinite(reference_rate):
        return "absolute", f"absolute: the {reference} rate is not available"
    m, rate = margin_pp / 100.0, _percent_beside(reference_rate, RELATIVE_BELOW)
    reference = f"adjusted {reference}" if adjusted else reference
    lost = "all" if reference_rate <= m else f"{m / reference_rate:.0%}"
    if reference_rate < RELATIVE_BELOW:
        return "relative", (
            f"relative: the {reference} rate {rate} is below {RELATIVE_BELOW:.0%}, where a {margin_pp:g}-point "
            f"margin would allow losing {lost} of its successes (a risk-ratio margin of {margin_ratio:g} "
            f"allows losing {1 - margin_ratio:.0%})"
        )
    return "absolute", (
        f"absolute: the {reference} rate {rate} is at least {RELATIVE_BELOW:.0%}, where a {margin_pp:g}-point "
        f"margin is {lost} of its successes"
    )


def _reason(est: Estimate | NotEstimable | None, what: str) -> str | None:
    """Why ``est`` cannot be tested (None when it can)."""
    if est is None:
        return f"no {what} estimate"
    if isinstance(est, NotEstimable):
        return est.reason
    if est.se is None or not math.isfinite(est.se):
        return f"no standard error on the {what} scale"
    return None


def noninferiority(
    estimate: Estimate | NotEstimable,
    definition_id: str = "",
    margin_pp: float = 5.0,
    arm: str = "iop",
    reference: str = "residential",
    *,
    rr: Estimate | NotEstimable | None = None,
    margin_ratio: float = 0.8,
    basis: str = "auto",
) -> NonInferiority:
    """Non-inferiority and equivalence verdicts for an RD estimate (absolute margin) and, given
    the RR estimate of the same comparison (``se`` on the log scale), a risk-ratio margin.

    ``basis`` (``auto``, ``absolute`` or ``relative``) chooses the headline; see the module
    docstring. Without ``rr`` the relative verdicts are "not estimable".
    """
    check_margins(margin_pp, margin_ratio, basis)
    if rr is not None and not isinstance(rr, NotEstimable) and rr.estimand != "rr":
        raise ValueError(f"rr must be a risk-ratio estimate, not {rr.estimand!r}")
    rd_why = _reason(estimate, "RD")
    if rd_why is None and estimate.estimand != "rd":
        rd_why = "no standard error on the RD scale"
    rr_why = _reason(rr, "RR")
    if rr_why is None and not rr.estimate > 0:
        rr_why = "a risk ratio of zero: its logarithm is undefined"
    ref_rate = next(
        (
            getattr(e, "risk_reference", None)
            for e in (estimate, rr)
            if getattr(e, "risk_reference", None) is not None
        ),
        None,
    )
    adjusted = getattr(estimate, "target", "crude") != "crude"
    chosen, why = margin_basis(ref_rate, basis, margin_pp, margin_ratio, reference, adjusted)

    m = margin_pp / 100.0
    absolute: dict[str, Any] = {}
    if rd_why is None:
        t = _tests(estimate.estimate, estimate.se, -m, m, _distribution(estimate))
        absolute = {
            "estimate": estimate.estimate,
            "ci95_low": t["lo95"],
            "ci95_high": t["hi95"],
            "ci90_low": t["lo90"],
            "ci90_high": t["hi90"],
            "noninferior": t["ni"],
            "equivalent": t["eq"],
            "p_noninferiority": t["p_ni"],
            "p_equivalence": t["p_eq"],
            "conclusion_absolute": _absolute_text(t, margin_pp, arm, reference),
        }
    else:
        absolute = {"conclusion_absolute": f"not estimable: {rd_why}"}
    relative: dict[str, Any] = {}
    if rr_why is None:
        lm = math.log(margin_ratio)
        t = _tests(math.log(rr.estimate), rr.se, lm, -lm, _distribution(rr))
        relative = {
            "rr": rr.estimate,
            "rr_ci95_low": _exp(t["lo95"]),
            "rr_ci95_high": _exp(t["hi95"]),
            "rr_ci90_low": _exp(t["lo90"]),
            "rr_ci90_high": _exp(t["hi90"]),
            "noninferior_relative": t["ni"],
            "equivalent_relative": t["eq"],
            "p_noninferiority_relative": t["p_ni"],
            "p_equivalence_relative": t["p_eq"],
            "conclusion_relative": _relative_text(t, rr.estimate, margin_ratio, arm, reference),
        }
    else:
        relative = {"conclusion_relative": f"not estimable: {rr_why}"}
    headline = (relative if chosen == "relative" else absolute)[f"conclusion_{chosen}"]
    return NonInferiority(
        definition_id=definition_id, margin_pp=margin_pp,
        estimate=absolute.get("estimate"), ci95_low=absolute.get("ci95_low"), ci95_high=absolute.get("ci95_high"),
        ci90_low=absolute.get("ci90_low"), ci90_high=absolute.get("ci90_high"),
        noninferior=absolute.get("noninferior"), equivalent=absolute.get("equivalent"),
        p_noninferiority=absolute.get("p_noninferiority"), p_equivalence=absolute.get("p_equivalence"),
        conclusion=headline, method=METHOD, n=estimate.n, margin_ratio=margin_ratio,
        **relative, conclusion_absolute=absolute["conclusion_absolute"],
        margin_basis=chosen, margin_basis_reason=why,
    )  # fmt: skip
