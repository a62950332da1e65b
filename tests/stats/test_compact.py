"""CompactMatrix (a design as uint8 0/1 columns beside float64 ones) against a one-hot matrix
built by hand, numpy's products on the dense float64 matrix, statsmodels' fits, and compare()'s
tables on dense designs."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import simulate
import statsmodels.api as sm

import pipelines.stats.compact as compact
import pipelines.stats.design as design_mod
from pipelines.stats.compact import CompactMatrix
from pipelines.stats.design import build_design, subset, with_column
from pipelines.stats.logistic import fit_logistic, fit_multinomial, xtwx


def test_compact_design_holds_the_one_hot_matrix_built_by_hand():
    frame = pl.DataFrame({"cat": ["a", "b", "a", None, "b", "a"], "num": [1.0, None, 3.0, 5.0, 2.0, 4.0],
                          "flag": [True, False, True, True, False, False]})
    d = build_design(frame, ("cat", "num", "flag"), compact=True)
    assert isinstance(d.matrix, CompactMatrix)
    assert d.columns == ("(intercept)", "cat=b", "cat=(missing)", "num", "num__missing", "flag")
    fill = (1 + 3 + 5 + 2 + 4) / 5
    hand = np.array([
        [1, 0, 0, 1, 0, 1],
        [1, 1, 0, fill, 1, 0],
        [1, 0, 0, 3, 0, 1],
        [1, 0, 1, 5, 0, 1],
        [1, 1, 0, 2, 0, 0],
        [1, 0, 0, 4, 0, 0],
    ], dtype=float)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(d.matrix), hand)
    # a byte a row for the categorical's code, the missing flag and the Boolean, 8 for the
    # number; the intercept takes nothing
    assert d.matrix.nbytes == 6 * (1 + 1 + 8 + 1)
    np.testing.assert_array_equal(d.gram, hand.T @ hand)


def test_covariates_share_one_code_a_row_in_mixed_radix():
    # 160 rows: groups of at most 160 // 16 = 10 combinations. "cat" has 3 levels (a: 80 rows,
    # b: 50, c: 30), "two" 2 (x: 127, y: 33), "big" 11 (25, 22, ..., 7 rows): 3 x 2 = 6
    # combinations fit one group, 6 x 11 do not. Levels are coded by frequency (a, x, k00 first:
    # the references).
    n = 160
    cat = ["a"] * 80 + ["b"] * 50 + ["c"] * 30
    two = ["y" if (i < 100 and i % 8 == 0) or i >= 140 else "x" for i in range(n)]
    counts = [25, 22, 19, 17, 15, 13, 12, 11, 10, 9, 7]
    big = list(np.random.default_rng(0).permutation([f"k{k:02d}" for k, c in enumerate(counts) for _ in range(c)]))
    frame = pl.DataFrame({"cat": cat, "two": two, "big": big})
    d = build_design(frame, ("cat", "two", "big"), compact=True)
    C = d.matrix
    first, second = C.codes[0].group, C.codes[2].group
    assert C.codes[1].group is first and second is not first and len(C.codes) == 3
    # cat's code (a 0, b 1, c 2, by frequency) times two's 2 levels, plus two's code (x 0, y 1)
    code_cat = np.array([{"a": 0, "b": 1, "c": 2}[v] for v in cat])
    code_two = np.array([{"x": 0, "y": 1}[v] for v in two])
    np.testing.assert_array_equal(first.codes, code_cat * 2 + code_two)
    assert first.levels == 6 and first.codes.dtype == np.uint8
    assert C.nbytes == 2 * n  # two groups of a byte a row, no numbers
    hand = np.zeros((n, 1 + 2 + 1 + 10))
    hand[:, 0] = 1
    hand[:, 1], hand[:, 2], hand[:, 3] = code_cat == 1, code_cat == 2, code_two == 1
    others = [f"k{k:02d}" for k in range(1, 11)]
    assert d.references == {"cat": "a", "two": "x", "big": "k00"}
    assert d.columns[4:] == tuple(f"big={lv}" for lv in others)
    for j, lv in enumerate(others):
        hand[:, 4 + j] = [v == lv for v in big]
    np.testing.assert_array_equal(np.asarray(C), hand)
    rng = np.random.default_rng(3)
    b, r = rng.normal(size=hand.shape[1]), rng.normal(size=n)
    np.testing.assert_allclose(C @ b, hand @ b, rtol=1e-13)
    np.testing.assert_allclose(r @ C, r @ hand, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(C.column_sums(), hand.sum(axis=0))
    rows = np.arange(n) % 3 == 0
    np.testing.assert_array_equal(np.asarray(C[rows][:, [3, 1, 6]]), hand[rows][:, [3, 1, 6]])


def test_a_flag_joins_the_smallest_group_and_the_weighted_gram_is_the_dense_one():
    # 160 rows: groups of at most 10 combinations; "cat" (3 levels) and "big" (11) do not fit
    # one group. The arm added by with_column becomes the last digit of cat's group (3 x 2 = 6
    # combinations): code = cat's code x 2 + arm.
    n = 160
    rng = np.random.default_rng(4)
    cat = ["a"] * 80 + ["b"] * 50 + ["c"] * 30
    counts = [25, 22, 19, 17, 15, 13, 12, 11, 10, 9, 7]
    big = list(rng.permutation([f"k{k:02d}" for k, c in enumerate(counts) for _ in range(c)]))
    num = rng.normal(size=n)
    d = build_design(pl.DataFrame({"cat": cat, "big": big, "num": num}), ("cat", "big", "num"), compact=True)
    assert len({id(c.group) for c in d.matrix.codes}) == 2
    arm = (rng.random(n) < 0.4).astype(float)
    Ca = with_column(d.matrix, arm)
    code_cat = np.array([{"a": 0, "b": 1, "c": 2}[v] for v in cat])
    folded = Ca.codes[0].group
    assert Ca.codes[-1].group is folded and Ca.codes[1].group is not folded and len(Ca.groups) == 2
    np.testing.assert_array_equal(folded.codes, code_cat * 2 + arm)
    hand = np.zeros((n, 1 + 2 + 10 + 1 + 1))
    hand[:, 0] = 1
    hand[:, 1], hand[:, 2] = code_cat == 1, code_cat == 2
    for j in range(10):
        hand[:, 3 + j] = [v == f"k{j + 1:02d}" for v in big]
    hand[:, 13], hand[:, 14] = num, arm
    assert d.columns[13] == "num"
    np.testing.assert_array_equal(np.asarray(Ca), hand)
    np.testing.assert_array_equal(np.asarray(Ca[:, :-1]), hand[:, :-1])
    w = rng.random(n)
    b = rng.normal(size=hand.shape[1])
    np.testing.assert_allclose(Ca @ b, hand @ b, rtol=1e-13)
    for m, h in ((Ca, hand), (Ca[:, :-1], hand[:, :-1]), (Ca[:, [14, 13, 2, 5]], hand[:, [14, 13, 2, 5]])):
        np.testing.assert_allclose(m.weighted_gram(w), h.T @ (w[:, None] * h), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(m.weighted_gram(w - 0.5), h.T @ ((w - 0.5)[:, None] * h), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("joint_cells", "rows"), [(compact.JOINT_CELLS, compact.GRAM_ROWS), (0, compact.GRAM_ROWS),
                                                   (compact.JOINT_CELLS, 7001), (0, 7001)])
def test_the_weighted_gram_by_pairs_of_groups_or_by_members_is_the_dense_one(designs, joint_cells, rows, monkeypatch):
    # two groups' codes counted together (their table small enough), or the first group's
    # against each member of the second; the 30,000 rows at once or 7,001 at a time (the
    # last part shorter)
    X, C, _, _ = designs
    monkeypatch.setattr(compact, "JOINT_CELLS", joint_cells)
    monkeypatch.setattr(compact, "GRAM_ROWS", rows)
    n = X.shape[0]
    assert len(C.groups) == 2
    rng = np.random.default_rng(7)
    w = rng.random(n)
    a = (rng.random(n) < 0.5).astype(float)
    num = C.numeric_at[0]
    keep = [j for j in range(1, X.shape[1]) if j != num]  # no intercept, a number left out
    for m, h in ((C, X), (with_column(C, a), with_column(X, a)), (C[:, keep], X[:, keep])):
        np.testing.assert_allclose(m.weighted_gram(w), h.T @ (w[:, None] * h), rtol=1e-12, atol=1e-9)


@pytest.fixture(scope="module")
def designs():
    frame = simulate.analysis_frame(30_000, 1, seed=5)
    dense, small = build_design(frame, compact=False), build_design(frame, compact=True)
    assert isinstance(small.matrix, CompactMatrix) and isinstance(dense.matrix, np.ndarray)
    assert small.columns == dense.columns
    return dense.matrix, small.matrix, dense, small


def test_products_equal_numpy_on_the_dense_matrix(designs):
    X, C, _, _ = designs
    n, p = X.shape
    assert C.shape == X.shape and C.nbytes < X.nbytes / 4
    rng = np.random.default_rng(0)
    v, M, r, R = rng.normal(size=p), rng.normal(size=(p, 3)), rng.normal(size=n), rng.normal(size=(n, 2))
    np.testing.assert_array_equal(np.asarray(C), X)  # every block holds exactly the dense rows
    np.testing.assert_allclose(C @ v, X @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(C @ M, X @ M, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(C.T @ r, X.T @ r, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(C.T @ R, X.T @ R, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(r @ C, r @ X, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(R.T @ C, R.T @ X, rtol=1e-12, atol=1e-9)
    w = rng.random(n)
    np.testing.assert_allclose(xtwx(C, w), xtwx(X, w), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(xtwx(C, w - 0.5), xtwx(X, w - 0.5), rtol=1e-10, atol=1e-8)


def test_selections_equal_the_dense_matrix_s(designs):
    X, C, dense, small = designs
    n = X.shape[0]
    mask = np.random.default_rng(1).random(n) < 0.3
    np.testing.assert_array_equal(C[:, 7], X[:, 7])
    np.testing.assert_array_equal(C[:, -1], X[:, -1])
    np.testing.assert_array_equal(np.asarray(C[:, :-1]), X[:, :-1])
    np.testing.assert_array_equal(np.asarray(C[:, [5, 2]]), X[:, [5, 2]])
    np.testing.assert_array_equal(np.asarray(C[mask]), X[mask])
    np.testing.assert_array_equal(np.asarray(C[::7]), X[::7])
    a = mask.astype(float)
    Ca = with_column(C, a)
    assert isinstance(Ca, CompactMatrix) and Ca.nbytes == C.nbytes + n  # the arm: one byte a row
    np.testing.assert_array_equal(np.asarray(Ca), with_column(X, a))
    s_dense, s_small = subset(dense, mask), subset(small, mask)
    assert s_small.columns == s_dense.columns and isinstance(s_small.matrix, CompactMatrix)
    np.testing.assert_array_equal(np.asarray(s_small.matrix), s_dense.matrix)
    np.testing.assert_allclose(s_small.gram, s_dense.gram, rtol=1e-12)


def test_a_compact_matrix_is_not_expanded_whole_by_accident(designs, monkeypatch):
    _, C, _, _ = designs
    monkeypatch.setattr(compact, "DENSIFY_ROWS", 1000)
    with pytest.raises(TypeError, match="not expanded whole"):
        np.asarray(C)
    assert np.asarray(C[:1000]).shape == (1000, C.shape[1])
    with pytest.raises(TypeError, match="not expanded block by block"):
        next(compact.row_blocks(C, 1000))


def test_the_dense_matrix_is_kept_below_the_limit(monkeypatch):
    frame = simulate.analysis_frame(2_000, 1, seed=2)
    d = build_design(frame)
    assert isinstance(d.matrix, np.ndarray)
    monkeypatch.setattr(design_mod, "DENSE_LIMIT_BYTES", d.matrix.nbytes - 1)
    assert isinstance(build_design(frame).matrix, CompactMatrix)


def test_fits_on_a_compact_design_match_statsmodels(designs):
    X, C, _, _ = designs
    rng = np.random.default_rng(4)
    beta = rng.normal(scale=0.3, size=X.shape[1])
    y = (rng.random(X.shape[0]) < 1 / (1 + np.exp(-(X @ beta)))).astype(float)
    fit = fit_logistic(C, y)
    ref = sm.Logit(y, X).fit(disp=0, tol=1e-12)
    assert fit.converged
    np.testing.assert_allclose(fit.params, ref.params, atol=1e-6)
    codes = np.argmax(X @ rng.normal(scale=0.3, size=(X.shape[1], 3)) + rng.gumbel(size=(X.shape[0], 3)), axis=1)
    mfit = fit_multinomial(C, codes, 3)
    mref = sm.MNLogit(codes, X).fit(disp=0, method="newton", tol=1e-12)
    assert mfit.converged
    np.testing.assert_allclose(mfit.params, np.asarray(mref.params).T, atol=1e-6)


def _tables_agree(a, b):
    for name in ("comparisons", "balance", "diagnostics", "noninferiority"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.columns == y.columns and x.height == y.height, name
        for c in x.columns:
            if x.schema[c] == pl.Float64:
                np.testing.assert_allclose(y[c].to_numpy(), x[c].to_numpy(), rtol=1e-6, atol=1e-10,
                                           err_msg=f"{name}.{c}")
            else:
                assert y[c].to_list() == x[c].to_list(), f"{name}.{c}"


def test_compare_on_compact_designs_gives_the_dense_tables(monkeypatch):
    from pipelines.analysis.comparisons import compare

    frame = simulate.analysis_frame(20_000, 6, seed=3)
    defs = simulate.definitions(6)
    dense = compare(frame, defs, arms=("iop", "php", "residential"))
    # every design compact, and none of them expanded whole (20,000 rows > 1,000)
    monkeypatch.setattr(design_mod, "DENSE_LIMIT_BYTES", 0)
    monkeypatch.setattr(compact, "DENSIFY_ROWS", 1000)
    _tables_agree(dense, compare(frame, defs, arms=("iop", "php", "residential")))


def test_effect_modification_on_a_compact_design_gives_the_dense_subgroups(monkeypatch):
    from pipelines.stats.modification import effect_modification

    monkeypatch.setattr(compact, "DENSIFY_ROWS", 1000)
    frame = simulate.analysis_frame(12_000, 1, seed=8)
    a = (frame["level_group"] == "iop").to_numpy()
    y = frame["d01"].fill_null(0).to_numpy().astype(float)
    sub = frame["primary_substance"].to_numpy()
    out = [effect_modification(y, a, build_design(frame, compact=c), sub, "substance") for c in (False, True)]
    assert [g for g, _ in out[0].subgroups] == [g for g, _ in out[1].subgroups]
    for (_, e0), (_, e1) in zip(out[0].subgroups, out[1].subgroups, strict=True):
        assert e1.rd.estimate == pytest.approx(e0.rd.estimate, rel=1e-8, abs=1e-12)
        assert e1.rd.se == pytest.approx(e0.rd.se, rel=1e-6)
    assert out[1].test.p_value == pytest.approx(out[0].test.p_value, rel=1e-6)
