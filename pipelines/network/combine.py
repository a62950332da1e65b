"""``levelcare network combine``: check study packages, then pool them.

Refused, with one line naming the package and the problem, before anything is pooled:

* a folder holding any file but ``study.json``, ``counts.csv``, ``estimates.csv``,
  ``balance.csv``, ``strata.csv`` and ``manifest.json`` (a row-level extract slipped in), or
  lacking one of them;
* a file whose SHA-256 is not the manifest's (changed after packaging), or a manifest or
  study whose specification hash does not match the specification it carries;
* a table whose columns are not a package's, or holding a count the disclosure rule forbids
  (the last guard, applied again on arrival);
* packages of different studies: the first difference of their specifications is named.

Pooled:

* crude counts, exactly: successes and episodes added per definition and group (all, each level
  of care, each level group) over the packages that show the cell (``rates.csv``: the pooled
  rate with a Wilson interval; ``sites_hidden`` names the packages whose cell was hidden, so a
  pooled count that leaves one out says so; a cell hidden at every site has no pooled count);
* adjusted estimates by meta-analysis (:mod:`pipelines.stats.meta`): per definition and method,
  fixed effect, DerSimonian-Laird and Hartung-Knapp-Sidik-Jonkman (the primary), with Q, I²,
  tau² and a prediction interval (``comparisons.csv``, ``pooling`` naming the pooling); a site
  without an estimate is listed in ``sites_not_estimable``, never dropped silently;
* the crude comparison also in one shot from the sites' counts (``pooling`` ``mantel_haenszel``):
  the Mantel-Haenszel risk difference stratified by site, from each site's successes and
  episodes in the arm and the reference (its level-group counts), with the Sato variance;
* with the method ``ps_stratified``, an adjusted comparison in one shot: the Mantel-Haenszel
  risk difference over every site's propensity-score strata (``strata.csv``,
  :mod:`pipelines.network.strata`; the primary of this method), beside each site's own
  stratified estimate (``sites.csv``) and their meta-analysis;
* ``sites.csv``: each site's estimate beside the pooled one (the forest plot's rows);
* covariate balance (``balance.csv``), per definition, weighting and covariate level: each arm's
  mean and SD before and after weighting pooled from the sites' moments (means weighted by the
  arm's size before weighting and by its total weight after; variances as within-site plus
  between-site parts), and the SMDs and variance ratios recomputed from them exactly as a
  single-site run computes them from its rows (:mod:`pipelines.stats.balance`); before
  weighting, a 0/1 level's pooled moments are exactly one warehouse's of all the sites' people
  (a numeric covariate's missing values are filled with each site's own mean). A site whose
  row is hidden is named in ``sites_hidden``; a site without the level but with other levels of
  its covariate has no one at that level and counts with a mean of 0; a site without the
  covariate at all is named in ``sites_without``;
* ``network.json`` (the study and packages), ``network.html`` (a forest plot by site, the
  pooled estimates and heterogeneity, the pooled rates, the pooled balance), ``network.pdf`` (the
  same, for printing) and ``network.xlsx`` (the four tables).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.disclosure import BALANCE_MOMENTS
from pipelines.errors import UserError
from pipelines.network import package as pk
from pipelines.network import study as st


@dataclass(frozen=True)
class Package:
    location: str  # the folder or URL it was read from
    label: str
    info: dict[str, Any]
    counts: list[dict[str, str]]
    estimates: list[dict[str, str]]
    balance: list[dict[str, str]]
    strata: list[dict[str, str]]


def _refuse(where: str | Path, why: str) -> UserError:
    return UserError(f"{where}: refused: {why}")


def _read_csv(path: Path, columns: Sequence[str], where: str) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != list(columns):
            raise _refuse(where, f"{path.name}: columns {reader.fieldnames} are not a package's "
                                 f"({', '.join(columns)})")
        return list(reader)


def read_package(path: Path, shown: str | None = None) -> Package:
    """One package, checked (module docstring); ``shown``: how errors name it (its URL when it
    was fetched from object storage)."""
    from pipelines import disclosure
    from pipelines.writers import file_sha256

    path = Path(path)
    where = shown or str(path)
    if not path.is_dir():
        raise UserError(f"{where}: not a package folder")
    present = sorted(p.name for p in path.iterdir())
    extra = [n for n in present if n not in pk.FILES]
    if extra:
        raise _refuse(where, f"unexpected file(s) {', '.join(extra)}: a package holds only {', '.join(pk.FILES)}")
    missing = [n for n in pk.FILES if n not in present]
    if missing:
        raise _refuse(where, f"missing {', '.join(missing)}")
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        info = json.loads((path / "study.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _refuse(where, "manifest.json or study.json is not JSON") from None
    if manifest.get("format") != pk.FORMAT or info.get("format") != pk.FORMAT:
        raise _refuse(where, f"not a {pk.FORMAT} package")
    for name in pk.FILES:
        if name == "manifest.json":
            continue
        want = (manifest.get("files") or {}).get(name)
        if want != file_sha256(path / name):
            raise _refuse(where, f"{name} does not match its SHA-256 in manifest.json (changed after packaging)")
    spec = info.get("specification")
    if not isinstance(spec, dict) or st.spec_hash(spec) != info.get("spec_sha256") or \
            info.get("spec_sha256") != manifest.get("spec_sha256"):
        raise _refuse(where, "the specification in study.json does not match its hash")
    counts = _read_csv(path / "counts.csv", pk.COUNT_COLUMNS, where)
    estimates = _read_csv(path / "estimates.csv", pk.ESTIMATE_COLUMNS, where)
    balance = _read_csv(path / "balance.csv", pk.BALANCE_COLUMNS, where)
    strata = _read_csv(path / "strata.csv", pk.STRATA_COLUMNS, where)
    rule = info.get("disclosure_rule") or "cms"
    for name, rows in (("counts.csv", counts), ("estimates.csv", estimates), ("balance.csv", balance),
                       ("strata.csv", strata)):
        try:
            disclosure.check_artifact(rows, rule=rule, name=name)
        except disclosure.DisclosureError as exc:
            raise _refuse(where, str(exc)) from None
    return Package(location=where, label=str(info.get("label") or path.name), info=info, counts=counts,
                   estimates=estimates, balance=balance, strata=strata)


def same_study(packages: Sequence[Package]) -> dict[str, Any]:
    """The common specification; refuses packages of another study, naming the difference."""
    first = packages[0]
    for p in packages[1:]:
        if p.info["spec_sha256"] != first.info["spec_sha256"]:
            where = st.first_difference(first.info["specification"], p.info["specification"])
            raise UserError(f"{p.location}: refused: another study than {first.location} ({where})")
    return first.info["specification"]


def _num(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def pool_counts(packages: Sequence[Package]) -> list[dict[str, Any]]:
    """Exact sums per definition and group (all, a level of care, a level group) over the
    packages that show the cell; a cell no package shows has no pooled count (never a 0)."""
    from pipelines.stats.proportions import wilson
    from pipelines.stats.results import Proportion

    cells: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for p in packages:
        for row in p.counts:
            key = (row["definition_id"], row["definition_version"], row["group_by"], row["group"])
            cell = cells.setdefault(key, {"numerator": 0, "denominator": 0, "sites": 0, "hidden": []})
            if row["numerator"] == "" or row["denominator"] == "":
                cell["hidden"].append(p.label)
                continue
            cell["numerator"] += int(row["numerator"])
            cell["denominator"] += int(row["denominator"])
            cell["sites"] += 1
    out = []
    for (def_id, version, group_by, group), c in cells.items():
        base = {"definition_id": def_id, "definition_version": version, "group_by": group_by, "group": group,
                "sites_pooled": c["sites"], "sites_hidden": ";".join(c["hidden"])}
        if not c["sites"]:
            out.append({**base, "numerator": None, "denominator": None, "rate": None,
                        "note": "hidden at every site"})
            continue
        ci = wilson(c["numerator"], c["denominator"]) if c["denominator"] else None
        shown = isinstance(ci, Proportion)
        out.append({**base, "numerator": c["numerator"], "denominator": c["denominator"],
                    "rate": c["numerator"] / c["denominator"] if c["denominator"] else None,
                    "ci_low": ci.ci_low if shown else None, "ci_high": ci.ci_high if shown else None,
                    "ci_method": "wilson" if shown else None, "note": None})
    return out


def _two_by_two(p: Package, def_id: str, version: str, arm: str, reference: str) -> tuple[int, ...] | None:
    """A site's successes and episodes in the arm and the reference (its level-group rows, or its
    level-of-care rows for an arm that is one level), or None when a cell is hidden or absent."""
    found = {}
    for row in p.counts:
        if (row["definition_id"], row["definition_version"]) == (def_id, version) and \
                row["group_by"] in ("level_group", "level_of_care") and row["group"] in (arm, reference):
            found.setdefault(row["group"], row)  # level_group rows come first where a name is both
    if set(found) != {arm, reference} or any(r["numerator"] == "" or r["denominator"] == "" for r in found.values()):
        return None
    return tuple(int(found[g][k]) for g in (arm, reference) for k in ("numerator", "denominator"))


def pool_mantel_haenszel(packages: Sequence[Package], key: tuple[str, ...]) -> dict[str, Any]:
    """The crude comparison pooled in one shot from each site's 2x2 table: the Mantel-Haenszel
    risk difference stratified by site (:func:`pipelines.stats.meta.mantel_haenszel_rd`)."""
    from pipelines.stats import meta
    from pipelines.stats.results import NotEstimable

    def_id, version, arm, reference, method, estimand = key
    tables, used, left_out = [], [], []
    for p in packages:
        t = _two_by_two(p, def_id, version, arm, reference)
        if t is None:
            left_out.append(p.label)
        else:
            tables.append(t)
            used.append(p.label)
    base = {"definition_id": def_id, "definition_version": version, "arm": arm, "reference": reference,
            "method": method, "estimand": estimand, "pooling": "mantel_haenszel", "primary": False, "k": len(used),
            "sites_pooled": ";".join(used), "sites_not_estimable": ";".join(left_out)}
    if not tables:
        return {**base, "estimate": None, "note": "no site shows both groups' successes and episodes"}
    result = meta.mantel_haenszel_rd(*zip(*tables, strict=True))
    if isinstance(result, NotEstimable):
        return {**base, "estimate": None, "note": result.reason}
    return {**base, "estimate": result.estimate, "se": result.se, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "p_value": result.p_value,
            "note": "one-shot: stratified by site, from each site's successes and episodes (Sato variance)"}


def _strata_estimates(p: Package, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A site's own propensity-stratified estimate of each definition (the Mantel-Haenszel risk
    difference over its strata), shaped as an ``estimates.csv`` row; a definition without strata
    at the site is a row without an estimate, saying why."""
    from pipelines.network.strata import mantel_haenszel
    from pipelines.stats.results import NotEstimable

    if st.PS_STRATIFIED not in spec.get("methods", ()):
        return []
    out = []
    for d in spec["definitions"]:
        version = str(d["version"])
        mine = [x for x in p.strata if (x["definition_id"], x["definition_version"]) == (d["id"], version)]
        row = {"definition_id": d["id"], "definition_version": version, "arm": spec["arm"],
               "reference": spec["reference"], "method": st.PS_STRATIFIED, "estimand": "rd", "estimate": "",
               "se": "", "ci_low": "", "ci_high": "", "note": "no strata: too few people, or the arm's or the "
               "reference's total hidden at the site"}
        result = mantel_haenszel(mine) if mine else None
        if result is not None and not isinstance(result, NotEstimable):
            row.update(estimate=result.estimate, se=result.se, ci_low=result.ci_low, ci_high=result.ci_high,
                       note=f"{len(mine)} propensity-score strata")
        out.append(row)
    return out


def pool_strata(packages: Sequence[Package], key: tuple[str, ...]) -> dict[str, Any]:
    """The propensity-stratified comparison in one shot: the Mantel-Haenszel risk difference over
    every site's strata (stratified by site and stratum)."""
    from pipelines.network.strata import mantel_haenszel
    from pipelines.stats.results import NotEstimable

    def_id, version, arm, reference, method, estimand = key
    used = [p for p in packages if any((x["definition_id"], x["definition_version"]) == (def_id, version)
                                       for x in p.strata)]
    rows = [x for p in used for x in p.strata if (x["definition_id"], x["definition_version"]) == (def_id, version)]
    base = {"definition_id": def_id, "definition_version": version, "arm": arm, "reference": reference,
            "method": method, "estimand": estimand, "pooling": "mantel_haenszel", "primary": True, "k": len(used),
            "sites_pooled": ";".join(p.label for p in used),
            "sites_not_estimable": ";".join(p.label for p in packages if p not in used)}
    result = mantel_haenszel(rows) if rows else NotEstimable("no site has propensity-score strata", method, 0)
    if isinstance(result, NotEstimable):
        return {**base, "estimate": None, "note": result.reason}
    return {**base, "estimate": result.estimate, "se": result.se, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "p_value": result.p_value, "note": f"one-shot: {len(rows)} strata of {len(used)} sites (Sato variance)"}


def _meta_rows(base: dict[str, Any], result: Any, one_shot: bool) -> list[dict[str, Any]]:
    """The meta-analysis's rows (fixed, DerSimonian-Laird, HKSJ, modified HKSJ) with the
    heterogeneity; HKSJ is the primary unless the method's one-shot estimate is (``one_shot``)."""
    het = result.heterogeneity
    common = {"q": het.q if het else None, "q_p_value": het.p_value if het else None,
              "i2": het.i2 if het else None, "tau2": result.tau2,
              "prediction_low": result.prediction.low if result.prediction else None,
              "prediction_high": result.prediction.high if result.prediction else None}
    return [{**base, "pooling": pooling, "primary": est is result.primary and not one_shot, "estimate": est.estimate,
             "se": est.se, "ci_low": est.ci_low, "ci_high": est.ci_high, "p_value": est.p_value, **common,
             "note": None}
            for pooling, est in (("fixed", result.fixed), ("random_dl", result.random), ("random_hksj", result.hksj),
                                 ("random_hksj_modified", result.hksj_modified)) if est is not None]


def pool_estimates(packages: Sequence[Package]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Meta-analysis per definition and method: (pooled rows, per-site rows)."""
    from pipelines.stats import meta
    from pipelines.stats.results import NotEstimable

    groups: dict[tuple[str, ...], list[tuple[str, dict[str, str]]]] = {}
    for p in packages:
        for row in [*p.estimates, *_strata_estimates(p, p.info["specification"])]:
            key = (row["definition_id"], row["definition_version"], row["arm"], row["reference"], row["method"],
                   row["estimand"])
            groups.setdefault(key, []).append((p.label, row))
    pooled, sites = [], []
    for key, members in groups.items():
        def_id, version, arm, reference, method, estimand = key
        usable = [(label, r) for label, r in members if _num(r["estimate"]) is not None and (_num(r["se"]) or 0) > 0]
        left_out = [label for label, r in members if not any(r is u for _, u in usable)]
        base = {"definition_id": def_id, "definition_version": version, "arm": arm, "reference": reference,
                "method": method, "estimand": estimand, "k": len(usable),
                "sites_pooled": ";".join(label for label, _ in usable), "sites_not_estimable": ";".join(left_out)}
        for label, r in members:
            sites.append({**base, "site": label, "estimate": _num(r["estimate"]), "se": _num(r["se"]),
                          "ci_low": _num(r["ci_low"]), "ci_high": _num(r["ci_high"]), "note": r["note"] or None})
        result = meta.pool([_num(r["estimate"]) for _, r in usable], [_num(r["se"]) ** 2 for _, r in usable])
        if isinstance(result, NotEstimable):
            pooled.append({**base, "pooling": None, "estimate": None, "note": result.reason})
        else:
            pooled += _meta_rows(base, result, one_shot=method == st.PS_STRATIFIED)
        if method == "crude" and estimand == "rd":
            pooled.append(pool_mantel_haenszel(packages, key))
        if method == st.PS_STRATIFIED:
            pooled.append(pool_strata(packages, key))
    return pooled, sites


def _covariate(label: str) -> str:
    """The covariate of a balance row's label (``sex=female``, ``phq9_admit__missing``)."""
    return label.split("=")[0].removesuffix("__missing")


def _pooled_moments(parts: Sequence[tuple[float, float, float]]) -> tuple[float, float, float]:
    """(total weight, mean, variance) of groups given as (weight, mean, SD): the variance is the
    groups' within part plus their between part, with divisor the total weight."""
    total = sum(w for w, _, _ in parts)
    mean = sum(w * m for w, m, _ in parts) / total
    second = sum(w * (sd * sd + m * m) for w, m, sd in parts) / total
    return total, mean, max(second - mean * mean, 0.0)


#: what a site's balance row must show to be pooled
_POOLED_FROM = ("n_arm", "n_reference", "weight_arm", "weight_reference", *BALANCE_MOMENTS)


def pool_balance(packages: Sequence[Package]) -> list[dict[str, Any]]:
    """Pooled covariate balance per definition, weighting and covariate level (module docstring)."""
    import math

    keys: dict[tuple[str, str, str, str], None] = {}
    have: dict[tuple[str, str, str, str], dict[str, dict[str, str]]] = {}
    groups: dict[tuple[str, str, str, str], set[str]] = {}  # (definition, version, method, site) -> covariates
    any_row: dict[tuple[str, str, str, str], dict[str, str]] = {}  # (definition, version, method, site) -> a row
    for p in packages:
        for row in p.balance:
            key = (row["definition_id"], row["definition_version"], row["method"], row["covariate"])
            keys.setdefault(key)
            have.setdefault(key, {})[p.label] = row
            groups.setdefault((*key[:3], p.label), set()).add(_covariate(row["covariate"]))
            any_row.setdefault((*key[:3], p.label), row)
    out = []
    for key in keys:
        def_id, version, method, label = key
        parts: dict[str, list[tuple[float, float, float]]] = {k: [] for k in ("b1", "b0", "a1", "a0")}
        pooled, hidden, without = [], [], []
        binary = False
        for p in packages:
            row = have[key].get(p.label)
            if row is None:
                if _covariate(label) not in groups.get((*key[:3], p.label), set()):
                    without.append(p.label)
                    continue
                # the site has the covariate but nobody at this level: mean 0, SD 0 (its arms' sizes
                # and total weights are any of its rows')
                row = {**any_row[(*key[:3], p.label)], **dict.fromkeys(BALANCE_MOMENTS, "0"), "suppression": "",
                       "binary": "True"}
            values = {k: _num(row[k]) for k in _POOLED_FROM}
            if row["suppression"] or any(v is None for v in values.values()):
                hidden.append(p.label)
                continue
            binary = binary or row["binary"] == "True"
            pooled.append(p.label)
            for side, n, w in (("1", "n_arm", "weight_arm"), ("0", "n_reference", "weight_reference")):
                arm = "arm" if side == "1" else "reference"
                parts["b" + side].append((values[n], values[f"mean_{arm}_before"], values[f"sd_{arm}_before"]))
                parts["a" + side].append((values[w], values[f"mean_{arm}_after"], values[f"sd_{arm}_after"]))
        base = {"definition_id": def_id, "definition_version": version, "method": method, "covariate": label,
                "binary": binary, "k": len(pooled), "sites_pooled": ";".join(pooled),
                "sites_hidden": ";".join(hidden), "sites_without": ";".join(without)}
        if not pooled:
            out.append(base)
            continue
        (n1, m1, v1), (n0, m0, v0) = _pooled_moments(parts["b1"]), _pooled_moments(parts["b0"])
        (w1, m1a, v1a), (w0, m0a, v0a) = _pooled_moments(parts["a1"]), _pooled_moments(parts["a0"])
        sd = math.sqrt((v1 + v0) / 2)
        out.append({**base, "n_arm": round(n1), "n_reference": round(n0), "mean_arm_before": m1,
                    "mean_reference_before": m0, "sd_arm_before": math.sqrt(v1), "sd_reference_before": math.sqrt(v0),
                    "weight_arm": w1, "weight_reference": w0, "mean_arm_after": m1a, "mean_reference_after": m0a,
                    "sd_arm_after": math.sqrt(v1a), "sd_reference_after": math.sqrt(v0a),
                    "smd_before": (m1 - m0) / sd if sd > 0 else 0.0, "smd_after": (m1a - m0a) / sd if sd > 0 else 0.0,
                    "variance_ratio_before": v1 / v0 if v0 > 0 else None,
                    "variance_ratio_after": v1a / v0a if v0a > 0 else None})
    return out


#: the files ``combine`` writes
OUTPUTS = ("rates.csv", "comparisons.csv", "sites.csv", "balance.csv", "network.json", "network.html", "network.pdf",
           "network.xlsx")
RATE_COLUMNS = ["definition_id", "definition_version", "group_by", "group", "numerator", "denominator", "rate",
                "ci_low", "ci_high", "ci_method", "sites_pooled", "sites_hidden", "note"]
COMPARISON_COLUMNS = ["definition_id", "definition_version", "arm", "reference", "method", "estimand", "pooling",
                      "primary", "estimate", "se", "ci_low", "ci_high", "p_value", "k", "q", "q_p_value", "i2",
                      "tau2", "prediction_low", "prediction_high", "sites_pooled", "sites_not_estimable", "note"]
BALANCE_COLUMNS = ["definition_id", "definition_version", "method", "covariate", "binary", "k", "n_arm",
                   "n_reference", "mean_arm_before", "mean_reference_before", "sd_arm_before", "sd_reference_before",
                   "weight_arm", "weight_reference", "mean_arm_after", "mean_reference_after", "sd_arm_after",
                   "sd_reference_after", "smd_before", "smd_after", "variance_ratio_before", "variance_ratio_after",
                   "sites_pooled", "sites_hidden", "sites_without"]
SITE_COLUMNS = ["definition_id", "definition_version", "arm", "reference", "method", "estimand", "site", "estimate",
                "se", "ci_low", "ci_high", "note"]


def is_url(location: str | Path) -> bool:
    return "://" in str(location)


def fetch(location: str | Path, into: Path) -> Path:
    """A package as a local folder: ``location`` itself, or a copy of a package in object
    storage (any fsspec URL: ``s3://bucket/site-a``, ``gs://...``, ``memory://...``), fetched
    into ``into`` and checked there like any other."""
    if not is_url(location):
        return Path(location)
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(str(location))
        names = [n for n in pk.FILES if fs.exists(f"{root.rstrip('/')}/{n}")]
        extra = sorted(str(p).rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)
                       if str(p).rsplit("/", 1)[-1] not in pk.FILES)
    except (ImportError, OSError, ValueError) as exc:
        raise UserError(f"{location}: cannot read this package location ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None
    into.mkdir(parents=True, exist_ok=True)
    for name in names + extra:  # an extra file is fetched too, so the check refuses it by name
        fs.get(f"{root.rstrip('/')}/{name}", str(into / name))
    return into


def combine(paths: Sequence[str | Path], out_dir: Path) -> dict[str, Any]:
    """Check every package (folders, or fsspec URLs of object storage), pool them and write the
    network's files; returns a summary."""
    import tempfile

    if len(paths) < 2:
        raise UserError("network combine: give two or more packages")
    with tempfile.TemporaryDirectory(prefix="levelcare-combine-") as tmp:
        packages = [read_package(fetch(p, Path(tmp) / str(i)), str(p)) for i, p in enumerate(paths)]
    return combine_packages(packages, out_dir)


def combine_packages(packages: Sequence[Package], out_dir: Path) -> dict[str, Any]:
    """Pool checked packages (:func:`read_package`) and write the network's files."""
    from pipelines import disclosure
    from pipelines.writers import write_csv

    labels = [p.label for p in packages]
    if len(set(labels)) != len(labels):
        raise UserError(f"network combine: two packages have the same label ({', '.join(labels)})")
    spec = same_study(packages)
    rates = pool_counts(packages)
    comparisons, sites = pool_estimates(packages)
    balance = pool_balance(packages)
    rule = packages[0].info.get("disclosure_rule") or "cms"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    disclosure.check_artifact(rates, rule=rule, name="rates.csv")
    disclosure.check_artifact(balance, rule=rule, name="balance.csv")
    write_csv(out / "rates.csv", rates, RATE_COLUMNS)
    write_csv(out / "balance.csv", balance, BALANCE_COLUMNS)
    write_csv(out / "comparisons.csv", comparisons, COMPARISON_COLUMNS)
    write_csv(out / "sites.csv", sites, SITE_COLUMNS)
    codes = sorted({p.info.get("code_sha256") for p in packages})
    summary = {"study": spec["study"], "title": spec.get("title"), "spec_sha256": packages[0].info["spec_sha256"],
               "packages": [{"label": p.label, "levelcare": p.info.get("levelcare"),
                             "code_sha256": p.info.get("code_sha256"), "period": p.info.get("period")}
                            for p in packages],
               "notes": ([] if len(codes) == 1 else
                         [f"the packages ran {len(codes)} different levelcare code versions (same specification)"]),
               "specification": spec}
    (out / "network.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    from pipelines.network.report import write_network_report, write_network_workbook

    write_network_report(out, summary, rates, comparisons, sites, rule, balance)
    write_network_workbook(out, {"rates": (RATE_COLUMNS, rates), "comparisons": (COMPARISON_COLUMNS, comparisons),
                                 "sites": (SITE_COLUMNS, sites), "balance": (BALANCE_COLUMNS, balance)})
    return summary
