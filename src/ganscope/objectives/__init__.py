"""Objectives; importing this package registers the built-in ones."""

from ganscope.objectives import gan
from ganscope.objectives.base import OBJECTIVES, Objective, per_seed_mean

__all__ = ["OBJECTIVES", "Objective", "gan", "per_seed_mean"]
