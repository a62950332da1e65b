"""The same data give the same numbers, whatever order the marts hold their rows in.

A build of the marts on several threads does not keep one row order (at 1.7 M episodes three
builds gave three orders of the same rows), and the statistics' sums, starting values and
subgroup order follow the order of the frame they read. Here the marts of one small warehouse
are rewritten in other orders and every table of ``comparative_results`` must come out the
same, to the last digit. The expectation is the first run's own output: it is not derived from
the code's arithmetic, only from the claim that row order must not matter.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines import marts
from pipelines.analysis.comparative import analysis_frame, comparative_results
from pipelines.definitions import registry
from pipelines.ingest.core import ingest_paths
from pipelines.settings import Settings
from pipelines.synth import write_synthetic
from pipelines.warehouse import connect

ARMS = ("iop", "php", "residential")
# other orders of the same rows: by a hash of the key, by the key backwards, by level and date
ORDERS = ("md5(episode_key)", "episode_key desc", "level_group desc, discharge_date, md5(episode_key) desc")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("row-order")
    write_synthetic(root / "data", records=3000, seed=17)
    (root / "data" / "truth.json").unlink()
    settings = Settings(warehouse=root / "levelcare.duckdb")
    loaded = ingest_paths(settings, [root / "data"], docs=False)
    assert [r.status for r in loaded] == ["loaded", "loaded"]
    with connect(settings.warehouse) as con:
        marts.build(con)
    return settings.warehouse


def _results(con, definitions) -> str:
    return json.dumps(comparative_results(con, definitions, arms=ARMS), sort_keys=True)


def test_statistics_do_not_depend_on_the_marts_row_order(warehouse: Path):
    definitions = registry.select(registry.load_registry(None), None)
    with connect(warehouse) as con:
        first = _results(con, definitions)
        frame = analysis_frame(con, definitions)
        assert json.loads(first)["modification"], "no subgroup rows: the order of subgroups is not tested"
        for order in ORDERS:
            con.execute(f"create or replace table mart_episodes as select * from mart_episodes order by {order}")
            (head,) = con.execute("select episode_key from mart_episodes limit 1").fetchone()
            assert _results(con, definitions) == first, f"mart_episodes ordered by {order} (first row {head!r})"
            # the notebooks' frame too: the same rows in the same order
            assert analysis_frame(con, definitions).equals(frame), order


def test_a_native_and_a_teds_episode_with_one_key_come_in_source_order():
    """A native discharge and a TEDS-D one may share site and episode id (so episode_key): the
    source breaks the tie ('native' < 'teds-d'), whatever order the mart holds them in."""
    from mart_rows import discharge, insert, new_warehouse

    from pipelines.analysis.comparative import statistics_frame

    con = new_warehouse()
    # the native rows are female, the TEDS-D row male (mart_rows' defaults): sex tells them apart
    insert(con, "raw_discharges", [discharge("k1", "p1", "iop", 0, 30, site_id="state-01"),
                                   discharge("k0", "p2", "iop", 0, 30, site_id="state-01")])
    insert(con, "raw_teds_d", [{"episode_id": "k1", "services_d": 7, "level_of_care": "iop",
                                "discharge_reason": "completed", "los_code": 30}])
    marts.build(con)
    definitions = registry.select(registry.load_registry(None), None)
    for order in ("source", "source desc", "episode_key desc, source desc"):
        con.execute(f"create or replace table mart_episodes as select * from mart_episodes order by {order}")
        frame = statistics_frame(con, definitions, ["iop"])
        # 'state-01:k0' (native), then 'state-01:k1' native, then 'state-01:k1' TEDS-D
        assert frame.get_column("sex").cast(str).to_list() == ["female", "female", "male"], order
