"""StyleGAN2's regularisers: R1 on D, path length on G, both lazy.

Lazy regularisation (Karras et al. 2020, StyleGAN2, Sec. 3.1): a penalty computed only
every k-th step (`every`: 16 for R1, 4 for path length, the paper's intervals) and
multiplied by k then, so that its average strength is unchanged while its cost falls k
times. Any regulariser takes `every`; these two default to the paper's. StyleGAN2 also
scales Adam's learning rate and betas by k / (k + 1) for the separate regularisation
pass of its code; here the penalty joins the ordinary step's loss, so there is no
separate pass to compensate for and the optimiser settings are left as configured.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import Field, PositiveInt
from torch import nn

from ganscope.batch import Batch
from ganscope.config import Config
from ganscope.errors import ConfigError
from ganscope.nets.stylegan import style_generator
from ganscope.regularizers.base import REGULARIZERS, Critic, Regularizer, RegularizerParams
from ganscope.regularizers.gradient_penalty import GradientNormRegularizer, gradient_norm_penalty
from ganscope.registry import Params
from ganscope.seeding import PopulationRandom


class R1Params(RegularizerParams):
    weight: float = 10.0  # gamma
    every: PositiveInt = 16


@REGULARIZERS.register(
    "r1", "R1: gamma/2 E||grad D(x)||^2 on real data (Mescheder et al. 2018); lazy every 16 steps", R1Params,
)
class R1(GradientNormRegularizer):
    """Mescheder et al. 2018 ("Which Training Methods for GANs do actually Converge?",
    Eq. 9): R1 = gamma / 2 E_{x ~ p_data} ||grad_x D(x)||^2, a zero-centred penalty on real
    data only, which makes the GAN game locally convergent. The penalty logged is
    1/2 E||grad D||^2 per input of D (per pack with packing) and `weight` is gamma (10 by
    default; StyleGAN2 uses 0.01-10 by dataset). Lazy by default: every 16 steps, times 16.

    A D with batch norm is refused, as for every gradient penalty; the minibatch-stddev
    layer is allowed, as StyleGAN2's D has one under R1: the gradient is that of the
    summed logits, as in the authors' code, so it includes each sample's effect on its
    group's statistic.
    """

    @classmethod
    def check_config(cls, params: Params, cfg: Config) -> str | None:
        return cls.check_batch_norm(cfg)

    def penalty(self, critic: Critic, real: Batch, fake: Batch, rng: PopulationRandom) -> torch.Tensor:
        return 0.5 * gradient_norm_penalty(critic, real, target=0.0, pack=self.pack)


class PathLengthParams(RegularizerParams):
    weight: float = 2.0
    every: PositiveInt = 4
    decay: float = Field(0.01, gt=0.0, le=1.0)
    batch_shrink: PositiveInt = 2


@REGULARIZERS.register(
    "path-length", "StyleGAN2 path length: (||J_w^T y|| - a)^2 on G, a its running mean (Karras et al. "
    "2020); lazy every 4 steps", PathLengthParams,
)
class PathLength(Regularizer):
    """Karras et al. 2020 (StyleGAN2, Eq. 4): E_{w, y ~ N(0, I)} (||J_w^T y||_2 - a)^2 with
    J_w the Jacobian of the image with respect to the styles w, y a random image scaled by
    1 / sqrt(H W) and a the running mean of the lengths (decay 0.01), which pushes a fixed
    step in W to change the image by a fixed amount. As the authors' code: the lengths
    are sqrt(mean over layers of the squared gradient summed over w's features), on a
    batch `batch_shrink` (2) times smaller than G's, from fresh latents (per seed, from
    the penalty stream), with style mixing as in training; `weight` 2, lazy every 4
    steps. `a` (S,) lives in G (`StyleGANGenerator.pl_mean`), so checkpoints carry it.
    Acts on G only; needs the `stylegan` generator, unconditional, one per seed.
    """

    players: ClassVar[tuple[str, ...]] = ("generator",)
    params: PathLengthParams

    @classmethod
    def check_config(cls, params: Params, cfg: Config) -> str | None:
        if cfg.generator.name != "stylegan":
            return (f"path-length regularisation differentiates the image with respect to the styles w of a "
                    f"style-based G, and generator.name={cfg.generator.name} has none; use generator.name=stylegan")
        if cfg.conditioning.name != "none" or cfg.scheme.name not in ("alternating", "unrolled"):
            return ("path-length regularisation is implemented for one unconditional StyleGAN generator per seed "
                    f"(scheme alternating or unrolled), not conditioning {cfg.conditioning.name} with scheme "
                    f"{cfg.scheme.name}; drop path-length from the regularizers")
        return None

    def penalty(self, critic: Critic, real: Batch, fake: Batch, rng: PopulationRandom) -> torch.Tensor:
        raise NotImplementedError("path length acts on the generator only")

    def generator_penalty(self, critic: Critic, fake: Batch, rng: PopulationRandom,
                          generator: nn.Module) -> torch.Tensor:
        style = style_generator(generator)
        if style is None:
            raise ConfigError("path-length regularisation needs the stylegan generator")
        n = max(1, fake.x.shape[1] // self.params.batch_shrink)
        ws = style.styles(rng.randn(n, style.mapping.z_dim).to(fake.x))
        images = style.synthesis(ws)
        directions = rng.randn(n, *images.shape[2:]).to(images) / math.sqrt(images.shape[-2] * images.shape[-1])
        (grad,) = torch.autograd.grad((images * directions).sum(), ws, create_graph=True)
        lengths = grad.float().square().sum(dim=-1).mean(dim=-1).sqrt()  # (S, n)
        with torch.no_grad():
            style.pl_mean.lerp_(lengths.mean(dim=1), self.params.decay)
        return (lengths - style.pl_mean.unsqueeze(1)).square().mean(dim=1)
