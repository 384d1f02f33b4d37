"""Write docs/reference.md from the declaration models and the metric table of
docs/compare.md from the metric registry (``--check`` only compares)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ktstr.declare.reference import render_reference
from ktstr.results.metricdefs import with_metrics_table

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    docs = {REFERENCE: render_reference()}
    compare = REFERENCE.with_name("compare.md")  # beside it, with the metrics table
    if compare.exists():
        docs[compare] = with_metrics_table(compare.read_text(encoding="utf-8"))
    if args.check:
        stale = [p for p, text in docs.items()
                 if not p.exists() or p.read_text(encoding="utf-8") != text]
        for p in stale:
            print(f"{p} is stale: run python scripts/gen_reference.py", file=sys.stderr)
        return 1 if stale else 0
    for p, text in docs.items():
        p.write_text(text, encoding="utf-8")
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
