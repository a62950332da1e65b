"""Support for the worked notebooks in ``notebooks/``: one session setup, figures, a warehouse.

The notebooks do no analysis of their own; this module only holds what every one of them would
otherwise repeat: the workdir and size knobs read from ``LEVELCARE_NOTEBOOK_*`` environment
variables, saving/showing a figure, and a synthetic warehouse shared by the notebooks of one
workdir. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def import_duckdb_outside_jupyter() -> None:
    """Import duckdb with IPython hidden from it.

    DuckDB decides "am I in Jupyter?" once, when it is imported, and then wants a progress
    widget that needs ipywidgets; call this before anything imports duckdb. Run as a script,
    it changes nothing.
    """
    try:
        import IPython
    except ImportError:  # pragma: no cover - notebooks always have IPython
        import duckdb
        return
    get_ipython = IPython.get_ipython
    IPython.get_ipython = lambda: None
    try:
        import duckdb  # noqa: F401
    finally:
        IPython.get_ipython = get_ipython


@dataclass(frozen=True)
class Session:
    """One notebook's knobs: where it works, how much synthetic data, which seed."""

    name: str
    workdir: Path
    records: int
    seed: int
    own_warehouse: Path | None

    @property
    def out(self) -> Path:
        return self.workdir / self.name

    @classmethod
    def from_environment(cls, name: str) -> Session:
        workdir = os.environ.get("LEVELCARE_NOTEBOOK_WORKDIR") or tempfile.mkdtemp(prefix="levelcare-nb-")
        own = os.environ.get("LEVELCARE_NOTEBOOK_WAREHOUSE")
        session = cls(name=name, workdir=Path(workdir),
                      records=int(os.environ.get("LEVELCARE_NOTEBOOK_RECORDS", "3000")),
                      seed=int(os.environ.get("LEVELCARE_NOTEBOOK_SEED", "20261123")),
                      own_warehouse=Path(own) if own else None)
        session.out.mkdir(parents=True, exist_ok=True)
        return session

    def show(self, fig: Any, name: str) -> None:
        """Save a figure beside the notebook's outputs and show it (inline in Jupyter)."""
        import matplotlib
        import matplotlib.pyplot as plt

        fig.savefig(self.out / f"{name}.png", dpi=110, bbox_inches="tight")
        if matplotlib.get_backend().lower().endswith("agg"):  # run as a script: nothing to show on
            plt.close(fig)
        else:
            plt.show()

    def native_warehouse(self) -> tuple[Path, list[Any]]:
        """The warehouse to read: ``LEVELCARE_NOTEBOOK_WAREHOUSE``, or a synthetic one.

        Synthetic native extracts (discharges and follow-ups) are written once per (records,
        seed) and ingested; ingesting them again is a no-op (the ledger says *duplicate*), so
        the notebooks of one workdir share it. Returns the warehouse path and the ingest ledger
        (empty for an own warehouse). truth.json is the generator's answer key, not an input.
        """
        if self.own_warehouse is not None:
            return self.own_warehouse, []
        from pipelines.ingest.core import ingest_paths
        from pipelines.settings import Settings
        from pipelines.synth import write_synthetic

        data_dir = self.workdir / f"native-{self.records}-{self.seed}"
        if not (data_dir / "followups.csv").exists():
            write_synthetic(data_dir, records=self.records, seed=self.seed)
        warehouse = self.workdir / f"native-{self.records}-{self.seed}.duckdb"
        ledger = ingest_paths(Settings(warehouse=warehouse), [data_dir / "discharges.csv", data_dir / "followups.csv"])
        return warehouse, ledger

    @staticmethod
    def ledger_frame(ledger: list[Any]) -> Any:
        """The ingest ledger as a polars frame: file, kind, status and row counts (no values)."""
        import polars as pl

        return pl.DataFrame([{"file": r.file, "kind": r.kind, "status": r.status, "rows_loaded": r.rows_loaded,
                              "rows_quarantined": r.rows_quarantined} for r in ledger])
