"""The run registry: every analysis run gets an id and a stored manifest.

A manifest records what a rerun needs to reproduce a run's numbers exactly: the input files
(by sha256 — raw rows stay content-addressed in the warehouse, so a rerun can restrict itself
to them even after newer files were loaded), the contract and definition versions with the
definitions' full text, the parameters and seed, package versions and the code version.

Manifests hold ids, hashes, versions and parameters only — never row-level values.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import __version__
from pipelines.errors import UserError

if TYPE_CHECKING:
    import duckdb

# Packages whose versions can change a number in results.json.
_NUMERIC_PACKAGES = ("duckdb", "polars", "numpy", "scipy", "statsmodels", "pandas", "pyarrow", "prefect")

_DDL = """
create table if not exists run_registry (
    run_id varchar primary key,
    created_at timestamp not null,
    command varchar not null,
    status varchar not null,
    out_dir varchar,
    manifest json not null
)
"""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    created_at: dt.datetime
    command: str
    status: str
    out_dir: str | None
    manifest: dict[str, Any]


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique id: UTC time plus 6 random hex digits."""
    now = now or dt.datetime.now(dt.UTC)
    return f"run-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def package_versions() -> dict[str, str]:
    versions = {"levelcare": __version__}
    for name in _NUMERIC_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists():
        try:
            sha = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()
            return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
        except (OSError, subprocess.SubprocessError):
            pass
    return __version__


def ensure_registry(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def record_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    command: str,
    manifest: Mapping[str, Any],
    *,
    status: str = "completed",
    out_dir: Path | str | None = None,
    created_at: dt.datetime | None = None,
) -> RunRecord:
    ensure_registry(con)
    created_at = created_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        "insert or replace into run_registry values (?, ?, ?, ?, ?, ?)",
        [run_id, created_at, command, status, str(out_dir) if out_dir else None,
         json.dumps(manifest, sort_keys=True)],
    )
    return RunRecord(run_id, created_at, command, status, str(out_dir) if out_dir else None, dict(manifest))


def list_runs(con: duckdb.DuckDBPyConnection) -> list[RunRecord]:
    if not _has_registry(con):
        return []
    rows = con.execute(
        "select run_id, created_at, command, status, out_dir, manifest from run_registry order by created_at, run_id"
    ).fetchall()
    return [RunRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


def get_run(con: duckdb.DuckDBPyConnection, run_id: str) -> RunRecord:
    if _has_registry(con):
        row = con.execute(
            "select run_id, created_at, command, status, out_dir, manifest from run_registry where run_id = ?",
            [run_id],
        ).fetchone()
        if row:
            return RunRecord(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))
    raise UserError(f"no run with id {run_id!r} in this warehouse (see `levelcare runs list`)")


def _has_registry(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_name = 'run_registry'"
        ).fetchone()[0]
    )



RAW_TABLES = ("raw_discharges", "raw_followups", "raw_teds_d")
MANIFEST_FILE = "manifest.json"


def _sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_manifest(settings: Any, run_id: str, results: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict:
    """What a rerun needs: inputs by sha256, contract and definition versions (with the
    definitions' full text), parameters, seed, package and code versions."""
    from pipelines import contracts
    from pipelines.definitions import registry

    loaded = registry.load_registry(settings.definitions_dir)
    definitions = []
    for item in results.get("definitions", []):
        d = loaded.get(item["id"])
        text = d.path.read_text(encoding="utf-8") if d is not None and d.path else None
        definitions.append({
            "id": item["id"], "version": item["version"], "origin": d.origin if d else None,
            "sha256": _sha256_text(text) if text is not None else None, "text": text,
        })
    return {
        "run_id": run_id,
        "created_at": results.get("created_at"),
        "parameters": dict(parameters),
        "seed": parameters.get("seed"),
        "inputs": [
            {k: row.get(k) for k in ("file_name", "file_sha256", "kind", "rows_loaded", "mapping_sha256")}
            for row in results.get("inputs", [])
        ],
        "contracts": {c.kind: c.version for c in contracts.all_contracts()},
        "definitions": definitions,
        "packages": package_versions(),
        "code_version": code_version(),
    }


def record_analysis_run(settings: Any, run_id: str, out_dir: Path, parameters: Mapping[str, Any],
                        command: str = "run", *, recorded_out: Path | None = None,
                        rerun_of: str | None = None, manifest_settings: Any = None) -> dict:
    """Write ``manifest.json`` beside ``results.json`` and record the run in the warehouse.

    ``recorded_out``: the folder the registry names (default ``out_dir``; a run writing into a
    staging folder names where its outputs will be); ``rerun_of``: the run a rerun reproduces;
    ``manifest_settings``: where the definitions' texts are read (default ``settings``).
    """
    from pipelines.warehouse import connect

    out_dir = Path(out_dir)
    results = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    manifest = build_manifest(manifest_settings or settings, run_id, results, parameters)
    if rerun_of:
        manifest["rerun_of"] = rerun_of
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    with connect(settings.warehouse, timeout_seconds=settings.lock_timeout_seconds) as con:
        record_run(con, run_id, command, manifest, out_dir=(recorded_out or out_dir).resolve())
    return manifest


@contextlib.contextmanager
def staged_outputs(out_dir: Path, run_id: str) -> Iterator[Path]:
    """A hidden folder inside ``out_dir`` for a run's outputs, moved into ``out_dir`` when the
    block completes; on an error or an interrupt it is removed, so a failed run never leaves
    outputs that look complete (``out_dir`` keeps what it held before)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / f".levelcare-{run_id}.partial"
    work.mkdir()
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for item in sorted(work.iterdir()):
        target = out_dir / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        item.replace(target)
    work.rmdir()


def snapshot_inputs(settings: Any, manifest: Mapping[str, Any], target: Path) -> None:
    """Create warehouse ``target`` holding only the raw rows (and ledger, quarantine) of the
    manifest's input files: the warehouse as that run saw it, whatever was loaded since."""
    import duckdb

    shas = [row["file_sha256"] for row in manifest.get("inputs", [])]
    con = duckdb.connect(str(target))
    try:
        con.execute("attach ? as src (read_only)", [str(settings.warehouse)])
        have = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_catalog = 'src'"
        ).fetchall()}
        missing = set(shas) - {r[0] for r in con.execute(
            "select file_sha256 from src.ingest_ledger where status in ('loaded', 'partial')"
        ).fetchall()} if "ingest_ledger" in have else set(shas)
        if missing:
            raise UserError(
                f"cannot rerun: {len(missing)} input file(s) of the run are no longer in {settings.warehouse}"
            )
        for table in (*RAW_TABLES, "ingest_ledger", "ingest_quarantine"):
            if table not in have:
                continue
            key = "_file_sha256" if table.startswith("raw_") else "file_sha256"
            # table and column names come from the fixed tuples above, never from input
            con.execute(
                f"create table main.{table} as select * from src.{table} where {key} in (select unnest(?))",
                [shas],
            )
        con.execute("detach src")
    finally:
        con.close()


def rerun(settings: Any, run_id: str, out_dir: Path) -> dict:
    """Reproduce run ``run_id`` into ``out_dir`` from the inputs it used: results, report (the
    formats the run wrote) and manifest, recorded in the registry as a run of its own
    (command ``rerun``, ``rerun_of`` in its manifest)."""
    import dataclasses
    import tempfile

    from pipelines.analysis.command import analyze
    from pipelines.definitions import registry
    from pipelines.warehouse import connect

    with connect(settings.warehouse, read_only=True) as con:
        record = get_run(con, run_id)
    manifest = record.manifest
    builtins = registry.load_registry(None)
    with tempfile.TemporaryDirectory(prefix="levelcare-rerun-") as tmp:
        defs_dir = Path(tmp) / "definitions"
        defs_dir.mkdir()
        for d in manifest["definitions"]:
            if d["text"] is None:
                raise UserError(f"cannot rerun {run_id}: definition {d['id']!r} was stored without its text")
            current = builtins.get(d["id"])
            if d["origin"] == "built-in":
                current_text = current.path.read_text(encoding="utf-8") if current and current.path else None
                if current_text is None or _sha256_text(current_text) != d["sha256"]:
                    raise UserError(
                        f"cannot rerun {run_id}: built-in definition {d['id']!r} changed since the run "
                        f"(version {d['version']}); rerun with levelcare {manifest['packages']['levelcare']}"
                    )
            else:
                (defs_dir / f"{d['id']}.yaml").write_text(d["text"], encoding="utf-8")
        snapshot = Path(tmp) / "snapshot.duckdb"
        snapshot_inputs(settings, manifest, snapshot)
        params = manifest["parameters"]
        scratch = dataclasses.replace(settings, warehouse=snapshot, definitions_dir=defs_dir)
        new_id = new_run_id()
        from pipelines.ingest.core import docs_root_of
        from pipelines.report.command import FORMATS, write_report
        from pipelines.results.periods import parse_period

        period = parse_period(params.get("period"))
        with staged_outputs(Path(out_dir), new_id) as work:
            # a manifest without a period is of a run that counted all data (it had a report
            # quarter only); the validation reports of the run's files stay beside the warehouse
            # they were loaded into
            reference = params.get("reference_warehouse")
            analyze(scratch, work, [d["id"] for d in manifest["definitions"]], params.get("by"),
                    run_id=new_id, period=period, docs_root=docs_root_of(settings),
                    reference_warehouse=Path(reference) if reference else None)
            files = write_report(work, period=period, formats=params.get("formats") or FORMATS)
            record_analysis_run(settings, new_id, work, params, "rerun", recorded_out=Path(out_dir),
                                rerun_of=run_id, manifest_settings=scratch)
    return {"run_id": new_id, "rerun_of": run_id, "out_dir": str(out_dir),
            "files": [str(Path(out_dir) / p.name) for p in files]}

