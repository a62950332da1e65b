"""comparisons.compare on synthetic analysis frames: shape, rules, populations, follow-up, multiplicity."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest
import simulate
from statsmodels.stats.multitest import multipletests

from pipelines.analysis.comparisons import compare


@pytest.fixture(scope="module")
def frame():
    return simulate.analysis_frame(20_000, 6, seed=3)


@pytest.fixture(scope="module")
def result(frame):
    return compare(frame, simulate.definitions(6), arms=("iop", "php", "residential"), multiarm_outcomes=True)


def test_rows_for_every_definition_method_and_scale(result):
    c = result.comparisons
    binary = c.filter(~pl.col("method").is_in(["iptw_ate_multinomial", "gcomp_multiarm", "aipw_multinomial"]),
                      pl.col("missing_data").is_null())
    for d in ("d01", "d02", "d03", "d04", "d06"):
        got = set(binary.filter(pl.col("definition_id") == d).select("method", "estimand").iter_rows())
        assert got == {
            (m, s)
            for m in ("crude", "gcomp", "iptw_ate", "iptw_att", "overlap", "aipw")
            for s in ("rd", "rr")
        }
    assert (
        c.filter(pl.col("estimate").is_not_null())["ci_low"]
        .le(c.filter(pl.col("estimate").is_not_null())["estimate"])
        .all()
    )


def test_crude_matches_counts(frame, result):
    sub = frame.filter(pl.col("level_group").is_in(["iop", "residential"]), pl.col("d01").is_not_null())
    counts = sub.group_by("level_group").agg(
        pl.col("d01").cast(pl.Float64).mean().alias("p"), pl.len().alias("n")
    )
    p = dict(counts.select("level_group", "p").iter_rows())
    n = dict(counts.select("level_group", "n").iter_rows())
    row = result.comparisons.filter(
        pl.col("definition_id") == "d01", pl.col("method") == "crude", pl.col("estimand") == "rd"
    )
    assert row["estimate"][0] == pytest.approx(p["iop"] - p["residential"])
    assert row["n_arm"][0] == n["iop"] and row["n_reference"][0] == n["residential"]


def test_multiplicity_adjustment_per_family(result):
    fam = result.comparisons.filter(
        pl.col("method") == "aipw", pl.col("estimand") == "rd", pl.col("missing_data").is_null()
    )
    p = fam["p_value"].to_numpy()
    np.testing.assert_allclose(fam["p_holm"].to_numpy(), multipletests(p, method="holm")[1])
    np.testing.assert_allclose(fam["p_bh"].to_numpy(), multipletests(p, method="fdr_bh")[1])


def test_one_propensity_fit_per_distinct_population(result):
    d = result.diagnostics.filter(pl.col("method") == "iptw_ate")
    pops = dict(d.select("population", "definitions").iter_rows())
    # d01, d02, d04 (everyone) and the follow-up block of d05 share one population; d03 and d06
    # (2% excluded each, different people) and d05's reached people have their own.
    assert len(pops) == 4
    assert any(v.split(",") == ["d01", "d02", "d04", "d05"] for v in pops.values())
    assert d["balance_passed"].all() and d["overlap_passed"].all()
    ov = result.balance.filter(pl.col("method") == "overlap")
    assert ov["smd_after"].abs().max() < 1e-8  # exact balance of overlap weights in every population
    assert result.balance.filter(pl.col("method") == "iptw_ate")["smd_before"].abs().max() > 0.5


def test_followup_rows(result):
    c = result.comparisons.filter(pl.col("definition_id") == "d05", pl.col("estimand") == "rd")
    kinds = set(c.select("method", "missing_data").iter_rows())
    assert ("aipw", "cc") in kinds and ("iptw_ate", "itt") in kinds and ("ipw_followup", "ipfw") in kinds
    itt = c.filter(pl.col("missing_data") == "itt")
    assert "unreached counted as failure" in itt["note"][0]


def test_multinomial_rows(result):
    for method in ("iptw_ate_multinomial", "gcomp_multiarm", "aipw_multinomial"):
        m = result.comparisons.filter(pl.col("method") == method, pl.col("estimand") == "rd")
        assert set(m["arm"]) == {"iop", "php"} and m["estimate"].null_count() == 0, method
        assert m.height == 2 * 6  # two arms against residential, six definitions


def test_noninferiority_rows(result):
    ni = result.noninferiority
    assert set(ni["definition_id"]) == {f"d0{k}" for k in range(1, 7)}
    ok = ni.filter(pl.col("estimate").is_not_null())
    assert (ok["noninferior"] == (ok["ci95_low"] > -0.05)).all()
    # the relative verdict beside it: the risk ratio's 95% lower limit against 0.8
    rel = ni.filter(pl.col("rr").is_not_null())
    assert rel.height and (rel["noninferior_relative"] == (rel["rr_ci95_low"] > 0.8)).all()
    assert (rel["rr_ci95_low"] <= rel["rr"]).all() and (rel["rr"] <= rel["rr_ci95_high"]).all()
    # the headline is the conclusion of the basis, chosen by the reference rate (20%)
    for row in ni.iter_rows(named=True):
        assert row["margin_basis"] in ("absolute", "relative") and row["margin_ratio"] == 0.8
        assert row["conclusion"] == row[f"conclusion_{row['margin_basis']}"]
        rate = re.search(r"rate ([0-9.]+)%", row["margin_basis_reason"])
        if rate is not None:
            assert (row["margin_basis"] == "relative") == (float(rate.group(1)) < 20), row["margin_basis_reason"]


def test_a_design_and_propensity_model_from_the_caller(frame, result):
    """comparative_results builds the comparison's design and propensity model once and hands
    them over: the rows are the same as when compare() builds and fits them itself."""
    from pipelines.stats.blas import single_blas_thread
    from pipelines.stats.design import build_design
    from pipelines.stats.propensity import fit_propensity

    rows = frame.filter(pl.col("level_group").is_in(["iop", "residential"]))
    design = build_design(rows)
    with single_blas_thread():  # as inside compare(): the same sums in the same order
        model = fit_propensity(design.matrix, (rows["level_group"] == "iop").to_numpy())
    given = compare(frame, simulate.definitions(6), arms=("iop", "php", "residential"), multiarm_outcomes=True,
                    design=design, propensity=model.fit)
    assert given.comparisons.equals(result.comparisons)
    assert given.balance.equals(result.balance) and given.diagnostics.equals(result.diagnostics)
    with pytest.raises(ValueError, match="design has 100 rows"):
        compare(frame, simulate.definitions(6), design=build_design(rows.head(100)))


def test_too_few_people_is_not_estimable(frame):
    small = pl.concat(
        [
            frame.filter(pl.col("level_group") == "residential"),
            frame.filter(pl.col("level_group") == "iop").head(15),
        ]
    )
    r = compare(small, simulate.definitions(2), methods=("crude", "iptw_ate", "aipw"))
    adj = r.comparisons.filter(pl.col("method") != "crude")
    assert adj["estimate"].null_count() == adj.height
    assert adj["note"].str.contains("fewer than 20 people").all()
    assert r.comparisons.filter(pl.col("method") == "crude")["estimate"].null_count() == 0
    assert r.noninferiority["conclusion"].str.starts_with("not estimable").all()


def test_too_few_events_is_not_estimable(frame):
    f = frame.with_columns(
        pl.when(pl.col("level_group") == "iop").then(pl.lit(1, pl.Int8)).otherwise(pl.col("d01")).alias("d01")
    )
    r = compare(f, simulate.definitions(1), methods=("crude", "gcomp"))
    g = r.comparisons.filter(pl.col("method") == "gcomp")
    assert g["estimate"].null_count() == 2 and "fewer than 5 successes or failures in iop" in g["note"][0]


def test_no_overlap_is_not_estimable():
    rng = np.random.default_rng(4)
    n = 3000
    sev = rng.normal(size=n)
    level = np.where(sev + rng.normal(0, 0.25, n) > 0, "residential", "iop")  # c about 0.97
    f = pl.DataFrame({
        "level_group": level, "level_of_care": level, "use_days_admit": sev,
        "d01": pl.Series((rng.random(n) < 0.5).astype(np.int8)),
    })  # fmt: skip
    r = compare(f, simulate.definitions(1), methods=("crude", "overlap"), covariates=("use_days_admit",))
    o = r.comparisons.filter(pl.col("method") == "overlap")
    assert o["estimate"].null_count() == 2 and o["note"][0].startswith("no overlap")
    assert not r.diagnostics["passed"].any()


def test_accepts_any_definition_like_object(frame):
    @dataclass
    class Other:
        id: str
        version: str
        window_days: int | None
        missing: str | None
        followup: str | None = None
        label: str = "x"

    r = compare(frame, [Other("d02", "2.1", None, "failure")], methods=("crude",))
    assert set(r.comparisons["definition_version"]) == {"2.1"}
    with pytest.raises(KeyError):
        compare(frame, [Other("nope", "1", None, None)], methods=("crude",))


def test_compare_survival_recovers_hazard_ratio():
    from pipelines.analysis.comparisons import compare_survival

    rng = np.random.default_rng(12)
    n = 20_000
    sev = rng.normal(size=n)
    iop = rng.random(n) < 1 / (1 + np.exp(sev))  # sicker people go residential
    # hazard: exp(0.5 sev) for everyone, times HR 0.8 in IOP; exponential with mean 300 days
    t = rng.exponential(300 / np.exp(0.5 * sev + np.log(0.8) * iop))
    readmit = t <= 180
    level = np.where(iop, "iop", "residential")
    f = pl.DataFrame({
        "level_group": level, "level_of_care": level, "use_days_admit": sev,
        "readmit_180d": readmit, "days_to_readmission": pl.Series(np.where(readmit, np.ceil(t), np.nan), nan_to_null=True),
    })  # fmt: skip
    s = compare_survival(f, covariates=("use_days_admit",))
    crude = compare_survival(f, covariates=("use_days_admit",), weights="none")
    # the marginal HR of a conditional HR of 0.8 is attenuated toward 1, but not reversed,
    # and far from the confounded crude HR (sicker people, more readmissions, are residential)
    assert 0.75 < s.cox.hr.estimate < 0.9 and s.cox.hr.ci_high < 1
    assert crude.cox.hr.estimate < s.cox.hr.estimate - 0.1
    km = s.curves["iop"].at_times[180.0]
    # at risk at day 180: censored at the horizon plus readmitted on day 180 itself
    assert km["at_risk"] == int(((~readmit) & iop).sum() + (readmit & (np.ceil(t) == 180) & iop).sum())
    assert s.curves["iop"].at_times[90.0]["survival"] > s.curves["residential"].at_times[90.0]["survival"]


def test_cluster_label_ranks_are_numpy_s_codes_of_the_labels():
    from pipelines.analysis.comparison_plan import label_ranks

    labels = ["site-b", None, "site-a", "Zürich", "site-b", "site-10", "Å", None]
    frame = pl.DataFrame({"site_id": labels}, schema={"site_id": pl.Categorical})
    expected = np.unique(np.array([x if x is not None else "(missing)" for x in labels], dtype=object),
                         return_inverse=True)[1]
    np.testing.assert_array_equal(label_ranks(frame, "site_id"), expected)
    assert label_ranks(frame, None) is None and label_ranks(frame, "absent") is None


def test_subgroup_labels_share_one_string_per_label():
    from pipelines.analysis.comparative import _shared_labels

    values = pl.Series(["opioid", None, "alcohol", "opioid"], dtype=pl.Categorical)
    out = _shared_labels(values)
    assert out.dtype == object and out.tolist() == ["opioid", None, "alcohol", "opioid"]
    assert out[0] is out[3]
    assert _shared_labels(pl.Series([True, None, False])).tolist() == ["true", None, "false"]


def test_compare_lets_go_of_a_frame_it_was_handed_once_its_rows_are_read(monkeypatch):
    # a caller that does not keep the frame (comparative_results) has it freed while the
    # populations and the multinomial job run: at national scale the frame is ~4 GB
    import weakref

    from pipelines.analysis import comparison_rows, comparisons

    box = [simulate.analysis_frame(4_000, 3, seed=9)]
    freed: list[bool] = []
    weakref.finalize(box[0], freed.append, True)
    seen: list[bool] = []
    tables = comparison_rows.with_adjusted_p
    monkeypatch.setattr(comparison_rows, "with_adjusted_p", lambda df: seen.append(bool(freed)) or tables(df))
    result = comparisons.compare(box.pop(), simulate.definitions(3), arms=("iop", "php", "residential"))
    assert seen == [True] and result.comparisons.height > 0


def test_followup_sensitivity_only_for_interview_outcomes(frame):
    """A registry outcome with a window (readmission: no one is interviewed) gets no ITT /
    complete-case / IPW-follow-up rows, and they do not enter its multiplicity families."""
    registry_like = simulate.Definition("d05", 1, 90, "exclude", None)
    interview = simulate.Definition("d05", 1, 90, "exclude", "interview")
    plain = compare(frame, [registry_like], methods=("crude", "iptw_ate"))
    marked = compare(frame, [interview], methods=("crude", "iptw_ate"))
    assert set(plain.comparisons["method"]) == {"crude", "iptw_ate"}
    assert plain.comparisons.filter(pl.col("missing_data").is_not_null()).height == 0
    assert set(marked.comparisons["method"]) == {"crude", "iptw_ate", "ipw_followup"}
    assert set(marked.comparisons["missing_data"].drop_nulls()) == {"cc", "itt", "ipfw"}
    # the standard rows are the same numbers either way
    key = ["method", "estimand"]
    a = plain.comparisons.sort(key).select("estimate", "se")
    b = marked.comparisons.filter(pl.col("missing_data") == "cc").sort(key).select("estimate", "se")
    assert a.equals(b)


def test_multiarm_outcome_models_are_asked_for(frame):
    """g-computation and AIPW over three arms cost three more outcome fits a definition: only when
    asked (analyze --multiarm-outcome-models); multinomial IPTW is always there."""
    r = compare(frame, simulate.definitions(2), arms=("iop", "php", "residential"), methods=("crude", "aipw"))
    assert "iptw_ate_multinomial" in set(r.comparisons["method"])
    assert not {"gcomp_multiarm", "aipw_multinomial"} & set(r.comparisons["method"])
