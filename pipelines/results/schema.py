"""Write the results model's JSON Schema to ``docs/results.schema.json``.

    python -m pipelines.results.schema            # rewrite the published schema
    python -m pipelines.results.schema --check    # exit 1 when it is out of date

The schema is generated from :mod:`pipelines.results.model`, the one declaration.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipelines.results.model import json_schema

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "results.schema.json"


def rendered() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = rendered()
    if "--check" in argv:
        current = PUBLISHED.read_text(encoding="utf-8") if PUBLISHED.exists() else ""
        if current != text:
            print(f"{PUBLISHED} is out of date: run python -m pipelines.results.schema", file=sys.stderr)
            return 1
        return 0
    PUBLISHED.write_text(text, encoding="utf-8")
    print(PUBLISHED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
