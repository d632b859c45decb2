"""Gaussian mixtures with known modes: the 2-D ring and grid protocols and any
user-defined mixture in any dimension."""

from __future__ import annotations

import math
from typing import Self

import torch
from pydantic import PositiveFloat, PositiveInt, field_validator, model_validator

from ganscope.data.base import DATASETS, Dataset, ModeAssignment, ModeOracle
from ganscope.registry import Params

# Probability mass within 3 std of a 2-D isotropic Gaussian: 1 - exp(-4.5).
_HQ_MASS_2D = 1.0 - math.exp(-4.5)


def default_hq_threshold(dim: int) -> float:
    """Scaled-distance threshold for "high quality" in `dim` dimensions.

    The VEEGAN/PacGAN protocol uses 3 std in 2-D. In `dim` dimensions a sample's
    distance to its centre grows like sqrt(dim) std, so a fixed 3 would call almost
    every true sample low quality; we keep the 2-D protocol's probability mass instead
    (chi distribution quantile), which gives exactly 3 when dim == 2.
    """
    from scipy.stats import chi2  # scipy costs a second at import: only when asked

    return math.sqrt(chi2.ppf(_HQ_MASS_2D, dim))


class MixtureOracle(ModeOracle):
    """Nearest centre by distance divided by the mode's std; high quality below a threshold."""

    def __init__(
        self,
        centres: torch.Tensor,
        stds: torch.Tensor,
        weights: torch.Tensor,
        hq_threshold: float | None = None,
        description: str = "known centres",
    ) -> None:
        self.centres = centres.double()
        self.stds = stds.double()
        self._weights = weights.double() / weights.sum()
        dim = centres.shape[1]
        self.hq_threshold = default_hq_threshold(dim) if hq_threshold is None else hq_threshold
        self.description = description

    @property
    def weights(self) -> torch.Tensor:
        return self._weights

    def assign(self, samples: torch.Tensor) -> ModeAssignment:
        flat = samples.reshape(samples.shape[0], -1).double()
        scaled = torch.cdist(flat, self.centres) / self.stds
        best, mode = scaled.min(dim=1)
        return ModeAssignment(mode=mode, high_quality=best < self.hq_threshold)


class GaussianMixture(Dataset):
    """Isotropic Gaussian mixture; per-mode std and weights allowed."""

    def __init__(
        self,
        name: str,
        centres: torch.Tensor,
        stds: torch.Tensor,
        weights: torch.Tensor,
        hq_threshold: float | None = None,
    ) -> None:
        self.name = name
        self.centres = centres.float()
        self.stds = stds.float()
        self.weights = weights.float() / weights.sum()
        self._uniform = bool(torch.all(self.weights == self.weights[0]))
        self._oracle = MixtureOracle(centres, stds, weights, hq_threshold)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.centres.shape[1],)

    @property
    def oracle(self) -> MixtureOracle:
        return self._oracle

    @property
    def label_weights(self) -> torch.Tensor:
        """A point's label is its component: the mode the oracle assigns it to."""
        return self.weights

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.sample_labelled(n, generator)[0]

    def sample_labelled(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self._uniform:
            mode = torch.randint(len(self.centres), (n,), generator=generator)
        else:
            mode = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.centres.shape[1], generator=generator)
        return self.centres[mode] + self.stds[mode, None] * noise, mode


def ring_centres(n_modes: int, radius: float) -> torch.Tensor:
    """Centres at angles 2*pi*k/n (k = 0..n-1): n distinct points, unlike linspace(0, 2pi, n)."""
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


def grid_centres(side: int, spacing: float) -> torch.Tensor:
    """Centres {-(side-1)/2, ..., (side-1)/2}^2 * spacing, row-major."""
    axis = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


class RingParams(Params):
    n_modes: PositiveInt = 8
    radius: PositiveFloat = 1.0
    std: PositiveFloat = 0.01
    hq_threshold: PositiveFloat | None = None


class GridParams(Params):
    side: PositiveInt = 5
    spacing: PositiveFloat = 2.0
    std: PositiveFloat = 0.05
    hq_threshold: PositiveFloat | None = None


class MixtureParams(Params):
    centres: list[list[float]]
    std: PositiveFloat | list[PositiveFloat] = 0.05
    weights: list[PositiveFloat] | None = None
    hq_threshold: PositiveFloat | None = None

    @field_validator("centres")
    @classmethod
    def _same_dimension(cls, centres: list[list[float]]) -> list[list[float]]:
        if not centres or not centres[0]:
            raise ValueError("give at least one centre with at least one coordinate")
        if len({len(c) for c in centres}) != 1:
            raise ValueError("all centres must have the same number of coordinates")
        return centres

    @model_validator(mode="after")
    def _lengths_match(self) -> Self:
        k = len(self.centres)
        if isinstance(self.std, list) and len(self.std) != k:
            raise ValueError(f"std has {len(self.std)} entries for {k} centres")
        if self.weights is not None and len(self.weights) != k:
            raise ValueError(f"weights has {len(self.weights)} entries for {k} centres")
        return self


@DATASETS.register("ring", "8 Gaussians on the unit circle, std 0.01 (VEEGAN/PacGAN)", RingParams)
def build_ring(p: RingParams) -> GaussianMixture:
    centres = ring_centres(p.n_modes, p.radius)
    return GaussianMixture(
        "ring",
        centres,
        torch.full((p.n_modes,), p.std, dtype=torch.float64),
        torch.ones(p.n_modes, dtype=torch.float64),
        p.hq_threshold,
    )


@DATASETS.register("grid", "5x5 grid of Gaussians at {-4..4}^2, std 0.05 (VEEGAN/PacGAN)", GridParams)
def build_grid(p: GridParams) -> GaussianMixture:
    centres = grid_centres(p.side, p.spacing)
    k = len(centres)
    return GaussianMixture(
        "grid",
        centres,
        torch.full((k,), p.std, dtype=torch.float64),
        torch.ones(k, dtype=torch.float64),
        p.hq_threshold,
    )


@DATASETS.register("mixture", "any isotropic Gaussian mixture in any dimension", MixtureParams)
def build_mixture(p: MixtureParams) -> GaussianMixture:
    centres = torch.tensor(p.centres, dtype=torch.float64)
    k = len(centres)
    stds = torch.tensor(p.std if isinstance(p.std, list) else [p.std] * k, dtype=torch.float64)
    weights = torch.tensor(p.weights or [1.0] * k, dtype=torch.float64)
    return GaussianMixture("mixture", centres, stds, weights, p.hq_threshold)
