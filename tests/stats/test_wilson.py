"""Wilson's score interval: one implementation (pipelines.stats.proportions) for the scalar
rate, the rates table's arrays, the OpenSAFELY rounded counts and the service tables — the
same floating-point numbers everywhere, equal to statsmodels' and to the textbook formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from pipelines.analysis import rates as rates_mod
from pipelines.analysis.services import _wilson as service_wilson
from pipelines.disclosure import apply_rates
from pipelines.stats.proportions import wilson, wilson_interval

Z95 = 1.959963984540054


def _pairs() -> tuple[np.ndarray, np.ndarray]:
    """Every k of every n up to 200, random counts up to 10^9, and both ends of huge n."""
    rng = np.random.default_rng(20)
    pairs = [(k, n) for n in range(1, 201) for k in range(n + 1)]
    for n in rng.integers(201, 10**9, 3000):
        pairs.append((int(rng.integers(0, n + 1)), int(n)))
    pairs += [(0, n) for n in (10**6, 10**12)] + [(n, n) for n in (10**6, 10**12)]
    k, n = zip(*pairs, strict=True)
    return np.array(k), np.array(n)


def _textbook(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson (1927) written out in Python floats, bounds held in [0, 1]."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def test_matches_statsmodels_on_many_counts():
    # to rounding: statsmodels' z, norm.isf(alpha / 2), can differ from norm.ppf(0.5 + confidence / 2)
    # in its last bit
    k, n = _pairs()
    for confidence in (0.80, 0.90, 0.95, 0.99):
        lo, hi = wilson_interval(k, n, confidence)
        ref_lo, ref_hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
        assert lo == pytest.approx(ref_lo, abs=1e-15) and hi == pytest.approx(ref_hi, abs=1e-15)


def test_scalar_and_array_forms_are_the_same_numbers_as_the_textbook_formula():
    k, n = _pairs()
    lo, hi = wilson_interval(k, n)
    for i in range(0, k.size, 5):
        w = wilson(int(k[i]), int(n[i]))
        assert type(w.ci_low) is float and type(w.ci_high) is float
        assert (w.ci_low, w.ci_high) == (lo[i], hi[i]) == _textbook(int(k[i]), int(n[i]))
    assert not np.signbit(lo).any() and lo.min() == 0.0 and hi.max() == 1.0


def test_callers_get_the_same_interval():
    # the rates table (Wilson where every cell is large enough), the service tables, and
    # OpenSAFELY's interval of the rounded counts
    rate, low, high, method = rates_mod.intervals([81, 40, 500], [263, 100, 1000])
    assert rate == [81 / 263, 40 / 100, 500 / 1000] and method == ["wilson"] * 3
    assert list(zip(low, high, strict=True)) == [_textbook(81, 263), _textbook(40, 100), _textbook(500, 1000)]
    assert service_wilson(81, 263) == (81 / 263, *_textbook(81, 263))
    row = {"definition_id": "completion", "definition_version": "1", "group_by": "all", "group": "all",
           "numerator": 123, "denominator": 301, "rate": 123 / 301, "ci_low": 0.0, "ci_high": 1.0,
           "ci_method": "wilson", "suppressed": False}
    (out,) = apply_rates([row], rule="opensafely")
    assert (out["numerator"], out["denominator"], out["ci_method"]) == (125, 300, "wilson (rounded counts)")
    assert (out["ci_low"], out["ci_high"]) == _textbook(125, 300)
    assert type(out["ci_low"]) is float and type(out["ci_high"]) is float
