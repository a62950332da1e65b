"""TEDS-D eras: detection, harmonisation, and the same records across eras."""

from __future__ import annotations

import pytest
from ingest_helpers import ingest, rows_as_dicts, write
from teds_fixtures import DEFAULT_EXPECTED, teds_csv, teds_record, varied_records

HARMONISED = [k for k in DEFAULT_EXPECTED]


def _load(tmp_path, name: str, text: str, encoding: str = "utf-8"):
    path = write(tmp_path / name, text, encoding=encoding)
    (row,) = ingest(tmp_path, path)
    return row, rows_as_dicts(tmp_path, f"select * from raw_teds_d where _file_sha256 = '{row.sha256}' "
                                        "order by _row_number")


@pytest.mark.parametrize("era", ["2017-2020", "2022", "2021", "2015-2016", "2006-2014"])
def test_era_detected_and_all_rows_loaded(tmp_path, era):
    records = varied_records(36)
    row, loaded = _load(tmp_path, f"teds_{era}.csv", teds_csv(records, era),
                        encoding="latin-1" if era == "2021" else "utf-8")
    assert row.kind == "teds-d"
    assert (row.status, row.rows_read, row.rows_loaded) == ("loaded", 36, 36), row.message
    assert {r["teds_era"] for r in loaded} == {era}


def test_default_record_harmonised_by_hand(tmp_path):
    row, (loaded,) = _load(tmp_path, "tedsd_puf_2019.csv", teds_csv([teds_record()], "2017-2020"))
    assert row.status == "loaded"
    assert {k: loaded[k] for k in HARMONISED} == DEFAULT_EXPECTED


def test_2019_codes_and_2021_labels_load_identically(tmp_path):
    records = varied_records(40)
    _, coded = _load(tmp_path / "a", "tedsd_puf_2019.csv", teds_csv(records, "2017-2020"))
    _, labelled = _load(tmp_path / "b", "tedsd_puf_2021.csv", teds_csv(records, "2021"), encoding="latin-1")
    assert len(coded) == len(labelled) == 40
    strip = lambda rows: [{k: r[k] for k in HARMONISED} for r in rows]
    assert strip(coded) == strip(labelled)


def test_2021_label_none_is_a_value_not_missing(tmp_path):
    # SUB1 1 = "None" (no substance), ARRESTS 0 = "None"
    rec = teds_record(SUB1="1", ARRESTS="0")
    text = teds_csv([rec], "2021")
    assert ",None," in text
    _, (loaded,) = _load(tmp_path, "tedsd_puf_2021.csv", text, encoding="latin-1")
    assert loaded["primary_substance"] == "none"
    assert loaded["arrests_admit"] == 0


def test_2006_2014_old_codes(tmp_path):
    # AGE 12 = 55 and over; FREQ1 3 (1-2 times a week) = some; NOPRIOR 3 = prior episodes;
    # ETHNIC 5 = not Hispanic (old list); SERVSETD gives the setting; no _D variables.
    rec = teds_record(AGE="12", FREQ1="2", NOPRIOR="1", ETHNIC="4", SERVICES_D="5", DISYR="2012")
    row, (loaded,) = _load(tmp_path, "tedsd_0614.csv", teds_csv([rec], "2006-2014"))
    assert row.status == "loaded", row.message
    assert loaded["teds_era"] == "2006-2014"
    assert loaded["age_band"] == "55+"
    assert loaded["use_frequency_admit"] == "some"
    assert loaded["has_prior_episodes"] is True
    assert loaded["ethnicity"] == "not_hispanic"
    assert (loaded["services_d"], loaded["level_of_care"]) == (5, "residential_long")
    assert loaded["use_frequency_discharge"] is None and loaded["employed_discharge"] is None


def test_2015_2016_reads_year_and_services_from_header(tmp_path):
    rec = teds_record(DISYR="2016")
    text = teds_csv([rec], "2015-2016", drop=("DISYR",))
    assert text.splitlines()[0].count(",") == 76  # 77 columns once DISYR is dropped: YEAR carries the year
    row, (loaded,) = _load(tmp_path, "tedsd_2016_puf.csv", text)
    assert (row.status, loaded["teds_era"], loaded["discharge_year"]) == ("loaded", "2015-2016", 2016)


def test_los_stays_ordinal_and_minus_nine_is_null(tmp_path):
    recs = [teds_record(CASEID="1", LOS="37"), teds_record(CASEID="2", LOS="-9"), teds_record(CASEID="3", LOS="31")]
    _, loaded = _load(tmp_path, "tedsd_puf_2019.csv", teds_csv(recs, "2017-2020"))
    assert [r["los_code"] for r in loaded] == [37, None, 31]


def test_sniffed_delimiter_for_tsv_named_bundles(tmp_path):
    row, loaded = _load(tmp_path, "tedsd_puf_2018.tsv", teds_csv(varied_records(10), "2017-2020", delimiter="\t"))
    assert (row.status, len(loaded)) == ("loaded", 10)
