"""Statistics for comparing levels of care: one module per family of methods.

Every function returns one frozen result type from :mod:`pipelines.stats.results`.
"""
