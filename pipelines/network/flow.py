"""Combining a network's packages as a Prefect flow: each package is fetched (from a folder or
object storage: any fsspec URL) and checked in its own task — concurrent, retried on a
transient read error, each visible in Prefect's UI — then pooled once. Prefect orchestrates;
nothing here is a server of levelcare's own."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipelines.errors import UserError
from pipelines.network.combine import Package, combine_packages, fetch, read_package


@task(name="read-package", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE,
      retry_condition_fn=lambda task, run, state: not isinstance(state.result(raise_on_failure=False), UserError))
def read_package_task(location: str, work: str) -> Package:
    return read_package(fetch(location, Path(work)), location)


@flow(name="network-combine", flow_run_name="levelcare-network-combine")
def network_combine_flow(packages: list[str], out_dir: str) -> dict[str, Any]:
    """Fetch and check every package, then pool them into ``out_dir`` (as ``levelcare network
    combine``); a refused package fails the flow with its one-line reason."""
    if len(packages) < 2:
        raise UserError("network combine: give two or more packages")
    with tempfile.TemporaryDirectory(prefix="levelcare-combine-") as tmp:
        futures = [read_package_task.submit(str(p), str(Path(tmp) / str(i))) for i, p in enumerate(packages)]
        checked = [f.result() for f in futures]
    return combine_packages(checked, Path(out_dir))
