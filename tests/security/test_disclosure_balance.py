"""Balance rows' moments: a 0/1 covariate's mean times its arm's size is a head count."""

from __future__ import annotations

import pytest

from pipelines.disclosure import BALANCE_MOMENTS, apply_balance


def _row(n1: int, n0: int, k1: int, k0: int, binary: bool = True) -> dict:
    """A balance row of a level held by k1 of n1 people in the arm and k0 of n0 in the reference."""
    m1, m0 = k1 / n1, k0 / n0
    return {"population": "p1", "method": "iptw_ate", "covariate": "sex=female", "smd_before": 0.12,
            "smd_after": 0.01, "variance_ratio_before": 1.1, "variance_ratio_after": 1.0, "n_arm": n1,
            "n_reference": n0, "binary": binary, "mean_arm_before": m1, "mean_reference_before": m0,
            "sd_arm_before": (m1 * (1 - m1)) ** 0.5, "sd_reference_before": (m0 * (1 - m0)) ** 0.5,
            "mean_arm_after": 0.4, "mean_reference_after": 0.41, "sd_arm_after": 0.49, "sd_reference_after": 0.49,
            "weight_arm": 120.5, "weight_reference": 118.2}


@pytest.mark.parametrize(("k1", "k0", "hidden"), [
    (40, 30, False),   # 40 of 100 and 30 of 80: every count and complement above 10
    (0, 30, False),    # nobody at the level in the arm: 0 is no small count
    (100, 30, False),  # everybody: the complement is 0
    (3, 30, True),     # 3 people in the arm
    (40, 75, True),    # 5 of the reference are not at the level
    (10, 70, True),    # 10 is small under CMS (1-10), 70 of 80 leaves 10
    (11, 69, False),   # 11 and 69 of 80 (11 left): all above 10
])
def test_binary_means_hide_small_head_counts(k1, k0, hidden):
    out = apply_balance([_row(100, 80, k1, k0)], "cms")[0]
    assert out["suppression"] == ("small" if hidden else None)
    for k in BALANCE_MOMENTS:
        assert (out[k] is None) == hidden, k
    # what balance says is shown either way: the SMDs, the ratios and the total weights
    assert out["smd_before"] == 0.12 and out["variance_ratio_after"] == 1.0 and out["weight_arm"] == 120.5
    assert (out["n_arm"], out["n_reference"]) == (100, 80)


def test_numeric_covariates_show_their_moments_and_rounding_rules_hide_binary_means():
    numeric = apply_balance([_row(100, 80, 3, 30, binary=False)], "cms")[0]
    assert numeric["suppression"] is None and numeric["mean_arm_before"] == pytest.approx(0.03)
    # OpenSAFELY rounds counts to 5: an exact mean x size would give the unrounded count back
    safe = apply_balance([_row(100, 80, 40, 30), _row(100, 80, 40, 30, binary=False)], "opensafely")
    assert safe[0]["suppression"] == "small" and safe[0]["mean_arm_before"] is None
    assert safe[1]["suppression"] is None and safe[1]["mean_arm_before"] == pytest.approx(0.4)
    assert (safe[0]["n_arm"], safe[0]["n_reference"]) == (100, 80)
    small_arm = apply_balance([_row(8, 80, 4, 30)], "cms")[0]
    assert small_arm["n_arm"] is None and small_arm["mean_arm_before"] is None


def test_levels_of_a_covariate_the_rates_are_grouped_by_are_withheld():
    # 40 people of clinic-a in the arm: no small count, but the rates by site show (or withhold)
    # clinic-a's cells, and a withheld one could be worked out from these means
    site = {**_row(100, 80, 40, 30), "covariate": "site_id=clinic-a"}
    missing = {**_row(100, 80, 40, 30), "covariate": "payer__missing"}
    out = apply_balance([site, missing, _row(100, 80, 40, 30)], "cms", published={"site_id", "payer", "quarter"})
    assert [x["suppression"] for x in out] == ["complementary", "complementary", None]
    assert out[0]["mean_arm_before"] is None and out[1]["sd_reference_after"] is None
    assert out[2]["mean_arm_before"] == pytest.approx(0.4)
    assert out[0]["smd_before"] == 0.12  # the SMD stays


def test_arm_sizes_follow_the_rule_given():
    rows = [_row(100, 80, 40, 30)]
    out = apply_balance(rows, "cms", size_shown=lambda row, key, n: key == "n_reference")[0]
    assert out["n_arm"] is None and out["n_reference"] == 80
    # the means are judged on the true sizes, whether or not the sizes are shown
    assert out["suppression"] is None and out["mean_arm_before"] == pytest.approx(0.4)
