"""Non-inferiority and equivalence of the arm (IOP) against the reference (residential) on the RD scale.

"Comparable" is a claim with a stated margin, not "p > 0.05". With success coded 1 (higher
is better) and RD = risk(arm) - risk(reference):

* Non-inferiority: the lower limit of the two-sided 95% interval is above -margin (a
  one-sided test at 2.5%, as in CONSORT's non-inferiority extension).
* Equivalence (TOST): the whole two-sided 90% interval lies within (-margin, +margin), i.e.
  two one-sided tests at 5% each (Schuirmann 1987); the p-value is the larger of the two.

Notes
-----
Use an adjusted estimate (the default in comparisons is AIPW); the 90% interval is
estimate +/- z_0.95 * se from the estimate's standard error. The margin (default 5
percentage points) must be fixed before looking at the data.

References
----------
Piaggio G et al. Reporting of noninferiority and equivalence randomized trials: extension of
the CONSORT 2010 statement. JAMA 2012;308:2594–2604.
Schuirmann DJ. A comparison of the two one-sided tests procedure... J Pharmacokinet
Biopharm 1987;15:657–680.
Walker E, Nowacki AS. Understanding equivalence and noninferiority testing. J Gen Intern Med
2011;26:192–196.
"""

from __future__ import annotations

from scipy import stats

from pipelines.stats.results import Estimate, NonInferiority, NotEstimable


def noninferiority(
    estimate: Estimate | NotEstimable,
    definition_id: str = "",
    margin_pp: float = 5.0,
    arm: str = "iop",
    reference: str = "residential",
) -> NonInferiority:
    """Non-inferiority and equivalence verdicts for an RD estimate with a standard error."""
    m = margin_pp / 100.0
    method = "ni-ci95-tost-ci90"
    if isinstance(estimate, NotEstimable) or estimate.se is None or estimate.estimand != "rd":
        reason = (
            estimate.reason if isinstance(estimate, NotEstimable) else "no standard error on the RD scale"
        )
        return NonInferiority(
            definition_id, margin_pp, None, None, None, None, None, None, None, None, None,
            f"not estimable: {reason}", method, estimate.n,
        )  # fmt: skip
    d, se = estimate.estimate, estimate.se
    z95, z90 = stats.norm.ppf(0.975), stats.norm.ppf(0.95)
    lo95, hi95 = d - z95 * se, d + z95 * se
    lo90, hi90 = d - z90 * se, d + z90 * se
    ni = lo95 > -m
    eq = lo90 > -m and hi90 < m
    p_ni = float(stats.norm.sf((d + m) / se))
    p_eq = max(p_ni, float(stats.norm.cdf((d - m) / se)))
    pp = f"{margin_pp:g} percentage points"
    if eq:
        text = f"{arm} is equivalent to {reference} within ±{pp} (90% CI {100 * lo90:.1f} to {100 * hi90:.1f} pp)"
    elif ni and lo95 > 0:
        text = f"{arm} is better than {reference} (95% CI {100 * lo95:.1f} to {100 * hi95:.1f} pp)"
    elif ni:
        text = (
            f"{arm} is non-inferior to {reference}: its success rate is at most {pp} lower "
            f"(95% CI lower limit {100 * lo95:.1f} pp)"
        )
    elif hi95 < -m:
        text = f"{arm} is worse than {reference} by more than {pp} (95% CI {100 * lo95:.1f} to {100 * hi95:.1f} pp)"
    else:
        text = (
            f"inconclusive: a success rate more than {pp} lower in {arm} than in {reference} "
            f"cannot be ruled out (95% CI {100 * lo95:.1f} to {100 * hi95:.1f} pp)"
        )
    return NonInferiority(
        definition_id, margin_pp, d, lo95, hi95, lo90, hi90, bool(ni), bool(eq), p_ni, p_eq, text,
        method, estimate.n,
    )  # fmt: skip
