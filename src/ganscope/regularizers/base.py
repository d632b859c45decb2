"""Regularisers: penalties that need the discriminator, the real and the fake batch.

A regulariser maps (D, real, fake, rng) to one penalty per seed, shape (S,), which the
scheme adds to D's loss times the regulariser's `weight`; one that also acts on the
generator (`players` names "generator") maps (D, fake, rng) to a penalty that the scheme
adds to G's loss in G's step (AC-GAN's class loss; StyleGAN2's path length acts on G
alone). `every` makes a penalty lazy (Karras et al. 2020, Sec. 3.1): computed on every
k-th step only and multiplied by k then (`ganscope.regularizers.style`).
Batches are `Batch`es, so labels travel with their samples, and D is called as
`critic(x, labels)`. `rng` is the population's penalty stream, so random interpolates or
perturbations of seed s depend on s alone.

`pack` is the number of consecutive samples D judges as one input (PacGAN's m, 1
without packing): a penalty on D's input gradient must treat such a pack as the single
point D sees, with one interpolation weight and one gradient norm per pack.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

import torch
from pydantic import PositiveInt
from torch import nn

from ganscope.batch import Batch
from ganscope.registry import Params, new_registry
from ganscope.seeding import PopulationRandom

REGULARIZERS = new_registry("regularizer", "regularizers")


class Critic(Protocol):
    """D as the losses see it: logits (S, B', n_outputs) of samples (S, B, ...) with their
    labels (S, B), which an unconditional D ignores."""

    def __call__(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


def judge(critic: Critic, batch: Batch) -> torch.Tensor:
    """`critic`'s logits of `batch`'s samples, given their labels."""
    return critic(batch.x, batch.labels)


class RegularizerParams(Params):
    weight: float = 10.0
    every: PositiveInt = 1  # lazy: only on steps that divide by it, times it


class Regularizer(ABC):
    #: Whose loss the penalty joins: the discriminator's (`penalty`), and the generator's
    #: too (`generator_penalty`) when "generator" is named.
    players: ClassVar[tuple[str, ...]] = ("discriminator",)

    def __init__(self, params: RegularizerParams, pack: int = 1) -> None:
        self.params = params
        self.pack = pack

    @property
    def weight(self) -> float:
        return self.params.weight

    def due(self, step: int) -> bool:
        """Whether the penalty is computed at `step` (every step unless lazy)."""
        return step % self.params.every == 0

    @property
    def scale(self) -> float:
        """What the penalty is multiplied by when due: its weight times the lazy interval."""
        return self.params.weight * self.params.every

    @abstractmethod
    def penalty(self, critic: Critic, real: Batch, fake: Batch, rng: PopulationRandom) -> torch.Tensor:
        """D's penalty per seed, (S,), differentiable with respect to D's parameters."""

    def generator_penalty(self, critic: Critic, fake: Batch, rng: PopulationRandom,
                          generator: nn.Module) -> torch.Tensor:
        """G's penalty per seed, (S,), differentiable with respect to G's parameters through
        `fake` (or through `generator`, which a penalty may run itself, as path length
        does); only called when `players` names "generator"."""
        raise NotImplementedError(f"{type(self).__name__} acts on the discriminator only")
