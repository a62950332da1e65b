"""Propensity-score strata: the sufficient statistics of a one-shot pooled *adjusted* estimate.

At a site, for each definition of the study, the comparison's population (arm and reference
people with an outcome) is cut at the quintiles of a propensity model fitted on it (the
analysis's covariates); each stratum is a 2x2 table — successes and people in the arm and in the
reference. Within a stratum the two groups have about the same propensity, so comparing them
removes most of the confounding by the covariates (Rosenbaum & Rubin 1984: five strata remove
about 90% of the bias of each covariate). The coordinating centre pools every site's strata in one
Mantel-Haenszel risk difference (:func:`pipelines.stats.meta.mantel_haenszel_rd`), stratified by
site and propensity stratum — no estimate or variance from the site is needed, only counts.

Disclosure: a stratum holding a count of 1-10 (successes, failures or people of a group) is merged
with its neighbour until none does, so fewer, wider strata leave the site (at worst one: the
crude table). The strata add up to the arm's and the reference's counts of the rates; where the
rates hide one of those, the definition's strata are left out (their sum would give it back),
and under a rule that rounds counts no strata are written (a rounded table is not a table).

Rosenbaum PR, Rubin DB. Reducing bias in observational studies using subclassification on the
propensity score. J Am Stat Assoc 1984;79:516-524.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: propensity-score strata before merging
STRATA = 5
COLUMNS = ["definition_id", "definition_version", "stratum", "n_arm_successes", "n_arm", "n_reference_successes",
           "n_reference"]


def merge_small(tables: list[list[int]], is_small) -> list[list[int]]:
    """Adjacent strata ``[successes_arm, n_arm, successes_reference, n_reference]`` merged until no
    stratum holds a small count (``is_small``) among its successes, failures or group sizes; a
    stratum is merged with the smaller of its neighbours."""
    out = [list(t) for t in tables if t[1] + t[3] > 0]

    def small(t: list[int]) -> bool:
        return any(is_small(v) for v in (t[0], t[1] - t[0], t[2], t[3] - t[2], t[1], t[3]))

    while len(out) > 1:
        bad = [i for i, t in enumerate(out) if small(t)]
        if not bad:
            break
        i = min(bad, key=lambda k: out[k][1] + out[k][3])
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(out)]
        j = min(neighbours, key=lambda k: out[k][1] + out[k][3])
        a, b = sorted((i, j))
        out[a] = [x + y for x, y in zip(out[a], out[b], strict=True)]
        del out[b]
    return out


def site_strata(con: Any, definitions: Sequence[Any], arm: str, reference: str, where: str,
                where_params: Sequence[Any], counts: Sequence[dict[str, Any]], rule: Any) -> list[dict[str, Any]]:
    """The strata rows of every definition (module docstring); ``counts``: the package's
    disclosed counts, whose level-group rows say whether the arm's and reference's totals show."""
    import numpy as np

    from pipelines import disclosure
    from pipelines.analysis.comparative import statistics_frame
    from pipelines.analysis.comparison_plan import arm_mask, by_population, plan_tasks
    from pipelines.analysis.comparisons import MIN_ARM
    from pipelines.stats.design import DEFAULT_COVARIATES, build_design, subset
    from pipelines.stats.propensity import fit_propensity

    r = disclosure.get_rule(rule)
    if r.round_to > 1:
        return []
    # the arm's and the reference's totals: their level-group rows (or level-of-care rows, for an
    # arm that is one level), every one of them shown
    totals = [x for x in counts if x["group_by"] in ("level_group", "level_of_care")]
    present = {(x["definition_id"], x["group"]) for x in totals}
    hidden = {(x["definition_id"], x["group"]) for x in totals if x["denominator"] is None}
    shown = present - hidden
    wanted = [d for d in definitions if (d.id, arm) in shown and (d.id, reference) in shown]
    if not wanted:
        return []
    frame = statistics_frame(con, wanted, [arm, reference], where, where_params)
    in_arm = arm_mask(frame, arm)
    keep = in_arm | arm_mask(frame, reference)
    sub = frame.filter(keep)
    del frame
    treated = in_arm[keep]
    design = build_design(sub, DEFAULT_COVARIATES)
    out = []
    for group in by_population(plan_tasks(sub, wanted, followup=False)):
        mask = group[0].mask
        a = treated[mask]
        if min(int(a.sum()), int((~a).sum())) < MIN_ARM:
            continue
        model = fit_propensity(design.matrix if mask.all() else subset(design, mask).matrix, a)
        if not model.fit.converged:
            continue
        ps = np.asarray(model.ps)
        edges = np.quantile(ps, np.linspace(0, 1, STRATA + 1)[1:-1])
        stratum = np.searchsorted(edges, ps, side="right")
        for t in group:
            y = t.y[mask].astype(float)
            tables = [[int(y[a & (stratum == s)].sum()), int((a & (stratum == s)).sum()),
                       int(y[~a & (stratum == s)].sum()), int((~a & (stratum == s)).sum())] for s in range(STRATA)]
            merged = merge_small(tables, r.is_small)
            if any(r.is_small(v) for e1, n1, e0, n0 in merged for v in (e1, n1 - e1, e0, n0 - e0, n1, n0)):
                continue  # one table left and it is small: the rates hide it too (never written)
            for k, (e1, n1, e0, n0) in enumerate(merged, start=1):
                out.append({"definition_id": t.definition.id, "definition_version": t.definition.version,
                            "stratum": k, "n_arm_successes": e1, "n_arm": n1, "n_reference_successes": e0,
                            "n_reference": n0})
    return out


def mantel_haenszel(rows: Sequence[dict[str, Any]]) -> Any:
    """The Mantel-Haenszel risk difference over strata rows (as read from ``strata.csv``)."""
    from pipelines.stats.meta import mantel_haenszel_rd

    cols = ("n_arm_successes", "n_arm", "n_reference_successes", "n_reference")
    return mantel_haenszel_rd(*([int(x[c]) for x in rows] for c in cols))
