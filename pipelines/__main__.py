"""``python -m pipelines``: the same entry point as the ``levelcare`` command (heap settings
included, see pipelines/cli.py entrypoint())."""

from pipelines.cli import entrypoint

entrypoint()
