#!/usr/bin/env python3
"""A plain eager PyTorch DCGAN on 28x28 images: the yardstick `speed.py --model dcgan` measures ganscope against.

Written the way reference implementations write a DCGAN (PyTorch's examples/dcgan), on
purpose: one seed after another, `nn.Sequential` networks, every weight ~ N(0, 0.02)
(Radford et al. 2016, Sec. 4), `torch.optim.Adam` with lr 2e-4 and betas (0.5, 0.999),
batches made on the CPU and moved to the device as a data loader's are, noise drawn on
the device, and cuDNN's autotuner on (`cudnn.benchmark`), as the example sets it. Nothing
is batched across seeds and nothing is fused.

The networks are ganscope's `dcgan` pair at a 28x28 side (7 -> 14 -> 28) with width w:

- G: Linear(z, 2w*7*7), BatchNorm1d, ReLU, Unflatten to (2w, 7, 7), ConvTranspose2d(2w, w,
  4, 2, 1), BatchNorm2d, ReLU, ConvTranspose2d(w, C, 4, 2, 1), Tanh;
- D: Conv2d(C, w, 4, 2, 1), LeakyReLU(0.2), Conv2d(w, 2w, 4, 2, 1), BatchNorm2d,
  LeakyReLU(0.2), Flatten, Linear(2w*7*7, 1).

A layer followed by batch norm has no bias (the norm's shift replaces it), as in the
example. Each step is Goodfellow et al. 2014's Algorithm 1 with k = 1, the algorithm
ganscope's `alternating` scheme runs: one D step on a real batch and a detached fake
batch, then one G step on fresh noise with the non-saturating loss; the logistic losses
are BCE-with-logits written as softplus (-log sigmoid(x) = softplus(-x)). (The example
reuses D's fake batch for the G step instead; the fresh batch keeps the two loops doing
the same work.) The "real" images are uniform noise in [-1, 1]: the cost of a step does
not depend on what the pixels show.

    python benchmarks/eager_dcgan_reference.py --width 64 --channels 1 --batch 64 --z-dim 100 --steps 50 --seeds 2

prints one JSON line: {"seed_steps_per_s": ..., "device": ..., "threads": ...}. The clock
covers the training steps of every seed, after an untimed warm-up of `--warmup` steps
(kernel loading, the allocator, cuDNN's autotuning), and waits for the GPU at the end.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

SIDE = 28  # image side; the networks' smallest maps are SIDE / 4 = 7
SMALL = SIDE // 4
INIT_STD = 0.02  # Radford et al. 2016, Sec. 4
LEAKY_SLOPE = 0.2


def generator(z_dim: int, width: int, channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(z_dim, 2 * width * SMALL * SMALL),
        nn.BatchNorm1d(2 * width * SMALL * SMALL),
        nn.ReLU(True),
        nn.Unflatten(1, (2 * width, SMALL, SMALL)),
        nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(True),
        nn.ConvTranspose2d(width, channels, 4, 2, 1),
        nn.Tanh(),
    )


def discriminator(width: int, channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1),
        nn.LeakyReLU(LEAKY_SLOPE, True),
        nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),
        nn.BatchNorm2d(2 * width),
        nn.LeakyReLU(LEAKY_SLOPE, True),
        nn.Flatten(),
        nn.Linear(2 * width * SMALL * SMALL, 1),
    )


def dcgan_init(module: nn.Module) -> None:
    """Weights ~ N(0, 0.02), batch-norm gains ~ N(1, 0.02), biases 0 (examples/dcgan's weights_init)."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


def train(seed: int, steps: int, args: argparse.Namespace, device: torch.device) -> float:
    """Train one seed for `steps` steps; returns the seconds its steps took."""
    torch.manual_seed(seed)
    net_g = generator(args.z_dim, args.width, args.channels).to(device)
    net_d = discriminator(args.width, args.channels).to(device)
    net_g.apply(dcgan_init)
    net_d.apply(dcgan_init)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=args.lr, betas=(0.5, 0.999))

    started = time.perf_counter()
    for _ in range(steps):
        real = (torch.rand(args.batch, args.channels, SIDE, SIDE) * 2 - 1).to(device)
        fake = net_g(torch.randn(args.batch, args.z_dim, device=device))
        d_loss = F.softplus(-net_d(real)).mean() + F.softplus(net_d(fake.detach())).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()

        fake = net_g(torch.randn(args.batch, args.z_dim, device=device))
        g_loss = F.softplus(-net_d(fake)).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64, help="channels of the 14x14 maps (ngf = ndf)")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--z-dim", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before the clock starts")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but PyTorch sees no CUDA device here; use --device cpu")
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    train(0, args.warmup, args, device)
    elapsed = sum(train(seed, args.steps, args, device) for seed in range(args.seeds))
    print(json.dumps({"seed_steps_per_s": args.seeds * args.steps / elapsed, "device": args.device,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
