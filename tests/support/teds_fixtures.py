"""Small TEDS-D files of every era, built in code from one record written in 2015+ codes.

The era layouts (column lists) and the 2006-2014 recodes are written out here by hand from
shared/reference/teds-d.md, independently of pipelines/ingest; only the 2021 text labels are
taken from data_contracts/teds_d_codes.yaml (the labels are the contract's to define).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

# 2017-2019 variables (76), reference order.
VARS_2017 = ["AGE", "ALCDRUG", "ALCFLG", "AMPHFLG", "ARRESTS", "ARRESTS_D", "BARBFLG", "BENZFLG", "CASEID", "CBSA2010", "COKEFLG", "DAYWAIT", "DETCRIM", "DETNLF", "DETNLF_D", "DISYR", "DIVISION", "DSMCRIT", "EDUC", "EMPLOY", "EMPLOY_D", "ETHNIC", "FREQ1", "FREQ2", "FREQ3", "FREQ1_D", "FREQ2_D", "FREQ3_D", "FREQ_ATND_SELF_HELP", "FREQ_ATND_SELF_HELP_D", "FRSTUSE1", "FRSTUSE2", "FRSTUSE3", "GENDER", "HALLFLG", "HERFLG", "HLTHINS", "IDU", "INHFLG", "LIVARAG", "LIVARAG_D", "LOS", "MARFLG", "MARSTAT", "METHFLG", "METHUSE", "MTHAMFLG", "NOPRIOR", "OPSYNFLG", "OTCFLG", "OTHERFLG", "PCPFLG", "PREG", "PRIMINC", "PRIMPAY", "PSOURCE", "PSYPROB", "RACE", "REASON", "REGION", "ROUTE1", "ROUTE2", "ROUTE3", "SEDHPFLG", "SERVICES", "SERVICES_D", "STFIPS", "STIMFLG", "SUB1", "SUB2", "SUB3", "SUB1_D", "SUB2_D", "SUB3_D", "TRNQFLG", "VET"]
assert len(VARS_2017) == 76

DEFAULT = {
    "CASEID": "1", "STFIPS": "6", "DISYR": "2019", "SERVICES": "6", "SERVICES_D": "6", "REASON": "1", "LOS": "20",
    "AGE": "6", "GENDER": "2", "RACE": "5", "ETHNIC": "4", "SUB1": "2", "PSYPROB": "1", "NOPRIOR": "0",
    "FREQ1": "3", "FREQ1_D": "1", "EMPLOY": "1", "EMPLOY_D": "2", "LIVARAG": "3", "LIVARAG_D": "1",
    "ARRESTS": "0", "ARRESTS_D": "2", "PSOURCE": "7", "PRIMPAY": "4", "METHUSE": "2",
}
# What DEFAULT must load as (worked out by hand from the codebook summary).
DEFAULT_EXPECTED = {
    "episode_id": "1", "site_id": "state-06", "discharge_year": 2019, "services_d": 6, "level_of_care": "iop",
    "discharge_reason": "completed", "los_code": 20, "age_band": "30-34", "sex": "female", "race": "white",
    "ethnicity": "not_hispanic", "primary_substance": "alcohol", "co_occurring_mh": True,
    "has_prior_episodes": False, "use_frequency_admit": "daily", "use_frequency_discharge": "none",
    "employed_admit": True, "employed_discharge": True, "homeless_admit": False, "homeless_discharge": True,
    "arrests_admit": 0, "arrests_discharge": 2, "referral_source": "court", "payer": "medicaid", "mat": False,
}

# 2006-2014 recodes from 2015+ codes (reference: AGE 2-12, FREQ1 5 levels, NOPRIOR 0-5, old ETHNIC).
OLD_AGE = {str(k): str(k + 1) for k in range(1, 12)} | {"12": "12", "-9": "-9"}
OLD_FREQ1 = {"1": "1", "2": "3", "3": "5", "-9": "-9"}  # some -> "1-2 times per week", daily -> 5
OLD_NOPRIOR = {"0": "0", "1": "3", "-9": "-9"}  # one or more -> three prior episodes
OLD_ETHNIC = {"1": "1", "2": "2", "3": "4", "4": "5", "5": "6", "-9": "-9"}


def teds_record(**over: str) -> dict[str, str]:
    rec = {v: "-9" for v in VARS_2017}
    rec.update(DEFAULT)
    rec.update(over)
    return rec


def _labels() -> tuple[dict[str, dict[str, str]], str]:
    """source variable -> {code: 2021 label}, and the missing label, from the contract's code tables."""
    from pipelines.contracts import teds_codes

    codes = teds_codes()
    out: dict[str, dict[str, str]] = {}
    for spec in codes["targets"].values():
        if spec["output"] in ("text", "year"):
            continue
        src = spec["source"] if isinstance(spec["source"], str) else spec["source"][0]
        table = codes["tables"][spec["table"]]
        out[src.upper()] = {str(k): str(v[1]) for k, v in table.items() if k != "missing"}
    return out, codes["missing_labels"][0]


def era_rows(records: Iterable[Mapping[str, str]], era: str) -> tuple[list[str], list[dict[str, str]]]:
    records = [dict(r) for r in records]
    if era == "2017-2020":
        return VARS_2017, records
    if era == "2022":
        cols = [("CBSA2020" if v == "CBSA2010" else v) for v in VARS_2017]
        return cols, [{("CBSA2020" if k == "CBSA2010" else k): v for k, v in r.items()} for r in records]
    if era == "2021":
        labels, missing = _labels()
        cols = [("CBSA2020" if v == "CBSA2010" else v) for v in VARS_2017]
        out = []
        for r in records:
            row = {("CBSA2020" if k == "CBSA2010" else k): v for k, v in r.items()}
            for var, table in labels.items():
                if var in row:
                    code = row[var]
                    row[var] = missing if code == "-9" else table.get(code, code)
            out.append(row)
        return cols, out
    if era == "2015-2016":
        cols = [("CBSA" if v == "CBSA2010" else v) for v in VARS_2017 if v != "DISYR"] + ["NUMSUBS", "YEAR"]
        cols.insert(cols.index("DIVISION"), "DISYR")
        assert len(cols) == 78 and "SERVICES" in cols
        out = []
        for r in records:
            row = {("CBSA" if k == "CBSA2010" else k): v for k, v in r.items()}
            row["YEAR"] = row["DISYR"]
            row["NUMSUBS"] = "1"
            out.append(row)
        return cols, out
    if era == "2006-2014":
        cols = [v for v in VARS_2017 if not v.endswith("_D") and v not in ("SERVICES", "CBSA2010")]
        cols += ["SERVSETD", "CBSA", "PMSA", "NUMSUBS"]
        out = []
        for r in records:
            row = {k: v for k, v in r.items() if k in cols}
            row["SERVSETD"] = r["SERVICES_D"]
            row["AGE"] = OLD_AGE[r["AGE"]]
            row["FREQ1"] = OLD_FREQ1[r["FREQ1"]]
            row["NOPRIOR"] = OLD_NOPRIOR[r["NOPRIOR"]]
            row["ETHNIC"] = OLD_ETHNIC[r["ETHNIC"]]
            row.update({"CBSA": "-9", "PMSA": "-9", "NUMSUBS": "1"})
            out.append(row)
        return cols, out
    raise ValueError(era)


def teds_csv(records: Sequence[Mapping[str, str]], era: str, drop: Sequence[str] = (),
             delimiter: str = ",") -> str:
    cols, rows = era_rows(records, era)
    cols = [c for c in cols if c not in drop]
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([r.get(c, "-9") for c in cols])
    return buf.getvalue()


def varied_records(n: int = 36, year: str = "2019") -> list[dict[str, str]]:
    """n records cycling through every code of the main variables (a few dozen rows per era)."""
    cycle: dict[str, list[str]] = {
        "SERVICES_D": [str(i) for i in range(1, 9)], "REASON": [str(i) for i in range(1, 8)],
        "LOS": ["1", "7", "30", "31", "33", "36", "37", "-9"], "AGE": [str(i) for i in range(1, 12)],
        "GENDER": ["1", "2", "-9"], "RACE": [str(i) for i in range(1, 10)] + ["-9"],
        "ETHNIC": ["1", "2", "3", "4", "5", "-9"], "SUB1": [str(i) for i in range(1, 20)],
        "PSYPROB": ["1", "2", "-9"], "NOPRIOR": ["0", "1", "-9"], "FREQ1": ["1", "2", "3", "-9"],
        "FREQ1_D": ["1", "2", "3"], "EMPLOY": ["1", "2", "3", "4", "-9"], "EMPLOY_D": ["4", "3", "2", "1"],
        "LIVARAG": ["1", "2", "3"], "LIVARAG_D": ["3", "1", "2", "-9"], "ARRESTS": ["0", "1", "2"],
        "ARRESTS_D": ["2", "0", "1", "-9"], "PSOURCE": [str(i) for i in range(1, 8)],
        "PRIMPAY": [str(i) for i in range(1, 8)] + ["-9"], "METHUSE": ["1", "2", "-9"],
        "STFIPS": ["1", "6", "36", "72", "48"],
    }
    out = []
    for i in range(n):
        rec = teds_record(CASEID=f"{year}{i:07d}", DISYR=year)
        for var, values in cycle.items():
            rec[var] = values[i % len(values)]
        rec["SERVICES"] = rec["SERVICES_D"]
        out.append(rec)
    return out

