"""The trainer: run folders, the training loop, checkpoints and resume."""

from ganscope.train.checkpoint import RunInUse
from ganscope.train.run import Diverged, Interrupted, Run, process_folder

__all__ = ["Diverged", "Interrupted", "Run", "RunInUse", "process_folder"]
