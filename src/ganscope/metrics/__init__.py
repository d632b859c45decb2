"""Scores of sample sets: mode histogram metrics (with a dataset's mode oracle) and
feature-space metrics of two sample sets (precision/recall, density/coverage, NDB,
Frechet distance, birthday-paradox support)."""

from ganscope.registry import new_registry

METRICS = new_registry("metric", "metrics")

from ganscope.metrics import features  # noqa: E402  (registers the feature-space metrics)

__all__ = ["METRICS", "features"]
