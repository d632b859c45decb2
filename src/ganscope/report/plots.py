"""Pictures of a run: samples over the real data with the modes marked, and curves."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from ganscope.train.checkpoint import atomic_write  # noqa: E402

MAX_PANELS = 8


def _save(fig: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)


def plot_samples(
    path: Path,
    real: np.ndarray,
    fake_per_seed: np.ndarray,
    seeds: list[int],
    centres: np.ndarray | None,
    titles: list[str],
) -> None:
    """One panel per seed (up to 8): real points in grey, generated in colour, modes as x.

    Data of more than two dimensions are projected on the real data's first two
    principal components, fitted once so every panel shares the axes.
    """
    flat_real = real.reshape(len(real), -1)
    project = (lambda a: a.reshape(len(a), -1)) if flat_real.shape[1] == 2 else PCA(2).fit(flat_real).transform
    n = min(len(seeds), MAX_PANELS)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    real_2d = project(flat_real)
    centres_2d = project(centres) if centres is not None else None
    lo, hi = _limits(real_2d)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        ax.scatter(real_2d[:, 0], real_2d[:, 1], s=2, c="0.75", label="real", rasterized=True)
        fake_2d = project(fake_per_seed[i].reshape(len(fake_per_seed[i]), -1))
        ax.scatter(fake_2d[:, 0], fake_2d[:, 1], s=2, c="tab:blue", alpha=0.6, label="generated", rasterized=True)
        if centres_2d is not None:
            ax.scatter(centres_2d[:, 0], centres_2d[:, 1], marker="x", s=50, c="tab:red", label="modes")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(f"seed {seeds[i]}: {titles[i]}", fontsize=9)
    axes.flat[0].legend(loc="upper right", fontsize=7, markerscale=3)
    _save(fig, path)


def _limits(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = 0.25 * (hi - lo).max() + 1e-6
    return lo - pad, hi + pad


def _series(records: list[dict[str, Any]], kind: str, key: str) -> dict[int, tuple[list[int], list[float]]]:
    out: dict[int, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for r in records:
        if r.get("kind") == kind and r.get(key) is not None:
            out[r["seed"]][0].append(r["step"])
            out[r["seed"]][1].append(r[key])
    return dict(out)


def plot_curves(path: Path, records: list[dict[str, Any]]) -> None:
    """Losses, gradient norms and mode metrics over training, one line per seed."""
    panels = [
        ("train", "d_loss", "D loss"),
        ("train", "g_loss", "G loss"),
        ("train", "g_grad_norm", "G gradient norm"),
        ("eval", "modes_covered", "modes covered"),
        ("eval", "hq_fraction", "high-quality fraction"),
        ("eval", "reverse_kl", "reverse KL"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, (kind, key, title) in zip(axes.flat, panels, strict=True):
        for seed, (steps, values) in sorted(_series(records, kind, key).items()):
            ax.plot(steps, values, lw=1, label=f"seed {seed}", marker="o" if kind == "eval" else None, ms=3)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[3].get_legend_handles_labels()
    if handles and len(handles) <= 10:
        axes.flat[3].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
