"""Effect modification: the adjusted RD within subgroups and a test that it differs between them.

Each subgroup (e.g. baseline severity: use_days_admit >= 20 vs < 20; co-occurring disorder
yes/no; primary substance) gets its own propensity and outcome models, so confounding is
handled within the subgroup, and its adjusted RD. Heterogeneity is tested with Cochran's Q
on the subgroup RDs, Q = sum_k (d_k - d_bar)^2 / se_k^2 with d_bar the inverse-variance
weighted mean, chi-square with (groups - 1) df; for two groups this is the Wald test of
d_1 - d_2 = 0.

Notes
-----
Subgroups are disjoint sets of people, so their estimates are independent (with clustered
variance by site the same site appears in several subgroups; the test then ignores that
correlation). Subgroups with too few people are reported as not estimable and left out of
the test. Interaction on the RD scale is what matters for deciding who should go where
(Rychtarik 2000: heavier drinkers did better inpatient).

References
----------
Rychtarik RG et al. Treatment settings for persons with alcoholism: evidence for matching
clients to inpatient versus outpatient care. J Consult Clin Psychol 2000;68:277–289.
Cochran WG. The combination of estimates from different experiments. Biometrics
1954;10:101–129. VanderWeele TJ, Knol MJ. A tutorial on interaction. Epidemiol Methods
2014;3:33–72.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from pipelines.stats.adjusted import estimate, fit_outcome, prepare
from pipelines.stats.design import start_from, subset, with_column
from pipelines.stats.gcomp import outcome_model
from pipelines.stats.inference import MIN_CLUSTERS, cluster_codes
from pipelines.stats.propensity import fit_propensity
from pipelines.stats.results import (
    Design,
    Effect,
    Estimate,
    Interaction,
    LogisticFit,
    NotEstimable,
    TestResult,
)


def effect_modification(
    y: np.ndarray,
    treated: np.ndarray,
    design: Design,
    modifier: np.ndarray,
    name: str,
    *,
    starts: tuple[np.ndarray, np.ndarray] | None = None,
    **options,
) -> Interaction:
    """Adjusted RD of ``method`` (default AIPW) within each level of ``modifier`` and Cochran's Q
    across them; ``options``: ``method``, ``cluster``, ``min_arm`` of :func:`effect_modifications`.

    ``starts``: coefficients of the propensity and outcome models fitted on every row of
    ``design`` (:func:`whole_population_starts`), from which each subgroup's fits start.
    """
    return effect_modifications([y], treated, design, modifier, name, starts=[starts], **options)[0]


def effect_modifications(
    ys: Sequence[np.ndarray],
    treated: np.ndarray,
    design: Design,
    modifier: np.ndarray,
    name: str,
    *,
    method: str = "aipw",
    cluster: np.ndarray | None = None,
    min_arm: int = 20,
    starts: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
    min_clusters: int = MIN_CLUSTERS,
) -> list[Interaction]:
    """:func:`effect_modification` of each outcome in ``ys`` (all on the rows of ``design``):
    a subgroup's propensity model does not depend on the outcome, so it is fitted once for
    all of them. ``starts``: one per outcome (or None); those given must share their
    propensity coefficients (the whole population's model), which start each subgroup's."""
    a = np.asarray(treated).astype(bool)
    mod = np.asarray(modifier, dtype=object)
    ys = [np.asarray(y, dtype=float) for y in ys]
    starts = list(starts) if starts is not None else [None] * len(ys)
    given = [st for st in starts if st is not None]
    if given and (len(given) < len(ys) or any(not np.array_equal(st[0], given[0][0]) for st in given)):
        raise ValueError("the outcomes' starts must share one propensity start (or none have one)")
    groups: list[list[tuple[str, Effect]]] = [[] for _ in ys]
    levels = [v for v in dict.fromkeys(mod.tolist()) if v is not None]
    for level in levels:
        rows = mod == level
        n1, n0 = int((rows & a).sum()), int((rows & ~a).sum())
        if min(n1, n0) < min_arm:
            na = NotEstimable(f"fewer than {min_arm} people in an arm", method, n1 + n0)
            for g in groups:
                g.append((str(level), Effect(na, na, method, "ate", n1 + n0)))
            continue
        part = subset(design, rows)
        part_columns = part.columns
        ps_start = start_from(given[0][0], design.columns, part.columns) if given else None
        pop = prepare(part, a[rows], start=ps_start)
        del part  # the population holds its own copy (with the arm column)
        cl = None if cluster is None else cluster_codes(np.asarray(cluster)[rows], min_clusters)
        for k, y in enumerate(ys):
            yy = y[rows]
            # per-arm outcome coefficients (2, p) on the design's columns, placed on the subgroup's
            out_start = None if starts[k] is None else start_from(starts[k][1], design.columns, part_columns)
            out = fit_outcome(pop, yy, start=out_start) if method in ("gcomp", "aipw") else None
            groups[k].append((str(level), estimate(pop, yy, method, outcome=out, cluster=cl)))
    return [_interaction(name, tuple(g), method, int(a.size)) for g in groups]


def _interaction(name: str, groups: tuple[tuple[str, Effect], ...], method: str, n: int) -> Interaction:
    """The subgroups' effects with Cochran's Q across the estimable ones."""
    ok = [e.rd for _, e in groups if isinstance(e.rd, Estimate) and e.rd.se]
    if len(ok) < 2:
        test: TestResult | NotEstimable = NotEstimable(
            "fewer than two estimable subgroups", "cochran-q", len(ok)
        )
    else:
        d = np.array([e.estimate for e in ok])
        w = 1 / np.array([e.se for e in ok]) ** 2
        q = float((w * (d - (w @ d) / w.sum()) ** 2).sum())
        df = len(ok) - 1
        test = TestResult(q, float(stats.chi2.sf(q, df)), "cochran-q", float(df), n)
    return Interaction(name, groups, test, n, f"subgroup-{method}")


def whole_population_starts(
    y: np.ndarray, treated: np.ndarray, design: Design, propensity: LogisticFit | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The propensity and outcome models on every row of ``design``: the starts of the
    subgroups' fits for :func:`effect_modification` (None when either does not converge).
    ``propensity``: that propensity model, when the caller has fitted it already."""
    a = np.asarray(treated, dtype=float)
    ps = propensity if propensity is not None else fit_propensity(design.matrix, a).fit
    out = outcome_model(np.asarray(y, dtype=float), with_column(design.matrix, a))
    return (ps.params, out.params) if ps.converged and out.converged else None
