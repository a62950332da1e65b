"""levelcare: outcomes research for behavioral health treatment programs.

The import name is ``pipelines``; the distribution and the CLI are ``levelcare``.
Heavy libraries (duckdb, polars, prefect, great_expectations, statsmodels) are imported
inside the functions that need them so that ``levelcare --help`` stays instant.
"""

__version__ = "0.1.0"

from pipelines import heap as _heap

_heap.configure()  # before any thread allocates (see pipelines/heap.py)
