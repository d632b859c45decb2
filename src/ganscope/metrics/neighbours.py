"""Blockwise nearest-neighbour primitives shared by the feature-space metrics.

Why blockwise: the full distance matrix of 10,000 x 10,000 samples is 800 MB in float64,
yet every metric needs only a few numbers per row or column of it (the k smallest
distances, a minimum, counts of balls). So each function walks over row blocks sized to a
fixed element budget and keeps only those reductions; memory stays bounded by one block
whatever N and M are.

Why exact differences: distances are float64 `torch.cdist` without the matrix-product
shortcut. ||a||^2 + ||b||^2 - 2ab loses precision by cancellation, so a point's distance to
an exact duplicate comes out slightly positive and it falls outside a ball of radius 0. The
difference form gives exactly 0 for duplicates and exactly symmetric distances, so ties
behave as the metric definitions say (distance <= radius is inside).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from ganscope.errors import DataError

_BLOCK_ELEMENTS = 1 << 24
"""Entries of one distance block: 128 MiB in float64."""


def distance_blocks(x: Tensor, y: Tensor) -> Iterator[tuple[int, Tensor]]:
    """Yield (start, exact float64 distances from x[start:start + b] to every row of y)."""
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    rows = max(1, _BLOCK_ELEMENTS // max(len(y), 1))
    for start in range(0, len(x), rows):
        yield start, torch.cdist(
            x[start : start + rows], y, compute_mode="donot_use_mm_for_euclid_dist"
        )


def nearest_neighbour_distances(x: Tensor, k: int) -> Tensor:
    """(n, k) ascending distances from each row of x to its k nearest other rows of x.

    The point's own zero distance is excluded by index rather than by dropping the
    smallest value, so exact duplicates of a point still count as neighbours at distance 0.
    """
    if not 1 <= k < len(x):
        raise DataError(
            f"k-th neighbour distances need more than k={k} points, got {len(x)}; "
            "pass more samples or lower k"
        )
    out = torch.empty(len(x), k, dtype=torch.float64, device=x.device)
    for start, dist in distance_blocks(x, x):
        rows = torch.arange(len(dist), device=x.device)
        dist[rows, rows + start] = torch.inf
        out[start : start + len(dist)] = dist.topk(k, dim=1, largest=False).values
    return out


def kth_neighbour_radii(x: Tensor, k: int) -> Tensor:
    """(n,) distance from each row of x to its k-th nearest other row (own point excluded)."""
    return nearest_neighbour_distances(x, k)[:, k - 1]


def blockwise_min_distance(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(n,) distance from each row of x to its nearest row of y, and (n,) that row's index."""
    dist = torch.empty(len(x), dtype=torch.float64, device=x.device)
    index = torch.empty(len(x), dtype=torch.long, device=x.device)
    for start, block in distance_blocks(x, y):
        dist[start : start + len(block)], index[start : start + len(block)] = block.min(dim=1)
    return dist, index


@dataclass(frozen=True)
class BallCounts:
    """Closed-ball counts between two point sets x and y (distance == radius is inside).

    With x-balls B(x_i, x_radii[i, c]) and y-balls B(y_j, y_radii[j, c]):
    y_in_x_balls (n_y, r_x): how many x-balls hold each y_j;
    x_balls_holding_y (n_x, r_x): how many y points each x-ball holds;
    x_in_y_balls (n_x, r_y): how many y-balls hold each x_i.
    """

    y_in_x_balls: Tensor
    x_balls_holding_y: Tensor
    x_in_y_balls: Tensor


def ball_counts(x: Tensor, x_radii: Tensor, y: Tensor, y_radii: Tensor) -> BallCounts:
    """All ball counts between x and y from one pass over their distances.

    Radii are (n, r): r radius sets per point share the pass, so precision, recall,
    density and coverage need a single cross-distance pass instead of one per statistic.
    """
    x_radii = x_radii.to(torch.float64)
    y_radii = y_radii.to(torch.float64)
    long = {"dtype": torch.long, "device": x.device}
    y_in_x = torch.zeros(len(y), x_radii.shape[1], **long)
    x_holding = torch.empty(len(x), x_radii.shape[1], **long)
    x_in_y = torch.empty(len(x), y_radii.shape[1], **long)
    for start, dist in distance_blocks(x, y):
        rows = slice(start, start + len(dist))
        for c in range(x_radii.shape[1]):
            inside = dist <= x_radii[rows, c, None]
            y_in_x[:, c] += inside.sum(dim=0)
            x_holding[rows, c] = inside.sum(dim=1)
        for c in range(y_radii.shape[1]):
            x_in_y[rows, c] = (dist <= y_radii[None, :, c]).sum(dim=1)
    return BallCounts(y_in_x, x_holding, x_in_y)
