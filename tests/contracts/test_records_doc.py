"""docs/records.md is the complete record spec: it keeps every promise of records-v1.

The expectations below are copied by hand from records-v1 (the spec this document replaces), and
the field tables are read from the document's own text and compared with the contract YAML
directly, so a generator bug cannot hide behind itself. The example files the document shows are
ingested with the real ingest: every example row must load.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "records.md"
CONTRACTS = ROOT / "data_contracts"
YAML_FILES = {"discharges": "discharges.yaml", "followups": "followups.yaml", "teds-d": "teds_d.yaml"}

# ---------------------------------------------------------------- records-v1, copied by hand
# field -> (required, allowed values or None); "alt" = required, or its alternative instead
V1_FIELDS: dict[str, dict[str, tuple[bool | str, list[str] | None]]] = {
    "discharges": {
        "episode_id": (True, None),
        "person_id": (True, None),
        "site_id": (True, None),
        "program_id": (False, None),
        "level_of_care": ("alt", ["outpatient", "iop", "php", "residential_short", "residential_long",
                                  "residential_hospital", "inpatient", "detox"]),
        "asam_level": (False, ["0.5", "1", "2.1", "2.5", "3.1", "3.3", "3.5", "3.7", "4"]),
        "admit_date": (True, None),
        "discharge_date": (True, None),
        "discharge_reason": (True, ["completed", "transferred", "dropped_out", "terminated", "incarcerated",
                                    "death", "other"]),
        "age_band": ("alt", ["12-14", "15-17", "18-20", "21-24", "25-29", "30-34", "35-39", "40-44", "45-49",
                             "50-54", "55-64", "65+"]),
        "sex": (True, ["female", "male", "other", "unknown"]),
        "race": (False, ["alaska_native", "american_indian", "asian", "black", "white", "pacific_islander",
                         "other", "multiple", "unknown"]),
        "ethnicity": (False, ["hispanic", "not_hispanic", "unknown"]),
        "primary_substance": (True, ["alcohol", "opioids", "stimulants", "cannabis", "sedatives", "other", "none"]),
        "co_occurring_mh": (True, None),
        "prior_episodes": (False, None),
        "days_waiting": (False, None),
        "use_days_admit": (False, None),
        "use_days_discharge": (False, None),
        "phq9_admit": (False, None), "phq9_discharge": (False, None),
        "gad7_admit": (False, None), "gad7_discharge": (False, None),
        "employed_admit": (False, None), "employed_discharge": (False, None),
        "homeless_admit": (False, None), "homeless_discharge": (False, None),
        "arrests_admit": (False, None), "arrests_discharge": (False, None),
        "payer": (False, ["medicaid", "medicare", "private", "self", "other", "none", "unknown"]),
        "referral_source": (False, ["self", "court", "provider", "school", "employer", "community", "other"]),
        "mat": (False, None),
        "hours_per_week": (False, None),
        "sessions_attended": (False, None),
        "family_involved": (False, None),
        "satisfaction": (False, None),
        "episode_cost": (False, None),
    },
    "followups": {
        "followup_id": (True, None),
        "episode_id": (True, None),
        "site_id": (True, None),
        "window_days": (True, ["30", "90", "180", "365"]),
        "contact_date": ("alt", None),
        "status": (True, ["reached", "unreachable", "refused", "deceased"]),
        "abstinent_30d": (False, None),
        "use_days_30": (False, None),
        "readmitted": (False, None),
        "overdose": (False, None),
        "employed": (False, None),
        "homeless": (False, None),
        "arrests_30": (False, None),
        "phq9": (False, None),
        "gad7": (False, None),
        "er_visits_30": (False, None),
    },
}
# records-v1 ranges ("0–30", "0–27", "0–21", "1–5")
V1_RANGES = {"discharges": {"use_days_admit": "0 to 30", "use_days_discharge": "0 to 30", "phq9_admit": "0 to 27",
                            "phq9_discharge": "0 to 27", "gad7_admit": "0 to 21", "gad7_discharge": "0 to 21",
                            "satisfaction": "1 to 5"},
             "followups": {"use_days_30": "0 to 30", "phq9": "0 to 27", "gad7": "0 to 21"}}
# records-v1 "Harmonized level of care": level -> (ASAM, TEDS-D SERVICES_D)
V1_LEVELS = {
    "outpatient": ("1", "7"),
    "iop": ("2.1", "6"),
    "php": ("2.5", "—"),
    "residential_short": ("3.1–3.5", "4"),
    "residential_long": ("3.1–3.5", "5"),
    "residential_hospital": ("3.7", "3"),
    "inpatient": ("4", "—"),
    "detox": ("WM levels", "1, 2, 8"),
}
V1_MEANING_WORDS = {"iop": "9–19", "php": "20+", "residential_short": "30 days or fewer",
                    "residential_long": "more than 30 days", "detox": "withdrawal management"}
V1_REASON = {1: "completed", 2: "dropped_out", 3: "terminated", 4: "transferred", 5: "incarcerated", 6: "death",
             7: "other"}
# preamble promises of records-v1, as words the document must contain
V1_PHRASES = ["UTF-8", "BOM", "Latin-1", "Parquet", "XLSX", "header", "case-insensitive", "ISO 8601",
              "`2026-07-15`", "`true`/`false`", "`yes`/`no`", "`y`/`n`", "`1`/`0`", "empty field is missing",
              "lower-case", "anonymized", "names", "SSN", "MRN", "phone", "e-mail", "street address", "full ZIP",
              "exact birth date", "pseudonyms", "limited data set", "calendar quarter",
              "never rename or drop", "Group `residential`", "`planned_los_days` > 30"]


# ---------------------------------------------------------------- reading the document
@pytest.fixture(scope="module")
def doc() -> str:
    return DOC_PATH.read_text(encoding="utf-8")


def sections(text: str, level: int = 2) -> dict[str, str]:
    """Heading text -> body, for headings of exactly ``level`` #s."""
    mark = "#" * level + " "
    out: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith(mark):
            current = line[len(mark):]
            out[current] = ""
        elif re.match(rf"#{{1,{level}}} ", line):
            current = None
        elif current is not None:
            out[current] += line + "\n"
    return out


def section(text: str, prefix: str, level: int = 2) -> str:
    found = [body for head, body in sections(text, level).items() if head.startswith(prefix)]
    assert len(found) == 1, f"one section starting {prefix!r} expected"
    return found[0]


def tables(body: str) -> list[list[dict[str, str]]]:
    """Markdown tables of ``body``: a list of rows (header cell -> cell) per table."""
    out: list[list[dict[str, str]]] = []
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(---\|)+", lines[i + 1]):
            head = split_row(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = split_row(lines[i])
                assert len(cells) == len(head), lines[i]
                rows.append(dict(zip(head, cells, strict=True)))
                i += 1
            out.append(rows)
        else:
            i += 1
    return out


def split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [c.strip().replace("\\|", "|") for c in cells]


def unquote(cell: str) -> str:
    return cell[1:-1] if cell.startswith("`") and cell.endswith("`") else cell


def field_table(doc: str, kind: str) -> dict[str, dict[str, str]]:
    body = section(doc, kind)
    found = [t for t in tables(body) if t and "field" in t[0] and "required" in t[0]]
    assert len(found) == 1, f"{kind}: one field table expected"
    return {unquote(r["field"]): r for r in found[0]}


def yaml_contract(kind: str) -> dict:
    return yaml.safe_load((CONTRACTS / YAML_FILES[kind]).read_text(encoding="utf-8"))


def csv_block(doc: str, kind: str) -> str:
    blocks = re.findall(r"```csv\n(.*?)```", section(doc, kind), flags=re.DOTALL)
    assert len(blocks) == 1, f"{kind}: one example CSV expected"
    return blocks[0]


# ---------------------------------------------------------------- the field tables
@pytest.mark.parametrize("kind", ["discharges", "followups", "teds-d"])
def test_field_tables_match_the_yaml(doc, kind):
    raw = yaml_contract(kind)
    table = field_table(doc, kind)
    assert list(table) == [f["name"] for f in raw["fields"]]
    for f in raw["fields"]:
        row = table[f["name"]]
        assert row["type"] == f["type"]
        required = "no"
        if f.get("required"):
            required = f"yes (or `{f['alternative']}`)" if f.get("alternative") else "yes"
        assert row["required"] == required, f["name"]
        if f.get("values") is not None:
            assert row["values / range"].split(", ") == [str(v) for v in f["values"]], f["name"]
        elif f.get("range"):
            assert row["values / range"] == f"{f['range'][0]} to {f['range'][1]}", f["name"]
        else:
            assert row["values / range"] == "", f["name"]
        assert row["description"] == f["description"]
        if kind != "teds-d":
            # every native field shows an example: the first value the example rows give it
            example = f["example"]
            first = next(v for v in (example if isinstance(example, list) else [example]) if v is not None)
            text = ("true" if first else "false") if isinstance(first, bool) else str(first)
            assert row["example"] == f"`{text}`", f["name"]


@pytest.mark.parametrize("kind", ["discharges", "followups"])
def test_every_records_v1_field_and_value_is_documented(doc, kind):
    table = field_table(doc, kind)
    for name, (required, values) in V1_FIELDS[kind].items():
        assert name in table, f"records-v1 field {name} missing from docs/records.md"
        row = table[name]
        if required == "alt":
            assert row["required"].startswith("yes (or `"), name
        else:
            assert row["required"] == ("yes" if required else "no"), name
        if values is not None:
            documented = row["values / range"].split(", ")
            assert set(values) <= set(documented), (name, set(values) - set(documented))
            for v in values:  # and the word appears as text in the document (not only in a cell)
                assert v in doc
    for name, rng in V1_RANGES[kind].items():
        assert table[name]["values / range"] == rng, name


def test_records_v1_preamble_promises(doc):
    for phrase in V1_PHRASES:
        assert phrase in doc, phrase
    links = re.findall(r"\]\(([^)]*mapping\.md)\)", doc)
    assert links, "docs/mapping.md is linked"
    for link in links:  # the link resolves from docs/records.md (and from data_contracts/DICTIONARY.md)
        assert (DOC_PATH.parent / link).resolve() == (ROOT / "docs" / "mapping.md")
        assert (CONTRACTS / link).resolve() == (ROOT / "docs" / "mapping.md")
    assert (ROOT / "docs" / "mapping.md").exists()


def test_level_of_care_table_agrees_with_records_v1(doc):
    (rows,) = tables(section(doc, "Harmonized level of care"))
    got = {unquote(r["`level_of_care`"]): (r["ASAM (3rd ed.)"], r["TEDS-D `SERVICES_D`"]) for r in rows}
    assert got == V1_LEVELS
    meanings = {unquote(r["`level_of_care`"]): r["meaning"] for r in rows}
    for level, words in V1_MEANING_WORDS.items():
        assert words in meanings[level], level
    # and the level words are exactly the contract's
    (level,) = [f for f in yaml_contract("discharges")["fields"] if f["name"] == "level_of_care"]
    assert list(got) == level["values"]


def test_teds_section_keeps_records_v1s_promises(doc):
    teds = section(doc, "teds-d")
    for word in ("SERVICES_D", "SERVSETD", "REASON", "LOS", "`-9`", "never be averaged as days", "no follow-ups"):
        assert word in teds, word
    by_title = {head: body for head, body in sections(teds, 3).items()}
    reason = next(b for h, b in by_title.items() if "`REASON`" in h)
    (rows,) = tables(reason)
    assert {int(r["code"]): unquote(r["`discharge_reason`"]) for r in rows} == V1_REASON
    services = next(b for h, b in by_title.items() if "`SERVICES_D`" in h and "`SERVSETD`" in h)
    (rows,) = tables(services)
    codes: dict[str, list[str]] = {}
    for r in rows:
        codes.setdefault(unquote(r["`level_of_care`"]), []).append(r["code"])
    assert {k: ", ".join(v) for k, v in codes.items()} == {k: t for k, (_, t) in V1_LEVELS.items() if t != "—"}
    los = next(b for h, b in by_title.items() if "`LOS`" in h)
    assert "31 = 31 to 45 days" in los and "37 = more than a year" in los and "above 30" in los
    # every discharge year 2006-2022 belongs to an era; 2021 is the labelled file, 2006-2014 has SERVSETD
    (eras,) = tables(next(b for h, b in by_title.items() if h.startswith("Eras")))
    covered = set()
    for r in eras:
        m = re.fullmatch(r"(\d{4})(?:–(\d{4})| and later)?", r["discharge years"])
        assert m, r
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else (2030 if "later" in r["discharge years"] else lo)
        covered |= set(range(lo, hi + 1))
    assert set(range(2006, 2023)) <= covered
    by_era = {unquote(r["era"]): r["recognised by"] for r in eras}
    assert "label" in by_era["2021"] and "SERVSETD" in by_era["2006-2014"]


# ---------------------------------------------------------------- the examples load
def test_examples_are_valid_records(doc, tmp_path):
    from pipelines.ingest.core import ingest_paths

    folder = tmp_path / "in"
    folder.mkdir()
    texts = {kind: csv_block(doc, kind) for kind in ("discharges", "followups")}
    for kind, text in texts.items():
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 2, kind
        (folder / f"example_{kind}.csv").write_text(text, encoding="utf-8")
    discharges = list(csv.DictReader(io.StringIO(texts["discharges"])))
    followups = list(csv.DictReader(io.StringIO(texts["followups"])))
    assert {f["episode_id"] for f in followups} <= {d["episode_id"] for d in discharges}
    today = dt.date.today()
    for r in discharges:
        assert dt.date.fromisoformat(r["discharge_date"]) < today

    settings = Settings.from_options(warehouse=tmp_path / "w.duckdb", environ={})
    ledger = ingest_paths(settings, [folder], today=today, docs=False)
    assert sorted((r.kind, r.status, r.rows_read, r.rows_loaded, r.rows_quarantined) for r in ledger) == [
        ("discharges", "loaded", 2, 2, 0), ("followups", "loaded", 2, 2, 0)]

    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from ingest_quarantine").fetchone() == (0,)
        loaded = dict(con.execute("select episode_id, level_of_care from raw_discharges").fetchall())
        bands = dict(con.execute("select episode_id, age_band from raw_discharges").fetchall())
    finally:
        con.close()
    # the level an example row without level_of_care gets is the one the document promises
    # (asam_map, and asam_planned_stay for a long planned stay)
    raw = yaml_contract("discharges")
    planned = raw["asam_planned_stay"]
    assert planned["to"] in loaded.values(), "an example row shows the planned-stay rule"
    for r in discharges:
        want = r["level_of_care"] or raw["asam_map"][r["asam_level"]]
        if not r["level_of_care"] and want == planned["from"] and int(r["planned_los_days"] or 0) > planned["over_days"]:
            want = planned["to"]
        assert loaded[r["episode_id"]] == want, r["episode_id"]
        if not r["age_band"]:
            lo, hi = bands[r["episode_id"]].split("-")
            assert int(lo) <= int(r["age"]) <= int(hi)
