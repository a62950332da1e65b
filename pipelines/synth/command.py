"""``levelcare synth``: write synthetic records (records-v1) with a known true effect.

    levelcare synth --out DIR --records N --seed S [--format native|teds-d|benchmark]
                    [--effect ID=VALUE ...] [--config FILE] [--sites K]
                    [--quarters Q] [--end-quarter 2026Q3 | --start 2026-10-01]
                    [--id-prefix q2-] [--teds-year 2019]

Native: ``discharges.csv``, ``followups.csv``; TEDS-D: ``tedsd_puf.csv``; both: ``truth.json``.
The model is documented in :mod:`pipelines.synth.model`. ``--format benchmark`` writes a
national ``tedsd_puf.csv`` (--records rows) and a program's ``discharges.csv``
(--program-records rows, default --records / 5) with a known completion model and site offsets
for ``levelcare benchmark`` (:mod:`pipelines.synth.national`).

Ids are ``E0000001`` (episodes), ``P0000001`` (persons) and ``F0000001`` (follow-ups), numbered
from 1 in every run; ``--id-prefix`` puts a prefix before all three so that a follow-on run
(``--start`` the day after the previous data end, another ``--seed``) loads into the same
warehouse beside the first without a key conflict and without linking its persons to the
first run's. Runs share no persons (see "Follow-on periods" in :mod:`pipelines.synth.model`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

from pipelines.errors import UserError

FORMATS = ("native", "teds-d")
BENCHMARK = "benchmark"  # --format benchmark: pipelines.synth.national, not write_files
DISCHARGE_COLUMNS = [
    "episode_id", "person_id", "site_id", "program_id", "level_of_care", "asam_level", "admit_date",
    "discharge_date", "discharge_reason", "age_band", "sex", "race", "ethnicity", "primary_substance",
    "co_occurring_mh", "prior_episodes", "days_waiting", "use_days_admit", "use_days_discharge",
    "phq9_admit", "phq9_discharge", "gad7_admit", "gad7_discharge", "employed_admit",
    "employed_discharge", "homeless_admit", "homeless_discharge", "arrests_admit", "arrests_discharge",
    "payer", "referral_source", "mat", "hours_per_week", "sessions_attended", "family_involved",
    "satisfaction", "episode_cost",
]
FOLLOWUP_COLUMNS = [
    "followup_id", "episode_id", "site_id", "window_days", "contact_date", "status", "abstinent_30d",
    "use_days_30", "readmitted", "overdose", "employed", "homeless", "arrests_30", "phq9", "gad7",
    "er_visits_30",
]
PROGRAM_SUFFIX = ["op", "iop", "php", "rs", "rl", "rh", "wm", "ip"]
# --id-prefix: the contracts declare the ids free text (data_contracts/*.yaml: type text, no
# pattern); this keeps prefixed ids plain tokens: no space, comma, quote, '@' or ':' that a CSV
# reader, the identifier gate (names, e-mail, phone shapes) or episode_key ('site:episode')
# could trip on, and a letter (E, P, F) always follows the prefix.
ID_PREFIX_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,19}"
DATE_PATTERN = r"(19|20)\d\d-\d\d-\d\d"
CONFIG_KEYS = {"effects", "modification", "level_mix", "unmeasured", "sites", "quarters", "end_quarter",
               "start", "id_prefix"}


def configure_synth(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--records", required=True, type=int, metavar="N",
                        help="number of discharge rows (episodes) to write")
    parser.add_argument("--seed", required=True, type=int, metavar="S", help="random seed (same seed, same bytes)")
    parser.add_argument("--format", default="native", choices=(*FORMATS, BENCHMARK), dest="fmt",
                        help="native (discharges.csv + followups.csv), teds-d (tedsd_puf.csv) or benchmark "
                        "(national tedsd_puf.csv of --records rows + a program's discharges.csv of "
                        "--program-records rows, completion from a known case-mix model; see "
                        "pipelines/synth/national.py)")
    parser.add_argument("--program-records", type=int, metavar="M",
                        help="benchmark only: program discharge rows (default --records / 5)")
    parser.add_argument("--site-offsets", metavar="X,Y,...",
                        help="benchmark only: the program sites' completion log-odds offsets from the national "
                        "model, one per site (default 0.6,-0.3,0,0.3,-0.6,0 with --sites 6, the default there; "
                        "a list starting with a minus needs '=': --site-offsets=-0.5,0.5)")
    parser.add_argument("--effect", action="append", default=[], metavar="ID=VALUE",
                        help="true effect of IOP vs residential: percentage points for a definition id "
                        "(e.g. completion=-10), score points for phq9_points / gad7_points; repeatable")
    parser.add_argument("--config", metavar="FILE",
                        help="YAML or JSON with 'effects' (as --effect), 'modification', 'level_mix', "
                        "'unmeasured', 'sites', 'quarters', 'end_quarter', 'start', 'id_prefix'")
    parser.add_argument("--sites", type=int, metavar="K", help="number of sites (default 8)")
    parser.add_argument("--quarters", type=int, metavar="Q", help="number of quarters (default 10)")
    parser.add_argument("--end-quarter", metavar="YYYYQn", help="last quarter (default 2026Q3)")
    parser.add_argument("--start", metavar="YYYY-MM-DD",
                        help="first day of the period instead of --end-quarter: discharges and "
                        "follow-up contacts fall from this day to the end of --quarters 3-month "
                        "quarters (2026-10-01 with --quarters 1: to 2026-12-31; admissions can be "
                        "earlier). For a follow-on quarter give the day after the previous data end, "
                        "another --seed and an --id-prefix")
    parser.add_argument("--id-prefix", metavar="P",
                        help="prefix for episode, person and follow-up ids (q2- gives q2-E0000001, "
                        "q2-P0000001, q2-F0000001; default none: E0000001...), so runs loaded into one "
                        "warehouse do not collide; runs share no persons. 1-20 letters, digits, '-' "
                        "or '_', starting with a letter or digit; native format only")
    parser.add_argument("--unmeasured", type=float, metavar="X",
                        help="strength of an unmeasured confounder (default 0: none)")
    parser.add_argument("--teds-year", type=int, default=2019, metavar="YEAR",
                        help="DISYR of a teds-d file, 2017-2020 (default 2019)")


def _parse_effects(items: list[str]) -> dict[str, float]:
    from pipelines.synth.model import DEFAULT_EFFECTS, POINT_EFFECTS

    effects: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in DEFAULT_EFFECTS:
            raise UserError(f"--effect: expected ID=VALUE with ID one of {', '.join(sorted(DEFAULT_EFFECTS))}")
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"--effect {key}: value is not a number") from None
        effects[key] = number if key in POINT_EFFECTS else number / 100.0
    return effects


def _load_config(path: str) -> dict[str, Any]:
    import yaml

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        if file.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        raise UserError(f"{path}: not valid YAML/JSON") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data


def _check(records: int, seed: int, fmt: str, options: dict[str, Any]) -> None:
    if records < 1:
        raise UserError("--records must be at least 1")
    if seed < 0:
        raise UserError("--seed must be 0 or more")
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}")
    sites = options.get("sites")
    if sites is not None and not 1 <= int(sites) <= 100:
        raise UserError("--sites must be between 1 and 100")
    quarters = options.get("quarters")
    if quarters is not None and not 1 <= int(quarters) <= 40:
        raise UserError("--quarters must be between 1 and 40")
    end_q = options.get("end_quarter")
    if end_q is not None and not re.fullmatch(r"(19|20)\d\dQ[1-4]", str(end_q)):
        raise UserError("--end-quarter must look like 2026Q3")
    start = options.get("start")
    if start is not None:
        if end_q is not None:
            raise UserError("--start and --end-quarter exclude each other: --start and --quarters set the period")
        options["start"] = _start_date(start)


def _start_date(value: Any):
    """--start (or the config's 'start', which YAML may have read as a date) as a date."""
    from datetime import date

    if isinstance(value, date):
        text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    else:
        text = str(value).strip()
    try:
        if not re.fullmatch(DATE_PATTERN, text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise UserError("--start must be a date YYYY-MM-DD (1900-2099), e.g. 2026-10-01") from None


def _check_id_prefix(prefix: Any, fmt: str) -> str:
    if isinstance(prefix, int) and not isinstance(prefix, bool):
        prefix = str(prefix)  # a YAML config's 'id_prefix: 2026'
    if not isinstance(prefix, str) or not re.fullmatch(ID_PREFIX_PATTERN, prefix):
        raise UserError(f"--id-prefix must match {ID_PREFIX_PATTERN} (1-20 letters, digits, '-' or '_', "
                        "starting with a letter or digit), e.g. q2-")
    if fmt != "native":
        raise UserError("--id-prefix applies to the native format only (teds-d CASEIDs are numbers)")
    return prefix


def make_folder(path: Any) -> Path:
    """The output folder, created if missing (a one-line error if it cannot be)."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out}: cannot create the output folder ({exc.strerror})") from None
    return out


def write_files(out_dir, records: int, seed: int, fmt: str = "native", teds_year: int = 2019,
                id_prefix: str | None = None, **options: Any) -> dict:
    """Generate and write the files; return the truth dictionary (also in truth.json).

    ``id_prefix`` (``--id-prefix``) is put before every episode, person and follow-up id.
    """
    _check(records, seed, fmt, options)
    if id_prefix is not None:
        id_prefix = _check_id_prefix(id_prefix, fmt)
    if fmt == "teds-d" and not 2017 <= teds_year <= 2020:
        raise UserError("--teds-year must be 2017-2020 (the 76-column codebook)")
    import numpy as np

    from pipelines.synth import model
    out = make_folder(out_dir)
    try:
        data = model.generate(records, seed, fmt=fmt, **options)
    except ValueError as exc:
        raise UserError(f"synth: {exc}") from None
    truth = data.truth
    files: list[str] = []
    if fmt == "native":
        discharges, site_ids = _discharge_frame(data, id_prefix or "")
        discharges.write_csv(out / "discharges.csv", float_precision=2, date_format="%Y-%m-%d")
        del discharges  # memory: one frame at a time (1.7M episodes in the benchmark)
        _followup_frame(data, site_ids, id_prefix or "").write_csv(out / "followups.csv", float_precision=2,
                                                                   date_format="%Y-%m-%d")
        files = ["discharges.csv", "followups.csv"]
    else:
        from pipelines.synth import teds

        # the TEDS mapping has its own stream so the native draws stay comparable
        rng = np.random.default_rng(np.random.PCG64([seed, 2]))
        teds.teds_frame(data, rng, teds_year).write_csv(out / "tedsd_puf.csv")
        files = ["tedsd_puf.csv"]
        truth["teds_year"] = teds_year
    truth["files"] = files + ["truth.json"]
    if id_prefix is not None:  # only then: the default truth.json keeps its bytes
        truth["id_prefix"] = id_prefix
    (out / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True, allow_nan=False) + "\n",
                                    encoding="utf-8")
    return truth


def _words(words: list[str], codes):
    import polars as pl

    return pl.Series(words, dtype=pl.Utf8).gather(pl.Series(codes).cast(pl.UInt32))


def _discharge_frame(data, id_prefix: str = ""):
    import numpy as np
    import polars as pl

    from pipelines.synth import model as m

    ep = data.episodes
    n = ep["level"].shape[0]
    sites = m.site_names(int(data.truth["parameters"]["sites"]))
    width = max(7, len(str(n)))
    epi = np.arange(1, n + 1)
    site_word = _words(sites, ep["site"])
    cols = {
        "episode_id": pl.Series(epi).cast(pl.Utf8).str.zfill(width),
        "person_id": pl.Series(ep["person_code"] + 1).cast(pl.Utf8).str.zfill(width),
        "site_id": site_word,
        "program_id": _words(PROGRAM_SUFFIX, ep["level"]),
        "level_of_care": _words(m.LEVELS, ep["level"]),
        "asam_level": _words(m.ASAM_CODES, np.maximum(ep["asam_code"], 0)),
        "admit_date": pl.Series(ep["admit_day"].astype(np.int32)).cast(pl.Date),
        "discharge_date": pl.Series(ep["discharge_day"].astype(np.int32)).cast(pl.Date),
        "discharge_reason": _words(m.REASONS, ep["reason"]),
        "age_band": _words(m.AGE_BANDS, ep["age"]),
        "sex": _words(m.SEXES, ep["sex"]),
        "race": _words(m.RACES, ep["race"]),
        "ethnicity": _words(m.ETHNICITIES, ep["ethnicity"]),
        "primary_substance": _words(m.SUBSTANCES, ep["substance"]),
        "co_occurring_mh": pl.Series(ep["co_occurring"]),
        "prior_episodes": pl.Series(ep["prior_episodes"].astype(np.int32)),
        "days_waiting": pl.Series(ep["days_waiting"].astype(np.int32)),
        "use_days_admit": pl.Series(ep["use_days_admit"].astype(np.int32)),
        "use_days_discharge": pl.Series(ep["use_days_discharge"].astype(np.int32)),
        "phq9_admit": pl.Series(ep["phq9_admit"].astype(np.int32)),
        "phq9_discharge": pl.Series(ep["phq9_discharge"].astype(np.int32)),
        "gad7_admit": pl.Series(ep["gad7_admit"].astype(np.int32)),
        "gad7_discharge": pl.Series(ep["gad7_discharge"].astype(np.int32)),
        "employed_admit": pl.Series(ep["employed"]),
        "employed_discharge": pl.Series(ep["employed_discharge"]),
        "homeless_admit": pl.Series(ep["homeless"]),
        "homeless_discharge": pl.Series(ep["homeless_discharge"]),
        "arrests_admit": pl.Series(ep["arrests_admit"].astype(np.int32)),
        "arrests_discharge": pl.Series(ep["arrests_discharge"].astype(np.int32)),
        "payer": _words(m.PAYERS, ep["payer"]),
        "referral_source": _words(m.REFERRALS, ep["referral"]),
        "mat": pl.Series(ep["mat"]),
        "hours_per_week": pl.Series(ep["hours_per_week"]),
        "sessions_attended": pl.Series(ep["sessions_attended"].astype(np.int32)),
        "family_involved": pl.Series(ep["family_involved"]),
        "satisfaction": pl.Series(ep["satisfaction"].astype(np.int32)),
        "episode_cost": pl.Series(ep["episode_cost"]),
    }
    valid = {key[: -len("__valid")]: ep[key] for key in ep if key.endswith("__valid")}
    valid["level_of_care"] = ~ep["asam_only"]
    valid["asam_level"] = ep["asam_given"]
    df = pl.DataFrame({k: cols[k].alias(k) for k in DISCHARGE_COLUMNS})
    exprs = []
    for key in DISCHARGE_COLUMNS:
        if key in valid:
            exprs.append(pl.when(pl.Series(valid[key])).then(pl.col(key)).otherwise(None).alias(key))
    df = df.with_columns(exprs)
    df = df.with_columns(
        pl.concat_str([pl.lit(id_prefix + "E"), pl.col("episode_id")]).alias("episode_id"),
        pl.concat_str([pl.lit(id_prefix + "P"), pl.col("person_id")]).alias("person_id"),
        pl.concat_str([pl.col("site_id"), pl.lit("-"), pl.col("program_id")]).alias("program_id"),
    )
    return df, sites


def _followup_frame(data, sites, id_prefix: str = ""):
    import numpy as np
    import polars as pl

    fu, ep = data.followups, data.episodes
    m = fu["episode"].shape[0]
    width = max(7, len(str(max(m, ep["level"].shape[0]))))
    ewidth = max(7, len(str(ep["level"].shape[0])))
    from pipelines.synth.model import FOLLOWUP_STATUSES

    cols = {
        "followup_id": pl.Series(np.arange(1, m + 1)).cast(pl.Utf8).str.zfill(width),
        "episode_id": pl.Series(fu["episode"] + 1).cast(pl.Utf8).str.zfill(ewidth),
        "site_id": _words(sites, ep["site"][fu["episode"]]),
        "window_days": pl.Series(fu["window"].astype(np.int32)),
        "contact_date": pl.Series(fu["contact_day"].astype(np.int32)).cast(pl.Date),
        "status": _words(FOLLOWUP_STATUSES, fu["status"]),
    }
    for key in FOLLOWUP_COLUMNS[6:]:
        v = fu[key]
        cols[key] = pl.Series(v if v.dtype == bool else v.astype(np.int32))
    df = pl.DataFrame({k: cols[k].alias(k) for k in FOLLOWUP_COLUMNS})
    df = df.with_columns(
        [pl.when(pl.Series(fu[f"{k}__valid"])).then(pl.col(k)).otherwise(None).alias(k) for k in FOLLOWUP_COLUMNS[6:]]
    )
    return df.with_columns(pl.concat_str([pl.lit(id_prefix + "F"), pl.col("followup_id")]).alias("followup_id"),
                           pl.concat_str([pl.lit(id_prefix + "E"), pl.col("episode_id")]).alias("episode_id"))


def _run_benchmark(args: argparse.Namespace) -> int:
    from pipelines.synth.national import write_benchmark_files

    given = [name for name, value in (("--config", args.config), ("--effect", args.effect),
                                      ("--quarters", args.quarters), ("--end-quarter", args.end_quarter),
                                      ("--start", args.start), ("--id-prefix", args.id_prefix),
                                      ("--unmeasured", args.unmeasured)) if value not in (None, [])]
    if given:
        raise UserError(f"{given[0]} does not apply to --format benchmark")
    offsets = None
    if args.site_offsets is not None:
        try:
            offsets = [float(x) for x in args.site_offsets.split(",")]
        except ValueError:
            raise UserError("--site-offsets: expected numbers separated by commas, e.g. 0.5,0,-0.5") from None
    sites = args.sites if args.sites is not None else (len(offsets) if offsets else 6)
    program = args.program_records if args.program_records is not None else max(1, args.records // 5)
    write_benchmark_files(args.out, args.records, program, args.seed, sites=sites, site_offsets=offsets,
                          teds_year=args.teds_year)
    print(f"synth: wrote {args.records} national TEDS-D rows and {program} program episodes "
          f"(tedsd_puf.csv, discharges.csv, truth.json) to {os.fspath(args.out)}, seed {args.seed}")
    return 0


def run_synth(args: argparse.Namespace, settings) -> int:
    if args.fmt == BENCHMARK:
        return _run_benchmark(args)
    for name, value in (("--program-records", args.program_records), ("--site-offsets", args.site_offsets)):
        if value is not None:
            raise UserError(f"{name} applies to --format benchmark only")
    options: dict[str, Any] = {}
    if args.config:
        cfg = _load_config(args.config)
        unknown = sorted(set(cfg) - CONFIG_KEYS)
        if unknown:
            raise UserError(f"{args.config}: unknown key '{unknown[0]}'")
        if "effects" in cfg:
            if not isinstance(cfg["effects"], dict):
                raise UserError(f"{args.config}: 'effects' must be a mapping")
            options["effects"] = _parse_effects([f"{k}={v}" for k, v in cfg["effects"].items()])
        for key in CONFIG_KEYS - {"effects"}:
            if key in cfg:
                options[key] = cfg[key]
    if args.effect:
        options["effects"] = {**options.get("effects", {}), **_parse_effects(args.effect)}
    for key in ("sites", "quarters", "end_quarter", "start", "id_prefix", "unmeasured"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    truth = write_files(args.out, records=args.records, seed=args.seed, fmt=args.fmt,
                        teds_year=args.teds_year, **options)
    what = ", ".join(truth["files"])
    extra = f" and {truth['followup_rows']} follow-up attempts" if args.fmt == "native" else ""
    noun = "episode" if args.records == 1 else "episodes"
    print(f"synth: wrote {args.records} {noun}{extra} ({what}) to {os.fspath(args.out)}, seed {args.seed}")
    return 0
