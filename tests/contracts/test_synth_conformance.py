"""The native files conform to records-v1 (read from the spec itself, not from the generator)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest

# the project's shared specs sit beside the repository (as in CI); a bare clone skips these tests
SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "records-v1.md"
pytestmark = pytest.mark.skipif(not SPEC.exists(), reason=f"{SPEC} not found beside the repository")


def _section(text: str, title: str) -> list[list[str]]:
    body = text.split(f"## {title}")[1].split("\n## ")[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in body.splitlines() if line.startswith("| ") and not line.startswith("| field")]
    return rows


@pytest.fixture(scope="module")
def spec():
    text = SPEC.read_text(encoding="utf-8")
    fields, enums = {}, {}
    for table in ("discharges", "followups"):
        names = []
        for row in _section(text, table):
            for name in row[0].split(","):
                names.append(name.strip())
                if row[1] == "enum" and "table above" not in row[3]:
                    enums[name.strip()] = {w.strip() for w in row[3].split(",")}
        fields[table] = names
    levels = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE)) - {"level_of_care"}
    enums["level_of_care"] = set(levels)
    age = _section(text, "discharges")
    for row in age:
        if row[0] == "age_band":
            enums["age_band"] = {w.strip() for w in row[3].split("(")[0].split(",")}
        if row[0] == "asam_level":
            enums["asam_level"] = {w.strip() for w in row[3].split(",")}
        if row[0] == "race":
            enums["race"] = {w.strip() for w in row[3].split(",")}
        if row[0] == "ethnicity":
            enums["ethnicity"] = {w.strip() for w in row[3].split(",")}
    return fields, enums


def test_spec_parse_is_sane(spec):
    fields, enums = spec
    assert len(fields["discharges"]) == 37 and len(fields["followups"]) == 16
    assert enums["level_of_care"] == {"outpatient", "iop", "php", "residential_short", "residential_long",
                                      "residential_hospital", "inpatient", "detox"}
    assert "incarcerated" in enums["discharge_reason"] and "deceased" in enums["status"]


def test_columns_are_the_spec_fields(spec, discharges, followups):
    fields, _ = spec
    assert discharges.columns == fields["discharges"]
    assert followups.columns == fields["followups"]
    assert discharges.height == 20_000


def test_enumerations(spec, discharges, followups):
    _, enums = spec
    for frame in (discharges, followups):
        for name in frame.columns:
            if name in enums:
                seen = set(frame[name].drop_nulls().unique().to_list())
                assert seen <= enums[name], (name, seen - enums[name])
                assert len(seen) >= 2, name


BOOLS = {"co_occurring_mh", "employed_admit", "employed_discharge", "homeless_admit", "homeless_discharge",
         "mat", "family_involved", "abstinent_30d", "readmitted", "overdose", "employed", "homeless"}
RANGES = {"prior_episodes": (0, 100), "days_waiting": (0, 365), "use_days_admit": (0, 30),
          "use_days_discharge": (0, 30), "phq9_admit": (0, 27), "phq9_discharge": (0, 27),
          "gad7_admit": (0, 21), "gad7_discharge": (0, 21), "arrests_admit": (0, 10),
          "arrests_discharge": (0, 10), "sessions_attended": (0, 5000), "satisfaction": (1, 5),
          "use_days_30": (0, 30), "phq9": (0, 27), "gad7": (0, 21), "arrests_30": (0, 10),
          "er_visits_30": (0, 30)}


def test_types_and_ranges(discharges, followups):
    for frame in (discharges, followups):
        for name in frame.columns:
            col = frame[name].drop_nulls()
            if name in BOOLS:
                assert set(col.unique().to_list()) == {"true", "false"}, name
            if name in RANGES:
                values = col.cast(pl.Int64)  # fails on anything that is not an integer
                lo, hi = RANGES[name]
                assert lo <= values.min() and values.max() <= hi, name
    assert discharges["hours_per_week"].cast(pl.Float64).min() > 0
    assert discharges["episode_cost"].cast(pl.Float64).min() > 0


def test_required_fields_filled(discharges, followups):
    for name in ("episode_id", "person_id", "site_id", "admit_date", "discharge_date", "discharge_reason",
                 "age_band", "sex", "primary_substance", "co_occurring_mh"):
        assert discharges[name].null_count() == 0, name
    for name in ("followup_id", "episode_id", "site_id", "window_days", "contact_date", "status"):
        assert followups[name].null_count() == 0, name
    # level_of_care may be replaced by asam_level, in a small documented share
    no_level = discharges.filter(pl.col("level_of_care").is_null())
    assert no_level["asam_level"].null_count() == 0
    assert 0 < no_level.height / discharges.height < 0.05
    # the ASAM code maps back to the level where both are given (records-v1 table)
    asam_of = {"outpatient": {"1"}, "iop": {"2.1"}, "php": {"2.5"}, "residential_short": {"3.1", "3.3", "3.5"},
               "residential_long": {"3.1", "3.3", "3.5"}, "residential_hospital": {"3.7"}, "inpatient": {"4"}}
    both = discharges.filter(pl.col("level_of_care").is_not_null() & pl.col("asam_level").is_not_null())
    assert both.height > 1000
    for level, code in both.select("level_of_care", "asam_level").unique().iter_rows():
        assert code in asam_of[level], (level, code)


def test_dates(discharges, followups):
    d = discharges.with_columns(pl.col("admit_date").str.to_date("%Y-%m-%d"),
                                pl.col("discharge_date").str.to_date("%Y-%m-%d"))
    assert (d["discharge_date"] >= d["admit_date"]).all()
    # 10 quarters ending 2026Q3: 2024-04-01 .. 2026-09-30
    assert d["discharge_date"].min() >= date(2024, 4, 1)
    assert d["discharge_date"].max() <= date(2026, 9, 30)
    quarters = d.select(pl.col("discharge_date").dt.year() * 10 + pl.col("discharge_date").dt.quarter())
    assert quarters.n_unique() == 10
    f = followups.with_columns(pl.col("contact_date").str.to_date("%Y-%m-%d"),
                               pl.col("window_days").cast(pl.Int64))
    joined = f.join(d.select("episode_id", "site_id", "discharge_date"), on=["episode_id", "site_id"], how="left")
    assert joined["discharge_date"].null_count() == 0  # every follow-up matches a discharge of its site
    days = (joined["contact_date"] - joined["discharge_date"]).dt.total_days()
    assert (days >= 0).all()
    assert joined["contact_date"].max() <= date(2026, 9, 30)
    assert set(f["window_days"].unique().to_list()) == {30, 90, 180, 365}
    # contacts stay near their window (GPRA-like tolerance, at most 60 days late)
    late = days - joined["window_days"]
    assert late.min() >= -7 and late.max() <= 60


def test_ids_unique_and_pseudonymous(discharges, followups):
    assert discharges.select("site_id", "episode_id").is_duplicated().sum() == 0
    assert followups.select("site_id", "followup_id").is_duplicated().sum() == 0
    assert discharges["episode_id"].str.contains(r"^E\d{7}$").all()
    assert discharges["person_id"].str.contains(r"^P\d{7}$").all()
    assert followups["followup_id"].str.contains(r"^F\d{7}$").all()
    assert discharges["site_id"].str.contains(r"^site-[a-z]+$").all()
    identifying = re.compile(r"name|ssn|mrn|phone|mail|address|zip|birth", re.IGNORECASE)
    assert not [c for c in discharges.columns + followups.columns if identifying.search(c)]


def test_measures_only_when_reached(followups):
    not_reached = followups.filter(pl.col("status") != "reached")
    for name in ("abstinent_30d", "use_days_30", "phq9", "employed"):
        assert not_reached[name].null_count() == not_reached.height, name
    reached = followups.filter(pl.col("status") == "reached")
    assert reached["abstinent_30d"].null_count() < 0.06 * reached.height
    # abstinent from every substance implies no primary-substance use days
    abst = reached.filter(pl.col("abstinent_30d") == "true")
    assert (abst["use_days_30"].drop_nulls().cast(pl.Int64) == 0).all()
