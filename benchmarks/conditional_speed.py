#!/usr/bin/env python3
"""Cost of conditioning: seconds per training step of ganscope's DCGAN on MNIST, plain
and with each conditioning (`cgan`, `projection`, `acgan`), in one run.

Only the training step is timed (`Scheme.train_step`: D step, G step, optimiser updates),
the part a conditioning changes; each configuration warms up first, runs of `--steps`
steps are interleaved and repeated, and the median of the single steps' times is kept,
because only ratios measured side by side on a shared machine mean anything and a
median of many steps is what a burst of other work on the machine disturbs least. The
ratio to the unconditional step is what the README quotes.

    python benchmarks/conditional_speed.py --steps 5 --repeats 12 --seeds 1 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import ganscope
from ganscope.config import piece_params
from ganscope.schemes import SCHEMES, Parts

RESULTS = Path(__file__).resolve().parent / "results"
#: `cgan-maps`: cgan with D reading the K one-hot maps as input channels, the concatenation
#: that its input convolution's class responses replace (`PopConv2d.one_hot_classes`).
CONDITIONINGS = ("none", "cgan", "cgan-maps", "projection", "acgan")
WARMUP_STEPS = 3


def build(conditioning: str, seeds: int, width: int, device: str):
    maps = conditioning == "cgan-maps"
    conditioning = "cgan" if maps else conditioning
    cfg = ganscope.load_config(overrides=[
        "data.name=mnist", "generator.name=dcgan", "discriminator.name=dcgan", f"generator.width={width}",
        f"discriminator.width={width}", "noise.dist=uniform", "noise.z_dim=100", "train.batch_size=64",
        f"train.seeds={seeds}", f"conditioning.name={conditioning}", f"train.device={device}",
        "optimizer.generator.lr=2e-4", "optimizer.discriminator.lr=2e-4",
    ])
    scheme = SCHEMES.get(cfg.scheme.name)(Parts.from_config(cfg), piece_params(cfg, "scheme"))
    if maps:
        scheme.discriminator.label_reader = (None,)
    for _ in range(WARMUP_STEPS):
        scheme.train_step()
    return scheme


def step_seconds(scheme, steps: int) -> list[float]:
    """The wall time of each of `steps` training steps."""
    synchronise = torch.cuda.synchronize if scheme.parts.device.type == "cuda" else (lambda: None)
    times = []
    for _ in range(steps):
        synchronise()
        start = time.perf_counter()
        scheme.train_step()
        synchronise()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=12)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 4])
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=RESULTS / "conditional_speed.json")
    a = p.parse_args()
    results = []
    for seeds in a.seeds:
        schemes = {c: build(c, seeds, a.width, a.device) for c in CONDITIONINGS}
        times: dict[str, list[float]] = {c: [] for c in CONDITIONINGS}
        for _ in range(a.repeats):
            for c, scheme in schemes.items():
                times[c] += step_seconds(scheme, a.steps)
        base = statistics.median(times["none"])
        for c in CONDITIONINGS:
            median = statistics.median(times[c])
            results.append({"seeds": seeds, "conditioning": c, "s_per_step": median, "ratio_to_plain": median / base})
            print(f"{seeds} seed(s), {c:10s}: {1000 * median:7.1f} ms/step, {median / base:.3f}x the plain step")
    settings = {"steps": a.steps, "repeats": a.repeats, "width": a.width, "device": a.device, "batch": 64,
                "threads": torch.get_num_threads()}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"settings": settings, "results": results}, indent=2) + "\n")
    print(f"results: {a.out}")


if __name__ == "__main__":
    main()
