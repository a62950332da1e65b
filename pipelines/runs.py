"""The run registry: every analysis run gets an id and a stored manifest.

A manifest records what a rerun needs to reproduce a run's numbers exactly: the input files
(by sha256 — raw rows stay content-addressed in the warehouse, so a rerun can restrict itself
to them even after newer files were loaded), the contract and definition versions with the
definitions' full text, the parameters and seed, package versions and the code version.

Manifests hold ids, hashes, versions and parameters only — never row-level values.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
from collections.abc import Mapping
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

