#!/usr/bin/env python3
"""Training speed of StyleGAN-lite beside ganscope's DCGAN at the same resolution and batch,
and what each StyleGAN piece costs, in seed-steps per second, in one run.

Issue 12 asks for StyleGAN-lite's seed-steps/s beside the DCGAN's rather than a ratio to an
eager loop: the two are different networks, and the question a user has is what the
style-based generator costs over the DCGAN they would otherwise train. Each variant is the
`stylegan-mnist` profile with one change (or `mnist-dcgan`'s networks at the same batch),
built as `ganscope.Run` builds it; the clock covers what `Run.fit` does per step (the
scheme's step with its lazy regularisers, and the moving-average update) and nothing else
(no logging, evaluation or checkpoints). `--steps` is a multiple of 16 so that every lazy
regulariser's share of the cost is counted. Each measurement is repeated, interleaved,
and the median taken, because the machine is shared.

    python benchmarks/stylegan_speed.py --steps 16 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

import ganscope

RESULTS = Path(__file__).resolve().parent / "results"

#: Each variant: overrides on the `stylegan-mnist` profile (None: the DCGAN at its batch).
VARIANTS: dict[str, list[str] | None] = {
    "dcgan": None,
    "stylegan-lite": [],
    "- R1 and path length": ["regularizers=[]"],
    "- path length": ["regularizers=[{name: r1, weight: 0.01, every: 16}]"],
    "- noise, mixing": ["generator.noise=false", "generator.mixing_prob=0"],
    "- EMA": ["train.ema_kimg=0"],
    "mapping depth 2": ["generator.mapping_depth=2"],
    "with DCGAN's D": ["discriminator={name: dcgan, width: 32}", "d_modifiers=[]", "regularizers="
                       "[{name: path-length, weight: 2.0, every: 4}]"],
}

def config(variant: str, seeds: int, batch: int, device: str) -> ganscope.Config:
    extra = VARIANTS[variant]
    common = ["train.monitor.enabled=false", f"train.seeds={seeds}", f"train.batch_size={batch}",
              f"train.device={device}"]
    if extra is None:
        return ganscope.load_config(overrides=common, profile="mnist-dcgan")
    return ganscope.load_config(overrides=[*common, *extra], profile="stylegan-mnist")


def seed_steps_per_s(variant: str, seeds: int, batch: int, steps: int, device: str, warmup: int = 2) -> float:
    with tempfile.TemporaryDirectory() as folder:
        run = ganscope.Run.create(config(variant, seeds, batch, device), Path(folder) / "run")
        started = 0.0
        for step in range(warmup + steps):
            if step == warmup:
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                started = time.perf_counter()
            run.parts.step = step
            run.scheme.train_step(False)
            if run.cfg.train.ema_kimg > 0:
                run.scheme.update_average(step + 1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return seeds * steps / (time.perf_counter() - started)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=16, help="timed steps after 2 untimed ones")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("-o", "--out", type=Path, default=None, help="JSON output (default benchmarks/results/"
                   "speed_stylegan_<device>.json)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    per_variant: dict[str, list[float]] = {v: [] for v in a.variants}
    for _ in range(a.repeats):
        for variant in a.variants:
            per_variant[variant].append(seed_steps_per_s(variant, a.seeds, a.batch, a.steps, a.device))
    rates = {v: statistics.median(r) for v, r in per_variant.items()}
    reference = rates.get("dcgan")
    rows = [{"variant": v, "seed_steps_per_s": round(r, 3), "repeats": [round(x, 3) for x in per_variant[v]],
             "x_dcgan": None if reference is None else round(r / reference, 3)} for v, r in rates.items()]
    print("| variant | seed-steps/s | vs DCGAN |\n|---|---|---|")
    for row in rows:
        vs = "" if row["x_dcgan"] is None else f"{row['x_dcgan']:.3f}x"
        print(f"| {row['variant']} | {row['seed_steps_per_s']:.2f} | {vs} |")
    out = a.out or RESULTS / f"speed_stylegan_{a.device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(a, k) for k in ("steps", "seeds", "batch", "repeats", "threads", "device")}
    out.write_text(json.dumps({"settings": settings, "resolution": "28x28x1 (mnist)", "rows": rows}, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
