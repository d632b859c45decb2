#!/usr/bin/env python3
"""Training speed of ganscope against a plain eager PyTorch loop, in one run.

Two models (`--model`), each against an eager loop beside this file, written as
reference implementations write it, with the same networks, batch, z_dim, Adam settings
and constant learning rate:

- `mlp` (default): the non-saturating GAN on the 2-D ring with MLPs of the same width and
  depth, against `eager_reference.py` (CPU only);
- `dcgan`: ganscope's `dcgan` networks of width w on 28x28x1 MNIST (Adam 2e-4, betas
  (0.5, 0.999)) against `eager_dcgan_reference.py` (the same layer shapes, as PyTorch's
  examples/dcgan writes them, on random images in [-1, 1]: a step's cost does not depend
  on the pixels), on `--device cpu` or `cuda`.

`--baseline PATH` measures against any other script with the same command line and output
line instead. The monitor is switched off (it is evaluation, not training; the eager loops
have none); ganscope's time still includes its logging and one evaluation (for dcgan,
`--eval-samples` images per seed scored by the MNIST oracle, which is trained or loaded
into the cache before anything is timed). The eager loops train their seeds one after
another, as reference implementations do; ganscope trains them as one population. The
dcgan eager loop warms up before its clock starts, so ganscope gets one untimed short run
per precision first too (kernel loading, the allocator, the oracle cache). Machines are
shared and noisy, so only the ratio measured in the same run means anything: each
measurement is repeated, interleaved, and the median taken.

    python benchmarks/speed.py --steps 300 --populations 1 8 --precisions fp32 bf16
    python benchmarks/speed.py --model dcgan --device cuda --populations 1 4 8 --precisions fp32 bf16
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import ganscope

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: Steps of the untimed ganscope run before a dcgan measurement.
WARMUP_STEPS = 3


@dataclass(frozen=True)
class Model:
    """What one benchmarked model needs: its eager loop, defaults, the eager loop's options
    and ganscope's config overrides (beyond those every model shares), and the settings
    that describe a measurement of it."""

    baseline: Path
    defaults: dict[str, object]
    eager_options: Callable[[argparse.Namespace], list[str]]
    overrides: Callable[[argparse.Namespace], list[str]]
    settings: tuple[str, ...]
    warm_up: bool


MODELS = {
    "mlp": Model(
        baseline=HERE / "eager_reference.py",
        defaults={"steps": 300, "batch": 512, "z_dim": 256, "populations": [1, 8], "out": RESULTS / "speed.json"},
        eager_options=lambda a: ["--hidden", str(a.hidden), "--depth", str(a.depth), "--lr", "1e-4"],
        overrides=lambda a: [
            f"generator.hidden={a.hidden}", f"generator.depth={a.depth}", f"discriminator.hidden={a.hidden}",
            f"discriminator.depth={a.depth}", "optimizer.generator.lr=1e-4", "optimizer.discriminator.lr=1e-4",
        ],
        settings=("steps", "hidden", "depth", "batch", "z_dim", "populations", "precisions", "repeats", "baseline",
                  "out"),
        warm_up=False,
    ),
    "dcgan": Model(
        baseline=HERE / "eager_dcgan_reference.py",
        defaults={"steps": 100, "batch": 64, "z_dim": 100, "populations": None, "out": None},
        eager_options=lambda a: ["--width", str(a.width), "--channels", "1", "--device", a.device],
        overrides=lambda a: [
            "data.name=mnist", "generator.name=dcgan", "discriminator.name=dcgan", f"generator.width={a.width}",
            f"discriminator.width={a.width}", "optimizer.generator.lr=2e-4", "optimizer.discriminator.lr=2e-4",
            "optimizer.generator.betas=[0.5, 0.999]", "optimizer.discriminator.betas=[0.5, 0.999]",
            f"train.eval_samples={a.eval_samples}", f"train.device={a.device}",
        ],
        settings=("model", "device", "threads", "steps", "width", "batch", "z_dim", "eval_samples", "populations",
                  "precisions", "repeats", "baseline", "out"),
        warm_up=True,
    ),
}


def eager(a: argparse.Namespace, seeds: int) -> float:
    out = subprocess.run(
        [sys.executable, str(a.baseline), *MODELS[a.model].eager_options(a), "--batch", str(a.batch),
         "--z-dim", str(a.z_dim), "--steps", str(a.steps), "--seeds", str(seeds)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["seed_steps_per_s"]


def ours(a: argparse.Namespace, seeds: int, precision: str, steps: int | None = None) -> float:
    steps = steps or a.steps
    cfg = ganscope.load_config(overrides=[
        *MODELS[a.model].overrides(a), f"noise.z_dim={a.z_dim}", f"train.batch_size={a.batch}",
        f"train.steps={steps}", f"train.seeds={seeds}", f"train.precision={precision}",
        f"train.eval_every={steps}", f"train.checkpoint_every={steps}", "train.lr_schedule=constant",
        "train.monitor.enabled=false",
    ])
    with tempfile.TemporaryDirectory() as tmp:
        run = ganscope.Run.create(cfg, Path(tmp) / "run")
        summary = run.fit(progress=False)
    return summary["seed_steps_per_s"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="mlp")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="dcgan only; the mlp loop is CPU-only")
    p.add_argument("--steps", type=int, help="training steps per measurement (mlp 300, dcgan 100)")
    p.add_argument("--hidden", type=int, default=128, help="mlp width")
    p.add_argument("--depth", type=int, default=3, help="mlp hidden layers")
    p.add_argument("--width", type=int, default=64, help="dcgan width w: channels of the 14x14 maps (2w at 7x7)")
    p.add_argument("--batch", type=int, help="batch (mlp 512, dcgan 64)")
    p.add_argument("--z-dim", type=int, help="noise dimension (mlp 256, dcgan 100)")
    p.add_argument("--eval-samples", type=int, default=64, help="dcgan: images per seed in the one evaluation")
    p.add_argument("--populations", type=int, nargs="+",
                   help="seeds per population (mlp 1 8; dcgan 1 4, and 8 on cuda)")
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--baseline", type=Path,
                   help="eager loop to measure against (default: the shipped eager_reference.py or "
                   "eager_dcgan_reference.py)")
    p.add_argument("--out", type=Path,
                   help="results JSON (default results/speed.json, results/speed_dcgan_DEVICE.json)")
    a = p.parse_args()
    model = MODELS[a.model]
    for key, value in model.defaults.items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    if a.model == "dcgan":
        a.populations = a.populations or ([1, 4, 8] if a.device == "cuda" else [1, 4])
        a.out = a.out or RESULTS / f"speed_dcgan_{a.device}.json"
    elif a.device != "cpu":
        p.error(f"--device {a.device}: the mlp eager loop ({model.baseline.name}) runs on the CPU only; "
                "use --model dcgan for a GPU measurement")
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but PyTorch sees no CUDA device here; use --device cpu")
    a.baseline = a.baseline or model.baseline
    if not a.baseline.is_file():
        p.error(f"--baseline {a.baseline} does not exist; leave it out to use {model.baseline.name} beside this script")
    a.threads = torch.get_num_threads()
    return a


def main() -> None:
    a = parse_args()
    if MODELS[a.model].warm_up:
        for prec in a.precisions:
            ours(a, 1, prec, steps=WARMUP_STEPS)
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
    settings = {k: str(getattr(a, k)) for k in MODELS[a.model].settings}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
