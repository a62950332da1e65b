"""Sandwich (M-estimation) inference for arm means from stacked estimating equations.

Every adjusted estimator here estimates an arm mean mu_a as the root of sum_i psi_i(mu_a,
beta) = 0, where beta are the parameters of nuisance logistic models (propensity, outcome,
follow-up) fitted by their own score equations sum_i x_i r_i = 0. A first-order expansion
of the stacked system gives each person's contribution to mu_hat - mu:

    c_i = [ psi_i + (x_i' H^{-1} G) r_i ] / S,

with S = -d(sum psi)/d mu, G = d(sum psi)/d beta and H the nuisance model's information
(sum scale). Var(mu_hat) = sum_i c_i^2 (the empirical sandwich, HC0); contrasts use c_arm -
c_reference (RD) and c_arm/mu_arm - c_reference/mu_reference (log RR). With clusters
(e.g. site) the c_i are summed within each cluster first and the variance is
G/(G-1) sum_g C_g^2 (the usual small-sample factor for G clusters).

Notes
-----
The sandwich is valid for large samples; with few clusters (< ~30 sites) cluster-robust
intervals are too narrow and a wild or cluster bootstrap would be the honest choice.

References
----------
Stefanski LA, Boos DD. The calculus of M-estimation. Am Stat 2002;56:29–38.
Lunceford JK, Davidian M. Stat Med 2004;23:2937–2960.
Cameron AC, Miller DL. A practitioner's guide to cluster-robust inference. J Hum Resour
2015;50:317–372.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipelines.stats.logistic import solve_information
from pipelines.stats.results import Effect, Estimate, LogisticFit, NotEstimable


@dataclass(frozen=True, slots=True)
class Nuisance:
    """A fitted nuisance logistic model and its design (rows aligned with the data)."""

    X: np.ndarray
    fit: LogisticFit

    def correction(self, G: np.ndarray) -> np.ndarray:
        """Per-person (x_i' H^{-1} G) r_i for the gradient ``G`` (shape (m, p) or (p,))."""
        H = self.fit.information
        r = self.fit.resid if self.fit.resid.ndim == 2 else self.fit.resid[:, None]
        m = r.shape[1]
        # (a coefficient without information has residuals ~0 on its rows: minimum norm)
        J = solve_information(H, np.asarray(G).ravel()).reshape(m, -1)
        # one gradient at a time: a vector a row, never rows x m matrices (the national-scale peak)
        out = np.zeros(r.shape[0])
        for j in range(m):
            part = self.X @ J[j]
            part *= r[:, j]
            out += part
        return out


def contributions(psi: np.ndarray, S: float, corrections: list[np.ndarray] | tuple = ()) -> np.ndarray:
    """c_i = (psi_i + sum of nuisance corrections) / S."""
    c = np.array(psi, dtype=float)
    for corr in corrections:
        c += corr
    return c / S


def variance(c: np.ndarray, cluster: np.ndarray | None = None) -> float:
    """sum c_i^2, or G/(G-1) sum_g (sum_{i in g} c_i)^2 with cluster codes 0..G-1."""
    if cluster is None:
        return float(np.dot(c, c))
    sums = np.bincount(cluster, weights=c)
    g = int((np.bincount(cluster) > 0).sum())
    factor = g / (g - 1) if g > 1 else 1.0
    return float(factor * np.dot(sums, sums))


# A standard error below this is rounding noise, not sampling variation (e.g. a difference that
# is exactly 0 by construction, computed as -1e-16 with se 6e-17): it gets no p-value, which would
# otherwise be a random number entering the Holm / Benjamini-Hochberg families.
DEGENERATE_SE = 1e-10


def wald(estimate: float, se: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """Wald interval and two-sided p-value for H0: parameter = 0 (no p-value for a degenerate se)."""
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = float(2 * stats.norm.sf(abs(estimate / se))) if se > DEGENERATE_SE else float("nan")
    return estimate - z * se, estimate + z * se, p


def effect(
    mu1: float,
    mu0: float,
    c1: np.ndarray,
    c0: np.ndarray,
    *,
    method: str,
    target: str,
    n_arm: int,
    n_reference: int,
    cluster: np.ndarray | None = None,
    confidence: float = 0.95,
    note: str | None = None,
) -> Effect:
    """RD and RR estimates from two arm means and their per-person contributions."""
    n = n_arm + n_reference
    if cluster is not None:
        g = int((np.bincount(cluster) > 0).sum())
        note = "; ".join(x for x in (note, f"cluster-robust variance ({g} clusters)") if x)
    se_rd = math.sqrt(variance(c1 - c0, cluster))
    lo, hi, p = wald(mu1 - mu0, se_rd, confidence)
    rd = Estimate(
        mu1 - mu0, lo, hi, n, method, "rd", target, p_value=p, se=se_rd, n_arm=n_arm,
        n_reference=n_reference, risk_arm=mu1, risk_reference=mu0, confidence=confidence, note=note,
    )  # fmt: skip
    if mu1 <= 0 or mu0 <= 0:
        rr: Estimate | NotEstimable = NotEstimable("a risk of zero: the ratio is undefined", method, n)
    else:
        log_rr = math.log(mu1 / mu0)
        se = math.sqrt(variance(c1 / mu1 - c0 / mu0, cluster))
        llo, lhi, p = wald(log_rr, se, confidence)
        rr = Estimate(
            math.exp(log_rr), math.exp(llo), math.exp(lhi), n, method, "rr", target, p_value=p, se=se,
            n_arm=n_arm, n_reference=n_reference, risk_arm=mu1, risk_reference=mu0,
            confidence=confidence, note=note,
        )  # fmt: skip
    return Effect(rd=rd, rr=rr, method=method, target=target, n=n)


def cluster_codes(values) -> np.ndarray | None:
    """Integer codes 0..G-1 for cluster labels; None for None or a single cluster.

    With one cluster the contributions sum to zero and a cluster-robust variance would be
    zero, so the person-level (HC0) sandwich is used instead. Codes follow the sorted labels,
    so integer ranks of a larger set's labels restricted to some rows give the
    same codes as those rows' labels, at a fraction of the cost of sorting strings again.
    """
    if values is None:
        return None
    uniq, codes = np.unique(np.asarray(values), return_inverse=True)
    if uniq.size < 2:
        return None
    return codes.astype(np.int64)
