"""Population-batched image layers: convolution, transposed convolution, batch norm and
spectral norm for S independent networks computed as one.

Feature maps of a population are (S, N, C, H, W). Each layer folds the seed axis into
the channel axis, (N, S * C, H, W), and runs one grouped convolution with `groups=S`:
group s sees only seed s's channels and seed s's weights, so the S convolutions are
exactly separate, yet one kernel call does them all. That saves the per-call overhead of
a loop over seeds, which matters for layers with little work per call (few channels,
or an accelerator); where the arithmetic dominates, as for wide layers on a CPU, the
grouped call and the loop cost about the same (README, "Populations of seeds"). Folding
back returns a view, and folding that view again is free, so a stack of these layers
copies the feature maps once, at its input.

Every weight keeps a leading seed axis, and `reset_parameters` draws seed s's slice from
seed s's own generator only, so seed 3 inside a population is initialised, and computes,
exactly as seed 3 alone (`ganscope.nets.layers.init_population`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ganscope.distributed import synced_moments
from ganscope.nets.layers import PopulationModule, at_least_float32

#: Standard deviation of the DCGAN initialisation: every weight ~ N(0, 0.02)
#: (Radford et al. 2016, "Unsupervised Representation Learning with Deep Convolutional
#: GANs", Sec. 4).
DCGAN_INIT_STD = 0.02


def fold_seeds(x: torch.Tensor) -> torch.Tensor:
    """(S, N, C, H, W) -> (N, S * C, H, W): seed s's channels become group s."""
    return x.transpose(0, 1).flatten(1, 2)


def unfold_seeds(y: torch.Tensor, n_seeds: int) -> torch.Tensor:
    """(N, S * C, H, W) -> (S, N, C, H, W), a view: `fold_seeds` of it copies nothing."""
    return y.unflatten(1, (n_seeds, -1)).transpose(0, 1)


def normal_per_seed_(
    param: torch.Tensor, generators: Sequence[torch.Generator], mean: float = 0.0, std: float = DCGAN_INIT_STD
) -> None:
    """Fill each seed's slice of `param` with N(mean, std^2) draws from that seed's generator."""
    with torch.no_grad():
        for row, g in zip(param, generators, strict=True):
            row.normal_(mean, std, generator=g)


class _PopConv(PopulationModule):
    """A convolution over a population: weights (S, *torch's weight shape) ~ N(0, init_std^2),
    biases (S, C_out) zero, all seeds in one grouped call of `convolution`. A `gain` other
    than 1 multiplies the weight at run time (the equalised learning rate of
    `ganscope.nets.stylegan`)."""

    #: torch's functional convolution, called as (input, weight, bias, stride, padding, groups=).
    convolution: ClassVar[Callable[..., torch.Tensor]]
    #: Whether torch's weight for it is (C_in, C_out, k, k), as for transposed convolutions,
    #: rather than (C_out, C_in, k, k).
    in_channels_first: ClassVar[bool]

    def __init__(
        self,
        n_seeds: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        init_std: float = DCGAN_INIT_STD,
        gain: float = 1.0,
    ) -> None:
        super().__init__()
        self.stride, self.padding, self.init_std, self.gain = stride, padding, init_std, gain
        channels = (in_channels, out_channels) if self.in_channels_first else (out_channels, in_channels)
        self.weight = nn.Parameter(torch.empty(n_seeds, *channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(n_seeds, out_channels)) if bias else None

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        normal_per_seed_(self.weight, generators, std=self.init_std)
        if self.bias is not None:
            with torch.no_grad():
                self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_seeds = self.weight.shape[0]
        bias = None if self.bias is None else self.bias.flatten()
        weight = self.weight if self.gain == 1.0 else self.weight * self.gain
        y = self.convolution(fold_seeds(x), weight.flatten(0, 1), bias, self.stride, self.padding, groups=n_seeds)
        return unfold_seeds(y, n_seeds)


class PopConv2d(_PopConv):
    """y[s] = conv2d(x[s], W[s]) + b[s] for x (S, N, C_in, H, W); W (S, C_out, C_in, k, k),
    as `torch.nn.Conv2d`'s weight with a seed axis in front.

    A D's input convolution may read one-hot class maps after each sample's channels (the
    CGAN discriminator's input, `ganscope.nets.conditioning`) as class indices instead of
    maps: `one_hot_classes(n_classes, labels)` around the call. Convolution is linear and a
    one-hot map is constant, so conv(concat(x, one_hot(y)), W) = conv(x, W_x) + R[y], where
    R[k] is the response of W's class-k slice to an all-ones map (its borders shaped by the
    padding). That is the concatenated convolution to float rounding, at the cost of the
    convolution of x alone plus one small convolution for all K classes, where the
    concatenation would read K more channels of every sample.
    """

    convolution = staticmethod(F.conv2d)
    in_channels_first = False
    #: (K, labels (S, B)) while a caller passes the class maps as indices (`one_hot_classes`).
    class_maps: tuple[int, torch.Tensor] | None = None

    @contextmanager
    def one_hot_classes(self, n_classes: int, labels: torch.Tensor) -> Iterator[None]:
        """For the calls inside: the input's channels are C per sample (B samples, or B/m
        packs of m consecutive samples), and after each sample's C channels the layer's
        weight reads K more, the one-hot map of that sample's label in `labels` (S, B)."""
        self.class_maps = (n_classes, labels)
        try:
            yield
        finally:
            self.class_maps = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.class_maps is None:
            return super().forward(x)
        n_classes, labels = self.class_maps
        n_seeds, c_out, c_in, *kernel = self.weight.shape
        n_packs, x_channels, side = x.shape[1], x.shape[2], x.shape[3:]
        m = labels.shape[1] // n_packs  # samples per pack
        per_sample = c_in // m
        if m * n_packs != labels.shape[1] or m * per_sample != c_in or per_sample - n_classes != x_channels // m:
            raise ValueError(f"{labels.shape[1]} labels and {x_channels}-channel inputs do not fit a convolution "
                             f"reading {c_in} channels with {n_classes} class maps per sample")
        weight = self.weight if self.gain == 1.0 else self.weight * self.gain
        weight = weight.view(n_seeds, c_out, m, per_sample, *kernel)
        samples_part = weight[:, :, :, : per_sample - n_classes].reshape(n_seeds * c_out, x_channels, *kernel)
        bias = None if self.bias is None else self.bias.flatten()
        y = unfold_seeds(self.convolution(fold_seeds(x), samples_part, bias, self.stride, self.padding,
                                          groups=n_seeds), n_seeds)
        # R: every (seed, pack position, class) slice's response to an all-ones map, one call.
        class_part = weight[:, :, :, per_sample - n_classes:].permute(0, 2, 3, 1, 4, 5)
        ones = x.new_ones(1, 1, *side)
        responses = self.convolution(ones, class_part.reshape(-1, 1, *kernel), None, self.stride, self.padding)
        # Each pack's sum over its positions of R[seed, position, label]: one-hot codes times R.
        codes = F.one_hot(labels.view(n_seeds, n_packs, m), n_classes).to(y.dtype).flatten(2)
        return y + torch.bmm(codes, responses.view(n_seeds, m * n_classes, -1)).view_as(y)


class PopConvTranspose2d(_PopConv):
    """y[s] = conv_transpose2d(x[s], W[s]) + b[s] for x (S, N, C_in, H, W);
    W (S, C_in, C_out, k, k), as `torch.nn.ConvTranspose2d`'s weight with a seed axis in front."""

    convolution = staticmethod(F.conv_transpose2d)
    in_channels_first = True


class PopBatchNorm2d(PopulationModule):
    """Batch normalisation of feature maps (S, N, C, H, W), statistics per seed.

    Seed s's channel c is normalised over seed s's own batch and pixels (Ioffe & Szegedy
    2015, Alg. 1, with the spatial axes pooled as for convolutions), never over other
    seeds, and has its own running mean and variance for eval mode. On the folded maps
    (N, S * C, H, W) that is plain `F.batch_norm` with S * C channels. The gain starts at
    N(1, 0.02^2) and the shift at 0, as in the DCGAN authors' code (dcgan_code, gain_ifn
    and bias_ifn). As `PopBatchNorm`, it computes in at least float32, so bf16 rounding
    reaches neither the statistics nor the float32 running buffers.
    """

    #: Statistics over every data-parallel process's share (`ganscope.distributed`).
    synced: bool = False

    def __init__(self, n_seeds: int, channels: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(n_seeds, channels))
        self.bias = nn.Parameter(torch.zeros(n_seeds, channels))
        self.register_buffer("running_mean", torch.zeros(n_seeds, channels))
        self.register_buffer("running_var", torch.ones(n_seeds, channels))

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        normal_per_seed_(self.weight, generators, mean=1.0)
        with torch.no_grad():
            self.bias.zero_()
            self.running_mean.zero_()
            self.running_var.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_seeds = self.weight.shape[0]
        if self.training and self.synced:
            return self._synced(at_least_float32(x))
        y = F.batch_norm(
            fold_seeds(at_least_float32(x)),
            self.running_mean.view(-1),  # views: F.batch_norm updates the buffers in place
            self.running_var.view(-1),
            self.weight.flatten(),
            self.bias.flatten(),
            self.training,
            self.momentum,
            self.eps,
        )
        return unfold_seeds(y, n_seeds)

    def _synced(self, x: torch.Tensor) -> torch.Tensor:
        """Training-mode batch norm with the statistics of every data-parallel process's
        share (`train.distributed.sync_batch_norm`), running buffers updated as
        `F.batch_norm` does (the unbiased variance)."""
        mean, var, n = synced_moments(x, (1, 3, 4))
        with torch.no_grad():
            self.running_mean.lerp_(mean.view_as(self.running_mean), self.momentum)
            self.running_var.lerp_(var.view_as(self.running_var) * n / max(n - 1, 1), self.momentum)
        shape = (*self.weight.shape[:1], 1, self.weight.shape[1], 1, 1)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(shape)


class PopSpectralNorm(PopulationModule):
    """A population layer whose weight is divided by its spectral norm, seed by seed.

    Spectral normalisation (Miyato et al. 2018, "Spectral Normalization for Generative
    Adversarial Networks", Eq. 8 and Algorithm 1) makes every layer of D 1-Lipschitz:
    W_SN = W / sigma(W), sigma(W) estimated by power iteration on the weight matrix
    (a seed's weight with its first axis as rows, the rest flattened to columns, as
    `torch.nn.utils.parametrizations.spectral_norm` reshapes a conv weight). Here each seed
    s has its own vectors u[s], v[s] and its own sigma[s]: a norm taken over the whole
    population's weights would tie the seeds together. In training mode each forward pass
    runs one power iteration per seed, u <- W v / ||W v||, v <- W^T u / ||W^T u|| (torch's
    order, so the two agree given the same u and v), then sigma = u^T W v with u and v held
    constant, so the gradient flows through W alone. u and v are buffers: checkpoints keep
    them and resume continues the iteration. They start as normalised N(0, I) draws from
    each seed's generator, as in Algorithm 1; torch adds 15 warm-up iterations at
    construction, which the paper does not.

    The wrapped layer runs unchanged, with its `weight` replaced by W_SN through
    `torch.func.functional_call`, so any population layer with a `weight` can be wrapped.
    """

    def __init__(self, layer: nn.Module, eps: float = 1e-12) -> None:
        super().__init__()
        self.layer = layer
        self.eps = eps
        n_seeds, rows = layer.weight.shape[:2]
        cols = math.prod(layer.weight.shape[2:])
        self.register_buffer("u", torch.empty(n_seeds, rows))
        self.register_buffer("v", torch.empty(n_seeds, cols))

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        normal_per_seed_(self.u, generators, std=1.0)
        normal_per_seed_(self.v, generators, std=1.0)
        with torch.no_grad():
            self.u.copy_(F.normalize(self.u, dim=1, eps=self.eps))
            self.v.copy_(F.normalize(self.v, dim=1, eps=self.eps))

    @torch.no_grad()
    def power_iteration(self, matrices: torch.Tensor) -> None:
        """One step of the power method per seed on `matrices` (S, rows, cols), in place."""
        u = F.normalize(torch.bmm(matrices, self.v.unsqueeze(2)).squeeze(2), dim=1, eps=self.eps)
        self.u.copy_(u)
        v = F.normalize(torch.bmm(matrices.transpose(1, 2), self.u.unsqueeze(2)).squeeze(2), dim=1, eps=self.eps)
        self.v.copy_(v)

    def normalised_weight(self) -> torch.Tensor:
        """W_SN = W / sigma, one sigma per seed; in float32 even under bf16 autocast, whose
        8-bit mantissa would make the power iteration drift."""
        weight = self.layer.weight
        with torch.autocast(weight.device.type, enabled=False):
            matrices = at_least_float32(weight).flatten(2)
            if self.training:
                self.power_iteration(matrices.detach())
            u, v = self.u.clone(), self.v.clone()  # the next forward pass updates the buffers in place
            sigma = torch.einsum("sr,src,sc->s", u, matrices, v)
            return weight / sigma.view(-1, *([1] * (weight.dim() - 1))).to(weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.layer, {"weight": self.normalised_weight()}, (x,))


def input_convolution(net: nn.Module) -> PopConv2d | None:
    """The convolution that alone reads a discriminator's samples, when the discriminator
    inside `net` names one (its `input_conv`, seen through spectral norm), else None."""
    for module in net.modules():
        conv = getattr(module, "input_conv", None)
        if isinstance(conv, PopSpectralNorm):
            conv = conv.layer
        if isinstance(conv, PopConv2d):
            return conv
    return None
