"""Per-seed random streams for a population of independent runs.

Every seed in a population owns its own `torch.Generator` for each purpose (network
initialisation, noise, data, regularisers, evaluation). A stream depends only on the
seed and the purpose, never on the other members, so seed 3 trained inside a population
follows exactly the trajectory of seed 3 trained alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ganscope.distributed import World

STREAMS = ("init", "noise", "data", "penalty", "eval", "report", "labels", "network", "pool")


_PARALLEL_DRAW_MIN = 1 << 15


@functools.cache
def _draw_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()), thread_name_prefix="ganscope-rng")


def stream_seed(seed: int, stream: str, *extra: int) -> int:
    """A 63-bit seed derived from (seed, stream name, extra integers)."""
    entropy = [seed, STREAMS.index(stream), *extra]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


def make_generator(seed: int, stream: str, *extra: int) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, stream, *extra))


class PopulationRandom:
    """One generator per seed for one stream; draws are stacked along a leading seed axis.

    Generators live on the CPU and draws move to `device` (`ganscope.devices`): the numbers
    a seed draws are the same on every device, and their state is portable.
    """

    def __init__(self, seeds: Sequence[int], stream: str, *extra: int, device: torch.device | str = "cpu") -> None:
        self.generators = [make_generator(s, stream, *extra) for s in seeds]
        self.device = torch.device(device)

    def randn(self, *shape: int) -> torch.Tensor:
        return self._fill(shape, lambda row, g: row.normal_(generator=g))

    def rand(self, *shape: int) -> torch.Tensor:
        return self._fill(shape, lambda row, g: row.uniform_(generator=g))

    def _fill(self, shape: tuple[int, ...], draw: Callable[[torch.Tensor, torch.Generator], object]) -> torch.Tensor:
        """Fill one row per seed from that seed's generator.

        PyTorch draws random numbers on one core, and noise for a large z_dim is a fifth of
        a population step, so big draws run on a small thread pool (one generator per
        thread at a time: the numbers are identical to a sequential draw).
        """
        out = torch.empty(len(self.generators), *shape)
        pairs = list(zip(out, self.generators))
        if len(pairs) > 1 and out[0].numel() >= _PARALLEL_DRAW_MIN:
            list(_draw_pool().map(lambda pair: draw(*pair), pairs))
        else:
            for row, g in pairs:
                draw(row, g)
        return out.to(self.device, non_blocking=True)

    def get_state(self) -> torch.Tensor:
        return torch.stack([g.get_state() for g in self.generators])

    def set_state(self, state: torch.Tensor) -> None:
        for g, s in zip(self.generators, state, strict=True):
            g.set_state(s.clone())


class SharedRandom(PopulationRandom):
    """A stream of per-sample draws shared by the processes of a data-parallel run: every
    process draws what one process would for the whole batch (the first axis of a draw's
    shape times the process count) and keeps its own share of it (`World.share`). The
    stream advances alike on every process, so its state is the one-process state."""

    def __init__(self, seeds: Sequence[int], stream: str, *extra: int, device: torch.device | str = "cpu",
                 world: World) -> None:
        super().__init__(seeds, stream, *extra, device=device)
        self.world = world

    def _fill(self, shape: tuple[int, ...], draw: Callable[[torch.Tensor, torch.Generator], object]) -> torch.Tensor:
        whole = super()._fill((shape[0] * self.world.size, *shape[1:]), draw)
        return self.world.share(whole)
