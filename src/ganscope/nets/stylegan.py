"""StyleGAN-lite: a style-based generator and a residual discriminator, population-batched.

Karras et al. 2019 ("A Style-Based Generator Architecture for GANs", StyleGAN) and 2020
("Analyzing and Improving the Image Quality of StyleGAN", StyleGAN2), at the sizes a
2-core CPU trains (28x28 and 32x32), every piece a config switch so that its effect on
mode coverage can be measured alone:

- **Mapping network** (StyleGAN Sec. 2): z, normalised to unit mean square ("pixel
  norm"), through `mapping_depth` fully connected layers (8 in the paper) to w, with the
  paper's learning-rate multiplier 0.01. `mapping_depth: 0` removes it (w is the
  normalised z), the paper's ablation (Table 1, config A vs B).
- **Synthesis** from a learned constant (StyleGAN Sec. 2, 4x4 in the paper; here the
  side the image halves to, as for DCGAN: 7x7 at 28 px, so MNIST needs no padding and
  is scored by the same oracle as every other row), one style w per layer.
- **Modulated and demodulated 3x3 convolutions** (StyleGAN2 Eq. 1-3): the layer's style
  s = A(w) (a learned affine map, bias 1) scales the weight's input channels,
  w'_ijk = s_i w_ijk, and demodulation divides each output channel by
  sigma_j = sqrt(sum_ik w'_ijk^2 + 1e-8), which gives unit-variance outputs for
  unit-variance inputs. Computed as StyleGAN2's non-fused path: conv(x * s, W) * (1 /
  sigma), one grouped convolution per layer for the whole population, never a weight per
  sample. Upsampling is bilinear before the convolution (StyleGAN2 uses a transposed
  convolution with a [1, 3, 3, 1] FIR filter; bilinear is the same low-pass idea).
- **Noise inputs** (StyleGAN Sec. 2): after each convolution, per-pixel N(0, 1) noise
  times a learned per-layer strength (starting at 0, as StyleGAN2's code), drawn from
  the population's `network` stream (`StreamUser`), so draws are per seed, checkpointed,
  and resume stays bit-exact; evaluation draws from its own stream (`Scheme.train`).
- **Style mixing** (StyleGAN Sec. 3.1): in training, with probability `mixing_prob` (0.9)
  a batch's styles switch, from a crossover layer drawn uniformly in [1, L), to those
  of a second latent; one crossover per batch and seed, as stylegan2-ada's code.
- **Truncation** (StyleGAN Sec. 3.1 and Appendix B): w' = w_avg + psi (w - w_avg) at
  sampling, with w_avg the moving average (decay 0.995) of w in training;
  `ganscope sample --truncation 0.7`.
- **Skip architecture** (StyleGAN2 Fig. 7b, the configuration its paper uses for G):
  each resolution adds its own to-RGB output (a modulated 1x1 convolution without
  demodulation) to the upsampled image of the resolutions below; the output is linear
  (no tanh), as in StyleGAN2.
- **Equalised learning rate** (Karras et al. 2018, Sec. 4.1): weights are N(0, 1) and
  scaled at run time by He's constant 1 / sqrt(fan_in) (times the layer's learning-rate
  multiplier), so Adam's updates are the same size in every layer. Biases are zero,
  activations LeakyReLU 0.2 times sqrt(2).

The discriminator is StyleGAN2's residual D (Fig. 7c): from-RGB 1x1 convolution, then per
resolution two 3x3 convolutions and a 2x average-pool downsampling, beside a 1x1 skip
path, summed and scaled by 1/sqrt(2); at the smallest side one more 3x3 convolution and
a fully connected layer give the features of the shared head. The minibatch-stddev layer
is the `minibatch-stddev` D-modifier (StyleGAN2's D uses it), so it can be switched off
like any other; there it joins the flattened features before the head (see its docs).
R1 (`r1`) and path-length (`path-length`) regularisation are regularisers
(`ganscope.regularizers.style`), the moving average of G is `train.ema_kimg`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeInt, PositiveInt
from torch import nn

from ganscope.nets.base import DISCRIMINATORS, GENERATORS
from ganscope.nets.conv import PopConv2d, normal_per_seed_
from ganscope.nets.dcgan import image_side, stage_count
from ganscope.nets.discriminator import Discriminator, ExtensionFactory
from ganscope.nets.layers import PopulationModule, StreamUser
from ganscope.registry import Params

#: LeakyReLU slope and the gain that restores unit variance after it (StyleGAN2's bias_act).
LEAKY_SLOPE, ACTIVATION_GAIN = 0.2, math.sqrt(2.0)
#: Added under demodulation's square root (StyleGAN2, Eq. 3).
DEMODULATION_EPS = 1e-8
#: Decay of the moving average of w that truncation pulls towards (StyleGAN2's w_avg_beta).
W_AVG_BETA = 0.995


class StyleGANParams(Params):
    width: PositiveInt = 32  # channels at the largest resolution, doubling per halving
    max_width: PositiveInt = 256
    depth: PositiveInt | None = None  # stride-2 stages; None: as DCGAN (halve while even and >= 4)
    w_dim: PositiveInt = 128
    mapping_depth: NonNegativeInt = 8  # 0: no mapping network, w = normalised z
    mapping_lr_mult: float = Field(0.01, gt=0.0)
    noise: bool = True
    mixing_prob: float = Field(0.9, ge=0.0, le=1.0)


class StyleDiscriminatorParams(Params):
    width: PositiveInt = 32
    max_width: PositiveInt = 256
    depth: PositiveInt | None = None


def leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE) * ACTIVATION_GAIN


def normalise_latent(z: torch.Tensor) -> torch.Tensor:
    """z / sqrt(mean(z^2) + 1e-8) over its features (StyleGAN's pixel norm of z)."""
    return z * torch.rsqrt(z.square().mean(dim=-1, keepdim=True) + 1e-8)


def channels_at(width: int, max_width: int, halvings: int) -> int:
    """Channels of the feature maps `halvings` times smaller than the image."""
    return min(width * 2**halvings, max_width)


class EqualLinear(PopulationModule):
    """y[s] = x[s] @ (W[s] * lr_mult / sqrt(in)) + b[s] * lr_mult, W ~ N(0, 1 / lr_mult^2):
    the equalised learning rate with StyleGAN's per-layer multiplier (the mapping's 0.01)."""

    def __init__(self, n_seeds: int, in_features: int, out_features: int, lr_mult: float = 1.0,
                 bias_init: float = 0.0) -> None:
        super().__init__()
        self.lr_mult, self.bias_init = lr_mult, bias_init
        self.gain = lr_mult / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(n_seeds, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_seeds, 1, out_features))

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        normal_per_seed_(self.weight, generators, std=1.0 / self.lr_mult)
        with torch.no_grad():
            self.bias.fill_(self.bias_init / self.lr_mult)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias * self.lr_mult, x, self.weight * self.gain)


class EqualConv2d(PopConv2d):
    """conv2d(x[s], W[s] / sqrt(C_in k^2)) + b[s], W ~ N(0, 1): an equalised convolution,
    all seeds in one grouped call; 'same' padding."""

    def __init__(self, n_seeds: int, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__(n_seeds, in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias,
                         init_std=1.0, gain=1.0 / math.sqrt(in_channels * kernel_size**2))


class ModulatedConv2d(PopulationModule):
    """StyleGAN2's modulated convolution (Eq. 1-3) of x (S, N, C_in, H, W) with per-sample
    styles s = A(w) (S, N, C_in): conv(x * s, W) / sigma, sigma (S, N, C_out) the norm of
    each output channel's modulated weight, when `demodulate`; then bias. W ~ N(0, 1)
    with the equalised gain; A's bias starts at 1 so styles start near 1."""

    def __init__(self, n_seeds: int, w_dim: int, in_channels: int, out_channels: int, kernel_size: int,
                 demodulate: bool = True) -> None:
        super().__init__()
        self.demodulate = demodulate
        self.affine = EqualLinear(n_seeds, w_dim, in_channels, bias_init=1.0)
        self.conv = EqualConv2d(n_seeds, in_channels, out_channels, kernel_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(n_seeds, out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # (S, N, C_in)
        y = self.conv(x * styles[..., None, None])
        if self.demodulate:
            weight = self.conv.weight * self.conv.gain  # (S, C_out, C_in, k, k)
            energy = weight.square().sum(dim=(3, 4))  # (S, C_out, C_in)
            sigma_sq = torch.bmm(styles.square(), energy.transpose(1, 2))  # (S, N, C_out)
            y = y * torch.rsqrt(sigma_sq + DEMODULATION_EPS)[..., None, None]
        return y + self.bias[:, None, :, None, None]


class NoiseInput(PopulationModule, StreamUser):
    """x + strength[s] * noise, noise (S, N, 1, H, W) ~ N(0, 1) per pixel from the network
    stream, one learned strength per layer and seed (StyleGAN Sec. 2; starts at 0)."""

    def __init__(self, n_seeds: int) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(n_seeds))

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        with torch.no_grad():
            self.strength.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rng is None:
            raise RuntimeError("a noise input draws from the network stream; attach one with attach_stream")
        noise = self.rng.randn(x.shape[1], 1, *x.shape[3:]).to(x)
        return x + self.strength.view(-1, 1, 1, 1, 1).to(x) * noise


class StyleLayer(nn.Module):
    """(optional 2x bilinear upsampling) -> modulated 3x3 conv -> noise -> bias, activation."""

    def __init__(self, n_seeds: int, w_dim: int, in_channels: int, out_channels: int, upsample: bool,
                 noise: bool) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv = ModulatedConv2d(n_seeds, w_dim, in_channels, out_channels, 3)
        self.noise = NoiseInput(n_seeds) if noise else None

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = upsample2x(x)
        y = self.conv(x, w)
        if self.noise is not None:
            y = self.noise(y)
        return leaky(y)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x upsampling of (S, N, C, H, W)."""
    return F.interpolate(x.flatten(0, 1), scale_factor=2, mode="bilinear", align_corners=False).unflatten(
        0, x.shape[:2])


class MappingNetwork(PopulationModule):
    """z (S, N, z_dim) -> w (S, N, w_dim): normalised z through `depth` equalised layers
    with learning-rate multiplier `lr_mult`; tracks w_avg (S, w_dim) in training."""

    def __init__(self, n_seeds: int, z_dim: int, w_dim: int, depth: int, lr_mult: float) -> None:
        super().__init__()
        self.z_dim = z_dim
        widths = [z_dim] + [w_dim] * depth
        self.layers = nn.ModuleList(
            EqualLinear(n_seeds, a, b, lr_mult=lr_mult) for a, b in zip(widths, widths[1:])
        )
        self.w_dim = widths[-1]
        self.register_buffer("w_avg", torch.zeros(n_seeds, self.w_dim))

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        self.w_avg.zero_()

    def forward(self, z: torch.Tensor, track: bool = True) -> torch.Tensor:
        """w of `z`; in training also moves w_avg towards this batch's mean unless `track`
        is off (the second latents of style mixing, as stylegan2-ada's skip_w_avg_update)."""
        w = normalise_latent(z)
        for layer in self.layers:
            w = leaky(layer(w))
        if self.training and track:
            with torch.no_grad():
                self.w_avg.lerp_(w.detach().mean(dim=1).to(self.w_avg.dtype), 1 - W_AVG_BETA)
        return w


@GENERATORS.register(
    "stylegan", "StyleGAN-lite: mapping network, modulated convolutions, noise, style mixing, skip G "
    "(Karras et al. 2019, 2020)", StyleGANParams,
)
class StyleGANGenerator(PopulationModule, StreamUser):
    """z (S, N, z_dim) -> images (S, N, C, side, side): `mapping` to w, per-layer styles
    (mixed in training, truncated at sampling), `synthesis` from the learned constant.

    Its buffer `pl_mean` (S,) is the path-length regulariser's running mean of the path
    lengths, kept here so that checkpoints carry it with G."""

    def __init__(self, p: StyleGANParams, n_seeds: int, z_dim: int, sample_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.sample_shape = sample_shape
        self.mixing_prob = p.mixing_prob
        side = image_side(sample_shape)
        stages = stage_count(side, p.depth)
        self.mapping = MappingNetwork(n_seeds, z_dim, p.w_dim, p.mapping_depth, p.mapping_lr_mult)
        w_dim = self.mapping.w_dim
        smallest = side >> stages
        widths = [channels_at(p.width, p.max_width, stages - i) for i in range(stages + 1)]  # smallest first
        self.const = nn.Parameter(torch.empty(n_seeds, widths[0], smallest, smallest))
        self.layers = nn.ModuleList([StyleLayer(n_seeds, w_dim, widths[0], widths[0], False, p.noise)])
        self.to_rgb = nn.ModuleList([ModulatedConv2d(n_seeds, w_dim, widths[0], sample_shape[0], 1, demodulate=False)])
        for c_in, c_out in zip(widths, widths[1:]):
            self.layers.append(StyleLayer(n_seeds, w_dim, c_in, c_out, True, p.noise))
            self.layers.append(StyleLayer(n_seeds, w_dim, c_out, c_out, False, p.noise))
            self.to_rgb.append(ModulatedConv2d(n_seeds, w_dim, c_out, sample_shape[0], 1, demodulate=False))
        self.register_buffer("pl_mean", torch.zeros(n_seeds))
        #: Truncation psi at sampling (eval mode); 1 is none (`truncated`).
        self.truncation_psi = 1.0

    @property
    def n_styles(self) -> int:
        """L, the number of per-layer styles: one per 3x3 convolution (a to-RGB layer uses
        the style of the convolution before it)."""
        return len(self.layers)

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        normal_per_seed_(self.const, generators, std=1.0)
        self.pl_mean.zero_()

    def styles(self, z: torch.Tensor) -> torch.Tensor:
        """Per-layer styles (S, N, L, w_dim) of latents z: mapped, mixed with a second
        latent's in training (`mixing_prob`), truncated towards w_avg at sampling."""
        w = self.mapping(z)
        ws = w.unsqueeze(2).expand(-1, -1, self.n_styles, -1)
        if self.training and self.mixing_prob > 0 and self.n_styles > 1:
            ws = self.mix(ws, z)
        if not self.training and self.truncation_psi != 1.0:
            avg = self.mapping.w_avg[:, None, None, :].to(ws)
            ws = avg + self.truncation_psi * (ws - avg)
        return ws

    def mix(self, ws: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Style mixing: per seed, with probability `mixing_prob` the layers from a crossover
        index c ~ U{1, ..., L-1} on take the styles of fresh latents z2 ~ N(0, I)."""
        if self.rng is None:
            raise RuntimeError("style mixing draws from the network stream; attach one with attach_stream")
        n_seeds, n, layers = ws.shape[:3]
        draws = self.rng.rand(2).cpu()  # per seed: whether to mix, and where
        crossover = torch.where(draws[:, 0] < self.mixing_prob, 1 + (draws[:, 1] * (layers - 1)).long(),
                                torch.full((n_seeds,), layers)).to(ws.device)
        z2 = self.rng.randn(n, z.shape[-1]).to(z)
        w2 = self.mapping(z2, track=False).unsqueeze(2).expand(-1, -1, layers, -1)
        second = torch.arange(layers, device=ws.device).view(1, 1, -1, 1) >= crossover.view(-1, 1, 1, 1)
        return torch.where(second, w2, ws)

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """Images (S, N, C, side, side) from per-layer styles (S, N, L, w_dim)."""
        n_seeds, n = ws.shape[:2]
        x = self.const.unsqueeze(1).expand(n_seeds, n, *self.const.shape[1:])
        image = None
        rgb_index = 0
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, :, i])
            if i % 2 == 0:  # the last layer of a resolution: its to-RGB output joins the image
                rgb = self.to_rgb[rgb_index](x, ws[:, :, i])
                image = rgb if image is None else upsample2x(image) + rgb
                rgb_index += 1
        return image

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.styles(z))


@contextlib.contextmanager
def truncated(module: nn.Module, psi: float) -> Iterator[None]:
    """Sample every StyleGAN generator inside `module` with truncation `psi` meanwhile."""
    found = [m for m in module.modules() if isinstance(m, StyleGANGenerator)]
    before = [m.truncation_psi for m in found]
    for m in found:
        m.truncation_psi = psi
    try:
        yield
    finally:
        for m, psi_before in zip(found, before):
            m.truncation_psi = psi_before


def style_generator(module: nn.Module) -> StyleGANGenerator | None:
    """The StyleGAN generator inside `module` (a conditioning wraps it), if there is one."""
    return next((m for m in module.modules() if isinstance(m, StyleGANGenerator)), None)


class ResidualBlock(nn.Module):
    """StyleGAN2's residual D block: (conv3x3, act, conv3x3, act, 2x down) + (2x down,
    1x1 conv without bias), summed and scaled by 1/sqrt(2)."""

    def __init__(self, n_seeds: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(n_seeds, in_channels, in_channels, 3)
        self.conv1 = EqualConv2d(n_seeds, in_channels, out_channels, 3)
        self.skip = EqualConv2d(n_seeds, in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = downsample2x(leaky(self.conv1(leaky(self.conv0(x)))))
        return (self.skip(downsample2x(x)) + y) / math.sqrt(2.0)


def downsample2x(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling of (S, N, C, H, W)."""
    return F.avg_pool2d(x.flatten(0, 1), 2).unflatten(0, x.shape[:2])


class StyleDiscriminatorBody(nn.Module):
    def __init__(self, p: StyleDiscriminatorParams, n_seeds: int, sample_shape: tuple[int, ...]) -> None:
        super().__init__()
        side = image_side(sample_shape)
        stages = stage_count(side, p.depth)
        widths = [channels_at(p.width, p.max_width, i) for i in range(stages + 1)]  # largest first
        self.from_rgb = EqualConv2d(n_seeds, sample_shape[0], widths[0], 1)
        self.blocks = nn.Sequential(*(ResidualBlock(n_seeds, a, b) for a, b in zip(widths, widths[1:])))
        self.conv = EqualConv2d(n_seeds, widths[-1], widths[-1], 3)
        self.fc = EqualLinear(n_seeds, widths[-1] * (side >> stages) ** 2, widths[-1])
        self.features = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(leaky(self.from_rgb(x)))
        return leaky(self.fc(leaky(self.conv(x)).flatten(2)))


@DISCRIMINATORS.register(
    "stylegan", "StyleGAN2's residual D: from-RGB, residual blocks with 2x average-pool downsampling, "
    "equalised learning rate (Karras et al. 2020)", StyleDiscriminatorParams,
)
class StyleDiscriminator(Discriminator):
    """images (S, N, C, side, side) -> logits (S, N, n_outputs) through the residual body
    and the shared head (equalised); no batch norm, so gradient penalties apply."""

    def __init__(self, p: StyleDiscriminatorParams, n_seeds: int, sample_shape: tuple[int, ...], n_outputs: int,
                 extensions: Sequence[ExtensionFactory] = ()) -> None:
        body = StyleDiscriminatorBody(p, n_seeds, sample_shape)
        super().__init__(body, body.features, n_seeds, n_outputs, extensions)
        self.head = EqualLinear(n_seeds, self.head.weight.shape[1], n_outputs)

    @property
    def input_conv(self) -> nn.Module:
        """From-RGB, the only layer that reads the images."""
        return self.body.from_rgb
