"""Alternating gradient updates: `n_critic` D steps, then one G step."""

from __future__ import annotations

import torch

from ganscope.batch import Batch
from ganscope.nets.layers import at_least_float32
from ganscope.regularizers.base import Critic, judge
from ganscope.schemes.base import (
    SCHEMES,
    Parts,
    TwoPlayer,
    TwoPlayerParams,
    add_generator_penalties,
    objective_critic_loss,
)


class AlternatingParams(TwoPlayerParams):
    pass


@SCHEMES.register("alternating", "n_critic D updates then one G update (Goodfellow et al. 2014, Alg. 1)", AlternatingParams)
class Alternating(TwoPlayer):
    """Algorithm 1 of Goodfellow et al. 2014: k = `n_critic` steps of D on fresh real and
    fake batches, then one G step on fresh noise. The paper used k = 1; WGAN uses 5."""

    params: AlternatingParams
    data_parallel = True

    def __init__(self, parts: Parts, params: AlternatingParams) -> None:
        super().__init__(parts, params, parts.new_generator(), parts.new_discriminator())

    def critic_loss(
        self, real: Batch, fake: Batch, critic: Critic | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective's D loss plus the weighted penalties, of D itself or of `critic`
        (the unrolled scheme's D with other parameters), and its log."""
        return objective_critic_loss(self.parts, self.discriminator if critic is None else critic, real, fake)

    def generator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective's G loss plus the penalties that act on G."""
        fake = self.fakes()
        loss = self.parts.objective.g_loss(at_least_float32(judge(self.discriminator, fake)))
        out = {"g_loss": loss.detach()}
        return add_generator_penalties(self.parts, self.discriminator, fake, loss, out, self.generator), out
