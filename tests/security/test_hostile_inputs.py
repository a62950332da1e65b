"""Hostile and malformed input files through ``levelcare ingest`` as a user runs it.

Every file of the corpus (``corpus.py``, generated into tmp folders) must end in a clear
one-line error or a correct load (ledger status loaded, partial or refused, with
rows_read = rows_loaded + rows_quarantined) — never a traceback, a hang (subprocess time
limit) or unbounded memory (the CLI runs under a 2 GiB address-space limit).

Fast run: the ordinary files go through one CLI process together (each file is still its own
transaction and ledger row); files that could hang or blow up run alone. ``--slow``: every
file in its own CLI process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from corpus import CASES, Case
from sec_helpers import CliResult, assert_clean_exit, run_cli

BY_NAME = {c.name: c for c in CASES}


def test_corpus_size() -> None:
    assert len(CASES) >= 60
    assert len(BY_NAME) == len(CASES)


def _build(case: Case, root: Path) -> Path:
    folder = root / case.name
    folder.mkdir(parents=True)
    try:
        return case.build(folder)
    except (OSError, NotImplementedError) as exc:  # e.g. no FIFOs on this file system
        pytest.skip(f"cannot build {case.name} here: {exc}")


def _ingest(paths: list[Path], warehouse: Path, timeout: float) -> CliResult:
    return run_cli(["ingest", *paths, "--warehouse", warehouse, "--json"], timeout=timeout)


@pytest.fixture(scope="module")
def batched(tmp_path_factory) -> dict[str, tuple[CliResult, str]]:
    """The fast run's single CLI process over every ordinary corpus file: case -> (result, file name)."""
    root = tmp_path_factory.mktemp("corpus")
    names: dict[str, str] = {}
    paths = []
    for case in CASES:
        if case.alone:
            continue
        p = _build(case, root)
        names[case.name] = p.name
        paths.append(p)
    assert len(set(names.values())) == len(names), "file names must be unique within the batch"
    res = _ingest(paths, root / "w.duckdb", timeout=900)
    return {c: (res, n) for c, n in names.items()}


def _check(case: Case, res: CliResult, file_name: str | None) -> None:
    assert_clean_exit(res)
    if case.expect == "error":
        assert res.returncode == 2, res.describe()
        assert case.message in res.stderr, res.describe()
        return
    rows = [r for r in res.ledger if file_name is None or r["file"] == file_name]
    assert rows, f"no ledger line for {file_name}\n" + res.describe()
    for row in rows:
        assert row["rows_read"] == row["rows_loaded"] + row["rows_quarantined"], row
        assert row["status"] in ("loaded", "partial", "refused"), row
        assert "\n" not in row["message"], row
        if case.expect != "any":
            assert row["status"] == case.expect, f"{case.name}: {row}"
        if case.message:
            assert case.message in row["message"], f"{case.name}: {row}"
    if any(r["status"] == "refused" for r in res.ledger):
        assert res.returncode == 4, res.describe()
        assert res.stderr.count("levelcare: error:") == 1, res.describe()


def _params(cases: list[Case]) -> list:
    out = []
    for c in cases:
        marks = [pytest.mark.xfail(reason=c.known_defect, strict=True)] if c.known_defect else []
        if c.slow:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


FAST = [c for c in CASES if not c.alone]
ALONE = [c for c in CASES if c.alone]


@pytest.mark.parametrize("case", _params(FAST))
def test_corpus_file_in_batch(case: Case, batched) -> None:
    res, file_name = batched[case.name]
    _check(case, res, file_name)


@pytest.mark.parametrize("case", _params(ALONE))
def test_corpus_file_alone(case: Case, tmp_path: Path) -> None:
    path = _build(case, tmp_path / "in")
    res = _ingest([path], tmp_path / "w.duckdb", timeout=case.timeout)
    _check(case, res, None)


@pytest.mark.slow
@pytest.mark.parametrize("case", _params(FAST))
def test_corpus_file_own_process(case: Case, tmp_path: Path) -> None:
    path = _build(case, tmp_path / "in")
    res = _ingest([path], tmp_path / "w.duckdb", timeout=case.timeout)
    _check(case, res, path.name if path.is_file() else None)


def test_ledger_survives_the_corpus(batched, tmp_path: Path) -> None:
    """After the whole batch the warehouse still has its ledger, one row per refused/loaded file."""
    import duckdb

    res, _ = next(iter(batched.values()))
    warehouse = Path(res.args[res.args.index("--warehouse") + 1])
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        n = con.execute("SELECT count(*) FROM ingest_ledger").fetchone()[0]
        bad = con.execute("SELECT count(*) FROM ingest_ledger WHERE rows_read <> rows_loaded + rows_quarantined"
                          ).fetchone()[0]
    finally:
        con.close()
    assert n >= len([r for r in res.ledger if r["sha256"]]) - 1
    assert bad == 0
    assert os.stat(warehouse).st_mode & 0o077 == 0


def test_fifo_inside_a_folder_is_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    try:
        os.mkfifo(folder / "pipe.csv")
    except (OSError, AttributeError) as exc:
        pytest.skip(f"no FIFOs here: {exc}")
    from sec_helpers import csv_text, discharge

    (folder / "d.csv").write_text(csv_text([discharge(1)]))
    res = _ingest([folder], tmp_path / "w.duckdb", timeout=120)
    assert_clean_exit(res, allowed=(0,))
    assert [r["file"] for r in res.ledger] == ["d.csv"], json.dumps(res.ledger)
