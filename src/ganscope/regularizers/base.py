"""Regularisers: penalties that need the discriminator, the real and the fake batch.

A regulariser maps (D, real, fake, rng) to one penalty per seed, shape (S,), which the
scheme adds to D's loss times the regulariser's `weight`. `rng` is the population's
penalty stream, so random interpolates or perturbations of seed s depend on s alone.

`pack` is the number of consecutive samples D judges as one input (PacGAN's m, 1
without packing): a penalty on D's input gradient must treat such a pack as the single
point D sees, with one interpolation weight and one gradient norm per pack.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

from ganscope.registry import Params, new_registry
from ganscope.seeding import PopulationRandom

REGULARIZERS = new_registry("regularizer", "regularizers")

Critic = Callable[[torch.Tensor], torch.Tensor]


class RegularizerParams(Params):
    weight: float = 10.0


class Regularizer(ABC):
    def __init__(self, params: RegularizerParams, pack: int = 1) -> None:
        self.params = params
        self.pack = pack

    @property
    def weight(self) -> float:
        return self.params.weight

    @abstractmethod
    def penalty(
        self, critic: Critic, real: torch.Tensor, fake: torch.Tensor, rng: PopulationRandom
    ) -> torch.Tensor:
        """Penalty per seed, (S,), differentiable with respect to D's parameters."""
