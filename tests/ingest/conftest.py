import sys
from pathlib import Path

# ingest_helpers.py sits beside the tests; the folder has no package file, like the other test folders
sys.path.insert(0, str(Path(__file__).parent))
