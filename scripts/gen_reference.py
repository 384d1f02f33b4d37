"""Write docs/reference.md from the declaration models (``--check`` only compares)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ktstr.declare.reference import render_reference

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    text = render_reference()
    if args.check:
        if not REFERENCE.exists() or REFERENCE.read_text(encoding="utf-8") != text:
            print(f"{REFERENCE} is stale: run python scripts/gen_reference.py", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text, encoding="utf-8")
    print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
