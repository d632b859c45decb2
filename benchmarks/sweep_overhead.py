#!/usr/bin/env python3
"""What a sweep costs beyond its training: a local sweep of one method on S seeds (which the
packing rule makes one population trial) against `ganscope train` of the same S-seed
population, both as commands from a cold start, in one run (issue 10's target: within 15%).

Both train the ring under `ganscope bench`'s cpu budget (benchmarks/sweeps/points-cpu.yaml)
for `--steps`; the sweep adds its planning, a worker process, `trial.json`, the ranked
table and the comparison page. Repeated, interleaved, medians taken.

    python benchmarks/sweep_overhead.py --seeds 8 --steps 1000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
BASE = HERE / "sweeps" / "points-cpu.yaml"


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=None, help="the sweep's workers (default: the sweep's own, "
                   "one trial at a time in its process; N: a pool of N worker processes)")
    p.add_argument("-o", "--out", type=Path, default=HERE / "results" / "sweep_overhead.json")
    a = p.parse_args()
    overrides = ["data.name=ring", f"train.steps={a.steps}", f"train.eval_every={a.steps}"]
    ganscope = [sys.executable, "-m", "ganscope"]
    times: dict[str, list[float]] = {"train": [], "sweep": []}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        sweep = work / "sweep.yaml"
        sweep.write_text(yaml.safe_dump({"name": "overhead", "base": {"config": str(BASE), "set": overrides},
                                         "seeds": a.seeds}
                                        | ({} if a.workers is None else {"workers": a.workers})))
        for i in range(a.repeats):
            times["train"].append(timed([*ganscope, "train", str(BASE), "-q", "-o", str(work / f"train{i}"),
                                         "-s", *overrides, f"train.seeds={a.seeds}"]))
            times["sweep"].append(timed([*ganscope, "sweep", str(sweep), "-q", "-o", str(work / f"sweep{i}")]))
    train, swept = (statistics.median(times[k]) for k in ("train", "sweep"))
    result = {"settings": vars(a) | {"out": str(a.out)}, "seconds": times, "train_s": round(train, 2),
              "sweep_s": round(swept, 2), "overhead": round(swept / train - 1, 4)}
    print(f"ganscope train, {a.seeds} seeds: {train:.1f} s; ganscope sweep of the same: {swept:.1f} s "
          f"({100 * (swept / train - 1):+.1f}%)")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
