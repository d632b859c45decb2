"""DCGAN generator and discriminator for square images, population-batched.

Radford et al. 2016 ("Unsupervised Representation Learning with Deep Convolutional
GANs", Sec. 3 and Fig. 1): G projects z to a small stack of feature maps and doubles
their side with stride-2 transposed convolutions, batch norm and ReLU after each but
the output layer, which is tanh; D mirrors it with stride-2 convolutions and LeakyReLU
(slope 0.2), batch norm on every layer but its first; no pooling, no hidden fully
connected layers; every weight ~ N(0, 0.02). Kernels are 4x4 with padding 1, as in
PyTorch's reference DCGAN (examples/dcgan), so each stride-2 layer halves or doubles a
side exactly.

The number of stride-2 stages follows from the image side: by default the side is
halved while it stays even and at least 4, so 64 px gives 4 -> 8 -> 16 -> 32 -> 64 (the
paper's G), 32 px three stages, 28 px 7 -> 14 -> 28 (two: 7 is odd) and 8 px 4 -> 8.
`width` is the channel count of the largest hidden feature maps (half the image side)
and doubles at every further halving: the paper's 64 px G has width 128 (128 channels at
32x32 up to 1024 at 4x4); the default 64 is PyTorch's reference (ngf = ndf = 64).
`depth` sets the number of stages explicitly.

The discriminator can be spectrally normalised in every layer (SNGAN, Miyato et al.
2018), which usually goes with `batch_norm: false`. Its last feature maps, flattened,
are the features of the shared `Discriminator` head, so minibatch discrimination and
packing (which stacks packed images along the channels) work with it unchanged. G's
`body` is every layer but the output layer, so MAD-GAN can share it between generators.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pydantic import PositiveInt
from torch import nn

from ganscope.errors import ConfigError
from ganscope.nets.base import DISCRIMINATORS, GENERATORS
from ganscope.nets.conv import (
    PopBatchNorm2d,
    PopConv2d,
    PopConvTranspose2d,
    PopSpectralNorm,
    normal_per_seed_,
)
from ganscope.nets.discriminator import Discriminator, ExtensionFactory
from ganscope.nets.layers import PopLinear
from ganscope.registry import Params

#: Each stage's layer: 4x4 kernel, stride 2, padding 1 maps a side n to n / 2 (conv) or 2n
#: (transposed conv) exactly.
KERNEL, STRIDE, PADDING = 4, 2, 1
#: Default stages halve the image down to a side of at least this (the paper's 4x4).
SMALLEST_SIDE = 4
#: D's LeakyReLU slope (Radford et al. 2016, Sec. 3).
LEAKY_SLOPE = 0.2


class DCGANParams(Params):
    width: PositiveInt = 64
    depth: PositiveInt | None = None  # stride-2 stages; None: halve the side while even and >= 4
    batch_norm: bool = True


class DCGANDiscriminatorParams(DCGANParams):
    spectral_norm: bool = False


def is_image_shape(sample_shape: tuple[int, ...]) -> bool:
    """Whether samples of `sample_shape` are images (channels, height, width), not points."""
    return len(sample_shape) == 3


def image_side(sample_shape: tuple[int, ...]) -> int:
    """The side of square images of `sample_shape` (channels, side, side)."""
    if len(sample_shape) != 3 or sample_shape[1] != sample_shape[2]:
        raise ConfigError(
            f"the dcgan networks need square images (channels, height, width), got samples of shape "
            f"{tuple(sample_shape)}; use the mlp networks for other data"
        )
    return sample_shape[1]


def stage_count(side: int, depth: int | None) -> int:
    """How many stride-2 stages map the smallest feature maps to `side`: `depth` when
    given and the side halves that often, else halvings while the side stays even and >= 4."""
    if depth is None:
        stages = 0
        while side % 2 ** (stages + 1) == 0 and side // 2 ** (stages + 1) >= SMALLEST_SIDE:
            stages += 1
        if stages == 0:
            raise ConfigError(f"dcgan: a {side}x{side} image cannot be halved to a side of >= {SMALLEST_SIDE}; "
                              "use images of an even side of at least 8")
        return stages
    if side % 2**depth:
        raise ConfigError(f"dcgan: depth={depth} halves the side {depth} times, and {side} does not divide by "
                          f"{2**depth}; use a smaller depth")
    return depth


def stage_widths(width: int, stages: int) -> list[int]:
    """Channels of the hidden feature maps from the largest down: width, 2 width, 4 width, ..."""
    return [width * 2**i for i in range(stages)]


def spectrally_normalised(layer: nn.Module, enabled: bool) -> nn.Module:
    return PopSpectralNorm(layer) if enabled else layer


class DCGANLinear(PopLinear):
    """`PopLinear` with the DCGAN initialisation: weight ~ N(0, 0.02^2), bias 0."""

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        normal_per_seed_(self.weight, generators)
        with torch.no_grad():
            self.bias.zero_()


@GENERATORS.register("dcgan", "DCGAN: transposed convolutions, batch norm, ReLU, tanh output (Radford et al. 2016)",
                     DCGANParams)
class DCGANGenerator(nn.Module):
    """z (S, N, z_dim) -> images (S, N, C, side, side) in [-1, 1]: `body` (projection and
    every hidden stage), then `out` (the last transposed convolution and tanh)."""

    def __init__(self, p: DCGANParams, n_seeds: int, z_dim: int, sample_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.sample_shape = sample_shape
        side = image_side(sample_shape)
        stages = stage_count(side, p.depth)
        widths = stage_widths(p.width, stages)[::-1]
        smallest = (widths[0], side >> stages, side >> stages)
        layers: list[nn.Module] = [DCGANLinear(n_seeds, z_dim, math.prod(smallest)), nn.Unflatten(2, smallest)]
        layers += self.normalised_relu(n_seeds, widths[0], p.batch_norm)
        for c_in, c_out in zip(widths, widths[1:]):
            layers.append(PopConvTranspose2d(n_seeds, c_in, c_out, KERNEL, STRIDE, PADDING, bias=not p.batch_norm))
            layers += self.normalised_relu(n_seeds, c_out, p.batch_norm)
        self.body = nn.Sequential(*layers)
        self.out = nn.Sequential(
            PopConvTranspose2d(n_seeds, widths[-1], sample_shape[0], KERNEL, STRIDE, PADDING), nn.Tanh()
        )

    @staticmethod
    def normalised_relu(n_seeds: int, channels: int, batch_norm: bool) -> list[nn.Module]:
        return [*([PopBatchNorm2d(n_seeds, channels)] if batch_norm else []), nn.ReLU()]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(z))


@DISCRIMINATORS.register(
    "dcgan", "DCGAN: strided convolutions, LeakyReLU 0.2, batch norm or spectral norm (Radford 2016, Miyato 2018)",
    DCGANDiscriminatorParams,
)
class DCGANDiscriminator(Discriminator):
    """images (S, N, C, side, side) -> logits (S, N, n_outputs): stride-2 convolutions down
    to the smallest maps, flattened into the features of the head. Any channel count C is
    accepted, so packed images (m C channels) need nothing special."""

    def __init__(
        self,
        p: DCGANDiscriminatorParams,
        n_seeds: int,
        sample_shape: tuple[int, ...],
        n_outputs: int,
        extensions: Sequence[ExtensionFactory] = (),
    ) -> None:
        side = image_side(sample_shape)
        stages = stage_count(side, p.depth)
        widths = stage_widths(p.width, stages)
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip([sample_shape[0], *widths], widths)):
            normalised = p.batch_norm and i > 0
            conv = PopConv2d(n_seeds, c_in, c_out, KERNEL, STRIDE, PADDING, bias=not normalised)
            layers.append(spectrally_normalised(conv, p.spectral_norm))
            if normalised:
                layers.append(PopBatchNorm2d(n_seeds, c_out))
            layers.append(nn.LeakyReLU(LEAKY_SLOPE))
        body = nn.Sequential(*layers, nn.Flatten(2))
        coupled = any(isinstance(layer, PopBatchNorm2d) for layer in layers)
        super().__init__(body, widths[-1] * (side >> stages) ** 2, n_seeds, n_outputs, extensions, coupled)
        # The shared head, in its place, with the DCGAN initialisation (and spectral norm).
        self.head = spectrally_normalised(DCGANLinear(n_seeds, self.head.weight.shape[1], n_outputs), p.spectral_norm)

    @property
    def input_conv(self) -> nn.Module:
        """The first convolution, the only layer that reads the samples."""
        return self.body[0]
