"""Analysis: rates by group (``rates``), the ``analyze`` command (``command``)."""
