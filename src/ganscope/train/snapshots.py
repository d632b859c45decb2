"""Samples of every evaluation, kept in the run folder for the report's pictures.

The report shows how the samples moved during training (one picture per evaluation and
an animation), which the final `samples.npy` cannot tell. Each evaluation writes its own
small file, so a resumed run overwrites the evaluations it repeats and never rewrites
the others; readers keep only the steps the metrics log still holds.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ganscope.train.checkpoint import atomic_write

SNAPSHOTS = "snapshots"
SNAPSHOT_SAMPLES = 500
"""Samples kept per seed and evaluation: enough to show a density, small on disk."""
SNAPSHOT_VALUES = 1 << 16
"""...and at most this many numbers per seed: 83 MNIST images, enough for a grid."""
FINAL_VALUES = 1 << 22
"""Numbers per seed that the final `samples.npy` keeps: every sample of points, 5,000
MNIST images (26,000 Stacked MNIST images would be a quarter of a gigabyte per seed)."""

_NAME = re.compile(r"step_(\d+)\.npy")


def spread_indices(n: int, kept: int) -> np.ndarray:
    """`kept` of n sample indices spread evenly over all of them (all when fewer), since a
    scheme may lay its samples out in blocks (MAD-GAN: one block per generator) and a
    prefix would show the first blocks only."""
    kept = min(n, kept)
    return np.arange(kept) * n // kept


def snapshot_indices(n: int, sample_size: int = 2) -> np.ndarray:
    """Which of an evaluation's n samples of `sample_size` numbers a snapshot keeps."""
    return spread_indices(n, min(SNAPSHOT_SAMPLES, max(1, SNAPSHOT_VALUES // sample_size)))


def final_indices(n: int, sample_size: int) -> np.ndarray:
    """Which of the final evaluation's n samples `samples.npy` keeps."""
    return spread_indices(n, max(1, FINAL_VALUES // sample_size))


def save_snapshot(run_dir: Path, step: int, samples: torch.Tensor) -> None:
    """Keep `snapshot_indices` of each seed's (S, n, ...) samples as float32."""
    kept = snapshot_indices(samples.shape[1], samples[0, 0].numel())
    array = samples[:, torch.from_numpy(kept)].detach().float().cpu().numpy()

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.save(handle, array)

    atomic_write(run_dir / SNAPSHOTS / f"step_{step:06d}.npy", write)


def snapshot_steps(run_dir: Path) -> list[int]:
    """Steps with a snapshot, ascending."""
    folder = run_dir / SNAPSHOTS
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name)))


def load_snapshot(run_dir: Path, step: int) -> np.ndarray:
    """The (S, n, ...) samples saved at `step`."""
    return np.load(run_dir / SNAPSHOTS / f"step_{step:06d}.npy", allow_pickle=False)
