"""Success definitions: declarative files, their expression language, and their evaluation.

``registry`` loads and checks the YAML files, ``expression`` parses and compiles their
conditions, ``evaluate`` turns them into the analysis frame. Import the submodules directly;
this package imports nothing heavy.
"""
