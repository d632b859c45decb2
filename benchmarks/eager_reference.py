#!/usr/bin/env python3
"""A plain eager PyTorch GAN on the 2-D ring: the yardstick `speed.py` measures ganscope against.

It is written the way reference implementations of the ring experiment are written, on
purpose: one seed after another, `nn.Sequential` MLPs, `torch.optim.Adam`,
`nn.BCEWithLogitsLoss`, one D step on a real and a detached fake batch, then one G step
on fresh noise with the non-saturating loss (Goodfellow et al. 2014, Sec. 3). Nothing is
batched across seeds and nothing is fused, so the ratio `speed.py` reports is ganscope
against the code people would otherwise write. The ring is docs/PROTOCOLS.md's: 8 modes
of std 0.01 at angles 2*pi*k/8 on the unit circle.

    python benchmarks/eager_reference.py --hidden 128 --depth 3 --batch 512 --z-dim 256 --steps 300 --seeds 2

prints one JSON line: {"seed_steps_per_s": ..., "threads": ...}. Any script taking the
same options and printing the same line can stand in for it (`speed.py --baseline`).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch import nn


def mlp(n_in: int, n_out: int, hidden: int, depth: int) -> nn.Sequential:
    """`depth` hidden ReLU layers of `hidden` units and a linear output."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.ReLU()]
    layers.append(nn.Linear(hidden if depth else n_in, n_out))
    return nn.Sequential(*layers)


def ring_batch(batch: int, std: float, n_modes: int = 8) -> torch.Tensor:
    """`batch` points of the 8-Gaussian ring: a uniformly chosen centre plus noise."""
    angle = torch.randint(n_modes, (batch,)) * (2 * math.pi / n_modes)
    centre = torch.stack([angle.cos(), angle.sin()], dim=1)
    return centre + std * torch.randn(batch, 2)


def train(seed: int, args: argparse.Namespace) -> None:
    torch.manual_seed(seed)
    generator = mlp(args.z_dim, 2, args.hidden, args.depth)
    discriminator = mlp(2, 1, args.hidden, args.depth)
    opt_g = torch.optim.Adam(generator.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=args.lr, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    real_label = torch.ones(args.batch, 1)
    fake_label = torch.zeros(args.batch, 1)

    for _ in range(args.steps):
        real = ring_batch(args.batch, args.std)
        fake = generator(torch.randn(args.batch, args.z_dim))
        d_loss = bce(discriminator(real), real_label) + bce(discriminator(fake.detach()), fake_label)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()

        fake = generator(torch.randn(args.batch, args.z_dim))
        g_loss = bce(discriminator(fake), real_label)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--z-dim", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--std", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    for seed in range(args.seeds):
        train(seed, args)
    elapsed = time.perf_counter() - started
    print(json.dumps({"seed_steps_per_s": args.seeds * args.steps / elapsed, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
