"""One trial, as a backend's worker runs it: train (or resume) its population and leave
its outcome in `trial.json` beside the run's own files.

The run folder is the record. A finished trial (`ok`), a crashed one (`failed`, with its
error and traceback) and one an early-stopping scheduler ended (`stopped`, with the scores
it had) each write `trial.json`, and a trial with that file is never trained again: the
sweep's tables are rendered from these files alone, whichever backend, process or
machine wrote them. An interrupted trial writes nothing; its checkpoint is where the next
attempt resumes.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, cast

from ganscope.config import load_config
from ganscope.errors import GanscopeError
from ganscope.sweep.trials import Trial
from ganscope.train.checkpoint import atomic_write_text
from ganscope.train.log import jsonable
from ganscope.train.resume import resume_or_create
from ganscope.train.run import Interrupted, Run

TRIAL_JSON = "trial.json"

Status = Literal["ok", "failed", "stopped"]
Records = list[dict[str, Any]]  # one evaluation's per-seed `eval` records of the metrics log
Watch = Callable[[int, Records], None]


class SweepInterrupted(Interrupted):
    """SIGINT or SIGTERM reached the sweep: the trials in training saved their checkpoints
    and stopped; the same command continues (the CLI exits with 128 + the signal)."""

    def __init__(self, out: Path, signum: int) -> None:
        self.signum = signum
        GanscopeError.__init__(self, f"sweep interrupted; the trials in training saved checkpoints; run the same "
                                     f"command again to continue ({out})")


class WatchedRun(Run):
    """A Run that hands each evaluation's per-seed records to `watch`, as they are logged:
    how the Ray backend reports to Tune (and lets ASHA stop it) at every evaluation. It
    hooks the trainer's evaluation step, which the Run API has no public callback for."""

    watch: Watch | None = None

    def _evaluate_and_log(self, *args: Any, **kwargs: Any) -> Any:
        stopped = super()._evaluate_and_log(*args, **kwargs)
        if self.watch is not None:
            self.watch(self.step, [r for r in self.log.read() if r["kind"] == "eval" and r["step"] == self.step])
        return stopped


def trial_seeds(trial: Trial) -> list[int]:
    seeds = trial.config["train"]["seeds"]
    return list(seeds) if isinstance(seeds, list) else list(range(trial.config["seed"], trial.config["seed"] + seeds))


def _entry(trial: Trial, status: Status, **fields: Any) -> dict[str, Any]:
    return {
        "format": 1, "key": trial.key, "name": trial.name, "values": trial.values, "protocol": trial.protocol,
        "overrides": list(trial.overrides), "status": status, "seeds": trial_seeds(trial), "steps": trial.steps,
        "run_dir": trial.relative_dir, **fields,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _scores_of(summary: dict[str, Any]) -> dict[str, Any]:
    """What a trial keeps of a run's summary: per-seed scores, their means and stds, the verdict."""
    return {
        "step": summary["step"], "scores": summary["scores"], "verdict": summary["verdict"],
        **{k: v for k, v in summary.items() if k.endswith(("_mean", "_std"))},
    }


def finished_entry(trial: Trial, summary: dict[str, Any], wall: float, resumed_from: int) -> dict[str, Any]:
    return _entry(trial, "ok", **_scores_of(summary), wall_time_s=wall, resumed_from_step=resumed_from,
                  seed_steps_per_s=summary.get("seed_steps_per_s"), error=None)


def failed_entry(trial: Trial, err: BaseException, wall: float, resumed_from: int) -> dict[str, Any]:
    """A crash, kept: its one-line error (a ganscope error's message as the CLI prints it),
    the traceback's last frames, and the last finite scores of a run that diverged."""
    message = str(err) if isinstance(err, GanscopeError) else f"{type(err).__name__}: {err}"
    summary = getattr(err, "summary", None)
    return _entry(trial, "failed", **(_scores_of(summary) if summary else {}), wall_time_s=wall,
                  resumed_from_step=resumed_from, error=message.splitlines()[0] if message else type(err).__name__,
                  traceback="".join(traceback.format_exception(err)[-6:]))


def stopped_entry(trial: Trial, step: int, scores: Records, wall: float | None) -> dict[str, Any]:
    """A trial an early-stopping scheduler ended at `step`, with the scores it had then."""
    return _entry(trial, "stopped", step=step, scores=scores, wall_time_s=wall, resumed_from_step=0, error=None,
                  verdict=f"stopped early by the scheduler at step {step:,} of {trial.steps:,}")


def read_entry(trial: Trial, out: Path) -> dict[str, Any] | None:
    """The trial's recorded outcome, or None when it has none (never run, or interrupted).
    A file that does not parse counts as none: the trial is tried again."""
    path = trial.run_dir(out) / TRIAL_JSON
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("key") == trial.key else None


def write_entry(out: Path, entry: dict[str, Any]) -> None:
    atomic_write_text(Path(out) / entry["run_dir"] / TRIAL_JSON, json.dumps(jsonable(entry), indent=2) + "\n")


def run_trial(trial: Trial, out: Path, progress: bool = False, watch: Watch | None = None) -> dict[str, Any]:
    """Train the trial's population to its end (resuming an interrupted one) and record
    its outcome; any error but an interruption (`Interrupted`, the folder in use by another
    process) is recorded as a failed trial, not raised."""
    from ganscope.train import RunInUse

    started = time.perf_counter()
    resumed_from = 0
    try:
        run = cast(WatchedRun, resume_or_create(load_config(trial.config), trial.run_dir(out), f"trial {trial.name}",
                                                WatchedRun))
        run.watch = watch
        run.tracking_tags = {"ganscope.sweep_trial": trial.name,
                             **{f"ganscope.axis.{k}": str(v) for k, v in trial.values.items()}}
        resumed_from = run.step
        summary = run.fit(progress=progress)
        entry = finished_entry(trial, summary, time.perf_counter() - started, resumed_from)
    except (Interrupted, RunInUse):
        raise
    except Exception as err:  # noqa: BLE001  (a crashed trial is recorded, not fatal to the sweep)
        entry = failed_entry(trial, err, time.perf_counter() - started, resumed_from)
    write_entry(out, entry)
    return entry
