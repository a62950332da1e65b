"""Synthetic native files and the model's arrays behind them, for the tests of the generator
(a plugin of tests/conftest.py): generated once per session."""

from __future__ import annotations

import json

import polars as pl
import pytest

from pipelines.synth import model, write_synthetic

N = 20_000
SEED = 11


@pytest.fixture(scope="session")
def native_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("native")
    write_synthetic(out, N, SEED)
    return out


@pytest.fixture(scope="session")
def truth(native_dir):
    return json.loads((native_dir / "truth.json").read_text())


@pytest.fixture(scope="session")
def discharges(native_dir):
    # read as text: the tests check the written form, not a parser's guess
    return pl.read_csv(native_dir / "discharges.csv", infer_schema=False)


@pytest.fixture(scope="session")
def followups(native_dir):
    return pl.read_csv(native_dir / "followups.csv", infer_schema=False)


@pytest.fixture(scope="session")
def data():
    """The model's arrays (observed and potential outcomes) for the same seed and size."""
    return model.generate(N, SEED)
