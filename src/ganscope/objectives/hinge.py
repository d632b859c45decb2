"""Hinge loss (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, Eqs. 16-17)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ganscope.objectives.base import OBJECTIVES, Objective, per_seed_mean


@OBJECTIVES.register("hinge", "D: E relu(1 - D(x)) + E relu(1 + D(G(z))); G: -E D(G(z)) (Lim & Ye 2017)")
class Hinge(Objective):
    """D is a soft-margin SVM on its raw output: real scores above +1 and fake scores
    below -1 cost nothing, so D stops pushing on samples it already separates with
    margin and spends its capacity near the boundary. G maximises the raw fake score, as
    in WGAN. The loss used by SN-GAN (Miyato et al. 2018) and BigGAN.
    """

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return per_seed_mean(F.relu(1 - real_logits)) + per_seed_mean(F.relu(1 + fake_logits))

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -per_seed_mean(fake_logits)
