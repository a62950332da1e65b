"""Logistic regression (binary and multinomial) by Newton–Raphson / IRLS in numpy.

The propensity, follow-up and outcome models all use these fits. They work on a float64
design (intercept included): a dense array, or a :class:`~pipelines.stats.compact.CompactMatrix`
(category codes) through the same operations, and accumulate X'WX over row blocks so that a
1.7M x 40 design needs no second full-size copy.

Notes
-----
Convergence: the fit stops when the largest absolute change of a coefficient is below
``tol`` (1e-8) or the relative change of the deviance is below 1e-10 (R's ``glm`` uses
1e-8), within ``max_iter``
(50) iterations; steps that increase the deviance are halved. A fit that does not converge,
or whose linear predictor exceeds |30| (fitted probabilities of 1e-13: quasi-complete
separation, where maximum likelihood estimates do not exist), is returned with
``converged=False``; callers must turn that into :class:`NotEstimable`, never a number.

References
----------
McCullagh P, Nelder JA. Generalized Linear Models, 2nd ed. Chapman & Hall, 1989 (IRLS).
Albert A, Anderson JA. On the existence of maximum likelihood estimates in logistic
regression models. Biometrika 1984;71:1–10 (separation).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from pipelines.stats.compact import CompactMatrix, column_sums, row_blocks
from pipelines.stats.results import LogisticFit, readonly

_BLOCK = 1 << 14
_WARM_ROWS = 100_000
_ETA_LIMIT = 30.0
# Fits of this many rows or more, given no start, start from a subsample's (_subsample_start).
_WARM_MIN_ROWS = 2 * _WARM_ROWS
#: Logit at which an indicator whose rows all have the same outcome is held (see
#: :func:`separated_indicators`): fitted probabilities of e^-30 ~ 1e-13 for those rows.
SEPARATED_LOGIT = 30.0


#: A starting coefficient this large (an odds ratio above 20,000) is a level walked towards
#: infinity or held by the fit it comes from (separation there); the new fit starts it at 0.
START_LIMIT = SEPARATED_LOGIT / 3


def _start(params: np.ndarray) -> np.ndarray:
    """Starting coefficients from another fit (a subsample, the whole comparison): those at
    or beyond START_LIMIT start at 0. A level separated there may not be separated here, and
    a start far out on a flat likelihood can send Newton's first step to +-1e12."""
    params = np.array(params, dtype=float)
    params[np.abs(params) >= START_LIMIT] = 0.0
    return params


def separated_indicators(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0/1 indicator columns (the intercept apart) whose rows all have y = 0, or all y = 1.

    Such a level separates the outcome (quasi-complete separation by one indicator): its
    coefficient's MLE is -inf (+inf), the other coefficients' MLE is the fit on the remaining
    rows, and Newton's method would walk the coefficient towards infinity one unit per
    iteration (20 iterations for a site that never follows anyone up). The fit holds such a
    coefficient at -/+ SEPARATED_LOGIT instead, which gives the same other coefficients and
    fitted values to within e^-30. Returns (column indexes, their held values).
    """
    if X.shape[0] == 0 or not np.all((y == 0.0) | (y == 1.0)):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    events = y @ X
    cols = np.asarray(_indicators(X, lambda ones: (events == 0) | (events == ones)), dtype=np.int64)
    return cols, np.where(events[cols] == 0, -SEPARATED_LOGIT, SEPARATED_LOGIT)


def _indicators(X: np.ndarray, wanted) -> list[int]:
    """Columns j > 0 holding only 0 and 1, set in some rows but not all, among those where
    ``wanted(column sums)`` is true (a cheap filter first: sum of squares = sum)."""
    n = X.shape[0]
    ones = column_sums(X)
    squares = column_sums(X, squared=True)
    candidates = np.flatnonzero((ones > 0) & (ones < n) & (squares == ones) & wanted(ones))
    return [j for j in candidates if j > 0 and np.all((X[:, j] == 0.0) | (X[:, j] == 1.0))]


def solve_information(info: np.ndarray, b: np.ndarray) -> np.ndarray:
    """info^-1 b; the minimum-norm solution when ``info`` is exactly singular within rounding
    (a coefficient that carries no information, e.g. a level walked towards separation)."""
    try:
        return np.linalg.solve(info, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(info, b, rcond=None)[0]


def _newton_step(info: np.ndarray, score: np.ndarray, free: np.ndarray, held: np.ndarray) -> np.ndarray:
    """info^-1 score over the free coefficients; 0 for the held ones."""
    step = np.zeros(score.size)
    sub, sc = (info, score) if held.size == 0 else (info[np.ix_(free, free)], score[free])
    step[free] = solve_information(sub, sc)
    return step


def _subsample_start(n: int, fit) -> np.ndarray | None:
    """For n >= _WARM_MIN_ROWS, the coefficients of ``fit(k)`` — the same model on every k-th
    row, about _WARM_ROWS rows, within O(n_sub^-1/2) of the full estimate — if it converged."""
    if n < _WARM_MIN_ROWS:
        return None
    warm = fit(n // _WARM_ROWS)
    return warm.params if warm.converged else None


def _every(X, k: int):
    """Every k-th row of ``X``: a CompactMatrix stays compact (its X'WX by code sums is several
    times faster than the dense product of the same rows), a dense array becomes a
    Fortran-ordered copy."""
    if isinstance(X, CompactMatrix):
        return X.take_rows(slice(None, None, k))
    return np.asfortranarray(X[::k])


def _with_held(info: np.ndarray, held: np.ndarray) -> np.ndarray:
    """The information with identity rows for held coefficients: they are not estimated, the
    matrix stays invertible, and their sandwich terms vanish (their rows' residuals are
    ~e^-30 and every other row has 0 in the held columns)."""
    if held.size == 0:
        return info
    info = np.array(info)
    info[held, :] = 0.0
    info[:, held] = 0.0
    info[held, held] = 1.0
    return info


def xtwx(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """X' diag(w) X accumulated over row blocks (bounded extra memory).

    With non-negative weights it forms (sqrt(w) X)'(sqrt(w) X), which numpy hands to BLAS
    as a symmetric rank-k update (half the arithmetic of a general product). A
    :class:`~pipelines.stats.compact.CompactMatrix` forms it from sums by code instead
    (:meth:`~pipelines.stats.compact.CompactMatrix.weighted_gram`), no row expanded.
    """
    if isinstance(X, CompactMatrix):
        return X.weighted_gram(w)
    p = X.shape[1]
    out = np.zeros((p, p))
    nonneg = bool(np.all(w >= 0))
    sw = np.sqrt(w) if nonneg else None
    for s, e, xb in row_blocks(X, _BLOCK):
        if nonneg:
            xs = xb * sw[s:e, None]
            out += xs.T @ xs
        else:
            out += (xb * w[s:e, None]).T @ xb
    return out


def _binary_deviance(y: np.ndarray, eta: np.ndarray, f: np.ndarray | None) -> float:
    # y log p + (1 - y) log(1 - p) = y * eta - log(1 + e^eta): one softplus per row instead
    # of two log-sigmoids (y may be fractional: the identity holds for any y). The softplus as
    # max(eta, 0) + log1p(e^-|eta|), in place: cheaper than np.logaddexp, the same to rounding.
    sp = np.abs(eta)
    np.negative(sp, out=sp)
    np.exp(sp, out=sp)
    np.log1p(sp, out=sp)
    sp += np.maximum(eta, 0.0)
    if f is None:
        return float(-2.0 * (y @ eta - sp.sum()))
    sp -= y * eta
    return float(2.0 * (sp @ f))


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    *,
    freq_weights: np.ndarray | None = None,
    start: np.ndarray | None = None,
    max_iter: int = 50,
    tol: float = 1e-8,
) -> LogisticFit:
    """Binary logistic regression of ``y`` (0/1) on ``X`` (intercept included) by IRLS.

    ``freq_weights`` multiply each row's log-likelihood contribution (frequency weights);
    the information and residuals returned are then on that weighted scale.
    """
    y = np.asarray(y, dtype=float)
    n, p = X.shape
    f = None if freq_weights is None else np.asarray(freq_weights, dtype=float)
    held, held_at = separated_indicators(X, y) if f is None else (np.zeros(0, dtype=np.int64), np.zeros(0))
    free = np.setdiff1d(np.arange(p), held)
    if start is None and not isinstance(X, CompactMatrix):
        # (a CompactMatrix's X'WX has a fixed cost per call that a subsample does not shrink: on a
        # per-arm outcome model the subsample's iterations cost more than the one full iteration
        # they save)
        start = _subsample_start(n, lambda k: fit_logistic(
            _every(X, k), y[::k], freq_weights=None if f is None else f[::k], max_iter=max_iter,
            tol=1e-6,
        ))  # fmt: skip
    beta = np.zeros(p) if start is None else _start(start)
    if start is None:
        # Start at the marginal log-odds: one fewer iteration and no overflow on step one.
        ybar = float(np.average(y, weights=f))
        ybar = min(max(ybar, 1e-6), 1 - 1e-6)
        beta[0] = np.log(ybar / (1 - ybar))
    beta[held] = held_at
    eta = X @ beta
    dev = _binary_deviance(y, eta, f)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        mu = expit(eta)
        wv = mu * (1 - mu)
        r = y - mu
        if f is not None:
            wv = wv * f
            r = r * f
        info = xtwx(X, wv)
        score = X.T @ r
        step = _newton_step(info, score, free, held)
        t = 1.0
        for _ in range(30):
            new_beta = beta + t * step
            new_eta = X @ new_beta
            new_dev = _binary_deviance(y, new_eta, f)
            if np.isfinite(new_dev) and new_dev <= dev + 1e-9 * abs(dev):
                break
            t *= 0.5
        change = float(np.max(np.abs(new_beta - beta)))
        rel = abs(dev - new_dev) / (abs(new_dev) + 0.1)
        beta, eta, dev = new_beta, new_eta, new_dev
        if change < tol or rel < 1e-10:
            converged = True
            break
    mu = expit(eta)
    if not converged:
        wv = mu * (1 - mu) if f is None else mu * (1 - mu) * f
        info = xtwx(X, wv)
    # else: the information of the last Newton iteration, at coefficients within `tol` of
    # the final ones, serves for the sandwich (saves one X'WX pass per fit).
    note = None
    # rows of a held level have |eta| near SEPARATED_LOGIT by design; the others must not
    rest = None if held.size == 0 else ~_in_any(X, held)
    checked = eta if rest is None else eta[rest]
    if not converged:
        note = f"did not converge in {max_iter} iterations"
    elif rest is not None and (not rest.any() or np.ptp(y[rest]) == 0):
        # outside the held levels the outcome is constant too: separation is complete
        converged = False
        note = "quasi-complete separation (fitted probabilities of 0 or 1)"
    elif checked.size and float(np.max(np.abs(checked))) > _ETA_LIMIT:
        converged = False
        note = "quasi-complete separation (fitted probabilities of 0 or 1)"
    info = _with_held(info, held)
    resid = y - mu
    return LogisticFit(
        params=readonly(beta),
        fitted=readonly(mu),
        resid=readonly(resid),
        information=readonly(info),
        converged=converged,
        iterations=it,
        deviance=dev,
        n=n,
        method="logistic-irls",
        note=note,
    )


def fit_multinomial(
    X: np.ndarray,
    codes: np.ndarray,
    n_categories: int,
    *,
    start: np.ndarray | None = None,
    max_iter: int = 50,
    tol: float = 1e-8,
) -> LogisticFit:
    """Multinomial logistic regression (category 0 is the reference) by Newton–Raphson.

    ``codes`` are integer categories 0..K-1. Parameters have shape (K-1, p).
    """
    codes = np.asarray(codes, dtype=np.int64)
    n, p = X.shape
    K = n_categories
    Y = np.zeros((n, K))
    Y[np.arange(n), codes] = 1.0
    held, rest = _absent_categories(X, Y)
    props = Y.mean(axis=0)
    del Y  # rows x categories; the residuals come from the codes (_mnl_residuals)
    free = np.setdiff1d(np.arange((K - 1) * p), held)
    if start is None:
        start = _subsample_start(n, lambda k: fit_multinomial(
            _every(X, k), codes[::k], K, max_iter=max_iter, tol=1e-6
        ))  # fmt: skip
    B = None if start is None else _start(start).reshape(K - 1, p)
    if B is None:
        props = props.clip(1e-6)
        B = np.zeros((K - 1, p))
        B[:, 0] = np.log(props[1:] / props[0])
    B.ravel()[held] = -SEPARATED_LOGIT

    rows = np.arange(n)

    def probs(B: np.ndarray) -> tuple[np.ndarray, float]:
        # one category's column at a time (Fortran order): numpy's reductions across the K
        # numbers of a row are slower
        eta = np.empty((n, K), order="F")
        eta[:, 0] = 0.0
        eta[:, 1:] = X @ B.T
        # log-sum-exp by hand (scipy's also handles infinities and signs, at a higher cost)
        top = eta[:, 0].copy()
        for k in range(1, K):
            np.maximum(top, eta[:, k], out=top)
        for k in range(K):
            eta[:, k] -= top
        observed = eta[rows, codes]
        np.exp(eta, out=eta)
        total = eta[:, 0].copy()
        for k in range(1, K):
            total += eta[:, k]
        for k in range(K):
            eta[:, k] /= total  # the probabilities
        ll = float(observed.sum() - np.log(total).sum())
        return eta, -2.0 * ll

    P, dev = probs(B)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        info = _mnl_information(X, P)
        score = (_mnl_residuals(P, codes).T @ X).ravel()
        step = _newton_step(info, score, free, held).reshape(K - 1, p)
        t = 1.0
        for _ in range(30):
            newB = B + t * step
            newP, new_dev = probs(newB)
            if np.isfinite(new_dev) and new_dev <= dev + 1e-9 * abs(dev):
                break
            t *= 0.5
        change = float(np.max(np.abs(newB - B)))
        rel = abs(dev - new_dev) / (abs(new_dev) + 0.1)
        B, P, dev = newB, newP, new_dev
        if change < tol or rel < 1e-10:
            converged = True
            break
    if not converged:
        info = _mnl_information(X, P)
    # else: the information of the last Newton iteration, at coefficients within `tol` of
    # the final ones, serves for the sandwich (as in fit_logistic).
    note = None
    checked = X @ B.T if rest is None else X[rest] @ B.T
    eta_max = float(np.max(np.abs(checked))) if checked.size else 0.0
    if not converged:
        note = f"did not converge in {max_iter} iterations"
    elif eta_max > _ETA_LIMIT:
        converged = False
        note = "quasi-complete separation (fitted probabilities of 0 or 1)"
    info = _with_held(info, held)
    return LogisticFit(
        params=readonly(B),
        fitted=readonly(P),
        resid=readonly(_mnl_residuals(P, codes)),
        information=readonly(info),
        converged=converged,
        iterations=it,
        deviance=dev,
        n=n,
        method="multinomial-logit-newton",
        note=note,
    )


def _mnl_residuals(P: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Y[:, 1:] - P[:, 1:] for the one-hot Y of ``codes``, without Y (1 - p is the same number
    either way)."""
    R = -P[:, 1:]
    rows = np.flatnonzero(codes > 0)
    R[rows, codes[rows] - 1] += 1.0
    return R


def _absent_categories(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Multinomial counterpart of :func:`separated_indicators`: (k, j) pairs where indicator
    column j's level has no one in category k >= 1 but someone in the reference category 0
    (a site without a PHP programme). The coefficient's MLE is -inf; it is held at
    -SEPARATED_LOGIT. Returns the flat indexes into the (K-1, p) parameters and the mask of
    rows outside every held level (None when nothing is held)."""
    p = X.shape[1]
    counts = Y.T @ X  # (K, p): people of each category in each column's level
    cand = _indicators(X, lambda ones: (counts[0] > 0) & (counts[1:] == 0).any(axis=0))
    held = [(k - 1) * p + j for j in cand for k in range(1, Y.shape[1]) if counts[k, j] == 0]
    if not held:
        return np.zeros(0, dtype=np.int64), None
    return np.asarray(sorted(held), dtype=np.int64), ~_in_any(X, cand)


def _in_any(X: np.ndarray, cols) -> np.ndarray:
    """Rows with a non-zero value in any of the columns ``cols`` (one column at a time)."""
    return np.logical_or.reduce([X[:, int(j)] != 0 for j in cols])


def _mnl_information(X: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Fisher information of the multinomial logit, blocks (j,k) = X' diag(P_j(1{j=k} - P_k)) X."""
    K = P.shape[1]
    p = X.shape[1]
    info = np.zeros(((K - 1) * p, (K - 1) * p))
    for j in range(1, K):
        for k in range(j, K):
            # diagonal blocks: P_j (1 - P_j) >= 0; off-diagonal: -(P_j P_k), so every block is
            # a symmetric rank-k update with non-negative weights
            if j == k:
                blk = xtwx(X, P[:, j] * (1.0 - P[:, j]))
            else:
                blk = -xtwx(X, P[:, j] * P[:, k])
            info[(j - 1) * p : j * p, (k - 1) * p : k * p] = blk
            info[(k - 1) * p : k * p, (j - 1) * p : j * p] = blk
    return info
