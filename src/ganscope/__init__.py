"""ganscope: train GANs, watch them train, measure and cure mode collapse and dropping.

Python API::

    import ganscope
    cfg = ganscope.load_config(overrides=["train.seeds=4"])
    run = ganscope.Run.create(cfg, "runs/ring")
    summary = run.fit()
    samples = run.sample(1000)          # (seeds, 1000, 2)

The names below are imported on first use (PEP 562), so `import ganscope` and
`ganscope --help` do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ganscope import data, metrics, nets, objectives, regularizers, schemes
    from ganscope.config import Config, load_config
    from ganscope.metrics.modes import ModeScore, score_modes
    from ganscope.train import Run

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_HOMES = {
    "Config": "ganscope.config",
    "load_config": "ganscope.config",
    "ModeScore": "ganscope.metrics.modes",
    "score_modes": "ganscope.metrics.modes",
    "Run": "ganscope.train",
}
_SUBPACKAGES = ("data", "metrics", "nets", "objectives", "regularizers", "schemes")

__all__ = sorted([*_HOMES, *_SUBPACKAGES])


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"ganscope.{name}")
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ganscope' has no attribute {name!r}")
