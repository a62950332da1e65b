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
