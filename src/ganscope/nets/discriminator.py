"""The shape every discriminator shares: body -> feature extensions -> head.

A discriminator's body maps samples (S, N, *sample_shape) to features (S, N, A); the
head, one population linear layer, maps features to logits (S, N, n_outputs). Between
them sit zero or more feature extensions, layers that append statistics to the features
(minibatch discrimination, Salimans et al. 2016, Section 3.2, feeds the head
concat(f(x), o(x)) with o computed from the other samples of the batch). Because the
head's input width is computed from the extensions, a new architecture (MLP now,
convolutional later) only builds its body and gets every extension for free.

A builder registered in `DISCRIMINATORS` is called as
`build(params, n_seeds, sample_shape, n_outputs, extensions)` and passes `extensions`
on to `Discriminator`; the discriminator modifiers (`ganscope.nets.modifiers`) supply
them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import nn

from ganscope.nets.layers import PopLinear, PopulationModule


class FeatureExtension(PopulationModule):
    """Features (S, N, in_features) -> (S, N, out_features), between D's body and head."""

    #: True when a sample's output depends on the other samples of its batch, so the
    #: discriminator holding it must never see real and fake samples in one batch.
    batch_coupled: ClassVar[bool] = False

    def __init__(self, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features


#: Builds an extension for a population of `n_seeds` from the width of the features it
#: receives: (n_seeds, in_features) -> extension.
ExtensionFactory = Callable[[int, int], FeatureExtension]


class Discriminator(nn.Module):
    """samples (S, N, *sample_shape) -> body -> extensions -> head -> logits (S, N, n_outputs).

    Modules register in that order, so `init_population` consumes each seed's generator
    body first, extensions next, head last, whatever the population.
    """

    def __init__(
        self,
        body: nn.Module,
        feature_dim: int,
        n_seeds: int,
        n_outputs: int,
        extensions: Sequence[ExtensionFactory] = (),
        batch_coupled: bool = False,
    ) -> None:
        """`body` maps samples to `feature_dim` features; `batch_coupled` says whether the
        body itself couples the samples of a batch (batch norm)."""
        super().__init__()
        self.body = body
        built: list[FeatureExtension] = []
        for make in extensions:
            built.append(make(n_seeds, feature_dim))
            feature_dim = built[-1].out_features
        self.extensions = nn.Sequential(*built)
        self.head = PopLinear(n_seeds, feature_dim, n_outputs)
        self.batch_coupled = batch_coupled or any(ext.batch_coupled for ext in built)
        #: The class projection of a projection discriminator (`ganscope.nets.conditioning`).
        self.projection: nn.Module | None = None

    @property
    def feature_dim(self) -> int:
        """Width of the features the head reads (after the extensions)."""
        return self.head.weight.shape[-2]

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of samples `x`; with a projection, plus the class term of `labels` (S, B)
        (or (S, B, m): the labels of each pack of m samples); otherwise labels are ignored."""
        features = self.extensions(self.body(x))
        logits = self.head(features)
        if self.projection is None:
            return logits
        if labels is None:
            raise ValueError("a projection discriminator needs the samples' labels")
        return logits + self.projection(features, labels)
