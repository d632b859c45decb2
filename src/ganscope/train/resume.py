"""Continue a population where an earlier process left it, or start it: what the grid
runners (`ganscope bench`, `ganscope sweep`) do with each of their run folders, so that
re-running the same command continues instead of starting over."""

from __future__ import annotations

import shutil
from pathlib import Path

from ganscope.config import Config
from ganscope.errors import ConfigError
from ganscope.train.run import CHECKPOINT, Run


def resume_or_create(cfg: Config, run_dir: Path, what: str, run_class: type[Run] = Run) -> Run:
    """`cfg`'s run in `run_dir`: resumed from its checkpoint when an earlier process was
    interrupted, else new (a folder without a checkpoint holds no training worth keeping,
    and is cleared). A checkpoint of another config is refused in one line naming `what`
    the folder was meant for. `run_class` lets a caller watch the loop (a Run subclass)."""
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT).is_file():
        run = run_class.open(run_dir)
        if run.cfg.to_dict() != cfg.to_dict():
            raise ConfigError(f"{run_dir} holds a run with another config; move it away to rerun {what}")
        return run
    if run_dir.exists():
        shutil.rmtree(run_dir)
    return run_class.create(cfg, run_dir)
