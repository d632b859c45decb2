"""Objectives; importing this package registers the built-in ones."""

from ganscope.objectives import gan, hinge, least_squares, wasserstein
from ganscope.objectives.base import OBJECTIVES, Objective, per_seed_mean

__all__ = ["OBJECTIVES", "Objective", "gan", "hinge", "least_squares", "per_seed_mean", "wasserstein"]
