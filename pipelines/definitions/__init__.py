"""Success definitions: declarative files, their expression language, and their evaluation.

``registry`` loads and checks the YAML files, ``expression`` parses and compiles their
conditions, ``evaluate`` turns them into the analysis frame. Import the submodules directly;
this package imports nothing heavy.
"""

# The definitions a report leads with, in order (the brief's headline outcomes; the trend by
# level of care and quarter is computed for these).
HEADLINE = ("completion", "retention_90d", "abstinent_90d_itt", "abstinent_90d_cc", "no_readmission_30d",
            "phq9_response")
