"""Record keys and row hashes of the cross-record checks must not let two different records
look alike: a key is (site_id, episode_id) as a pair, not the two joined with ':', and a row's
hash covers its fields as a list, not joined with '|'."""

from __future__ import annotations

import duckdb
from ingest_helpers import csv_text, discharge, followup, ingest, query, write

from pipelines import contracts
from pipelines.ingest.batch import key_expr, row_hash_expr


def test_sites_and_episodes_with_colons_are_different_keys(tmp_path):
    # joined with ':' both would read 'a:b:c' and be quarantined as one key with two contents
    rows = [discharge("c", site_id="a:b"), discharge("b:c", site_id="a")]
    (row,) = ingest(tmp_path, write(tmp_path / "in" / "discharges.csv", csv_text(rows)))
    assert (row.status, row.rows_loaded, row.rows_quarantined) == ("loaded", 2, 0)
    assert query(tmp_path, "SELECT site_id, episode_id FROM raw_discharges ORDER BY site_id") == [
        ("a", "b:c"), ("a:b", "c")]


def test_a_colon_key_already_loaded_is_not_the_other(tmp_path):
    first = write(tmp_path / "q1" / "discharges.csv", csv_text([discharge("c", site_id="a:b")]))
    second = write(tmp_path / "q2" / "discharges.csv", csv_text([discharge("b:c", site_id="a", sex="male")]))
    (r1,) = ingest(tmp_path, first)
    (r2,) = ingest(tmp_path, second)
    assert (r1.status, r2.status, r2.rows_loaded) == ("loaded", "loaded", 1)
    # the same pair again, with other content, is still caught against the warehouse
    third = write(tmp_path / "q3" / "discharges.csv", csv_text([discharge("b:c", site_id="a", sex="female")]))
    (r3,) = ingest(tmp_path, third)
    assert (r3.status, r3.rows_quarantined) == ("refused", 1)
    assert query(tmp_path, "SELECT reason FROM ingest_quarantine") == [("key already loaded with different content",)]


def test_followup_keys_with_colons(tmp_path):
    d = write(tmp_path / "in" / "discharges.csv", csv_text([discharge("e1", site_id="a:b"), discharge("e1", site_id="a")]))
    f = write(tmp_path / "in" / "followups.csv", csv_text([
        followup("b:f", "e1", site_id="a"), followup("f", "e1", site_id="a:b")]))
    rows = ingest(tmp_path, d, f)
    assert [(r.status, r.rows_loaded) for r in rows] == [("loaded", 2), ("loaded", 2)]


def _hashes(values: list[list[str | None]]) -> list[str]:
    contract = contracts.load("discharges")
    names = [f.name for f in contract.stored_fields]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (" + ", ".join(f'"{n}" VARCHAR' for n in names) + ", i INTEGER)")
    for i, v in enumerate(values):
        con.execute(f"INSERT INTO t VALUES ({', '.join('?' for _ in names)}, ?)", [*v, i])
    return [r[0] for r in con.execute(f"SELECT {row_hash_expr(contract)} FROM t ORDER BY i").fetchall()]


def test_key_text_tells_apart_what_joined_text_would_not():
    contract = contracts.load("discharges")
    assert tuple(contract.key) == ("site_id", "episode_id")
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, site_id VARCHAR, episode_id VARCHAR)")
    pairs = [("a:b", "c"), ("a", "b:c"), ("a", "b"), ("a:", "b"), ("a", ":b"), ("1:a", "b"), ("1", "a:b"),
             (None, "x"), ("", "x"), ("a", None)]
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, *p) for i, p in enumerate(pairs)])
    keys = [r[0] for r in con.execute(f"SELECT {key_expr(contract)} FROM t ORDER BY i").fetchall()]
    # null and '' are the same key part (as before); every other pair is its own key
    assert keys[7] == keys[8]
    assert len(set(keys)) == len(pairs) - 1
    assert keys[2] == "1:a:b"  # strlen(site) ':' site ':' episode


def test_row_hash_tells_apart_what_joined_text_would_not():
    n = len(contracts.load("discharges").stored_fields)
    base = [f"v{i}" for i in range(n)]
    shifted_a, shifted_b = list(base), list(base)
    shifted_a[3:5] = ["x|y", "z"]
    shifted_b[3:5] = ["x", "y|z"]
    null_field, backslash_n = list(base), list(base)
    null_field[3] = None
    backslash_n[3] = "\\N"
    h = _hashes([shifted_a, shifted_b, null_field, backslash_n, list(base), list(base)])
    assert h[0] != h[1]
    assert h[2] != h[3]
    assert h[4] == h[5]  # the same row, the same hash
    assert len(set(h)) == 5
