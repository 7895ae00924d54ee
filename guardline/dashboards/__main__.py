"""``python -m guardline.dashboards --write | --check | --queries`` (from the repository root)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from guardline.dashboards import DIRECTORY, panel_queries, rendered, stale, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m guardline.dashboards",
        description="Generate Guardline's Grafana dashboards from code.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the JSON files")
    mode.add_argument(
        "--check", action="store_true", help="exit 1 if a committed file is not what the code makes"
    )
    mode.add_argument(
        "--queries", action="store_true", help="list every panel's PromQL, variables filled in"
    )
    parser.add_argument(
        "--dir", type=Path, default=DIRECTORY, help="where the JSON lives (default: dashboards)"
    )
    args = parser.parse_args(argv)
    if args.write:
        for path in write(args.dir):
            print(f"wrote {path}")
        return 0
    if args.check:
        differing = stale(args.dir)
        for path in differing:
            print(
                f"{path} differs from the code: run `python -m guardline.dashboards --write`",
                file=sys.stderr,
            )
        return 1 if differing else 0
    for text in rendered().values():
        for q in panel_queries(json.loads(text)):
            print(f"{q.dashboard} #{q.panel} {q.ref} {q.title}\n    {q.promql}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
