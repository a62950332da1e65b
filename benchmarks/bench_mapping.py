"""Benchmark: ingesting an EHR-shaped discharge file through a mapping vs the same records unmapped.

    uv run --frozen python benchmarks/bench_mapping.py [RECORDS] [--keep DIR] [--reps 2]

Writes RECORDS synthetic discharges (``levelcare synth``, default 1,700,000), then an
"EHR export" of the same records: every column renamed to EHR wording ("Episode ID", "Level
of Care", ...), the codes of level_of_care, discharge_reason, sex, primary_substance and payer
replaced by EHR labels ("Intensive Outpatient", "AMA", "F", ...), dates written 9/14/2026 and
booleans Y/N, with a mapping file that translates it back (docs/mapping.md). Each file is
ingested into a fresh warehouse in a fresh process (great-expectations imported before the
clock starts), alternating the two, ``--reps`` times each. Prints seconds per run, the median
ratio mapped / unmapped (the budget is 1.10) and that both warehouses hold identical rows.
A script, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RENAME = {
    "episode_id": "Episode ID", "person_id": "Client Number", "site_id": "Facility", "program_id": "Program",
    "level_of_care": "Level of Care", "asam_level": "ASAM Level", "admit_date": "Admission Date",
    "discharge_date": "Discharge Date", "discharge_reason": "Discharge Reason", "age_band": "Age Group",
    "sex": "Gender", "race": "Race", "ethnicity": "Ethnicity", "primary_substance": "Primary Substance",
    "co_occurring_mh": "Co-Occurring MH", "payer": "Payer", "mat": "MAT",
}
LABELS = {
    "level_of_care": {"outpatient": "Outpatient", "iop": "Intensive Outpatient", "php": "Partial Hospitalization",
                      "residential_short": "Residential Short-Term", "residential_long": "Residential Long-Term",
                      "residential_hospital": "Hospital Residential", "inpatient": "Inpatient",
                      "detox": "Withdrawal Management"},
    "discharge_reason": {"completed": "Treatment Completed", "transferred": "Transferred", "dropped_out": "AMA",
                         "terminated": "Administrative Discharge", "incarcerated": "Incarcerated",
                         "death": "Deceased", "other": "Other"},
    "sex": {"female": "F", "male": "M", "other": "X", "unknown": "U"},
    "primary_substance": {"alcohol": "Alcohol", "opioids": "Heroin/Opioids", "stimulants": "Methamphetamine",
                          "cannabis": "Marijuana", "sedatives": "Benzodiazepines", "other": "Other Drug",
                          "none": "None"},
    "payer": {"medicaid": "Medicaid", "medicare": "Medicare", "private": "Commercial Insurance",
              "self": "Self Pay", "other": "Other", "none": "Uninsured", "unknown": "Unknown"},
}
BOOLS = ("co_occurring_mh", "mat")
DATES = ("admit_date", "discharge_date")


def make_files(work: Path, records: int) -> tuple[Path, Path, Path]:
    import duckdb

    native = work / "native" / "discharges.csv"
    if not native.exists():
        subprocess.run([sys.executable, "-m", "pipelines", "synth", "--out", str(work / "native"), "--records",
                        str(records), "--seed", "1"], check=True, stdout=subprocess.DEVNULL)
        (work / "native" / "followups.csv").unlink(missing_ok=True)
    ehr = work / "ehr" / "export.csv"
    mapping = work / "mapping.yaml"
    con = duckdb.connect()
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_csv('{native}', all_varchar=true)").fetchall()]
    exprs = []
    for c in columns:
        q = f'"{c}"'
        if c in LABELS:
            whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in LABELS[c].items())
            q = f"CASE {q} {whens} ELSE {q} END"
        elif c in BOOLS:
            q = f"CASE lower({q}) WHEN 'true' THEN 'Y' WHEN 'false' THEN 'N' ELSE {q} END"
        elif c in DATES:
            q = f"strftime(TRY_CAST({q} AS DATE), '%-m/%-d/%Y')"
        name = RENAME.get(c, c)
        exprs.append(f'{q} AS "{name}"')
    if not ehr.exists():
        ehr.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"COPY (SELECT {', '.join(exprs)} FROM read_csv('{native}', all_varchar=true)) TO '{ehr}' "
                    "(HEADER, DELIMITER ',')")
    lines = ["levelcare_mapping: 1", "kind: discharges", "columns:"]
    lines += [f"  {v}: {k}" for k, v in RENAME.items() if k in columns]
    lines += ["values:"]
    for field, table in LABELS.items():
        lines.append(f"  {field}:")
        lines += [f'    "{label}": {code}' for code, label in table.items()]
    lines += ['dates:', '  "*": "%m/%d/%Y"']
    mapping.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return native, ehr, mapping


CHILD = """
import sys, time, resource, json
from pipelines.validation import _context
_context()
import pipelines.ingest.core as core
from pipelines.settings import Settings
path, wh, mapping = sys.argv[1], sys.argv[2], sys.argv[3] or None
inner = {}
ingest_file = core.ingest_file
def timed(*a, **k):
    t0 = time.perf_counter()
    try:
        return ingest_file(*a, **k)
    finally:
        inner["file"] = time.perf_counter() - t0
core.ingest_file = timed
t = time.perf_counter()
(row,) = core.ingest_paths(Settings.from_options(warehouse=wh, environ={}), [path], mapping=mapping, docs=False)
print(json.dumps({"seconds": time.perf_counter() - t, "file_seconds": inner["file"], "status": row.status,
                  "rows_loaded": row.rows_loaded,
                  "rows_quarantined": row.rows_quarantined,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _ingest(path: Path, wh: Path, mapping: Path | None) -> dict:
    from bench_ingest import _child  # beside this script

    wh.unlink(missing_ok=True)
    return _child(CHILD, str(path), str(wh), str(mapping or ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="?", type=int, default=1_700_000)
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lc-bench-mapping-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    native, ehr, mapping = make_files(work, args.records)
    print(f"files: {native.stat().st_size / 2**20:.0f} MiB native, {ehr.stat().st_size / 2**20:.0f} MiB EHR-shaped, "
          f"written in {time.perf_counter() - t:.0f} s")
    runs: dict[str, list[dict]] = {"unmapped": [], "mapped": []}
    for rep in range(args.reps):
        for label, path, m in (("unmapped", native, None), ("mapped", ehr, mapping)):
            r = _ingest(path, work / f"{label}.duckdb", m)
            runs[label].append(r)
            # the rest of a run beyond the file's own work: opening the warehouse, and DuckDB's
            # checkpoint when it closes
            print(f"rep {rep + 1} {label:<8}: {r['seconds']:6.1f} s (the file {r['file_seconds']:.1f} s, "
                  f"open/close {r['seconds'] - r['file_seconds']:.1f} s)  {r['status']}, loaded {r['rows_loaded']}, "
                  f"quarantined {r['rows_quarantined']}, peak RSS {r['peak_rss_mib']:.0f} MiB")
    med = {k: statistics.median(x["seconds"] for x in v) for k, v in runs.items()}
    print(f"median: unmapped {med['unmapped']:.1f} s, mapped {med['mapped']:.1f} s, "
          f"ratio {med['mapped'] / med['unmapped']:.3f} (budget 1.10)")
    fmed = {k: statistics.median(x["file_seconds"] for x in v) for k, v in runs.items()}
    print(f"the file's own work, median: unmapped {fmed['unmapped']:.1f} s, mapped {fmed['mapped']:.1f} s, "
          f"ratio {fmed['mapped'] / fmed['unmapped']:.3f}")
    import duckdb

    con = duckdb.connect()
    con.execute(f"ATTACH '{work / 'unmapped.duckdb'}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{work / 'mapped.duckdb'}' AS b (READ_ONLY)")
    cols = [r[0] for r in con.execute("DESCRIBE a.raw_discharges").fetchall() if not r[0].startswith("_")]
    sel = ", ".join(f'"{c}"' for c in cols)
    diff = con.execute(f"SELECT (SELECT count(*) FROM (SELECT {sel} FROM a.raw_discharges EXCEPT ALL "
                       f"SELECT {sel} FROM b.raw_discharges)), (SELECT count(*) FROM (SELECT {sel} FROM "
                       f"b.raw_discharges EXCEPT ALL SELECT {sel} FROM a.raw_discharges))").fetchone()
    print(f"rows in one warehouse and not the other: {diff[0]} / {diff[1]} (0 / 0: the mapping gives the same records)")


if __name__ == "__main__":
    main()
