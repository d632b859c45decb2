"""Discriminator modifiers: remedies for mode collapse that change any discriminator.

A modifier turns a discriminator factory into another one, so it composes with every
architecture, objective, regulariser and scheme: packing (PacGAN) changes what D is
built for and what it is fed; minibatch discrimination and the minibatch standard
deviation add a feature extension between D's body and head
(`ganscope.nets.discriminator`). `d_modifiers` in the config lists them;
`Parts.new_discriminator` applies them in that order, the first outermost.

Every modifier works on points and on images alike: packing concatenates the packed
samples along their first axis (the features of a vector, the channels of an image), and
the extensions act on D's flattened features, which for the DCGAN discriminator are its
smallest feature maps, flattened.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import torch
from pydantic import Field, PositiveInt
from torch import nn

from ganscope.config import Config, d_modifier_params
from ganscope.nets.base import D_MODIFIERS
from ganscope.nets.discriminator import ExtensionFactory, FeatureExtension
from ganscope.nets.layers import at_least_float32
from ganscope.registry import Params

#: Builds a discriminator for samples of a given shape with the given feature extensions.
DiscriminatorFactory = Callable[[tuple[int, ...], Sequence[ExtensionFactory]], nn.Module]


class DiscriminatorModifier(ABC):
    """A change to any discriminator, built from its registered Params.

    `couples_batch`: whether the modified D's output for one sample depends on the other
    samples of its batch. `pack`: how many consecutive samples form one input of D.
    """

    couples_batch: ClassVar[bool] = False

    def __init__(self, params: Params) -> None:
        self.params = params

    @property
    def pack(self) -> int:
        return 1

    @abstractmethod
    def modify(self, build: DiscriminatorFactory) -> DiscriminatorFactory:
        """The factory of the modified discriminator, given the factory of the plain one."""

    @classmethod
    def check_config(cls, params: Params, cfg: Config) -> str | None:
        """Why this modifier cannot work with the rest of `cfg`, in one line; None if it can."""
        return None


def modifiers_from_config(cfg: Config) -> list[DiscriminatorModifier]:
    """The config's `d_modifiers`, built in order."""
    return [D_MODIFIERS.get(piece.name)(params)
            for piece, params in zip(cfg.d_modifiers, d_modifier_params(cfg), strict=True)]


def pack_size(modifiers: Sequence[DiscriminatorModifier]) -> int:
    """How many consecutive samples form one input of the modified D (1 without packing)."""
    return math.prod(modifier.pack for modifier in modifiers)


def apply_modifiers(build: DiscriminatorFactory, modifiers: Sequence[DiscriminatorModifier]) -> DiscriminatorFactory:
    """`build` changed by each modifier in turn, the first modifier outermost."""
    for modifier in reversed(modifiers):
        build = modifier.modify(build)
    return build


class FeatureModifier(DiscriminatorModifier):
    """A modifier that adds one feature extension between D's body and head, after those
    already there; the extension sees the other samples of the batch."""

    couples_batch = True

    @abstractmethod
    def extension(self, n_seeds: int, in_features: int) -> FeatureExtension:
        """The extension for a population of `n_seeds` whose features are `in_features` wide."""

    def modify(self, build: DiscriminatorFactory) -> DiscriminatorFactory:
        def build_with_features(sample_shape: tuple[int, ...], extensions: Sequence[ExtensionFactory]) -> nn.Module:
            return build(sample_shape, (*extensions, self.extension))

        return build_with_features


# ---- packing --------------------------------------------------------------------------


def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """(S, B, *shape) -> (S, B/m, m * shape[0], *shape[1:]): each run of m consecutive
    samples concatenated along the first sample axis, which is the feature axis of a
    vector and the channel axis of an image, the two concatenations PacGAN uses."""
    n_seeds, batch, *shape = x.shape
    if batch % m:
        raise ValueError(f"a batch of {batch} samples does not split into packs of {m}")
    return x.reshape(n_seeds, batch // m, m * shape[0], *shape[1:])


def packed_shape(sample_shape: tuple[int, ...], m: int) -> tuple[int, ...]:
    """The shape of one pack of m samples of `sample_shape`, as `pack` builds it."""
    return (m * sample_shape[0], *sample_shape[1:])


class Packed(nn.Module):
    """D on packs: samples (S, B, *shape) -> logits (S, B/m, n_outputs), one per pack.

    With B divisible by m no pack straddles two batches, so real and fake batches may
    still share one forward pass unless the inner D couples samples.
    """

    def __init__(self, inner: nn.Module, m: int) -> None:
        super().__init__()
        self.inner = inner
        self.m = m
        self.batch_coupled = getattr(inner, "batch_coupled", False)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the packs; a pack's m labels travel with it as (S, B/m, m)."""
        if labels is None:
            return self.inner(pack(x, self.m))
        return self.inner(pack(x, self.m), labels.unflatten(1, (-1, self.m)))


class PackParams(Params):
    m: Literal[2, 3, 4] = 2


@D_MODIFIERS.register("pack", "PacGAN: D judges packs of m samples from one source (Lin et al. 2018)", PackParams)
class Pack(DiscriminatorModifier):
    """PacGAN (Lin et al. 2018, "PacGAN: The power of two samples in generative
    adversarial networks", Section 3): D sees m samples at once, all real or all fake,
    concatenated into one input; only its input layer widens (m * d inputs for d-dim
    samples). A D that judges m-tuples compares the product distributions P^m and Q^m,
    and the paper shows (Section 4) that packing amplifies the total variation distance
    of a generator that drops modes, so collapse is penalised more sharply. A batch of
    B samples becomes B/m packs and the objectives average D's loss over the packs.
    The paper's experiments use m = 2, 3, 4 and find m = 2 already effective, hence the
    default.
    """

    params: PackParams

    @property
    def pack(self) -> int:
        return self.params.m

    def modify(self, build: DiscriminatorFactory) -> DiscriminatorFactory:
        m = self.params.m

        def build_packed(sample_shape: tuple[int, ...], extensions: Sequence[ExtensionFactory]) -> nn.Module:
            return Packed(build(packed_shape(sample_shape, m), extensions), m)

        return build_packed

    @classmethod
    def check_config(cls, params: Params, cfg: Config) -> str | None:
        m, batch = params.m, cfg.train.batch_size  # type: ignore[attr-defined]
        if batch % m:
            return f"packing m={m} samples needs train.batch_size divisible by {m} (got {batch})"
        return None


# ---- minibatch discrimination -----------------------------------------------------------

#: Standard deviation of T's initial entries, as in the authors' reference code
#: (openai/improved-gan, nn.py, MinibatchLayer: theta ~ Normal(0.05)).
MINIBATCH_INIT_STD = 0.05


class MinibatchFeatures(FeatureExtension):
    """f (S, N, A) -> concat(f, o) (S, N, A + B), o the closeness of each sample to the
    others of its batch through a learned tensor T (S, A, B * C), one T per seed.

    Salimans et al. 2016, Section 3.2: M_i = f(x_i) T in R^{B x C};
    c_b(x_i, x_j) = exp(-||M_{i,b} - M_{j,b}||_L1); o(x_i)_b = sum_{j != i} c_b(x_i, x_j).
    The sum leaves out j = i, whose term is the constant exp(0) = 1, as the reference code
    does (it adds 1e6 to the self-distance).
    """

    batch_coupled = True

    def __init__(self, n_seeds: int, in_features: int, kernels: int, kernel_dim: int) -> None:
        super().__init__(in_features + kernels)
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.weight = nn.Parameter(torch.empty(n_seeds, in_features, kernels * kernel_dim))

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        with torch.no_grad():
            for s, g in enumerate(generators):
                self.weight[s].normal_(0.0, MINIBATCH_INIT_STD, generator=g)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        n_seeds, n = f.shape[:2]
        rows = torch.bmm(f, self.weight).view(n_seeds, n, self.kernels, self.kernel_dim)
        rows = rows.transpose(1, 2).reshape(n_seeds * self.kernels, n, self.kernel_dim)  # M_{., b}
        closeness = torch.exp(-torch.cdist(rows, rows, p=1))  # c_b(x_i, x_j), (S * B, N, N)
        closeness = closeness.masked_fill(torch.eye(n, dtype=torch.bool, device=f.device), 0.0)
        o = closeness.sum(dim=2).view(n_seeds, self.kernels, n).transpose(1, 2)
        return torch.cat([f, o.to(f.dtype)], dim=2)


class MinibatchParams(Params):
    kernels: PositiveInt = 50
    kernel_dim: PositiveInt = 5


@D_MODIFIERS.register(
    "minibatch", "minibatch discrimination: D sees each sample's closeness to the others (Salimans et al. 2016)",
    MinibatchParams,
)
class Minibatch(FeatureModifier):
    """Minibatch discrimination (Salimans et al. 2016, "Improved Techniques for Training
    GANs", Section 3.2). A D that judges samples one at a time cannot see that G maps
    every z to nearly the same point; fed each sample's closeness to the rest of its
    batch, it can, and G is pushed to spread its samples. The features f(x) are the
    output of D's body, and the closeness statistics join them before the head.
    `kernels` B = 50 and `kernel_dim` C = 5 (the reference code's dim_per_kernel) keep
    the added cost small for the MLP discriminators here; the cost still grows with the
    square of the batch (N^2 B C per pass). Real and fake batches are kept apart, as the
    paper computes the features separately for each.
    """

    params: MinibatchParams

    def extension(self, n_seeds: int, in_features: int) -> MinibatchFeatures:
        return MinibatchFeatures(n_seeds, in_features, self.params.kernels, self.params.kernel_dim)


# ---- minibatch standard deviation --------------------------------------------------------

#: Added to the variance before its square root, as in the authors' code
#: (tkarras/progressive_growing_of_gans, networks.py, minibatch_stddev_layer).
STDDEV_EPS = 1e-8


def group_count(n: int, group_size: int) -> int:
    """How many groups a batch of `n` inputs splits into: groups of `group_size`, or one
    group of all `n` when there are fewer (the reference code's min(group_size, n))."""
    size = min(group_size, n)
    if n % size:
        raise ValueError(f"a batch of {n} inputs does not split into groups of {size} for the minibatch stddev")
    return n // size


class MinibatchStddevFeatures(FeatureExtension):
    """f (S, N, A) -> concat(f, sigma) (S, N, A + 1): sigma is the standard deviation of each
    of the A features over the sample's group, averaged over the features.

    Karras et al. 2018 ("Progressive Growing of GANs for Improved Quality, Stability, and
    Variation", Sec. 3): "compute the standard deviation for each feature in each spatial
    location over the minibatch", "average these estimates over all features and spatial
    locations to arrive at a single value", replicated as one extra constant feature map.
    As in the authors' code, the batch is split into groups of `group_size` (min of it and
    N), the standard deviation is the square root of the biased variance plus 1e-8, and
    the groups are strided: with M = N / G groups, input i belongs to group i mod M. Each
    seed's statistic is its own; no parameters. It is computed in at least float32.
    """

    batch_coupled = True

    def __init__(self, in_features: int, group_size: int) -> None:
        super().__init__(in_features + 1)
        self.group_size = group_size

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        n_seeds, n, width = f.shape
        groups = group_count(n, self.group_size)
        grouped = at_least_float32(f).reshape(n_seeds, n // groups, groups, width)  # input j M + m -> group m
        sigma = (grouped.var(dim=1, correction=0) + STDDEV_EPS).sqrt().mean(dim=2)  # (S, M)
        return torch.cat([f, sigma.repeat(1, n // groups).unsqueeze(2).to(f.dtype)], dim=2)


class MinibatchStddevParams(Params):
    group_size: int = Field(4, ge=2)


@D_MODIFIERS.register(
    "minibatch-stddev", "minibatch standard deviation: D sees its features' spread over a group of "
    "samples (Karras et al. 2018)", MinibatchStddevParams,
)
class MinibatchStddev(FeatureModifier):
    """The minibatch standard deviation (Karras et al. 2018, "Progressive Growing of GANs",
    Sec. 3), ProGAN's simplification of minibatch discrimination: no learned tensor, one
    added feature, the spread of D's features over a group of samples. A collapsed G
    gives groups of near-identical samples, whose spread is near zero while real groups
    spread as the data does, so D tells them apart and G is pushed to vary its samples.
    Default `group_size` 4, the authors' code's (a group of one has no spread, hence >= 2).

    The paper appends the statistic as a constant feature map near the end of D (before
    its last convolutions at 4x4). Here it joins D's flattened features before the head,
    for the DCGAN discriminator the smallest feature maps: a constant map of h x w pixels
    fed to the linear head acts as the one number times the sum of its h x w weights, so
    one feature is the same thing. On the MLP discriminator it is the spread of the last
    hidden layer. The batch D sees must split into whole groups (packs with packing), and
    real and fake batches are kept apart, as for minibatch discrimination.
    """

    params: MinibatchStddevParams

    def extension(self, n_seeds: int, in_features: int) -> MinibatchStddevFeatures:
        return MinibatchStddevFeatures(in_features, self.params.group_size)

    @classmethod
    def check_config(cls, params: Params, cfg: Config) -> str | None:
        inputs = cfg.train.batch_size // pack_size(modifiers_from_config(cfg))
        group = params.group_size  # type: ignore[attr-defined]
        if inputs > group and inputs % group:
            return (
                f"the minibatch stddev splits the {inputs} inputs D sees per batch into groups of {group}; "
                f"make them a multiple of {group} (train.batch_size, divided by the pack size) or set group_size"
            )
        return None
