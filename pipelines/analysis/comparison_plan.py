"""Planning a comparison: which rows are in each arm, which columns are read, and the tasks
(one per definition, one more per follow-up-interview definition) grouped by population.

Nothing here fits a model; :mod:`pipelines.analysis.comparison_fit` does, and
:mod:`pipelines.analysis.comparisons` ties the two together (its docstring states the decisions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import polars as pl

#: Threads for independent statistics (populations, the multinomial comparison, survival
#: and subgroup tables): the reference machine's two cores.
STATS_THREADS = 2


class DefinitionLike(Protocol):
    """What compare needs from a success definition (pipelines.definitions.Definition fits)."""

    id: str
    version: Any
    window_days: int | None
    missing: str | None
    followup: str | None  # "interview": read from the follow-up interview of window_days


def interview_column(d: DefinitionLike) -> str | None:
    """The ``fu{w}_reached`` column of a follow-up-interview definition, else None."""
    if getattr(d, "followup", None) != "interview" or d.window_days is None:
        return None
    return f"fu{d.window_days}_reached"


def missing_data_policy(d: DefinitionLike) -> str:
    """A follow-up-interview definition's own missing-data policy, as its comparison rows name it
    in ``missing_data``: ``itt`` (unreached people count as failures) or ``cc`` (complete case)."""
    return "itt" if (d.missing or "failure") == "failure" else "cc"


@dataclass(frozen=True, slots=True)
class Task:
    """One definition's outcome on one population: ``kind`` "standard" (the definition's own
    missing-data policy) or "followup" (the other policy and the follow-up-weighted estimate)."""

    definition: Any
    kind: str
    mask: np.ndarray
    y: np.ndarray
    missing_data: str | None
    reached: np.ndarray | None = None


def arm_mask(frame: pl.DataFrame, value: str) -> np.ndarray:
    """Rows whose ``level_group`` or ``level_of_care`` equals ``value``."""
    import polars as pl

    expr = pl.lit(False)
    for col in ("level_group", "level_of_care"):
        if col in frame.columns:
            expr = expr | (pl.col(col).cast(pl.String) == value).fill_null(False)
    return frame.select(expr.alias("m")).to_series().to_numpy().astype(bool)


@contextmanager
def concurrently(executor=None):
    """A pool of STATS_THREADS threads for independent statistics (or ``executor``, a pool
    the caller already has). numpy's ufuncs and BLAS release the GIL, and each BLAS call stays
    single-threaded (single_blas_thread), so the threads share the cores without spin-waiting.
    Results do not depend on it: each piece of work is computed exactly as it would be alone
    and collected in a fixed order."""
    from concurrent.futures import ThreadPoolExecutor

    if executor is not None:
        yield executor
        return
    with ThreadPoolExecutor(max_workers=STATS_THREADS, thread_name_prefix="levelcare-stats") as pool:
        yield pool


def mask_key(mask: np.ndarray) -> str:
    """A short hash of a row mask: equal masks are one population."""
    return hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=12).hexdigest()


def label_ranks(frame: pl.DataFrame, column: str | None) -> np.ndarray | None:
    """Ranks 0.. of ``column``'s labels in sorted order (null as "(missing)"), sorted by polars
    (numpy's unique of one Python string per row holds the GIL and a Python object a row at
    national scale). Each population's cluster_codes then sorts integers, not strings."""
    import polars as pl

    if not column or column not in frame.columns:
        return None
    labels = frame.get_column(column).cast(pl.String).fill_null("(missing)")
    return (labels.rank("dense") - 1).cast(pl.Int64).to_numpy()


def read_columns(frame: pl.DataFrame, definitions: Iterable[DefinitionLike], *others: str | None) -> list[str]:
    """The columns of ``frame`` that :func:`plan_tasks` reads for ``definitions`` (their own and their
    follow-up columns), and ``others``: what a filtered copy of the frame needs to hold."""
    names: list[str | None] = [*others]
    for d in definitions:
        names += [d.id, interview_column(d)]
    return [c for c in dict.fromkeys(names) if c is not None and c in frame.columns]


def plan_tasks(frame: pl.DataFrame, definitions: Iterable[DefinitionLike], followup: bool = True) -> list[Task]:
    """One task per definition (and one more per follow-up definition, unless not ``followup``).
    Equal masks are one array: definitions mostly share their populations."""
    out = []
    masks: dict[str, np.ndarray] = {}

    def one(mask: np.ndarray) -> np.ndarray:
        return masks.setdefault(mask_key(mask), mask)

    for d in definitions:
        if d.id not in frame.columns:
            raise KeyError(f"definition {d.id!r} has no column in the analysis frame")
        col = frame.get_column(d.id)
        if col.dtype.is_float():
            col = col.fill_nan(None)
        has = one(col.is_not_null().to_numpy())
        # 1 / 0 in the column's own type (Int8 in the analysis frame), 0 where null: a byte a
        # row per definition instead of float64
        y = col.fill_null(0).to_numpy()
        fu_col = interview_column(d)
        if fu_col is None or fu_col not in frame.columns:
            out.append(Task(d, "standard", has, y, None))
            continue
        policy = missing_data_policy(d)
        out.append(Task(d, "standard", has, y, policy))
        if not followup:
            continue
        reached = one(frame.get_column(fu_col).fill_null(False).to_numpy().astype(bool))
        due = has if policy == "itt" else one(has | ~reached)
        out.append(Task(d, "followup", due, y, "cc" if policy == "itt" else "itt", one(reached & has)))
    return out


def by_population(planned: Iterable[Task]) -> list[list[Task]]:
    """The tasks grouped by population (equal masks), in the order populations first appear."""
    groups: dict[str, list[Task]] = {}
    for t in planned:
        groups.setdefault(mask_key(t.mask), []).append(t)
    return list(groups.values())


def variance_rule(cluster: str | None, ranks: np.ndarray | None, min_clusters: int) -> str:
    """The variance rule as applied to a comparison's rows, in words."""
    g = 0 if ranks is None else int(np.unique(ranks).size)
    if ranks is not None and g >= max(2, min_clusters):
        return (f"cluster-robust (CR2, t({g - 1}) quantiles): {g} {cluster} clusters, at least {min_clusters}; "
                f"a population with fewer gets the person-level sandwich")
    if not cluster or ranks is None:
        return "person-level sandwich (HC0): no cluster column"
    return (f"person-level sandwich (HC0) with {cluster} as a fixed effect: {g} {cluster} clusters are "
            f"fewer than the {min_clusters} a cluster-robust variance needs")
