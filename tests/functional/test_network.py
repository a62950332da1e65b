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
methods: [crude, aipw, ps_stratified]
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
    single = analyze(Settings(warehouse=root / "all.duckdb"), root / "single", ["completion"],
                     ["level_of_care", "level_group"])
    assert main(["network", "combine", *[str(root / "pkg" / g) for g in GROUPS], "--out", str(root / "pooled")]) == 0
    return root, truth, single


def test_packages_hold_aggregates_only(network):
    root, _, _ = network
    for label in GROUPS:
        folder = root / "pkg" / label
        assert sorted(p.name for p in folder.iterdir()) == ["balance.csv", "counts.csv", "estimates.csv", "manifest.json",
                                                            "strata.csv", "study.json"]
        text = "".join(p.read_text(encoding="utf-8") for p in folder.iterdir())
        assert "E0" not in text and "P0" not in text  # no episode or person id
        assert re.search(r"(19|20)\d\d-\d\d-\d\d", text) is None  # no date finer than a quarter
        for row in read_rows(folder / "counts.csv"):
            for k in ("numerator", "denominator"):
                assert row[k] == "" or int(row[k]) == 0 or int(row[k]) > 10


def test_pooled_counts_equal_the_single_warehouse_counts(network):
    root, _, single = network
    pooled = {(r["group_by"], r["group"]): r for r in read_rows(root / "pooled" / "rates.csv")}
    for row in single["rates"]:
        if row["group_by"] not in ("all", "level_of_care", "level_group"):
            continue
        p = pooled[(row["group_by"], "all" if row["group_by"] == "all" else row["group"])]
        if p["sites_hidden"]:  # a package hid this cell: the pooled count leaves it out, and says so
            assert p["note"] == "hidden at every site" if p["denominator"] == "" else \
                int(p["denominator"]) < row["denominator"]
            continue
        assert (int(p["numerator"]), int(p["denominator"])) == (row["numerator"], row["denominator"]), \
            (row["group_by"], row["group"])


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
    # one forest plot per method: crude, aipw, ps_stratified
    assert html_page.count("<svg") == 3 and "prediction interval" in html_page and "<script" not in html_page
    # crude: pooled from each site's Wald standard error, beside the pooled counts' own difference
    crude = next(r for r in read_rows(root / "pooled" / "comparisons.csv") if r["method"] == "crude" and r["primary"] == "True")
    assert int(crude["k"]) == 3
    whole_crude = next(r for r in single["comparisons"] if r["definition_id"] == "completion"
                       and r["method"] == "crude" and r["estimand"] == "rd")
    assert abs(float(crude["estimate"]) - whole_crude["estimate"]) < 0.02


def test_the_one_shot_mantel_haenszel_estimate_comes_from_the_sites_counts(network):
    root, _, single = network
    mh = next(r for r in read_rows(root / "pooled" / "comparisons.csv") if r["pooling"] == "mantel_haenszel")
    assert mh["method"] == "crude" and mh["primary"] == "False" and int(mh["k"]) == 3
    # the weighted-average form, from each package's level-group counts: sum W d / sum W
    num = den = 0.0
    for g in GROUPS:
        rows = {r["group"]: r for r in read_rows(root / "pkg" / g / "counts.csv") if r["group_by"] == "level_group"}
        a, n1 = int(rows["iop"]["numerator"]), int(rows["iop"]["denominator"])
        c, n0 = int(rows["residential"]["numerator"]), int(rows["residential"]["denominator"])
        w = n1 * n0 / (n1 + n0)
        num += w * (a / n1 - c / n0)
        den += w
    assert float(mh["estimate"]) == pytest.approx(num / den, rel=1e-12)
    whole = next(r for r in single["comparisons"] if r["definition_id"] == "completion" and r["method"] == "crude"
                 and r["estimand"] == "rd")
    assert float(mh["ci_low"]) <= whole["estimate"] <= float(mh["ci_high"])
    assert 0.5 < float(mh["se"]) / whole["se"] < 2 if whole.get("se") else float(mh["se"]) > 0


def test_the_one_shot_propensity_stratified_estimate_covers_the_truth(network):
    root, truth, single = network
    ate = truth["effects"]["completion"]["ate"] if isinstance(truth["effects"]["completion"], dict) \
        else truth["effects"]["completion"]
    rows = [r for r in read_rows(root / "pooled" / "comparisons.csv") if r["method"] == "ps_stratified"]
    one_shot = next(r for r in rows if r["pooling"] == "mantel_haenszel")
    assert one_shot["primary"] == "True" and int(one_shot["k"]) == 3 and not one_shot["sites_not_estimable"]
    assert float(one_shot["ci_low"]) <= ate <= float(one_shot["ci_high"])
    whole = next(r for r in single["comparisons"] if r["definition_id"] == "completion" and r["method"] == "aipw"
                 and r["estimand"] == "rd")
    assert float(one_shot["ci_low"]) <= whole["estimate"] <= float(one_shot["ci_high"])
    # the crude difference is confounded (sicker people go residential); the strata remove most of it
    crude = next(r for r in single["comparisons"] if r["definition_id"] == "completion" and r["method"] == "crude"
                 and r["estimand"] == "rd")
    assert abs(float(one_shot["estimate"]) - whole["estimate"]) < abs(crude["estimate"] - whole["estimate"])
    # the estimate from the packages' strata.csv alone, by the weighted-average form
    num = den = 0.0
    strata = 0
    for g in GROUPS:
        for r in read_rows(root / "pkg" / g / "strata.csv"):
            a, n1, c, n0 = (int(r[k]) for k in ("n_arm_successes", "n_arm", "n_reference_successes", "n_reference"))
            for v in (a, n1 - a, c, n0 - c):
                assert v == 0 or v > 10, r  # no small count leaves a site
            strata += 1
            if n1 and n0:
                w = n1 * n0 / (n1 + n0)
                num += w * (a / n1 - c / n0)
                den += w
        # a site's strata add up to its arm's and reference's episodes in counts.csv
        totals = {r["group"]: int(r["denominator"]) for r in read_rows(root / "pkg" / g / "counts.csv")
                  if r["group_by"] == "level_group" and r["group"] in ("iop", "residential")}
        mine = read_rows(root / "pkg" / g / "strata.csv")
        assert sum(int(r["n_arm"]) for r in mine) == totals["iop"]
        assert sum(int(r["n_reference"]) for r in mine) == totals["residential"]
    assert 3 <= strata <= 15
    assert float(one_shot["estimate"]) == pytest.approx(num / den, rel=1e-12)
    sites = [r for r in read_rows(root / "pooled" / "sites.csv") if r["method"] == "ps_stratified"]
    assert sorted(r["site"] for r in sites) == sorted(GROUPS) and all(r["estimate"] for r in sites)


def test_a_cell_hidden_at_every_site_has_no_pooled_count():
    from pipelines.network.combine import Package, pool_counts

    def package(label: str, shown: bool) -> Package:
        cells = {"numerator": "40", "denominator": "90"} if shown else {"numerator": "", "denominator": ""}
        counts = [{"definition_id": "completion", "definition_version": "1", "group_by": "level_of_care",
                   "group": "detox", **cells, "suppression": "" if shown else "small"}]
        return Package(label, label, {}, counts, [], [], [])

    hidden = pool_counts([package("a", False), package("b", False)])[0]
    assert hidden["numerator"] is None and hidden["denominator"] is None and hidden["rate"] is None
    assert hidden["sites_hidden"] == "a;b" and hidden["note"] == "hidden at every site"
    one = pool_counts([package("a", True), package("b", False)])[0]
    assert (one["numerator"], one["denominator"], one["sites_hidden"]) == (40, 90, "b")


def test_pooled_balance_before_weighting_is_the_single_warehouse_balance(network):
    # before weighting, the split warehouses hold the single warehouse's people: each arm's mean
    # and SD pooled from the packages' moments are the whole population's, and so is the SMD
    root, _, single = network
    pooled = {(r["method"], r["covariate"]): r for r in read_rows(root / "pooled" / "balance.csv")
              if r["definition_id"] == "completion"}
    population = next(r["population"] for r in single["comparisons"] if r["definition_id"] == "completion")
    whole = [r for r in single["balance"] if r["population"] == population and r["method"] == "iptw_ate"]
    assert len(whole) > 20 and {m for m, _ in pooled} == {"iptw_ate", "iptw_att", "overlap"}
    compared = 0
    for w in whole:
        p = pooled[("iptw_ate", w["covariate"])]
        # a numeric covariate's missing values are filled with the mean of the warehouse's own
        # population, so only 0/1 levels are the same people counted the same way
        if p["sites_hidden"] or p["sites_without"] or w["mean_arm_before"] is None or not w["binary"]:
            continue
        compared += 1
        assert int(p["k"]) == 3 and int(p["n_arm"]) == w["n_arm"] and int(p["n_reference"]) == w["n_reference"]
        for k in ("mean_arm_before", "mean_reference_before", "sd_arm_before", "sd_reference_before", "smd_before",
                  "variance_ratio_before"):
            assert float(p[k]) == pytest.approx(w[k], rel=1e-9, abs=1e-12), (w["covariate"], k)
    assert compared >= 15, compared
    # after weighting each site weighs its own people: the pooled weighted mean is the sites'
    # weighted means weighted by their total weights (recomputed here from the packages)
    sites = {g: {r["covariate"]: r for r in read_rows(root / "pkg" / g / "balance.csv") if r["method"] == "overlap"}
             for g in GROUPS}
    label = next(c for (m, c), r in pooled.items() if m == "overlap" and c.startswith("sex=") and r["k"] == "3")
    parts = [(float(sites[g][label]["weight_arm"]), float(sites[g][label]["mean_arm_after"])) for g in GROUPS]
    expected = sum(w * m for w, m in parts) / sum(w for w, _ in parts)
    assert float(pooled[("overlap", label)]["mean_arm_after"]) == pytest.approx(expected, rel=1e-12)
    hidden = [r for r in read_rows(root / "pooled" / "balance.csv") if r["sites_hidden"]]
    for r in hidden:  # a site's hidden row is left out of the pool, and named
        assert set(r["sites_hidden"].split(";")) <= set(GROUPS) and int(r["k"]) < 3


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


@pytest.mark.slow  # starts a temporary Prefect server in this process when none runs yet
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


def _pdf_lines(path: Path) -> list[str]:
    """The PDF's text as poppler's pdftotext reads it (layout kept), one line each, white space
    collapsed: a table's row is one line."""
    import subprocess

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    return [" ".join(line.split()) for line in text.splitlines()]


def _pct(x: str) -> str:
    return f"{100 * float(x):.1f}%"


def _pp(x: str) -> str:
    return f"{100 * float(x):+.1f}"


def _rate_line(r: dict[str, str]) -> str:
    """A rates.csv row as the reports show it: percentages with one decimal, counts as they are
    (a dash for a cell hidden at every site), a level group named so."""
    group = f"{r['group']} (level group)" if r["group_by"] == "level_group" else r["group"]
    if not r["denominator"]:
        return f"{r['definition_id']} {group} – – – (– to –) {r['sites_pooled']} {r['sites_hidden'].replace(';', ', ')}"
    return (f"{r['definition_id']} {group} {r['numerator']} {r['denominator']} {_pct(r['rate'])} "
            f"({_pct(r['ci_low'])} to {_pct(r['ci_high'])}) {r['sites_pooled']} "
            f"{r['sites_hidden'].replace(';', ', ') or '–'}")


def test_the_network_pdf_shows_what_the_html_shows(network):
    root, _, _ = network
    path = root / "pooled" / "network.pdf"
    assert path.read_bytes().startswith(b"%PDF-") and path.read_bytes().rstrip().endswith(b"%%EOF")
    lines = _pdf_lines(path)
    text = "\n".join(lines)
    assert "IOP against residential, completion" in text and "disclosure rule cms" in text
    spec_sha256 = json.loads((root / "pooled" / "network.json").read_text(encoding="utf-8"))["spec_sha256"]
    assert f"specification SHA-256 {spec_sha256[:16]}" in text
    html_page = (root / "pooled" / "network.html").read_text(encoding="utf-8")
    for r in read_rows(root / "pooled" / "rates.csv"):
        assert _rate_line(r) in lines, _rate_line(r)
        assert all(r[k] == "" or int(r[k]) == 0 or int(r[k]) > 10 for k in ("numerator", "denominator"))
    primaries = 0
    pooled = read_rows(root / "pooled" / "comparisons.csv")
    for r in pooled:
        if not r["estimate"]:
            continue
        row = (f"{r['pooling']}{' (primary)' if r['primary'] == 'True' else ''} "
               f"{_pp(r['estimate'])} ({_pp(r['ci_low'])} to {_pp(r['ci_high'])}) {r['k']}")
        assert row in lines, row
        if r["primary"] == "True":
            primaries += 1
            # the heterogeneity is the meta-analysis's (HKSJ row), also under a one-shot primary
            het = next(x for x in pooled if x["method"] == r["method"] and x["pooling"] == "random_hksj")
            i2 = f"I² {100 * float(het['i2']):.0f}%"
            assert i2 in text and i2 in html_page
            assert f"between {_pp(het['prediction_low'])} and {_pp(het['prediction_high'])} percentage points" in text
    assert primaries == 3  # crude and aipw by HKSJ, ps_stratified in one shot
    for site in {r["site"] for r in read_rows(root / "pooled" / "sites.csv")}:
        assert any(line.split(" ")[0] == site for line in lines), site  # a row of the packages' table


def test_a_cell_a_site_hid_reads_alike_in_the_pdf_and_the_html(network, tmp_path):
    """A cell hidden in one package: both reports show the sum over the sites that show it and
    name the site that hid it."""
    root, _, _ = network
    for label in GROUPS:
        shutil.copytree(root / "pkg" / label, tmp_path / label)
    rows = read_rows(tmp_path / "west" / "counts.csv")
    next(r for r in rows if r["group"] == "residential_hospital").update(numerator="", denominator="",
                                                                                  suppression="small")
    write_rows(tmp_path / "west" / "counts.csv", rows)
    _repackage(tmp_path / "west")
    assert main(["network", "combine", *[str(tmp_path / g) for g in GROUPS], "--out", str(tmp_path / "pooled")]) == 0
    pooled = next(r for r in read_rows(tmp_path / "pooled" / "rates.csv") if r["group"] == "residential_hospital")
    shown = [next(r for r in read_rows(tmp_path / g / "counts.csv") if r["group"] == "residential_hospital")
             for g in ("north", "south")]
    for k in ("numerator", "denominator"):
        assert int(pooled[k]) == sum(int(r[k]) for r in shown) > 10
    line = _rate_line(pooled)
    assert line.endswith(" 2 west") and line in _pdf_lines(tmp_path / "pooled" / "network.pdf")
    html_page = (tmp_path / "pooled" / "network.html").read_text(encoding="utf-8")
    cells = re.search(r"<tr><td>completion</td><td>residential_hospital</td>(.*?)</tr>", html_page).group(1)
    assert " ".join(["completion", "residential_hospital", *re.findall(r"<td[^>]*>([^<]*)</td>", cells)]) == line
