"""ganscope: train GANs, watch them train, measure and cure mode collapse and dropping.

Python API::

    import ganscope
    cfg = ganscope.load_config(overrides=["train.steps=2000", "train.seeds=4"])
    run = ganscope.Run.create(cfg, "runs/ring")
    summary = run.fit()
    samples = run.sample(1000)          # (seeds, 1000, 2)
"""

from ganscope import data, metrics, nets, objectives, regularizers, schemes
from ganscope.config import Config, load_config
from ganscope.metrics.modes import ModeScore, score_modes
from ganscope.train import Run

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ModeScore",
    "Run",
    "data",
    "load_config",
    "metrics",
    "nets",
    "objectives",
    "regularizers",
    "schemes",
    "score_modes",
]
