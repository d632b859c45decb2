#!/usr/bin/env python3
"""Data-parallel scaling: seed-steps per second of one training run launched as 1, 2, ...
processes by torchrun (`ganscope.distributed`), the same config and global batch each time.

Each launch is a real `ganscope train` (or `torchrun -m ganscope train`) with one
evaluation, at the last step, on few samples; the figure is the run's own
`seed_steps_per_s` from `summary.json` (the training loop's clock, which excludes start-up
and the final report). On the CPU the cores are divided among the processes
(`OMP_NUM_THREADS`), so the comparison is the same machine used by one process or by
several; on a machine with GPUs each process takes its own GPU. Repeats are interleaved
and the median is kept, because the machine may be shared.

    python benchmarks/ddp_speed.py --processes 1 2 --batch 256 --steps 60
    python benchmarks/ddp_speed.py --processes 1 2 4 8 --device cuda --batch 1024 --seeds 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def launch(processes: int, profile: str, overrides: list[str], threads: int, out: Path) -> float:
    """One run of `profile` with `overrides`; its training loop's seed-steps per second."""
    if processes == 1:
        command = [sys.executable, "-m", "ganscope"]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}", "-m", "ganscope"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([*command, "train", "-q", "-p", profile, "-o", str(out), "-s", *overrides],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"ddp_speed: {processes} process(es) failed: {done.stderr.strip().splitlines()[-1]}")
    return float(json.loads((out / "summary.json").read_text())["seed_steps_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--profile", default="mnist-dcgan")
    parser.add_argument("--batch", type=int, default=256, help="train.batch_size (per seed, all processes)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="CPU threads to divide among processes")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default results/ddp_speed_<device>.json)")
    args = parser.parse_args()
    overrides = [f"train.batch_size={args.batch}", f"train.seeds={args.seeds}", f"train.steps={args.steps}",
                 f"train.eval_every={args.steps}", "train.eval_samples=500", f"train.device={args.device}",
                 f"train.log_every={args.steps}", f"train.checkpoint_every={args.steps}"]
    speeds: dict[int, list[float]] = {n: [] for n in args.processes}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for n in args.processes:
                threads = max(1, args.cores // n) if args.device == "cpu" else 1
                out = Path(scratch) / f"{n}-{repeat}"
                speeds[n].append(launch(n, args.profile, overrides, threads, out))
                print(f"{n} process(es), repeat {repeat}: {speeds[n][-1]:.2f} seed-steps/s", file=sys.stderr)
    base = statistics.median(speeds[args.processes[0]])
    result = {
        "what": "ganscope train launched as N processes by torchrun, same config and global batch",
        "profile": args.profile, "batch_size": args.batch, "seeds": args.seeds, "steps": args.steps,
        "device": args.device, "cores": args.cores, "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if args.device != "cpu" and torch.cuda.is_available() else None,
        "seed_steps_per_s": {str(n): statistics.median(v) for n, v in speeds.items()},
        "all_repeats": {str(n): v for n, v in speeds.items()},
        "speedup_vs_first": {str(n): statistics.median(v) / base for n, v in speeds.items()},
    }
    path = args.out or RESULTS / f"ddp_speed_{args.device.split(':')[0]}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["seed_steps_per_s"]), json.dumps(result["speedup_vs_first"]))


if __name__ == "__main__":
    main()
