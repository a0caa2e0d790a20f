"""`--tiny`, shared by the benchmark scripts: the same run end to end at the smallest sizes that still
exercise every step, in a few seconds, printing the same JSON keys. Its figures measure nothing; it shows
that a benchmark still runs (tests/unit/test_benchmarks.py runs each one this way)."""
from __future__ import annotations

import argparse


def parse_args(parser: argparse.ArgumentParser, tiny: dict) -> argparse.Namespace:
    """Parse the command line; with `--tiny`, `tiny` replaces the defaults (options given still win)."""
    parser.add_argument("--tiny", action="store_true",
                        help="the smallest run that exercises every step (a check that it runs, not a measurement)")
    args = parser.parse_args()
    if args.tiny:
        parser.set_defaults(**tiny)
        args = parser.parse_args()
    return args
