"""Design matrices for the propensity, follow-up and outcome models, built from polars frames.

Notes
-----
* Categorical covariates (String, Categorical, Enum) are one-hot coded with the most frequent
  level as reference (a well-populated reference keeps the fit well conditioned); a missing
  value is its own level ``(missing)``.
* Numeric and Boolean covariates enter as they are (Booleans as 0/1). Missing values are
  filled with the observed mean and flagged by a ``<name>__missing`` indicator (the
  missing-indicator method). It keeps every person in the comparison; it is unbiased for the
  propensity model's purpose (balancing observed data, including the missingness pattern)
  but not a model of the missing values themselves.
* Storage: a :class:`~pipelines.stats.compact.CompactMatrix` (each categorical covariate one
  code a row, the numbers as float64) once the dense float64 matrix would exceed
  ``DENSE_LIMIT_BYTES``; the statistics run on either and agree to rounding.
* Covariates absent from the frame or entirely missing are dropped, as are constant columns
  and columns that are exact linear combinations of earlier ones (found from X'X); every drop
  is recorded in ``Design.dropped`` with its reason.

References
----------
Rosenbaum PR, Rubin DB. Reducing bias in observational studies using subclassification on
the propensity score. JASA 1984;79:516–524 (balance on observed covariates incl. missingness).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pipelines.stats.compact import Codes, CompactMatrix
from pipelines.stats.logistic import xtwx
from pipelines.stats.results import Design

if TYPE_CHECKING:
    import polars as pl

#: Baseline covariates of mart_episodes used by default (docs/interfaces.md).
DEFAULT_COVARIATES: tuple[str, ...] = (
    "age_band",
    "sex",
    "primary_substance",
    "co_occurring_mh",
    "prior_episodes",
    "use_days_admit",
    "homeless_admit",
    "employed_admit",
    "phq9_admit",
    "gad7_admit",
    "payer",
    "referral_source",
    "site_id",
)

MISSING_LEVEL = "(missing)"
#: A design whose dense float64 matrix would take more than this is kept as a CompactMatrix
#: (categorical covariates as shared codes): 200,000 episodes stay dense, 1.7 M (957 k IOP /
#: residential rows x 51 columns, 372 MB) and national scale do not. At 1.7 M the statistics
#: take as long with the compact design and peak at well under half the memory
#: (benchmarks/README.md, Measurements: pipelines/stats/design.py).
DENSE_LIMIT_BYTES = 64 << 20


def build_design(
    frame: pl.DataFrame, covariates: Sequence[str] = DEFAULT_COVARIATES, *, compact: bool | None = None
) -> Design:
    """Build an intercept-first design from ``frame``'s covariates: a Fortran-ordered float64
    matrix, or a :class:`CompactMatrix` when ``compact`` (by default: when the dense matrix
    would exceed DENSE_LIMIT_BYTES)."""
    import polars as pl

    n = frame.height
    # First what each covariate contributes (codes or values), then one matrix filled column by
    # column: a list of columns copied into the matrix held the design twice at its peak.
    fills: list = [1.0]
    names: list[str] = ["(intercept)"]
    groups: dict[str, list[int]] = {}
    references: dict[str, str] = {}
    dropped: list[tuple[str, str]] = []
    for cov in covariates:
        if cov not in frame.columns:
            dropped.append((cov, "not in frame"))
            continue
        s = frame.get_column(cov)
        nulls = s.null_count()
        if nulls == n:
            dropped.append((cov, "all missing"))
            continue
        idx: list[int] = []
        if s.dtype in (pl.String, pl.Categorical) or isinstance(s.dtype, pl.Enum):
            s = s.cast(pl.String).fill_null(MISSING_LEVEL)
            counts = s.value_counts(sort=True, name="n")
            levels = counts.get_column(cov).to_list()
            if len(levels) < 2:
                dropped.append((cov, "constant"))
                continue
            references[cov] = levels[0]
            codes = s.cast(pl.Enum(levels)).to_physical().to_numpy()
            for k, level in enumerate(levels[1:], start=1):
                idx.append(len(fills))
                fills.append((codes, k))
                names.append(f"{cov}={level}")
        else:
            v = s.cast(pl.Float64).to_numpy()
            if nulls:
                miss = np.isnan(v)
                v = np.where(miss, np.nanmean(v), v)
            if float(np.ptp(v)) == 0.0:
                if not nulls:
                    dropped.append((cov, "constant"))
                    continue
            else:
                idx.append(len(fills))
                fills.append(v)
                names.append(cov)
            if nulls:
                idx.append(len(fills))
                fills.append((miss, True))
                names.append(f"{cov}__missing")
        groups[cov] = idx
    if compact is None:
        compact = n * len(fills) * 8 > DENSE_LIMIT_BYTES
    if compact:
        X = _compact(n, fills)
    else:
        X = np.empty((n, len(fills)), order="F")
        for j, fill in enumerate(fills):
            if isinstance(fill, tuple):
                np.equal(fill[0], fill[1], out=X[:, j], casting="unsafe")
            else:
                X[:, j] = fill
    del fills
    G = xtwx(X, np.ones(n))
    keep = _independent_columns(G)
    if len(keep) < X.shape[1]:
        for j in sorted(set(range(X.shape[1])) - set(keep)):
            dropped.append((names[j], "collinear with other columns"))
        X = X.take_columns(keep) if compact else np.asfortranarray(X[:, keep])
        remap = {old: new for new, old in enumerate(keep)}
        names = [names[j] for j in keep]
        groups = {g: [remap[j] for j in ix if j in remap] for g, ix in groups.items()}
    return Design(
        matrix=X,
        columns=tuple(names),
        groups={g: tuple(ix) for g, ix in groups.items()},
        references=references,
        dropped=tuple(dropped),
        gram=G[np.ix_(keep, keep)],
    )


def _compact(n: int, fills: list) -> CompactMatrix:
    """The CompactMatrix of build_design's column fills: the intercept (1.0), a categorical's
    levels ((codes, level): one Codes of that array), a missing flag ((mask, True)), numbers
    (0/1 numbers, e.g. a Boolean without missing values, become codes too)."""
    by_codes: dict[int, tuple[np.ndarray, dict]] = {}
    numeric: list[tuple[int, np.ndarray]] = []
    for j, fill in enumerate(fills):
        if isinstance(fill, np.ndarray) and np.all((fill == 0.0) | (fill == 1.0)):
            fill = (fill, 1)
        if isinstance(fill, tuple):
            values, level = fill
            by_codes.setdefault(id(values), (values, {}))[1][int(level)] = j
        elif isinstance(fill, np.ndarray):
            numeric.append((j, fill))
    arrays, maps = [], []
    for values, columns in by_codes.values():
        column = np.full(max(int(values.max(initial=0)), max(columns)) + 1, -1)
        for level, j in columns.items():
            column[level] = j
        arrays.append(values)
        maps.append(column)
    codes = Codes.packed(arrays, maps)
    matrix = np.empty((n, len(numeric)), order="F")
    for k, (_, v) in enumerate(numeric):
        matrix[:, k] = v
    return CompactMatrix(n, len(fills), 0, codes, matrix, [j for j, _ in numeric])


def _independent_columns(G: np.ndarray, tol: float = 1e-9) -> list[int]:
    """Columns kept, in order, when each must add variance beyond the earlier ones (from X'X).

    With the intercept first, a column constant on the rows is a multiple of it and is dropped too.
    """
    keep: list[int] = []
    for j in range(G.shape[0]):
        if G[j, j] <= 0:
            continue
        if keep:
            g = G[keep, j]
            resid = G[j, j] - g @ np.linalg.solve(G[np.ix_(keep, keep)], g)
        else:
            resid = G[j, j]
        if resid > tol * G[j, j]:
            keep.append(j)
    return keep


def _rows(X: np.ndarray, rows: np.ndarray, cols: list[int]) -> np.ndarray:
    """X[rows][:, cols] as one Fortran-ordered copy, column by column.

    The mask becomes row indices once: masking every column again would scan the whole mask
    per column.
    """
    if isinstance(X, CompactMatrix):
        return X.take_columns(cols).take_rows(rows)
    idx = np.flatnonzero(rows)
    out = np.empty((idx.size, len(cols)), order="F")
    for k, j in enumerate(cols):
        np.take(X[:, j], idx, out=out[:, k])
    return out


def subset(design: Design, rows: np.ndarray) -> Design:
    """The same design restricted to ``rows`` (a boolean mask), with columns constant or
    collinear there dropped. The subset's X'X comes from the full one minus the excluded rows'
    share when fewer rows are excluded than kept (one pass over the small part only).
    """
    X = design.matrix
    all_cols = list(range(X.shape[1]))
    excluded = ~rows
    if design.gram is not None and excluded.sum() < rows.sum():
        G = design.gram - xtwx(_rows(X, excluded, all_cols), np.ones(int(excluded.sum())))
    else:
        G = xtwx(_rows(X, rows, all_cols), np.ones(int(rows.sum())))
    keep_cols = _independent_columns(G)
    dropped = list(design.dropped) + [
        (design.columns[j], "constant or collinear in subset") for j in all_cols if j not in keep_cols
    ]
    remap = {old: new for new, old in enumerate(keep_cols)}
    return Design(
        matrix=_rows(X, rows, keep_cols),
        columns=tuple(design.columns[j] for j in keep_cols),
        groups={g: tuple(remap[j] for j in ix if j in remap) for g, ix in design.groups.items()},
        references=dict(design.references),
        dropped=tuple(dropped),
        gram=G[np.ix_(keep_cols, keep_cols)],
    )


def with_column(X: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[X, v] as a new Fortran-ordered matrix (``X[:, :-1]`` of the result is a free view);
    of a CompactMatrix, a CompactMatrix sharing its storage."""
    if isinstance(X, CompactMatrix):
        return X.with_column(v)
    out = np.empty((X.shape[0], X.shape[1] + 1), order="F")
    out[:, :-1] = X
    out[:, -1] = v
    return out


def start_from(params: np.ndarray, fitted_on: Sequence[str], columns: Sequence[str]) -> np.ndarray:
    """Coefficients fitted on columns ``fitted_on`` placed on ``columns`` (0 where the fit had
    no such column): the start of the same model's fit on a subset of its rows, e.g. one
    population or subgroup after the whole comparison. Multinomial parameters (K-1, p) keep
    their rows. A start only shortens Newton's path: the fit still converges to its own MLE.
    """
    params = np.asarray(params, dtype=float)
    where = {c: j for j, c in enumerate(fitted_on)}
    out = np.zeros((*params.shape[:-1], len(columns)))
    for k, c in enumerate(columns):
        if c in where:
            out[..., k] = params[..., where[c]]
    return out
