"""`cnnkit tour`: every capability on built-in data, as an HTML report."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("tour", help="run every capability on built-in data and write an HTML report")
    p.add_argument("--out", default="report", help="report folder (default: report)")
    p.add_argument("--only", nargs="+", metavar="SECTION", help="run only these sections (module names)")
    p.add_argument("--quick", action="store_true", help="smaller workloads (seconds, not minutes)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnkit.tour import run_tour

    index, failed = run_tour(args.out, only=args.only, quick=args.quick, seed=args.seed)
    print(f"report written to {index}")
    if failed:
        print(f"cnnkit tour: error: sections failed: {', '.join(failed)} (see the report)", file=sys.stderr)
        return 1
    return 0
