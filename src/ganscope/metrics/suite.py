"""Feature-space metrics by name, as `eval`, `score` and the Python API ask for them."""

from __future__ import annotations

import torch

from ganscope.data import Dataset, ModeOracle
from ganscope.metrics import METRICS
from ganscope.seeding import make_generator


def feature_metrics(
    names: list[str], real: torch.Tensor, fake: torch.Tensor, seed: int = 0, oracle: ModeOracle | None = None
) -> dict[str, dict[str, float]]:
    """Each named metric (default hyperparameters) of `fake` against `real`.

    Samples are compared in `oracle.embed`'s feature space (`ModeOracle.feature_space`
    names it): points in their own coordinates, images in the oracle classifier's
    penultimate features, so a Fréchet distance on images is an FD in classifier
    features, not an FID. Without an oracle, samples are flattened to vectors. When `fake` holds more
    samples than `real` (a data file with fewer points than were generated), only its
    first len(real) samples are scored: k-NN radii and near-duplicate thresholds shrink
    with the sample count, so coverage and the birthday statistics compare like with like
    only at equal sizes (two samples of one distribution have expected coverage
    1 - prod_{i=1..k} (N-i)/(M+N-i), Naeem et al. 2020, which grows with M/N).
    """
    entries = [METRICS.entry(name) for name in names]  # unknown names fail before any work
    fake = fake[: len(real)]
    embed = oracle.embed if oracle is not None else (lambda x: x.reshape(len(x), -1))
    real_flat, fake_flat = embed(real).double(), embed(fake).double()
    return {
        e.name: e.obj(real_flat, fake_flat, e.params(), make_generator(seed, "report", i))
        for i, e in enumerate(entries)
    }


def reference_samples(data: Dataset, n: int, seed: int = 0) -> torch.Tensor:
    """The real set for metrics (`Dataset.reference`: at most `n` samples, none twice; a
    data file's own points), from a fixed stream so repeated evaluations compare alike."""
    return data.reference(n, make_generator(seed, "report", 1_000_000))


def class_feature_metrics(
    names: list[str], data: Dataset, fake: torch.Tensor, asked: torch.Tensor, seed: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    """Each named metric per class of a conditional generator: its samples asked for class
    y (`asked`, (N,)) against the real samples of class y (`Dataset.labelled_reference`,
    as many as were generated), in the oracle's feature space; classes with fewer than 2
    samples on either side are left out."""
    real, labels = data.labelled_reference(len(fake), make_generator(seed, "report", 1_000_000))
    out = {}
    for y in range(int(data.n_classes or 0)):
        real_y, fake_y = real[labels == y], fake[asked == y]
        if len(real_y) >= 2 and len(fake_y) >= 2:
            out[str(y)] = feature_metrics(names, real_y, fake_y, seed, data.oracle)
    return out
