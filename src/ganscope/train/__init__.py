"""The trainer: run folders, the training loop, checkpoints and resume."""

from ganscope.train.checkpoint import RunInUse
from ganscope.train.run import Diverged, Interrupted, Run

__all__ = ["Diverged", "Interrupted", "Run", "RunInUse"]
