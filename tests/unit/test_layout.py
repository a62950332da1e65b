"""Test folders have no __init__.py, so pytest imports test modules by basename: two test
files with the same name in different folders would break collection of the whole suite."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_names_are_unique():
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py" and "results" not in p.parts)
    assert [n for n, c in names.items() if c > 1] == []
