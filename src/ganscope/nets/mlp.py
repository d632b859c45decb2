"""Multilayer perceptrons for low-dimensional data, population-batched."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import PositiveInt
from torch import nn

from ganscope.nets.base import DISCRIMINATORS, GENERATORS
from ganscope.nets.discriminator import Discriminator, ExtensionFactory
from ganscope.nets.layers import ACTIVATIONS, PopBatchNorm, PopLinear, PopMaxout, activation
from ganscope.registry import Params

ActivationName = Literal[tuple(ACTIVATIONS)]  # type: ignore[valid-type]


class MLPParams(Params):
    hidden: PositiveInt = 128
    depth: PositiveInt = 3
    activation: ActivationName = "relu"  # type: ignore[valid-type]
    batch_norm: bool = False


class MLPDiscriminatorParams(MLPParams):
    maxout_pieces: int = 0  # > 1 uses maxout units instead of the activation (PacGAN's D)


def hidden_stack(
    n_seeds: int, n_in: int, p: MLPParams, maxout_pieces: int = 0
) -> tuple[nn.Sequential, int]:
    """`depth` hidden layers of width `hidden`; returns the stack and its output width."""
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(p.depth):
        if maxout_pieces > 1:
            layers.append(PopMaxout(n_seeds, width, p.hidden, maxout_pieces))
        else:
            layers.append(PopLinear(n_seeds, width, p.hidden))
        if p.batch_norm:
            layers.append(PopBatchNorm(n_seeds, p.hidden))
        if maxout_pieces <= 1:
            layers.append(activation(p.activation))
        width = p.hidden
    return nn.Sequential(*layers), width


class MLPGenerator(nn.Module):
    """z (S, B, z_dim) -> samples (S, B, *sample_shape)."""

    def __init__(self, n_seeds: int, z_dim: int, sample_shape: tuple[int, ...], p: MLPParams) -> None:
        super().__init__()
        self.sample_shape = sample_shape
        self.body, width = hidden_stack(n_seeds, z_dim, p)
        self.out = PopLinear(n_seeds, width, math.prod(sample_shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(z)).unflatten(-1, self.sample_shape)


class Flattened(nn.Sequential):
    """Layers applied to samples flattened to vectors: (S, B, *sample_shape) -> (S, B, width)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(2))


class MLPDiscriminator(Discriminator):
    """samples (S, B, *sample_shape) -> logits (S, B, n_outputs): a hidden stack on the
    flattened samples as the body, then any feature extensions, then a linear head."""

    def __init__(
        self,
        n_seeds: int,
        sample_shape: tuple[int, ...],
        n_outputs: int,
        p: MLPDiscriminatorParams,
        extensions: Sequence[ExtensionFactory] = (),
    ) -> None:
        body, width = hidden_stack(n_seeds, math.prod(sample_shape), p, p.maxout_pieces)
        super().__init__(Flattened(*body), width, n_seeds, n_outputs, extensions, batch_coupled=p.batch_norm)


@GENERATORS.register("mlp", "fully connected generator (width, depth, activation, batch norm)", MLPParams)
def build_mlp_generator(p: MLPParams, n_seeds: int, z_dim: int, sample_shape: tuple[int, ...]) -> MLPGenerator:
    return MLPGenerator(n_seeds, z_dim, sample_shape, p)


@DISCRIMINATORS.register(
    "mlp", "fully connected discriminator (width, depth, activation or maxout, batch norm)", MLPDiscriminatorParams
)
def build_mlp_discriminator(
    p: MLPDiscriminatorParams,
    n_seeds: int,
    sample_shape: tuple[int, ...],
    n_outputs: int,
    extensions: Sequence[ExtensionFactory] = (),
) -> MLPDiscriminator:
    return MLPDiscriminator(n_seeds, sample_shape, n_outputs, p, extensions)
