"""Scores of sample sets: mode histogram metrics (with a dataset's mode oracle) and
feature-space metrics of two sample sets (precision/recall, density/coverage, NDB,
Frechet distance, birthday-paradox support)."""

from ganscope.registry import new_registry

METRICS = new_registry("metric", "metrics")
