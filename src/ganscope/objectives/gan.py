"""The original GAN game (Goodfellow et al. 2014) in its two generator forms.

Both use D's cross-entropy loss `-log D(x) - log(1 - D(G(z)))` (Eq. 1 of the paper,
negated for minimisation), written with softplus on logits so it stays finite where
sigmoid saturates: -log sigmoid(l) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ganscope.objectives.base import OBJECTIVES, Objective, per_seed_mean


class _CrossEntropyGAN(Objective):
    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return per_seed_mean(F.softplus(-real_logits)) + per_seed_mean(F.softplus(fake_logits))


@OBJECTIVES.register("minimax", "original saturating game: G minimises log(1 - D(G(z)))")
class Minimax(_CrossEntropyGAN):
    """Goodfellow et al. 2014, Eq. 1: G minimises E log(1 - D(G(z))) = -softplus(l).

    Its gradient vanishes when D confidently rejects fakes (the saturation the paper
    warns about in Section 3); kept as the reference game and for the optimal-D theory.
    """

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -per_seed_mean(F.softplus(fake_logits))


@OBJECTIVES.register("nonsaturating", "G minimises -log D(G(z)) (Goodfellow et al. 2014, Sec. 3)")
class NonSaturating(_CrossEntropyGAN):
    """Goodfellow et al. 2014, Section 3: G maximises log D(G(z)) instead, the same fixed
    point with strong gradients early in training: loss = softplus(-l)."""

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return per_seed_mean(F.softplus(-fake_logits))
