"""Synthetic discharges and follow-ups with a known true effect (``levelcare synth``).

The generative model is documented in :mod:`pipelines.synth.model`; the TEDS-D mapping in
:mod:`pipelines.synth.teds`. This package imports nothing heavy at import time: numpy and
polars are loaded by :func:`write_synthetic` when it runs.
"""

from __future__ import annotations

from typing import Any


def write_synthetic(out_dir, records: int, seed: int, fmt: str = "native", **options: Any) -> dict:
    """Write synthetic files into ``out_dir`` and return the truth dictionary.

    ``fmt`` is ``native`` (discharges.csv, followups.csv, truth.json) or ``teds-d``
    (tedsd_puf.csv, truth.json). ``options`` are those of
    :func:`pipelines.synth.model.generate`: ``effects`` and ``modification`` (dicts keyed by
    definition id, on the probability scale here, e.g. ``{"completion": -0.10}``; the CLI's
    ``--effect`` takes percentage points), ``sites``, ``quarters``, ``end_quarter`` or
    ``start`` (a date or ``YYYY-MM-DD``: the period's first day, ``--start``), ``level_mix``,
    ``unmeasured``; ``id_prefix`` (``--id-prefix``, native only: put before every episode,
    person and follow-up id); and ``teds_year`` for ``teds-d``.
    """
    from pipelines.synth.command import write_files

    return write_files(out_dir, records=records, seed=seed, fmt=fmt, **options)


__all__ = ["write_synthetic"]
