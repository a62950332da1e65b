"""Trends by level of care and quarter are shown only where they cost no row of the
period: ``pipelines.analysis.command._level_trends`` discloses them together with the rows
already disclosed, and drops a definition's level x quarter rows when that would hide another
row. Expectations are worked out by hand; the attacker of test_disclosure_reasons_and_periods checks that
what is published pins no hidden count."""

from __future__ import annotations

from test_disclosure_reasons_and_periods import _assert_nothing_recoverable, _rate, _total

from pipelines.analysis.command import _level_trends
from pipelines.disclosure import apply_rates

PERIOD = ["2026Q3"]  # the period: one quarter; the trend window adds 2026Q2


def _family(iop_q2: tuple[int, int], definition="completion"):
    """Period rows (all, level groups, quarter) and level x quarter rows of one definition;
    iop|2026Q2 is ``iop_q2`` (numerator, denominator); every other cell is large."""
    k, n = iop_q2
    period = [
        _rate("all", None, 90, 200, definition),
        _rate("level_group", "iop", 50, 100, definition),
        _rate("level_group", "residential", 40, 100, definition),
    ]
    quarters = [_rate("quarter", "2026Q2", k + 40, n + 91, definition), _rate("quarter", "2026Q3", 90, 200, definition)]
    crossed = [
        _rate("level_group,quarter", "iop|2026Q2", k, n, definition),
        _rate("level_group,quarter", "residential|2026Q2", 40, 91, definition),
        _rate("level_group,quarter", "iop|2026Q3", 50, 100, definition),
        _rate("level_group,quarter", "residential|2026Q3", 40, 100, definition),
    ]
    return period, quarters, crossed


def _first_pass(period, quarters):
    shown = apply_rates([*period, *quarters], "cms", period_quarters=PERIOD)
    return shown[:len(period)], shown[len(period):]


def test_large_cells_give_every_level_its_trend():
    period, quarters, crossed = _family((30, 60))
    p, q = _first_pass(period, quarters)
    out = _level_trends([*p, *q], crossed, "cms", PERIOD)
    assert [x["group"] for x in out] == [x["group"] for x in crossed]
    assert all(x["rate"] is not None for x in out)  # nothing small: all shown


def test_a_small_cell_never_costs_a_period_row_and_pins_nothing():
    period, quarters, crossed = _family((5, 9))  # iop|2026Q2: 5 of 9, a count the CMS rule hides
    p, q = _first_pass(period, quarters)
    assert all(x["rate"] is not None for x in [*p, *q])  # the first pass hides nothing
    out = _level_trends([*p, *q], crossed, "cms", PERIOD)
    published = [*p, *q, *out]
    # the period's rows stand as the first pass left them (the function returns level rows only)
    assert all(x["group_by"] == "level_group,quarter" for x in out)
    if out:  # kept: the small cell is hidden and re-disclosing the whole hides nothing more
        small = next(x for x in out if x["group"] == "iop|2026Q2")
        assert small["numerator"] is None and small["suppression"] == "small"
        again = apply_rates(published, "cms", period_quarters=PERIOD)
        assert [x["numerator"] is None for x in again] == [x["numerator"] is None for x in published]
    # an attacker knowing every relation between the published rows pins no hidden numerator:
    # all = the period quarter; a quarter = its level cells; a level's period row = its 2026Q3
    # cell; the two-quarter window totals (of the quarter rows and of each level's line) are
    # assumed published elsewhere
    truth = [*period, *quarters, *crossed]
    names = {x["group"] or "all" for x in published}
    eqs = [_total(["2026Q3"], total="all"), _total(["2026Q2", "2026Q3"], known=135)]
    if "iop|2026Q2" in names:
        eqs += [_total(["iop|2026Q2", "residential|2026Q2"], total="2026Q2"),
                _total(["iop|2026Q3", "residential|2026Q3"], total="2026Q3"),
                _total(["iop|2026Q3"], total="iop"), _total(["residential|2026Q3"], total="residential"),
                _total(["iop|2026Q2", "iop|2026Q3"], known=55), _total(["residential|2026Q2", "residential|2026Q3"],
                                                                         known=80)]
    _assert_nothing_recoverable([x for x in truth if (x["group"] or "all") in names], published, eqs)


def test_definitions_are_decided_one_by_one():
    big = _family((30, 60), "completion")
    small = _family((5, 9), "retention_90d")
    p1, q1 = _first_pass(*big[:2])
    p2, q2 = _first_pass(*small[:2])
    out = _level_trends([*p1, *q1, *p2, *q2], [*big[2], *small[2]], "cms", PERIOD)
    assert [x["group"] for x in out if x["definition_id"] == "completion"] == [x["group"] for x in big[2]]


def test_nothing_to_add_adds_nothing():
    period, quarters, _ = _family((30, 60))
    p, q = _first_pass(period, quarters)
    assert _level_trends([*p, *q], [], "cms", PERIOD) == []


def test_a_small_cell_with_room_for_its_complements_keeps_the_trend():
    """Window 2026Q1-Q3, period 2026Q3: iop|2026Q2 (5 of 9) can be protected by hiding cells
    before the period only (iop|2026Q1, residential|2026Q1 and |2026Q2), so no period row pays
    and the level trend is kept, with the small cell hidden as small."""
    period = [_rate("all", None, 90, 200), _rate("level_group", "iop", 50, 100),
              _rate("level_group", "residential", 40, 100)]
    quarters = [_rate("quarter", "2026Q1", 80, 160), _rate("quarter", "2026Q2", 45, 100),
                _rate("quarter", "2026Q3", 90, 200)]
    crossed = [_rate("level_group,quarter", "iop|2026Q1", 40, 80), _rate("level_group,quarter", "residential|2026Q1", 40, 80),
               _rate("level_group,quarter", "iop|2026Q2", 5, 9), _rate("level_group,quarter", "residential|2026Q2", 40, 91),
               _rate("level_group,quarter", "iop|2026Q3", 50, 100),
               _rate("level_group,quarter", "residential|2026Q3", 40, 100)]
    p, q = _first_pass(period, quarters)
    out = _level_trends([*p, *q], crossed, "cms", PERIOD)
    assert [x["group"] for x in out] == [x["group"] for x in crossed]
    by = {x["group"]: x for x in out}
    assert by["iop|2026Q2"]["numerator"] is None and by["iop|2026Q2"]["suppression"] == "small"
    assert by["iop|2026Q3"]["numerator"] == 50 and by["residential|2026Q3"]["numerator"] == 40
    published = [*p, *q, *out]
    again = apply_rates(published, "cms", period_quarters=PERIOD)
    assert [x["numerator"] is None for x in again] == [x["numerator"] is None for x in published]
    eqs = [_total(["2026Q3"], total="all"), _total(["2026Q1", "2026Q2", "2026Q3"], known=215),
           _total(["iop|2026Q1", "residential|2026Q1"], total="2026Q1"),
           _total(["iop|2026Q2", "residential|2026Q2"], total="2026Q2"),
           _total(["iop|2026Q3", "residential|2026Q3"], total="2026Q3"),
           _total(["iop|2026Q3"], total="iop"), _total(["residential|2026Q3"], total="residential"),
           _total(["iop|2026Q1", "iop|2026Q2", "iop|2026Q3"], known=95),
           _total(["residential|2026Q1", "residential|2026Q2", "residential|2026Q3"], known=120)]
    _assert_nothing_recoverable([*period, *quarters, *crossed], published, eqs)
