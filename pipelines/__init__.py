"""levelcare: outcomes research for behavioral health treatment programs.

The import name is ``pipelines``; the distribution and the CLI are ``levelcare``.
Heavy libraries (duckdb, polars, prefect, great_expectations, statsmodels) are imported
inside the functions that need them so that ``levelcare --help`` stays instant.
Importing the package changes nothing in the process: the C heap settings of
``pipelines/heap.py`` are made by the command line's entry point (``pipelines.cli.entrypoint``).
"""

__version__ = "0.1.0"
