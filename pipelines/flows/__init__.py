"""Prefect flows: ``ingest``, ``validate``, ``analyze``, ``report`` and the umbrella ``quarterly``.

Flows only wire the plain functions of the other modules; tasks are thin wrappers. Nothing
here is imported until a flow runs, because importing Prefect costs seconds.
"""
