"""Results folders made by real analyses: synthetic extracts, real ingest (with its
great-expectations validation), real ``analyze``. The report and export tests read these; no
test of a document starts from hand-written JSON.

``shape_extracts`` turns the synthetic extracts into the data sets real programs send and that
can break a document: one level of care only, one quarter only, no follow-ups, 30-day
follow-ups only, no step-downs, TEDS-D only. ``benchmarked`` adds a national TEDS-D set to a
program's native one, so that the analysis holds a benchmark against the nation.
"""

from __future__ import annotations

import csv
import functools
import shutil
from pathlib import Path
from typing import Any

SEED = 20261205


@functools.cache
def level_labels() -> dict[str, str]:
    """How the report names each level of care: read from the contract itself (discharges.yaml's
    ``level_labels``), not through the code under test; "all levels" is "All levels"."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    spec = yaml.safe_load((root / "data_contracts" / "discharges.yaml").read_text(encoding="utf-8"))
    return {**{str(k): str(v) for k, v in spec["level_labels"].items()}, "all levels": "All levels"}


def shown_group(group: Any) -> Any:
    """A results row's group as a report table shows it (a level by its label)."""
    return level_labels().get(group, group) if isinstance(group, str) else group


def _rewrite(path: Path, keep) -> int:
    """Keep the rows of a CSV for which ``keep(row)`` is true; returns the rows kept."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, [r for r in reader if keep(r)]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return len(rows)


def shape_extracts(data: Path, shape: str) -> None:
    """Change the synthetic native extracts in ``data`` to one of the shapes above."""
    discharges, followups = data / "discharges.csv", data / "followups.csv"
    if shape == "one_level":
        _rewrite(discharges, lambda r: r["level_of_care"] == "iop")
    elif shape == "one_quarter":
        _rewrite(discharges, lambda r: "2025-07-01" <= r["discharge_date"] <= "2025-09-30")
    elif shape == "no_followups":
        followups.unlink()
        return
    elif shape == "followups_30d_only":
        _rewrite(followups, lambda r: r["window_days"] == "30")
    elif shape == "no_stepdown":
        # every residential discharge's person gets no later IOP admission: drop IOP episodes
        # of people who had a residential episode
        with discharges.open(newline="", encoding="utf-8") as fh:
            residential = {r["person_id"] for r in csv.DictReader(fh) if r["level_of_care"].startswith("residential")}
        _rewrite(discharges, lambda r: not (r["level_of_care"] == "iop" and r["person_id"] in residential))
    elif shape != "as_synthesized":
        raise ValueError(shape)
    if followups.exists():  # follow-ups of dropped episodes would be quarantined: keep the data clean
        with discharges.open(newline="", encoding="utf-8") as fh:
            kept = {r["episode_id"] for r in csv.DictReader(fh)}
        _rewrite(followups, lambda r: r["episode_id"] in kept)


def analyzed(root: Path, *, records: int = 3000, seed: int = SEED, shape: str = "as_synthesized",
             fmt: str = "native", period=None, rule: str = "cms", compare: bool = True,
             docs: bool = True, **synth: Any) -> Path:
    """A results folder from synth → ingest → analyze; returns the folder."""
    from pipelines.analysis.command import analyze
    from pipelines.ingest.core import ingest_paths
    from pipelines.settings import Settings
    from pipelines.synth import write_synthetic

    data = root / "data"
    write_synthetic(data, records=records, seed=seed, fmt=fmt, **synth)
    (data / "truth.json").unlink()
    if fmt == "native":
        shape_extracts(data, shape)
    settings = Settings(warehouse=root / "levelcare.duckdb")
    loaded = ingest_paths(settings, [data], docs=docs)
    assert all(r.status in ("loaded", "partial") for r in loaded), [r.line() for r in loaded]
    out = root / "results"
    analyze(settings, out, None, ["level_of_care", "level_group", "site", "quarter"], rule=rule,
            compare=compare, period=period)
    return out


def copy_results(results: Path, to: Path) -> Path:
    """A fresh folder holding only the results (documents are written beside them)."""
    to.mkdir(parents=True, exist_ok=True)
    for f in results.iterdir():
        if f.is_file():
            shutil.copy2(f, to / f.name)
    return to


# the national set's level mix: every TEDS-D setting with a few hundred rows even in a small file
# (the 2019 mix gives residential (hospital) 0.2%), so each setting's model is fitted and checked
BENCHMARK_TEDS_MIX = {"outpatient": 0.35, "iop": 0.2, "php": 0.0, "residential_short": 0.12,
                      "residential_long": 0.1, "residential_hospital": 0.05, "detox": 0.18, "inpatient": 0.0}


def benchmarked(root: Path, *, records: int = 2000, teds_records: int = 12000, seed: int = SEED,
                groupings: tuple[str, ...] = ("level_group",), docs: bool = False) -> Path:
    """A results folder with a benchmark against TEDS-D: synthetic native extracts (``records``
    episodes) and a synthetic TEDS-D file (``teds_records`` discharges of 2019) ingested into one
    warehouse, then ``analyze`` without the adjusted comparisons (cheap); returns the folder."""
    from pipelines.analysis.command import analyze
    from pipelines.ingest.core import ingest_paths
    from pipelines.settings import Settings
    from pipelines.synth import write_synthetic

    program, national = root / "data", root / "national"
    write_synthetic(program, records=records, seed=seed)
    write_synthetic(national, records=teds_records, seed=seed + 1, fmt="teds-d", teds_year=2019,
                    level_mix=BENCHMARK_TEDS_MIX)
    for folder in (program, national):
        (folder / "truth.json").unlink()
    settings = Settings(warehouse=root / "levelcare.duckdb")
    loaded = ingest_paths(settings, [program, national], docs=docs)
    assert all(r.status in ("loaded", "partial") for r in loaded), [r.line() for r in loaded]
    out = root / "results"
    analyze(settings, out, None, list(groupings), rule="cms", compare=False)
    return out
