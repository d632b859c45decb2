"""Feature-space metrics by name, as `eval`, `score` and the Python API ask for them."""

from __future__ import annotations

import torch

from ganscope.data import Dataset
from ganscope.metrics import METRICS
from ganscope.seeding import make_generator


def feature_metrics(
    names: list[str], real: torch.Tensor, fake: torch.Tensor, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Each named metric (default hyperparameters) of `fake` against `real`.

    Samples of any shape are flattened to vectors: for points that is their space; for
    images a learned feature space belongs in front of this call.
    """
    entries = [METRICS.entry(name) for name in names]  # unknown names fail before any work
    real_flat, fake_flat = real.reshape(len(real), -1).double(), fake.reshape(len(fake), -1).double()
    return {
        e.name: e.obj(real_flat, fake_flat, e.params(), make_generator(seed, "report", i))
        for i, e in enumerate(entries)
    }


def reference_samples(data: Dataset, n: int, seed: int = 0) -> torch.Tensor:
    """`n` real samples from a fixed stream, so repeated evaluations compare alike."""
    return data.sample(n, make_generator(seed, "report", 1_000_000))
