"""The results model: what an analysis computed, disclosed once, in one typed document.

``results.json`` is the seam between computing and presenting (docs/results.md,
docs/results.schema.json). :mod:`pipelines.analysis.command` writes it; the report, the
accreditation export and everything after them read only it, never the warehouse.
"""

from pipelines.results.model import SCHEMA_VERSION, Results, load_results, write_results

__all__ = ["SCHEMA_VERSION", "Results", "load_results", "write_results"]
