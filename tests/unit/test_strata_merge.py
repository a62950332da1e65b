"""Propensity-score strata leave a site only without a count of 1-10: merging by hand."""

from __future__ import annotations

from pipelines.disclosure import get_rule
from pipelines.network.strata import merge_small

SMALL = get_rule("cms").is_small


def test_a_stratum_with_a_small_count_joins_its_smaller_neighbour():
    # [successes in the arm, arm, successes in the reference, reference]
    tables = [[3, 20, 10, 30], [15, 40, 20, 50], [30, 60, 25, 45], [40, 90, 50, 100]]
    # 3 successes: stratum 1 joins stratum 2 (its only neighbour): 18/60 and 30/80
    assert merge_small(tables, SMALL) == [[18, 60, 30, 80], [30, 60, 25, 45], [40, 90, 50, 100]]


def test_the_smaller_neighbour_is_chosen_and_complements_count():
    # stratum 2 has 35 of 40 successes: 5 failures; neighbours hold 50 and 200 people
    tables = [[10, 25, 12, 25], [35, 40, 20, 50], [80, 100, 50, 100]]
    assert merge_small(tables, SMALL) == [[45, 65, 32, 75], [80, 100, 50, 100]]


def test_empty_strata_go_zeros_stay_and_everything_small_becomes_one_table():
    assert merge_small([[0, 0, 0, 0], [20, 40, 0, 30]], SMALL) == [[20, 40, 0, 30]]  # 0 successes is no small count
    tables = [[1, 5, 2, 6], [2, 7, 1, 4], [3, 9, 4, 8]]
    assert merge_small(tables, SMALL) == [[6, 21, 7, 18]]  # the crude table: the caller's totals
    assert merge_small([[1, 5, 2, 6]], SMALL) == [[1, 5, 2, 6]]  # one stratum is left as it is
