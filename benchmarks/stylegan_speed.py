#!/usr/bin/env python3
"""Training speed of StyleGAN-lite beside ganscope's DCGAN at the same resolution and batch,
and what each StyleGAN piece costs, in seed-steps per second, in one run.

Issue 12 asks for StyleGAN-lite's seed-steps/s beside the DCGAN's rather than a ratio to an
eager loop: the two are different networks, and the question a user has is what the
style-based generator costs over the DCGAN they would otherwise train. Each variant is the
`stylegan-mnist` profile with one change (or `mnist-dcgan`'s networks at the same batch),
trained through `ganscope.Run` with the monitor off. A run's fixed costs (building the
networks, the oracle, the final evaluation) are taken out by timing `2 * steps` and
`steps` and dividing the difference; every measurement is repeated, interleaved, and the
median taken, because the machine is shared.

    python benchmarks/stylegan_speed.py --steps 20 --repeats 3
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

SHARED = ["train.monitor.enabled=false", "train.eval_samples=64", "train.checkpoint_every=100000",
          "train.log_every=100000"]


def config(variant: str, seeds: int, batch: int, steps: int, device: str) -> ganscope.Config:
    extra = VARIANTS[variant]
    common = [*SHARED, f"train.seeds={seeds}", f"train.batch_size={batch}", f"train.steps={steps}",
              f"train.eval_every={steps}", f"train.device={device}"]
    if extra is None:
        return ganscope.load_config(overrides=common, profile="mnist-dcgan")
    return ganscope.load_config(overrides=[*common, *extra], profile="stylegan-mnist")


def seconds(variant: str, seeds: int, batch: int, steps: int, device: str) -> float:
    with tempfile.TemporaryDirectory() as folder:
        run = ganscope.Run.create(config(variant, seeds, batch, steps, device), Path(folder) / "run")
        started = time.perf_counter()
        run.fit(progress=False)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="timed steps (the run trains 2x and 1x this)")
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
    for variant in a.variants:  # untimed: the oracle's cache, kernels, the allocator
        seconds(variant, a.seeds, a.batch, 2, a.device)
    per_variant: dict[str, list[float]] = {v: [] for v in a.variants}
    for _ in range(a.repeats):
        for variant in a.variants:
            long = seconds(variant, a.seeds, a.batch, 2 * a.steps, a.device)
            short = seconds(variant, a.seeds, a.batch, a.steps, a.device)
            per_variant[variant].append(a.seeds * a.steps / max(long - short, 1e-9))
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
