"""Least-squares GAN (Mao et al. 2017): regression targets instead of a log loss."""

from __future__ import annotations

import torch

from ganscope.objectives.base import OBJECTIVES, Objective, per_seed_mean
from ganscope.registry import Params


class LeastSquaresParams(Params):
    """Targets of Eq. 2: D regresses fakes to `a` and reals to `b`; G wants `c`."""

    a: float = 0.0
    b: float = 1.0
    c: float = 1.0


@OBJECTIVES.register("least-squares", "D regresses real/fake to targets b/a, G pulls fakes to c (Mao et al. 2017)", LeastSquaresParams)
class LeastSquares(Objective):
    """Mao et al. 2017, Eq. 2, on D's raw linear output:
    D minimises 1/2 E (D(x) - b)^2 + 1/2 E (D(G(z)) - a)^2, G minimises 1/2 E (D(G(z)) - c)^2.

    The squared error keeps penalising fakes that are on the right side of the decision
    boundary but far from the data, so G's gradient does not vanish as it does with the
    saturated sigmoid loss. Defaults are the 0-1 coding a = 0, b = c = 1 the paper uses in
    its experiments; a = -1, b = 1, c = 0 satisfies b - c = 1, b - a = 2 (Eq. 9), under
    which the game minimises the Pearson chi^2 divergence.
    """

    params: LeastSquaresParams

    def __init__(self, params: LeastSquaresParams | None = None) -> None:
        super().__init__(params or LeastSquaresParams())

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        p = self.params
        return 0.5 * per_seed_mean((real_logits - p.b).square()) + 0.5 * per_seed_mean((fake_logits - p.a).square())

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * per_seed_mean((fake_logits - self.params.c).square())
