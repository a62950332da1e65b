"""One frozen settings object, built from explicit options and an explicit environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WAREHOUSE = "levelcare.duckdb"


@dataclass(frozen=True)
class Settings:
    warehouse: Path
    definitions_dir: Path | None = None
    lock_timeout_seconds: float = 30.0

    @classmethod
    def from_options(
        cls,
        warehouse: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        definitions_dir: str | os.PathLike[str] | None = None,
        lock_timeout_seconds: float | None = None,
    ) -> Settings:
        env = os.environ if environ is None else environ
        wh = warehouse or env.get("LEVELCARE_WAREHOUSE") or DEFAULT_WAREHOUSE
        defs = definitions_dir or env.get("LEVELCARE_DEFINITIONS")
        if defs is None and Path("definitions").is_dir():
            defs = "definitions"
        timeout = lock_timeout_seconds
        if timeout is None:
            timeout = float(env.get("LEVELCARE_LOCK_TIMEOUT", "30"))
        return cls(
            warehouse=Path(wh),
            definitions_dir=Path(defs) if defs else None,
            lock_timeout_seconds=timeout,
        )


def prefect_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Prefect settings levelcare needs on machines without internet.

    The embedded (ephemeral) server migrates its database on first start, which can take
    longer than Prefect's 20 s default; telemetry would try to reach the internet.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect's log level stays its own (INFO): its records reach Prefect's log and UI, among them
    # levelcare's progress lines; the terminal is kept free of them by progress.quiet_console
    return env
