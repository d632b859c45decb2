"""Population-batched layers: S independent networks computed as one.

Every weight carries a leading seed dimension, so one batched matrix multiply
(`torch.baddbmm`) runs all seeds of a population at once: two CPU cores stay busy
with large kernels instead of S small ones. Each seed's slice is initialised from that
seed's own generator, exactly as `torch.nn.Linear` would initialise it alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ganscope.distributed import synced_moments
from ganscope.seeding import PopulationRandom


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """`x` in float32 or wider: bf16 (as autocast computes it) is promoted, float64 kept."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


class PopulationModule(nn.Module):
    """A module whose own parameters have a leading seed dimension of size `n_seeds`."""

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        """Initialise this module's own parameters, each seed's slice from its generator."""


def init_population(module: nn.Module, generators: Sequence[torch.Generator]) -> None:
    """Initialise every population layer of `module` in registration order.

    The order is fixed by the architecture alone, so each seed's generator is consumed
    identically whatever the population size.
    """
    for sub in module.modules():
        if isinstance(sub, PopulationModule):
            sub.reset_parameters(generators)


class StreamUser(nn.Module):
    """A module that draws random numbers as it runs (a style-based G's per-layer noise).

    It draws from `rng`, the population's `network` stream, which `Parts` attaches when it
    builds the network and checkpoints save with the other streams: seed s's draws depend
    on s alone, and a resumed run draws what the uninterrupted one would have.
    """

    rng: PopulationRandom | None = None


def attach_stream(module: nn.Module, rng: PopulationRandom | None) -> None:
    """Give every `StreamUser` inside `module` the stream `rng` (None: take it away)."""
    for sub in module.modules():
        if isinstance(sub, StreamUser):
            sub.rng = rng


class PopLinear(PopulationModule):
    """y[s] = x[s] @ W[s] + b[s] for inputs (S, B, in)."""

    def __init__(self, n_seeds: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_seeds, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_seeds, 1, out_features))

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        # torch.nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        with torch.no_grad():
            for s, g in enumerate(generators):
                self.weight[s].copy_(
                    torch.empty(self.weight.shape[2], self.weight.shape[1])
                    .uniform_(-bound, bound, generator=g)
                    .T
                )
                self.bias[s].uniform_(-bound, bound, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class PopBatchNorm(PopulationModule):
    """Batch normalisation over the batch axis of (S, B, C), statistics per seed.

    Under bf16 autocast the input arrives in bf16 (the previous layer's matrix multiply);
    the statistics are computed in at least float32 and accumulated into the float32
    running buffers, so that bf16 rounding (8 significant bits) reaches neither. The
    output is float32 then too; the next matrix multiply casts it back under autocast.
    """

    #: Statistics over every data-parallel process's share (`ganscope.distributed`).
    synced: bool = False

    def __init__(self, n_seeds: int, features: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(n_seeds, 1, features))
        self.bias = nn.Parameter(torch.zeros(n_seeds, 1, features))
        self.register_buffer("running_mean", torch.zeros(n_seeds, 1, features))
        self.register_buffer("running_var", torch.ones(n_seeds, 1, features))

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        with torch.no_grad():
            self.weight.fill_(1.0)
            self.bias.zero_()
            self.running_mean.zero_()
            self.running_var.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = at_least_float32(x)
        if self.training:
            if self.synced:
                mean, var, n = synced_moments(x, (1,))
            else:
                mean, var, n = x.mean(dim=1, keepdim=True), x.var(dim=1, unbiased=False, keepdim=True), x.shape[1]
            with torch.no_grad():
                running = self.running_mean.dtype
                self.running_mean.lerp_(mean.detach().to(running), self.momentum)
                self.running_var.lerp_((var.detach() * n / max(n - 1, 1)).to(running), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.2, inplace=True),
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


class PopMaxout(PopulationModule):
    """Maxout unit (Goodfellow et al. 2013): max over `pieces` linear maps, as in the
    PacGAN/VEEGAN discriminators."""

    def __init__(self, n_seeds: int, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces
        self.linear = PopLinear(n_seeds, in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return y.unflatten(-1, (-1, self.pieces)).amax(dim=-1)


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()
