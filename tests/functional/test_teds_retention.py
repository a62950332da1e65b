"""retention_90d on TEDS-D data, from raw TEDS-D codes through ingest, the marts and the rates.

TEDS-D rows have no los_days, only a band: a condition such as ``los_days >= 90 or (los_days is
null and los_band >= 34)`` gives ``NULL or FALSE`` = NULL for every band below 34, which
``missing: exclude`` drops from the denominator, so retention would read 100% in every setting.
Here a small TEDS-D file
is written with raw codes (SAMHSA TEDS-D codebook: LOS 1-30 = days as is, 31 = 31-45,
32 = 46-60, 33 = 61-90, 34 = 91-120, 35 = 121-180, 36 = 181-365, 37 = more than a year,
-9 = missing; SERVICES_D 2 = detox free-standing residential, 5 = long-term residential,
6 = intensive outpatient, 7 = non-intensive outpatient), ingested like a user's file, and the
expected numerator and denominator are counted by hand from those raw codes: retained = LOS
code 34 or above, among the rows whose LOS is not -9. A few native records (LOS in days from
their dates) ride along to show that native rows still count as before.
"""

from __future__ import annotations

import duckdb
import pytest
from ingest_helpers import csv_text, discharge, ingest, write
from teds_fixtures import teds_csv, teds_record

from pipelines import marts
from pipelines.analysis.rates import rates
from pipelines.definitions import registry

# (SERVICES_D, LOS) per raw TEDS-D record, in file order (CASEID t01, t02, ...)
TEDS_RAW: list[tuple[int, int]] = [
    # intensive outpatient: bands below, at and above 34, and two missing
    (6, 10), (6, 30), (6, 31), (6, 32), (6, 33), (6, 33), (6, 34), (6, 35), (6, 36), (6, 37),
    (6, -9), (6, -9),
    # non-intensive outpatient
    (7, 1), (7, 20), (7, 31), (7, 33), (7, 34), (7, 34), (7, 36), (7, 37), (7, 37), (7, -9),
    # long-term residential
    (5, 5), (5, 28), (5, 33), (5, 34), (5, -9),
    # free-standing residential detox: nobody retained 90 days (and one missing)
    (2, 3), (2, 7), (2, -9),
]
SERVICES_D_LEVEL = {2: "detox", 5: "residential_long", 6: "iop", 7: "outpatient"}

# Native IOP records: (episode_id, admit date, discharge date, days in treatment)
NATIVE_RAW: list[tuple[str, str, str, int]] = [
    ("n89", "2026-01-05", "2026-04-04", 89),   # one day short
    ("n90", "2026-01-05", "2026-04-05", 90),   # exactly 90 days: retained
    ("n120", "2026-01-05", "2026-05-05", 120),
    ("n30", "2026-01-05", "2026-02-04", 30),
]

# Worked out by hand from TEDS_RAW (LOS >= 34 / LOS != -9) and NATIVE_RAW (days >= 90):
#   iop TEDS-D:  34, 35, 36, 37 of 10 known            -> 4 / 10; native 90, 120 of 4 -> 2 / 4
#   outpatient:  34, 34, 36, 37, 37 of 9 known         -> 5 / 9
#   residential_long: 34 of 4 known                    -> 1 / 4
#   detox:       none of 2 known                       -> 0 / 2
HAND_TEDS = {"iop": (4, 10), "outpatient": (5, 9), "residential_long": (1, 4), "detox": (0, 2)}
HAND_NATIVE_IOP = (2, 4)


def _count_teds_by_hand() -> dict[str, tuple[int, int]]:
    """Retained / known LOS per setting, straight from the raw codes."""
    out: dict[str, tuple[int, int]] = {}
    for services_d, level in SERVICES_D_LEVEL.items():
        known = [los for s, los in TEDS_RAW if s == services_d and los != -9]
        out[level] = (sum(1 for los in known if los >= 34), len(known))
    return out


def _count_native_by_hand() -> tuple[int, int]:
    days = [d for _, _, _, d in NATIVE_RAW]
    return sum(1 for d in days if d >= 90), len(days)


def test_hand_counts_agree_with_the_raw_codes():
    assert _count_teds_by_hand() == HAND_TEDS
    assert _count_native_by_hand() == HAND_NATIVE_IOP


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teds_retention")
    records = [teds_record(CASEID=f"t{i:02d}", SERVICES=str(s), SERVICES_D=str(s), LOS=str(los))
               for i, (s, los) in enumerate(TEDS_RAW, start=1)]
    teds_path = write(tmp / "in" / "tedsd_puf_2019.csv", teds_csv(records, "2017-2020"))
    native_path = write(tmp / "in" / "discharges.csv", csv_text(
        [discharge(e, admit_date=a, discharge_date=d) for e, a, d, _ in NATIVE_RAW]))
    loaded = ingest(tmp, teds_path, native_path)
    assert sorted((r.kind, r.status, r.rows_loaded) for r in loaded) == [
        ("discharges", "loaded", len(NATIVE_RAW)), ("teds-d", "loaded", len(TEDS_RAW))
    ], [r.message for r in loaded]
    con = duckdb.connect(str(tmp / "w.duckdb"))
    marts.build(con)
    yield con
    con.close()


@pytest.fixture(scope="module")
def retention(warehouse):
    defs = registry.select(registry.load_registry(None), ["retention_90d"])
    table = rates(warehouse, defs, ["level_of_care", "site"])
    return {(r["group_by"], r["group"]): r for r in table.to_dicts()}


def _counts(retention, group_by, group):
    row = retention.get((group_by, group))
    return None if row is None else (row["numerator"], row["denominator"])


def test_teds_retention_by_setting_matches_the_hand_count(retention):
    # the TEDS-D rows are the only ones in these settings except IOP, which also has the native rows
    for level, (num, den) in _count_teds_by_hand().items():
        if level == "iop":
            num, den = num + HAND_NATIVE_IOP[0], den + HAND_NATIVE_IOP[1]
        assert _counts(retention, "level_of_care", level) == (num, den), level
    assert _counts(retention, "level_of_care", "iop") == (4 + 2, 10 + 4)


def test_teds_and_native_totals_match_the_hand_count(retention):
    teds = _count_teds_by_hand().values()
    teds_total = (sum(n for n, _ in teds), sum(d for _, d in teds))
    assert teds_total == (10, 25)
    # STFIPS 6 -> site state-06; the native records' site is s1
    assert _counts(retention, "site", "state-06") == teds_total
    assert _counts(retention, "site", "s1") == HAND_NATIVE_IOP
    assert _counts(retention, "all", None) == (teds_total[0] + 2, teds_total[1] + 4)
    # a retention of 100% in any setting is the symptom of failures dropped as missing
    assert all(row["rate"] < 1 for row in retention.values())


def test_each_teds_row_is_success_failure_or_excluded_by_its_los_code(warehouse):
    from pipelines.definitions.evaluate import evaluate

    defs = registry.select(registry.load_registry(None), ["retention_90d"])
    got = dict(zip(*evaluate(warehouse, defs).select("episode_id", "retention_90d").to_dict().values(),
                   strict=True))
    for i, (_, los) in enumerate(TEDS_RAW, start=1):
        expected = None if los == -9 else int(los >= 34)
        assert got[f"t{i:02d}"] == expected, (i, los)
    assert [got[e] for e, *_ in NATIVE_RAW] == [0, 1, 1, 0]


def test_retention_definition_version_was_raised():
    # version 1's condition dropped TEDS-D failures as missing: reruns must see a new version
    assert registry.load_registry(None)["retention_90d"].version >= 2
