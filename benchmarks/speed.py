#!/usr/bin/env python3
"""Training speed of ganscope against a plain eager PyTorch loop, in one run.

Both train the non-saturating GAN on the 2-D ring with the same MLP width and depth,
batch, z_dim and constant learning rate. The eager loop is `eager_reference.py` beside
this file, written as reference implementations write it; `--baseline PATH` measures
against any other script with its command line and output line instead. The monitor is
switched off (it is evaluation, not training; the eager loop has none); ganscope's time
still includes its logging and one evaluation. The eager loop trains its seeds one after
another, as reference implementations do; ganscope trains them as one population.
Machines are shared and noisy, so only the ratio measured in the same run means
anything: each measurement is repeated, interleaved, and the median taken.

    python benchmarks/speed.py --steps 300 --populations 1 8 --precisions fp32 bf16
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import ganscope

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "eager_reference.py"


def eager(a: argparse.Namespace, seeds: int) -> float:
    out = subprocess.run(
        [sys.executable, str(a.baseline), "--hidden", str(a.hidden), "--depth", str(a.depth),
         "--batch", str(a.batch), "--z-dim", str(a.z_dim), "--lr", "1e-4", "--steps", str(a.steps),
         "--seeds", str(seeds)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["seed_steps_per_s"]


def ours(a: argparse.Namespace, seeds: int, precision: str) -> float:
    cfg = ganscope.load_config(overrides=[
        f"generator.hidden={a.hidden}", f"generator.depth={a.depth}",
        f"discriminator.hidden={a.hidden}", f"discriminator.depth={a.depth}",
        f"noise.z_dim={a.z_dim}", f"train.batch_size={a.batch}", f"train.steps={a.steps}",
        f"train.seeds={seeds}", f"train.precision={precision}", "optimizer.generator.lr=1e-4",
        "optimizer.discriminator.lr=1e-4", f"train.eval_every={a.steps}",
        f"train.checkpoint_every={a.steps}", "train.lr_schedule=constant", "train.monitor.enabled=false",
    ])
    with tempfile.TemporaryDirectory() as tmp:
        run = ganscope.Run.create(cfg, Path(tmp) / "run")
        summary = run.fit(progress=False)
    return summary["seed_steps_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--z-dim", type=int, default=256)
    p.add_argument("--populations", type=int, nargs="+", default=[1, 8])
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--baseline", type=Path, default=BASELINE,
                   help="eager loop to measure against (default: the shipped eager_reference.py)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "speed.json")
    a = p.parse_args()
    if not a.baseline.is_file():
        p.error(f"--baseline {a.baseline} does not exist; leave it out to use {BASELINE.name} beside this script")
    rows = []
    for seeds in a.populations:
        base, mine = [], {prec: [] for prec in a.precisions}
        for _ in range(a.repeats):
            base.append(eager(a, seeds))
            for prec in a.precisions:
                mine[prec].append(ours(a, seeds, prec))
        for prec in a.precisions:
            row = {
                "seeds": seeds, "precision": prec,
                "eager_seed_steps_per_s": statistics.median(base),
                "ganscope_seed_steps_per_s": statistics.median(mine[prec]),
            }
            row["ratio"] = row["ganscope_seed_steps_per_s"] / row["eager_seed_steps_per_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(a).items()}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
