#!/usr/bin/env python3
"""The whole ring/grid protocol table: every method of `ganscope.bench` x ring and grid,
5 seeds each, cpu budget, into benchmarks/results/protocols.json and protocols.md.

It is `ganscope bench points --out benchmarks/results` (same code, same options): the
table lives in the repository beside the other benchmark results, and a rerun skips the
(method, protocol, budget, seeds, steps, first seed) entries already in protocols.json,
so the hours the cpu budget takes can be spread over several sessions; Ctrl-C saves the
population in training, and the next run resumes it from its checkpoint. Seeds start at
1000, the first evaluation seed (docs/PROTOCOLS.md, "Seeds"); the table keeps rows on
tuning seeds (`--base-seed 0`) in a section of their own.

    OMP_NUM_THREADS=1 python benchmarks/protocols.py                # the full table
    python benchmarks/protocols.py --methods gan pacgan2 --seeds 10  # any `ganscope bench` option
"""

from __future__ import annotations

import sys
from pathlib import Path

from ganscope.cli import main

RESULTS = Path(__file__).resolve().parent / "results"

if __name__ == "__main__":
    # Later options win in argparse, so the caller's own --out, --seeds, ... override these.
    sys.exit(main(["bench", "points", "--out", str(RESULTS), "--seeds", "5", "--budget", "cpu", *sys.argv[1:]]))
