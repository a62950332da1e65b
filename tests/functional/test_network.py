"""Network studies end to end: one synthetic data set with a known effect split by site across
three warehouses, each packaged by ``levelcare network package``, then pooled by ``levelcare
network combine`` — real ingest, real analyses, real files — beside the single-warehouse
analysis of all of it. And the packages a coordinating centre must refuse."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from extract_files import ingest, read_rows, write_rows

from pipelines.cli import main

GROUPS = {"north": ("site-a", "site-d"), "south": ("site-b", "site-e"), "west": ("site-c", "site-f")}
STUDY = """\
study: iop-residential-completion
title: IOP against residential, completion
definitions:
  - {id: completion, version: 1}
arm: iop
reference: residential
methods: [crude, aipw]
"""





@pytest.fixture(scope="module")
def network(tmp_path_factory):
    from pipelines.analysis.command import analyze
    from pipelines.settings import Settings
    from pipelines.synth import write_synthetic

    root = tmp_path_factory.mktemp("network")
    data = root / "data"
    write_synthetic(data, records=7_000, seed=33, sites=6, effects={"completion": -0.10})
    truth = json.loads((data / "truth.json").read_text(encoding="utf-8"))
    (data / "truth.json").unlink()
    (data / "followups.csv").unlink()  # completion needs none
    rows = read_rows(data / "discharges.csv")
    (root / "study.yaml").write_text(STUDY, encoding="utf-8")
    for label, sites in GROUPS.items():
        folder = root / label
        folder.mkdir()
        write_rows(folder / "discharges.csv", [r for r in rows if r["site_id"] in sites])
        ingest(folder / "w.duckdb", folder / "discharges.csv")
        assert main(["--warehouse", str(folder / "w.duckdb"), "network", "package", "--out", str(root / "pkg" / label),
                     "--study", str(root / "study.yaml"), "--label", label]) == 0
    ingest(root / "all.duckdb", data / "discharges.csv")
    single = analyze(Settings(warehouse=root / "all.duckdb"), root / "single", ["completion"], ["level_of_care"])
    assert main(["network", "combine", *[str(root / "pkg" / g) for g in GROUPS], "--out", str(root / "pooled")]) == 0
    return root, truth, single


def test_packages_hold_aggregates_only(network):
    root, _, _ = network
    for label in GROUPS:
        folder = root / "pkg" / label
        assert sorted(p.name for p in folder.iterdir()) == ["counts.csv", "estimates.csv", "manifest.json", "study.json"]
        text = "".join(p.read_text(encoding="utf-8") for p in folder.iterdir())
        assert "E0" not in text and "P0" not in text  # no episode or person id
        assert re.search(r"(19|20)\d\d-\d\d-\d\d", text) is None  # no date finer than a quarter
        for row in read_rows(folder / "counts.csv"):
            for k in ("numerator", "denominator"):
                assert row[k] == "" or int(row[k]) == 0 or int(row[k]) > 10


def test_pooled_counts_equal_the_single_warehouse_counts(network):
    root, _, single = network
    pooled = {(r["level_of_care"]): r for r in read_rows(root / "pooled" / "rates.csv")}
    for row in single["rates"]:
        if row["group_by"] not in ("all", "level_of_care"):
            continue
        level = "all" if row["group_by"] == "all" else row["group"]
        p = pooled[level]
        if p["sites_hidden"]:  # a package hid this cell: the pooled count leaves it out, and says so
            assert int(p["denominator"]) < row["denominator"]
            continue
        assert (int(p["numerator"]), int(p["denominator"])) == (row["numerator"], row["denominator"]), level


def test_pooled_aipw_covers_the_truth_and_agrees_with_the_single_analysis(network):
    root, truth, single = network
    rows = [r for r in read_rows(root / "pooled" / "comparisons.csv") if r["method"] == "aipw"]
    primary = next(r for r in rows if r["primary"] == "True")
    assert primary["pooling"] == "random_hksj" and int(primary["k"]) == 3 and not primary["sites_not_estimable"]
    ate = truth["effects"]["completion"]["ate"] if isinstance(truth["effects"]["completion"], dict) \
        else truth["effects"]["completion"]
    assert float(primary["ci_low"]) <= ate <= float(primary["ci_high"])
    whole = next(r for r in single["comparisons"] if r["definition_id"] == "completion" and r["method"] == "aipw"
                 and r["estimand"] == "rd")
    assert float(primary["ci_low"]) <= whole["estimate"] <= float(primary["ci_high"])
    fixed = next(r for r in rows if r["pooling"] == "fixed")
    assert abs(float(fixed["estimate"]) - whole["estimate"]) < 2 * whole["se"]
    sites = [r for r in read_rows(root / "pooled" / "sites.csv") if r["method"] == "aipw"]
    assert sorted(r["site"] for r in sites) == sorted(GROUPS)
    from openpyxl import load_workbook

    sheet = load_workbook(root / "pooled" / "network.xlsx")["comparisons"]
    header = [c.value for c in sheet[1]]
    hksj = next(r for r in sheet.iter_rows(min_row=2, values_only=True)
                if r[header.index("method")] == "aipw" and r[header.index("pooling")] == "random_hksj")
    assert hksj[header.index("estimate")] == pytest.approx(float(primary["estimate"]))
    html_page = (root / "pooled" / "network.html").read_text(encoding="utf-8")
    assert html_page.count("<svg") == 2 and "prediction interval" in html_page and "<script" not in html_page
    # crude: pooled from each site's Wald standard error, beside the pooled counts' own difference
    crude = next(r for r in read_rows(root / "pooled" / "comparisons.csv") if r["method"] == "crude" and r["primary"] == "True")
    assert int(crude["k"]) == 3
    whole_crude = next(r for r in single["comparisons"] if r["definition_id"] == "completion"
                       and r["method"] == "crude" and r["estimand"] == "rd")
    assert abs(float(crude["estimate"]) - whole_crude["estimate"]) < 0.02


def _repackage(folder: Path) -> None:
    """Make a tampered package consistent again (its manifest's hashes), as a careful forger would."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def _hostile(network, tmp_path, change) -> str:
    root, _, _ = network
    bad = tmp_path / "west"
    shutil.copytree(root / "pkg" / "west", bad)
    change(bad)
    return str(bad)


def _refused(capsys, root: Path, bad: str) -> str:
    code = main(["network", "combine", str(root / "pkg" / "north"), bad, "--out", str(Path(bad).parent / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert not (Path(bad).parent / "out" / "rates.csv").exists()
    return err


def test_a_row_level_file_is_refused(network, tmp_path, capsys):
    bad = _hostile(network, tmp_path, lambda p: shutil.copy(network[0] / "data" / "discharges.csv", p / "rows.csv"))
    assert "unexpected file(s) rows.csv" in _refused(capsys, network[0], bad)


def test_a_tampered_file_is_refused(network, tmp_path, capsys):
    def change(p: Path) -> None:
        rows = read_rows(p / "counts.csv")
        rows[0]["numerator"] = str(int(rows[0]["numerator"] or 0) + 100)
        write_rows(p / "counts.csv", rows)

    assert "does not match its SHA-256" in _refused(capsys, network[0], _hostile(network, tmp_path, change))


def test_a_count_of_3_is_refused_even_with_consistent_hashes(network, tmp_path, capsys):
    def change(p: Path) -> None:
        rows = read_rows(p / "counts.csv")
        rows[0]["numerator"] = "3"
        write_rows(p / "counts.csv", rows)
        _repackage(p)

    assert "count the cms rule forbids" in _refused(capsys, network[0], _hostile(network, tmp_path, change))


def test_another_study_is_refused_naming_the_difference(network, tmp_path, capsys):
    from pipelines.network.study import spec_hash

    def change(p: Path) -> None:
        info = json.loads((p / "study.json").read_text(encoding="utf-8"))
        info["specification"]["methods"] = ["crude"]
        info["spec_sha256"] = spec_hash(info["specification"])
        (p / "study.json").write_text(json.dumps(info), encoding="utf-8")
        manifest = json.loads((p / "manifest.json").read_text(encoding="utf-8"))
        manifest["spec_sha256"] = info["spec_sha256"]
        (p / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        _repackage(p)

    err = _refused(capsys, network[0], _hostile(network, tmp_path, change))
    assert "another study" in err and "methods" in err


def test_a_study_asking_for_another_definition_version_is_refused(network, tmp_path, capsys):
    root, _, _ = network
    (tmp_path / "study.yaml").write_text(STUDY.replace("version: 1", "version: 9"), encoding="utf-8")
    code = main(["--warehouse", str(root / "north" / "w.duckdb"), "network", "package", "--out", str(tmp_path / "p"),
                 "--study", str(tmp_path / "study.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "version 9" in err and not (tmp_path / "p").exists()


def _to_object_storage(root: Path, prefix: str) -> list[str]:
    """The packages put in object storage (fsspec's in-memory file system stands in for S3)."""
    import fsspec

    fs = fsspec.filesystem("memory")
    for label in GROUPS:
        for f in (root / "pkg" / label).iterdir():
            fs.pipe(f"/{prefix}/{label}/{f.name}", f.read_bytes())
    return [f"memory://{prefix}/{label}" for label in GROUPS]


def test_packages_in_object_storage_combine_like_folders(network, tmp_path, capsys):
    """From object storage: the same pooled files as from the folders; a package there with a
    row-level file beside it is refused, naming its URL."""
    import fsspec

    root, _, _ = network
    urls = _to_object_storage(root, "network-test")
    try:
        assert main(["network", "combine", *urls, "--out", str(tmp_path / "pooled")]) == 0
        for name in ("rates.csv", "comparisons.csv", "sites.csv"):
            assert (tmp_path / "pooled" / name).read_bytes() == (root / "pooled" / name).read_bytes(), name
        fsspec.filesystem("memory").pipe("/network-test/west/rows.csv", b"episode_id\nE0000001\n")
        capsys.readouterr()
        assert main(["network", "combine", *urls, "--out", str(tmp_path / "again")]) == 2
        err = capsys.readouterr().err
        assert "memory://network-test/west: refused: unexpected file(s) rows.csv" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        fsspec.filesystem("memory").rm("/network-test", recursive=True)


@pytest.mark.slow  # starts a temporary Prefect server in this process (~13 s) when none runs yet
def test_packages_in_object_storage_combine_as_a_prefect_flow(network, tmp_path):
    """The Prefect flow (`combine --prefect`) gives the same pooled files, and refuses the same
    package with the same line."""
    import fsspec

    from pipelines.errors import UserError
    from pipelines.network.flow import network_combine_flow

    root, _, _ = network
    urls = _to_object_storage(root, "network-flow")
    try:
        network_combine_flow(urls, str(tmp_path / "pooled"))
        for name in ("rates.csv", "comparisons.csv", "sites.csv"):
            assert (tmp_path / "pooled" / name).read_bytes() == (root / "pooled" / name).read_bytes(), name
        fsspec.filesystem("memory").pipe("/network-flow/west/rows.csv", b"episode_id\nE0000001\n")
        with pytest.raises(UserError, match=r"memory://network-flow/west: refused: unexpected file\(s\) rows.csv"):
            network_combine_flow(urls, str(tmp_path / "again"))
    finally:
        fsspec.filesystem("memory").rm("/network-flow", recursive=True)
