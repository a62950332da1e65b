"""Coverage and bias against known truth (the data generator in simulate.py, not the code under test).

The slow test (``pytest --slow``) runs 200 replicates and holds the adjusted estimators to
93–97% coverage and |bias| < 1 percentage point; the fast one runs 40 replicates with
looser bounds (binomial error of a 40-replicate coverage is about 3.5 points).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from coverage_stats import run

ADJUSTED = ("gcomp", "iptw_ate", "iptw_att", "overlap", "aipw")


def test_coverage_fast():
    s = run(reps=40, n=2000, seed=7)
    for m in ADJUSTED:
        assert s[m]["coverage"] >= 0.85, (m, s[m])
        assert abs(s[m]["bias_pp"]) < 1.5, (m, s[m])
        assert s[m]["mean_se"] == pytest.approx(s[m]["empirical_se"], rel=0.3), (m, s[m])
    assert s["crude"]["bias_pp"] > 10 and s["crude"]["coverage"] < 0.2  # confounding is real


@pytest.mark.slow
def test_coverage_200_replicates():
    s = run(reps=200, n=2000, seed=2026)
    for m in ADJUSTED:
        assert 0.93 <= s[m]["coverage"] <= 0.97, (m, s[m])
        assert abs(s[m]["bias_pp"]) < 1.0, (m, s[m])
        assert s[m]["mean_se"] == pytest.approx(s[m]["empirical_se"], rel=0.15), (m, s[m])
    assert s["crude"]["bias_pp"] > 10 and s["crude"]["coverage"] < 0.05
