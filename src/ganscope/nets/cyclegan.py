"""CycleGAN's networks, population-batched: a ResNet translator and a PatchGAN critic.

Zhu et al. 2017 ("Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks", Sec. 4 and Appendix 7.2), after Johnson et al. 2016:

- Generator `resnet`: c7s1-w, d2w, d4w, `blocks` residual blocks R4w, u2w, uw, c7s1-C:
  a 7x7 convolution with reflection padding, two stride-2 3x3 convolutions down, residual
  blocks of two 3x3 convolutions (reflection padding, instance norm, ReLU between, the
  input added back), two stride-2 transposed convolutions up, a 7x7 convolution to the
  image's channels and tanh. Instance norm without affine parameters after every layer but
  the last, as the authors' PyTorch code has it. The paper uses w = 64 and 6 blocks at
  128x128 (9 at 256x256); the defaults here (w 16, 3 blocks) suit 28x28 digits on a CPU.
  The upsampling layers use 4x4 kernels (stride 2, padding 1), which double a side exactly
  without the 3x3 kernels' output padding.
- Discriminator `patchgan`: the 70x70 PatchGAN at 256 px is C64-C128-C256-C512 (4x4
  convolutions, stride 2 except the last, LeakyReLU 0.2, instance norm on all but the
  first) and a final 4x4 convolution to one channel: one logit per overlapping patch.
  `layers` stride-2 stages (3 in the paper, 2 by default here: 28 -> 14 -> 7, then two
  stride-1 layers give 5x5 patches of 22x22 pixels). Its logits are (S, N, patches), so
  every objective averages over patches as over samples.

Every weight ~ N(0, 0.02) (the authors' `init_type=normal`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import nn

from ganscope.config import Config
from ganscope.errors import ConfigError
from ganscope.nets.base import DISCRIMINATORS, GENERATORS
from ganscope.nets.conv import PopConv2d, PopConvTranspose2d
from ganscope.nets.dcgan import image_side
from ganscope.nets.discriminator import ExtensionFactory
from ganscope.registry import Params

LEAKY_SLOPE = 0.2


def per_image(fn, x: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Apply an image op of (N, C, H, W) to feature maps (S, N, C, H, W)."""
    return fn(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def reflect(x: torch.Tensor, pad: int) -> torch.Tensor:
    return per_image(lambda y: F.pad(y, (pad, pad, pad, pad), mode="reflect"), x)


def instance_norm(x: torch.Tensor) -> torch.Tensor:
    """Each image's channels normalised over their pixels (no affine parameters)."""
    return per_image(F.instance_norm, x)


class ReflectConv(nn.Module):
    """Reflection padding, then a stride-1 convolution that keeps the side."""

    def __init__(self, n_seeds: int, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = PopConv2d(n_seeds, c_in, c_out, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(reflect(x, self.pad))


class Normalised(nn.Module):
    """layer -> instance norm -> activation."""

    def __init__(self, layer: nn.Module, activation: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(instance_norm(self.layer(x)))


class ResidualBlock(nn.Module):
    """x + IN(conv3(relu(IN(conv3(x))))), each convolution reflection-padded."""

    def __init__(self, n_seeds: int, channels: int) -> None:
        super().__init__()
        self.first = Normalised(ReflectConv(n_seeds, channels, channels, 3), nn.ReLU())
        self.second = ReflectConv(n_seeds, channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + instance_norm(self.second(self.first(x)))


class ResnetParams(Params):
    width: PositiveInt = 16
    blocks: PositiveInt = 3


@GENERATORS.register("resnet", "CycleGAN's ResNet translator: c7s1, 2 down, residual blocks, 2 up, tanh "
                     "(Zhu et al. 2017, after Johnson et al. 2016)", ResnetParams)
class ResnetGenerator(nn.Module):
    """images (S, N, C_in, H, W) -> images (S, N, C_out, H, W) in [-1, 1]; H and W divide by 4."""

    def __init__(self, p: ResnetParams, n_seeds: int, in_channels: int, sample_shape: tuple[int, ...]) -> None:
        super().__init__()
        side = image_side(sample_shape)
        if side % 4:
            raise ConfigError(f"resnet halves the image side twice, and {side} does not divide by 4; "
                              "use images of a side divisible by 4")
        w = p.width
        layers: list[nn.Module] = [Normalised(ReflectConv(n_seeds, in_channels, w, 7), nn.ReLU())]
        layers += [Normalised(PopConv2d(n_seeds, w, 2 * w, 3, 2, 1), nn.ReLU()),
                   Normalised(PopConv2d(n_seeds, 2 * w, 4 * w, 3, 2, 1), nn.ReLU())]
        layers += [ResidualBlock(n_seeds, 4 * w) for _ in range(p.blocks)]
        layers += [Normalised(PopConvTranspose2d(n_seeds, 4 * w, 2 * w, 4, 2, 1), nn.ReLU()),
                   Normalised(PopConvTranspose2d(n_seeds, 2 * w, w, 4, 2, 1), nn.ReLU())]
        layers += [ReflectConv(n_seeds, w, sample_shape[0], 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @classmethod
    def check_config(cls, params: Params, cfg: Config) -> str | None:
        if cfg.scheme.name != "cyclegan":
            return "resnet translates images (its input is an image, not noise); use it with scheme.name=cyclegan"
        return None


class PatchParams(Params):
    width: PositiveInt = 16
    layers: PositiveInt = 2


@DISCRIMINATORS.register("patchgan", "PatchGAN: one logit per overlapping image patch (Isola et al. 2017; "
                         "CycleGAN's D)", PatchParams)
class PatchDiscriminator(nn.Module):
    """images (S, N, C, H, W) -> logits (S, N, patches): a real/fake score per patch."""

    batch_coupled = False  # instance norm normalises each image on its own

    def __init__(
        self,
        p: PatchParams,
        n_seeds: int,
        sample_shape: tuple[int, ...],
        n_outputs: int,
        extensions: Sequence[ExtensionFactory] = (),
    ) -> None:
        super().__init__()
        if n_outputs != 1 or extensions:
            raise ConfigError("patchgan gives one logit per patch and takes no feature extensions; "
                              "use it without minibatch features and with the alternating or cyclegan scheme")
        side = image_side(sample_shape)
        if side >> p.layers < 4:
            raise ConfigError(f"patchgan: {p.layers} stride-2 layers shrink a {side}x{side} image below 4x4; "
                              "use fewer discriminator.layers")
        w = p.width
        layers: list[nn.Module] = [PopConv2d(n_seeds, sample_shape[0], w, 4, 2, 1), nn.LeakyReLU(LEAKY_SLOPE)]
        channels = w
        for i in range(1, p.layers):
            out = w * 2 ** min(i, 3)
            layers.append(Normalised(PopConv2d(n_seeds, channels, out, 4, 2, 1), nn.LeakyReLU(LEAKY_SLOPE)))
            channels = out
        out = w * 2 ** min(p.layers, 3)
        layers.append(Normalised(PopConv2d(n_seeds, channels, out, 4, 1, 1), nn.LeakyReLU(LEAKY_SLOPE)))
        layers.append(PopConv2d(n_seeds, out, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    @property
    def input_conv(self) -> nn.Module:
        """The first convolution, the only layer that reads the images."""
        return self.net[0]

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).flatten(2)

    @classmethod
    def check_config(cls, params: Params, cfg: Config) -> str | None:
        if any(piece.name != "pack" for piece in cfg.d_modifiers):
            return "patchgan takes no feature extensions (minibatch features); drop those d_modifiers"
        return None
