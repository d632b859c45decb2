"""The batch: a population's samples and what travels with each of them.

Schemes, discriminators' critics and regularisers pass `Batch`es rather than bare
tensors, so that a class label (and later a second domain) stays aligned with its sample
through concatenation, packing and interpolation: code that moves samples moves their
labels with them, and code that ignores labels does not have to know they exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Batch:
    """Samples `x` (S, B, *sample_shape) of S seeds and, for conditional models, each
    sample's class `labels` (S, B) int64; None when the run is unconditional. A scheme
    that groups samples (MAD-GAN's (S, k, B/k, ...)) groups the labels alike."""

    x: torch.Tensor
    labels: torch.Tensor | None = None
    #: The last `cat`: the other batch, both samples tensors' versions, the joined batch.
    _joined: tuple[Batch, tuple[int, int], Batch] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.labels is not None and self.labels.shape != self.x.shape[: self.labels.dim()]:
            raise ValueError(f"labels of shape {tuple(self.labels.shape)} do not match samples {tuple(self.x.shape)}")

    @property
    def size(self) -> int:
        """Samples per seed."""
        return self.x.shape[1]

    def with_samples(self, x: torch.Tensor) -> Batch:
        """Other samples with these labels: interpolates, reconstructions, perturbations."""
        return Batch(x, self.labels)

    def cat(self, other: Batch) -> Batch:
        """This batch followed by `other` along the batch axis, labels likewise.

        Asked again for the same `other`, with neither samples tensor changed since, it
        returns the same joined batch: the objective and a regulariser that both read D on
        real and fake together (AC-GAN's class loss) then ask about one tensor, and a D
        that keeps its last pass (`AuxiliaryClassifier`) answers both from one forward."""
        versions = (self.x._version, other.x._version)
        if self._joined is not None and self._joined[0] is other and self._joined[1] == versions:
            return self._joined[2]
        if (self.labels is None) != (other.labels is None):
            raise ValueError("cannot join a labelled batch with an unlabelled one")
        labels = None if self.labels is None else torch.cat([self.labels, other.labels], dim=1)  # type: ignore[list-item]
        joined = Batch(torch.cat([self.x, other.x], dim=1), labels)
        object.__setattr__(self, "_joined", (other, versions, joined))
        return joined

    def to(self, device: torch.device) -> Batch:
        labels = None if self.labels is None else self.labels.to(device, non_blocking=True)
        return Batch(self.x.to(device, non_blocking=True), labels)
