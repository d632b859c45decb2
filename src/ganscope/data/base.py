"""Datasets with a mode oracle.

A dataset draws real samples of any shape and owns an oracle that maps samples to the
data's modes. Every metric of mode coverage (modes covered, high-quality share, reverse
KL, per-mode counts) is a function of that oracle alone, so the same scoring serves a
2-D ring, a user's point cloud clustered into modes, or images classified into digits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

import torch

from ganscope.batch import Batch
from ganscope.config import Config, piece_params
from ganscope.errors import DataError
from ganscope.registry import new_registry
from ganscope.seeding import PopulationRandom

DATASETS = new_registry("dataset", "datasets")


@dataclass(frozen=True)
class ModeAssignment:
    """For each sample: its nearest mode and whether it is close enough to count."""

    mode: torch.Tensor  # (N,) int64
    high_quality: torch.Tensor  # (N,) bool


@dataclass(frozen=True)
class Reading:
    """What an oracle reads off a sample set: its modes and its features (`embed`), from
    one pass where the oracle can (a classifier's features feed its head), so an
    evaluation that scores, monitors and measures diversity classifies each sample once."""

    assignment: ModeAssignment
    features: torch.Tensor  # (N, D)


class ProtocolScore(Protocol):
    """A protocol's own numbers, reported beside `score_modes`'s."""

    def to_dict(self) -> dict[str, object]: ...

    def summary(self) -> str: ...


class ModeOracle(ABC):
    """Maps samples to modes; knows the true mode weights."""

    #: How the modes were obtained, shown in reports (e.g. "known centres").
    description: str = "known modes"
    #: What makes a sample high quality, stated in every event text that counts them.
    quality_rule: str = "within the protocol's distance of a mode"
    #: Which samples cover a mode, as the data's protocol counts coverage: "high-quality"
    #: (the 2-D protocols: a mode is covered by a sample within 3 std) or "all" (Stacked
    #: MNIST: every sample's triple counts, however blurred). The monitor's dropping rule
    #: reads the same counts.
    covered_by: str = "high-quality"
    #: The space `embed` maps samples to, named beside every feature-space metric.
    feature_space: str = "the samples' own coordinates"

    @property
    @abstractmethod
    def weights(self) -> torch.Tensor:
        """True mode probabilities, shape (K,), summing to one."""

    @property
    def n_modes(self) -> int:
        return int(self.weights.numel())

    @abstractmethod
    def assign(self, samples: torch.Tensor) -> ModeAssignment:
        """Nearest mode and high-quality flag of each of `samples` (N, *sample_shape)."""

    def embed(self, samples: torch.Tensor) -> torch.Tensor:
        """Samples (N, *sample_shape) as feature vectors (N, D) for distances between
        samples (near-duplicates, spreads). Points are their own features; an image oracle
        uses its classifier's features, where distances follow content, not pixels."""
        return samples.reshape(len(samples), -1)

    def read(self, samples: torch.Tensor) -> Reading:
        """`assign` and `embed` of the same samples together."""
        return Reading(self.assign(samples), self.embed(samples))

    def protocol_score(self, mode_counts: torch.Tensor) -> ProtocolScore | None:
        """Numbers the data's protocol defines beyond `score_modes`, from every sample's
        mode counted, high quality or not (`ModeScore.nearest_counts`): Stacked MNIST counts
        digit triples over all samples. None if the protocol defines none."""
        return None


class Dataset(ABC):
    """A source of real samples with a mode oracle."""

    name: str
    #: Samples per seed an evaluation draws unless `train.eval_samples` says otherwise: the
    #: protocol's count (2,500 on the 2-D protocols; Stacked MNIST overrides it).
    eval_samples: int = 2500

    @property
    @abstractmethod
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (2,) for planar points or (3, 8, 8) for images."""

    @property
    @abstractmethod
    def oracle(self) -> ModeOracle: ...

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` real samples (n, *sample_shape) drawn with one seed's generator."""

    @property
    def label_weights(self) -> torch.Tensor | None:
        """Probabilities (K,) of the K classes a labelled dataset's samples carry, None when
        it has no labels. A label is the sample's mode as the oracle counts modes (a ring's
        component, a digit's class, a stacked triple), so the oracle can check that a
        conditional generator made what it was asked for."""
        return None

    @property
    def n_classes(self) -> int | None:
        weights = self.label_weights
        return None if weights is None else len(weights)

    @property
    def mode_labels(self) -> torch.Tensor | None:
        """The label (K_modes,) of each of the oracle's modes, None when unlabelled: by
        default a label is its mode; a coarser label (one digit of a stacked triple) maps
        many modes to one class, whose samples should cover all of them."""
        return None if self.label_weights is None else torch.arange(self.oracle.n_modes)

    def sample_labelled(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`sample`'s samples (the same draws) and their labels (n,) int64."""
        raise DataError(f"data {self.name} has no labels; a conditional model needs labelled data "
                        "(mnist, digits, stacked data, ring, grid, mixture, or labelled images)")

    def labelled_reference(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`reference` with each sample's label, for metrics per class: `n` fresh labelled
        draws here; a finite dataset's own rows (`FiniteDataset`)."""
        return self.sample_labelled(n, generator)

    def sample_population(self, rng: PopulationRandom, n: int, labelled: bool = False) -> Batch:
        """`n` samples per seed, (S, n, *sample_shape), each seed from its own stream, with
        their labels (S, n) when `labelled`."""
        if not labelled:
            return Batch(torch.stack([self.sample(n, g) for g in rng.generators]))
        samples, labels = zip(*(self.sample_labelled(n, g) for g in rng.generators))
        return Batch(torch.stack(samples), torch.stack(labels))

    def reference(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The real set that metrics compare against: at most `n` samples, none drawn twice.

        Training batches may repeat real points (minibatch SGD on a finite set does), but a
        metric's reference must not: a point drawn twice is an exact duplicate the data does
        not hold, which zeroes nearest-neighbour radii and near-duplicate thresholds. An
        infinite dataset draws `n` fresh samples; `FiniteDataset` overrides this.
        """
        return self.sample(n, generator)


class FiniteDataset(Dataset):
    """A dataset that is a fixed set of real samples (a file's rows; image folders later).

    Training draws float32 batches from them with replacement; the metrics' `reference`
    uses them as they are, in their own precision (so a set scored against itself matches
    exactly), all of them when there are at most `n`, else a subsample of `n` without
    replacement. Rows the data itself repeats are kept: a row given twice weighs twice, in
    training and in the metrics alike.
    """

    def __init__(self, points: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """`labels` (N,) int64: each point's class 0..K-1, where the data has classes."""
        self.points = points
        self.labels = labels

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.points.shape[1:])

    @property
    def label_weights(self) -> torch.Tensor | None:
        if self.labels is None:
            return None
        counts = torch.bincount(self.labels).double()
        return (counts / counts.sum()).float()

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.draw_rows(n, generator)[0]

    def sample_labelled(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.labels is None:
            return super().sample_labelled(n, generator)
        rows, index = self.draw_rows(n, generator)
        return rows, self.labels[index]

    def draw_rows(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` rows drawn with replacement, as float32, and their indices."""
        index = torch.randint(len(self.points), (n,), generator=generator)
        return self.points[index].float(), index

    def reference(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """All points (in their order) when there are at most `n`, else `n` of them drawn
        without replacement by `generator`; so possibly fewer than `n`."""
        return self.points[self.reference_rows(n, generator)]

    def labelled_reference(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.labels is None:
            return self.sample_labelled(n, generator)  # says that there are no labels
        rows = self.reference_rows(n, generator)
        return self.points[rows], self.labels[rows]

    def reference_rows(self, n: int, generator: torch.Generator) -> torch.Tensor | slice:
        """The rows `reference` takes: all (in order) when there are at most `n`, else `n`
        drawn without replacement by `generator`."""
        if len(self.points) <= n:
            return slice(None)
        return torch.randperm(len(self.points), generator=generator)[:n]


def evaluation_size(cfg: Config, data: Dataset) -> int:
    """Samples per seed and evaluation: `train.eval_samples`, else the data's own count."""
    return cfg.train.eval_samples or data.eval_samples


def dataset_from_config(cfg: Config) -> Dataset:
    """The dataset a config names, built from its validated parameters."""
    return DATASETS.get(cfg.data.name)(piece_params(cfg, "data"))
