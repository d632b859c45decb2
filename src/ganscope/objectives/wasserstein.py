"""Wasserstein GANs: D is a critic whose mean score gap estimates the Earth-Mover distance.

By Kantorovich-Rubinstein duality W(P_r, P_g) = sup over 1-Lipschitz f of
E_{P_r} f(x) - E_{P_g} f(x) (Arjovsky et al. 2017, Eq. 2), so the critic maximises the
gap on its raw, unbounded output and G pulls the fake score up. The two variants share
these losses and differ only in how they keep f Lipschitz: WGAN clips the weights,
WGAN-GP penalises the input gradient (the `gradient-penalty` regulariser).
"""

from __future__ import annotations

import torch
from pydantic import PositiveFloat

from ganscope.objectives.base import OBJECTIVES, Objective, per_seed_mean
from ganscope.registry import Params


class _Wasserstein(Objective):
    """Critic loss E f(G(z)) - E f(x) (the negated duality gap); G loss -E f(G(z))."""

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return per_seed_mean(fake_logits) - per_seed_mean(real_logits)

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -per_seed_mean(fake_logits)


class WGANParams(Params):
    clip: PositiveFloat = 0.01


@OBJECTIVES.register("wgan", "Wasserstein critic with weight clipping (Arjovsky et al. 2017, Alg. 1)", WGANParams)
class WGAN(_Wasserstein):
    """Arjovsky et al. 2017, Algorithm 1: after every critic update each weight is
    clipped to [-c, c], a crude way to keep f in a compact, hence K-Lipschitz, family.

    Paper defaults: c = 0.01, RMSProp with lr 5e-5, n_critic = 5, batch size 64; the
    paper avoids momentum-based optimisers, which it found unstable with this loss. Set
    them with `optimizer.discriminator.name=rmsprop optimizer.discriminator.lr=5e-5`
    (likewise for the generator) and `scheme.n_critic=5`.
    """

    params: WGANParams

    def __init__(self, params: WGANParams | None = None) -> None:
        super().__init__(params or WGANParams())

    @torch.no_grad()
    def constrain(self, discriminator: torch.nn.Module) -> None:
        clip = self.params.clip
        for param in discriminator.parameters():
            param.clamp_(-clip, clip)


@OBJECTIVES.register("wgan-gp", "Wasserstein critic kept Lipschitz by the gradient penalty (Gulrajani et al. 2017)")
class WGANGP(_Wasserstein):
    """Gulrajani et al. 2017, Eq. 3 and Algorithm 1: the WGAN losses without clipping,
    which Section 3 shows biases the critic towards overly simple functions. The penalty
    lambda E(||grad f(x_hat)||_2 - 1)^2 is the `gradient-penalty` regulariser, so this
    objective requires it.

    Paper defaults: lambda = 10, n_critic = 5, batch size 64, Adam with lr 1e-4 and
    betas (0, 0.9) in Algorithm 1; the authors' released code uses betas (0.5, 0.9).
    No batch norm in the critic: the penalty is per sample and batch norm couples them.
    """

    required_regularizers = ("gradient-penalty",)
