"""Covariate balance: standardized mean differences and variance ratios before and after weighting.

Notes
-----
* SMD = (weighted mean in arm - weighted mean in reference) / sqrt((s1^2 + s0^2) / 2), where
  s1, s0 are the *unweighted* standard deviations of the two groups, so that the denominator
  is the same before and after weighting and a change in SMD is a change in the mean
  difference (cobalt's default for ATE, "pooled"; CohortMethod does the same).
* Every level of a categorical covariate is shown, the model's reference level included,
  and binary columns are standardized too (as in CohortMethod; cobalt shows raw differences
  for binary variables by default).
* Variance ratio = weighted variance in arm / weighted variance in reference; values far from
  1 (outside about 0.5–2) show imbalance in spread that the SMD misses.
* Balance passes when every |SMD after| <= 0.1 (Austin 2009; CohortMethod's diagnostic).

References
----------
Austin PC. Balance diagnostics for comparing the distribution of baseline covariates between
treatment groups in propensity-score matched samples. Stat Med 2009;28:3083–3107.
Greifer N. cobalt: Covariate Balance Tables and Plots. R package (bal.tab).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipelines.stats.compact import CompactMatrix, row_blocks
from pipelines.stats.results import Balance, BalanceRow, Design

SMD_THRESHOLD = 0.1
_BLOCK = 1 << 17


def _moments(X: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sums of x and x^2 for every column of X and weight vector (column of W)."""
    s1 = np.zeros((X.shape[1], W.shape[1]))
    s2 = np.zeros_like(s1)
    for s, e, xb in row_blocks(X, _BLOCK):
        wb = W[s:e]
        s1 += xb.T @ wb
        s2 += (xb * xb).T @ wb
    return s1, s2


def _rows(design: Design) -> list[tuple[str, int | None, tuple[int, ...]]]:
    """(label, column index or None for a reference level, the group's dummy columns)."""
    rows: list[tuple[str, int | None, tuple[int, ...]]] = []
    for cov, idx in design.groups.items():
        if cov in design.references:
            rows.append((f"{cov}={design.references[cov]}", None, idx))
        for j in idx:
            rows.append((design.columns[j], j, idx))
    return rows


def _sd(variance: float) -> float:
    """A standard deviation from a variance that rounding may have left a hair below 0."""
    return float(np.sqrt(max(variance, 0.0)))


def balance_tables(
    design: Design,
    treated: np.ndarray,
    weights: Mapping[str, np.ndarray],
    threshold: float = SMD_THRESHOLD,
) -> dict[str, Balance]:
    """Balance of the design's covariates for each named weighting (one pass over the data)."""
    a = np.asarray(treated).astype(bool)
    # weight columns: each arm's indicator, then each weighting's weights within each arm
    given = [(None, a), (None, ~a)] + [(w, rows) for w in weights.values() for rows in (a, ~a)]

    def column(k: int) -> np.ndarray:
        w, rows = given[k]
        out = np.zeros(a.size)
        np.copyto(out, 1.0 if w is None else w, where=rows)
        return out

    if isinstance(design.matrix, CompactMatrix):
        # one weight column at a time: the (rows x 8) matrix of them, twice for two populations
        # on two threads, would be the statistics' peak at national scale
        s1, s2, tot = design.matrix.moments(column, len(given))
    else:
        W = np.empty((a.size, len(given)), order="F")
        for k in range(len(given)):
            W[:, k] = column(k)
        s1, s2 = _moments(design.matrix, W)
        tot = W.sum(axis=0)
    mean = s1 / tot
    var = s2 / tot - mean**2
    out: dict[str, Balance] = {}
    layout = _rows(design)
    # a column of 0s and 1s has sum(x^2) == sum(x) in the whole population (an indicator, or a
    # numeric covariate that only takes 0 and 1): its mean times the arm's size is a head count
    zero_one = np.isclose(s2[:, 0] + s2[:, 1], s1[:, 0] + s1[:, 1], rtol=1e-12, atol=1e-9)

    def col_stats(j: int | None, idx: tuple[int, ...], k: int) -> tuple[float, float]:
        if j is None:  # reference level: 1 - sum of the other levels' dummies (a 0/1 column)
            m = 1.0 - float(mean[list(idx), k].sum())
            return m, m * (1 - m)
        return float(mean[j, k]), float(var[j, k])

    for m_i, name in enumerate(weights):
        rows = []
        for label, j, idx in layout:
            m1b, v1b = col_stats(j, idx, 0)
            m0b, v0b = col_stats(j, idx, 1)
            m1a, v1a = col_stats(j, idx, 2 + 2 * m_i)
            m0a, v0a = col_stats(j, idx, 3 + 2 * m_i)
            sd = np.sqrt((v1b + v0b) / 2)
            smd_b = (m1b - m0b) / sd if sd > 0 else 0.0
            smd_a = (m1a - m0a) / sd if sd > 0 else 0.0
            vr_b = v1b / v0b if v0b > 0 else float("nan")
            vr_a = v1a / v0a if v0a > 0 else float("nan")
            binary = True if j is None else bool(zero_one[j])
            rows.append(BalanceRow(
                label, float(smd_b), float(smd_a), float(vr_b), float(vr_a), binary,
                m1b, m0b, _sd(v1b), _sd(v0b), m1a, m0a, _sd(v1a), _sd(v0a),
                float(tot[2 + 2 * m_i]), float(tot[3 + 2 * m_i]),
            ))
        before = max((abs(r.smd_before) for r in rows), default=0.0)
        after = max((abs(r.smd_after) for r in rows), default=0.0)
        out[name] = Balance(tuple(rows), name, threshold, before, after, after <= threshold, int(a.size))
    return out


def balance_table(design: Design, treated: np.ndarray, weights: np.ndarray, method: str) -> Balance:
    """Balance of one weighting (see :func:`balance_tables`)."""
    return balance_tables(design, treated, {method: weights})[method]
