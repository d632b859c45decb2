"""Per-seed random streams for a population of independent runs.

Every seed in a population owns its own `torch.Generator` for each purpose (network
initialisation, noise, data, regularisers, evaluation). A stream depends only on the
seed and the purpose, never on the other members, so seed 3 trained inside a population
follows exactly the trajectory of seed 3 trained alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

STREAMS = ("init", "noise", "data", "penalty", "eval", "report")


def stream_seed(seed: int, stream: str, *extra: int) -> int:
    """A 63-bit seed derived from (seed, stream name, extra integers)."""
    entropy = [seed, STREAMS.index(stream), *extra]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


def make_generator(seed: int, stream: str, *extra: int) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, stream, *extra))


class PopulationRandom:
    """One generator per seed for one stream; draws are stacked along a leading seed axis."""

    def __init__(self, seeds: Sequence[int], stream: str, *extra: int) -> None:
        self.generators = [make_generator(s, stream, *extra) for s in seeds]

    def randn(self, *shape: int) -> torch.Tensor:
        out = torch.empty(len(self.generators), *shape)
        for row, g in zip(out, self.generators):
            row.normal_(generator=g)
        return out

    def rand(self, *shape: int) -> torch.Tensor:
        out = torch.empty(len(self.generators), *shape)
        for row, g in zip(out, self.generators):
            row.uniform_(generator=g)
        return out

    def get_state(self) -> torch.Tensor:
        return torch.stack([g.get_state() for g in self.generators])

    def set_state(self, state: torch.Tensor) -> None:
        for g, s in zip(self.generators, state, strict=True):
            g.set_state(s.clone())
