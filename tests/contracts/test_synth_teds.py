"""The TEDS-D format: the 2017-2020 codebook's 76 columns, valid codes, 2019-like marginals."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from pipelines.synth import write_synthetic

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "teds-d.md"
# teds-d.md, "Published marginals", 2019
REASON_2019 = [725_929, 432_610, 95_254, 369_503, 26_005, 3_576, 69_626]
SERVICES_2019 = [43_446, 240_303, 4_243, 179_737, 121_470, 235_771, 884_266, 13_267]
# codes listed in teds-d.md (-9 = missing where allowed)
CODES = {
    "SERVICES": set(range(1, 9)), "SERVICES_D": set(range(1, 9)), "REASON": set(range(1, 8)),
    "LOS": set(range(1, 38)), "FREQ1": {1, 2, 3, -9}, "FREQ1_D": {1, 2, 3, -9}, "AGE": set(range(1, 13)),
    "GENDER": {1, 2, -9}, "VET": {1, 2, -9}, "PREG": {1, 2, -9}, "METHUSE": {1, 2, -9}, "PSYPROB": {1, 2, -9},
    "EMPLOY": {1, 2, 3, 4, -9}, "EMPLOY_D": {1, 2, 3, 4, -9}, "LIVARAG": {1, 2, 3, -9},
    "LIVARAG_D": {1, 2, 3, -9}, "ARRESTS": {0, 1, 2, -9}, "ARRESTS_D": {0, 1, 2, -9},
    "FREQ_ATND_SELF_HELP": {1, 2, 3, 4, 5, -9}, "FREQ_ATND_SELF_HELP_D": {1, 2, 3, 4, 5, -9},
    "NOPRIOR": {0, 1, -9}, "PSOURCE": set(range(1, 8)) | {-9}, "RACE": set(range(1, 10)) | {-9},
    "ETHNIC": {1, 2, 3, 4, 5, -9}, "SUB1": set(range(1, 20)), "SUB2": set(range(1, 20)) | {-9},
    "SUB3": set(range(1, 20)) | {-9}, "SUB1_D": set(range(1, 20)) | {-9}, "HLTHINS": {1, 2, 3, 4, -9},
    "PRIMPAY": set(range(1, 8)) | {-9}, "DAYWAIT": {0, 1, 2, 3, 4, -9},
}
# further codes from the 2017-2019 codebook (not spelled out in teds-d.md)
CODEBOOK = {
    "ROUTE1": {1, 2, 3, 4, 5, -9}, "ROUTE2": {1, 2, 3, 4, 5, -9}, "ROUTE3": {1, 2, 3, 4, 5, -9},
    "FRSTUSE1": set(range(1, 8)) | {-9}, "FRSTUSE2": set(range(1, 8)) | {-9}, "FRSTUSE3": set(range(1, 8)) | {-9},
    "FREQ2": {1, 2, 3, -9}, "FREQ3": {1, 2, 3, -9}, "FREQ2_D": {1, 2, 3, -9}, "FREQ3_D": {1, 2, 3, -9},
    "EDUC": {1, 2, 3, 4, 5, -9}, "MARSTAT": {1, 2, 3, 4, -9}, "DETCRIM": set(range(1, 9)) | {-9},
    "DETNLF": {1, 2, 3, 4, 5, -9}, "DETNLF_D": {1, 2, 3, 4, 5, -9}, "DSMCRIT": set(range(1, 20)) | {-9},
    "PRIMINC": {1, 2, 3, 4, 5, -9}, "REGION": set(range(5)), "DIVISION": set(range(10)), "IDU": {0, 1, -9},
    "ALCDRUG": {0, 1, 2, 3},
}
FLAG_SUB = {"ALCFLG": 2, "COKEFLG": 3, "MARFLG": 4, "HERFLG": 5, "METHFLG": 6, "OPSYNFLG": 7, "PCPFLG": 8,
            "HALLFLG": 9, "MTHAMFLG": 10, "AMPHFLG": 11, "STIMFLG": 12, "BENZFLG": 13, "TRNQFLG": 14,
            "BARBFLG": 15, "SEDHPFLG": 16, "INHFLG": 17, "OTCFLG": 18, "OTHERFLG": 19}


@pytest.fixture(scope="module")
def teds(tmp_path_factory):
    out = tmp_path_factory.mktemp("teds")
    truth = write_synthetic(out, 30_000, 21, fmt="teds-d")
    assert sorted(p.name for p in out.iterdir()) == ["tedsd_puf.csv", "truth.json"]
    return pl.read_csv(out / "tedsd_puf.csv"), truth


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared/reference/teds-d.md not found beside the repository")
def test_columns_are_the_codebook_variables(teds):
    df, _ = teds
    text = REFERENCE.read_text(encoding="utf-8")
    listed = text.split("## Variables (2017–2019, 76)")[1].split("##")[0]
    names = set(re.findall(r"\b[A-Z][A-Z0-9_]*[A-Z0-9]\b", listed))
    assert len(names) == 76
    assert set(df.columns) == names and len(df.columns) == 76
    assert df.height == 30_000
    assert all(dtype == pl.Int64 for dtype in df.dtypes)  # numeric codes only


def test_codes_valid(teds):
    df, _ = teds
    for name, allowed in {**CODES, **CODEBOOK}.items():
        seen = set(df[name].unique().to_list())
        assert seen <= allowed, (name, seen - allowed)
    for name in FLAG_SUB:
        assert set(df[name].unique().to_list()) <= {0, 1}
    assert df["CASEID"].n_unique() == df.height
    assert set(df["DISYR"].unique().to_list()) == {2019}


def test_codes_consistent(teds):
    df, _ = teds
    for name, code in FLAG_SUB.items():
        any_sub = (df["SUB1"] == code) | (df["SUB2"] == code) | (df["SUB3"] == code)
        assert (df[name] == any_sub.cast(pl.Int64)).all(), name
    assert (df.filter(pl.col("GENDER") == 1)["PREG"] == -9).all()
    assert (df.filter(pl.col("EMPLOY") != 4)["DETNLF"] == -9).all()
    assert (df.filter(pl.col("PSOURCE") != 7)["DETCRIM"] == -9).all()
    # no secondary substance: no route, frequency or age at first use for it
    none2 = df.filter(pl.col("SUB2") == 1)
    assert (none2["ROUTE2"] == -9).all() and (none2["FREQ2"] == -9).all() and (none2["FRSTUSE2"] == -9).all()
    # IDU is reported exactly when some route is injection (4)
    inj = (df["ROUTE1"] == 4) | (df["ROUTE2"] == 4) | (df["ROUTE3"] == 4)
    assert (df["IDU"] == inj.cast(pl.Int64)).all()
    # age at first use never after the current age band (AGE 1 = 12-14 -> FRSTUSE at most 2)
    assert (df.filter(pl.col("AGE") == 1)["FRSTUSE1"] <= 2).all()
    # LOS above 30 is a band: ambulatory care (6, 7) mostly lasts beyond a month
    amb = df.filter(pl.col("SERVICES_D").is_in([6, 7]))
    assert float((amb["LOS"] > 30).mean()) > 0.3
    det = df.filter(pl.col("SERVICES_D").is_in([1, 2]))
    assert float((det["LOS"] <= 14).mean()) > 0.9


def _shares(series, k):
    counts = series.value_counts().sort(series.name)
    total = series.len()
    d = dict(zip(counts[series.name].to_list(), counts["count"].to_list()))
    return [d.get(i, 0) / total for i in range(1, k + 1)]


def test_marginals_close_to_2019(teds):
    df, _ = teds
    for got, published in ((_shares(df["SERVICES_D"], 8), SERVICES_2019), (_shares(df["REASON"], 7), REASON_2019)):
        total = sum(published)
        for share, count in zip(got, published):
            assert abs(share - count / total) < 0.02, (got, [c / total for c in published])
    assert abs(float((df["GENDER"] == 1).mean()) - 0.66) < 0.03
    assert 0.35 < float((df["PSYPROB"] == 1).mean()) < 0.5


def test_truth_written_for_teds(teds):
    _, truth = teds
    assert truth["format"] == "teds-d" and truth["followup_rows"] == 0
    assert truth["effects"]["completion"]["n"] > 3000
