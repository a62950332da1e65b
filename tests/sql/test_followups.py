"""Follow-ups: the best attempt per window, mart_followups grid, fu{w}_* columns."""

from __future__ import annotations

from mart_rows import by_key, day, discharge, insert, new_warehouse, rows

from pipelines import marts


def _attempt(fid, window, status, contact_day, **fields):
    return {"followup_id": fid, "episode_id": "e1", "window_days": window, "status": status,
            "contact_date": day(contact_day), **fields}


def _build(followups):
    con = new_warehouse()
    insert(con, "raw_discharges", [discharge("e1", "p1", "iop", 0, 10), discharge("e2", "p2", "iop", 0, 400)])
    insert(con, "raw_followups", followups)
    marts.build(con)
    return con


def test_reached_beats_deceased_beats_refused_beats_unreachable():
    con = _build([
        _attempt("a", 30, "unreachable", 45),
        _attempt("b", 30, "refused", 44),
        _attempt("c", 30, "reached", 38, abstinent_30d=True, phq9=4),
        _attempt("d", 90, "unreachable", 105),
        _attempt("e", 90, "refused", 100),
        _attempt("f", 180, "unreachable", 200),
        _attempt("g", 180, "deceased", 190),
        _attempt("h", 180, "refused", 195),
    ])
    e1 = by_key(con, "mart_episodes")["s1:e1"]
    assert (e1["fu30_status"], e1["fu30_reached"], e1["fu30_abstinent"], e1["fu30_phq9"]) == (
        "reached", True, True, 4)
    assert e1["fu30_attempts"] == 3
    assert (e1["fu90_status"], e1["fu90_reached"]) == ("refused", False)
    assert (e1["fu180_status"], e1["fu180_reached"]) == ("deceased", False)
    # no attempt at all in the 365-day window
    assert (e1["fu365_status"], e1["fu365_reached"], e1["fu365_attempts"]) == (None, False, 0)


def test_ties_go_to_the_latest_contact():
    con = _build([
        _attempt("a", 90, "reached", 95, abstinent_30d=False),
        _attempt("b", 90, "reached", 110, abstinent_30d=True),
        _attempt("c", 90, "reached", 100, abstinent_30d=False),
    ])
    e1 = by_key(con, "mart_episodes")["s1:e1"]
    assert (e1["fu90_abstinent"], e1["fu90_contact_date"]) == (True, day(110))


def test_measurements_count_only_when_reached():
    # a refused attempt carrying an abstinence answer must not become an outcome
    con = _build([_attempt("a", 30, "refused", 40, abstinent_30d=True, employed=True)])
    e1 = by_key(con, "mart_episodes")["s1:e1"]
    assert (e1["fu30_status"], e1["fu30_abstinent"], e1["fu30_employed"]) == ("refused", None, None)


def test_mart_followups_is_episode_by_window_with_due_flag():
    con = _build([_attempt("a", 30, "reached", 40, abstinent_30d=True)])
    grid = rows(con, "select episode_key, window_days, status, reached, is_due from mart_followups "
                     "order by episode_key, window_days")
    assert len(grid) == 2 * 4
    # data end = latest date in the data = day 400 (e2's discharge): e1 (discharged day 10)
    # has been observable 390 days, e2 none
    assert [(g["window_days"], g["is_due"]) for g in grid if g["episode_key"] == "s1:e1"] == [
        (30, True), (90, True), (180, True), (365, True)]
    assert {g["is_due"] for g in grid if g["episode_key"] == "s1:e2"} == {False}
    assert [g["status"] for g in grid if g["episode_key"] == "s1:e1"] == ["reached", None, None, None]
