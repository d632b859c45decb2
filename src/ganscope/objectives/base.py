"""Objectives: pure loss functions of the discriminator's outputs.

As in TF-GAN's `losses_impl`, an objective never sees the networks: it maps the logits
D gives to real and fake samples, shape (S, B, ...) with S the population's seed axis,
to one loss per seed, shape (S,). Averaging within each seed and summing over seeds
keeps every seed's gradient exactly what it would be alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from ganscope.registry import Params, new_registry

OBJECTIVES = new_registry("objective", "objectives")


def per_seed_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean over every axis but the leading seed axis: (S, ...) -> (S,)."""
    return values.flatten(1).mean(dim=1)


class Objective(ABC):
    """The two players' losses as functions of D's logits; built from its Params."""

    #: Regulariser names this objective is meaningless without (WGAN-GP's critic is
    #: unbounded without its gradient penalty); `config.validate_combination` rejects a
    #: config that names the objective without them.
    required_regularizers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Params | None = None) -> None:
        self.params = params

    @abstractmethod
    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Discriminator loss per seed (minimised)."""

    @abstractmethod
    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Generator loss per seed (minimised)."""

    def constrain(self, discriminator: torch.nn.Module) -> None:
        """Project D's parameters after each D update (WGAN's weight clipping); default none."""
