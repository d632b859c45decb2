"""The Ray backend: the sweep's trials as a Ray Tune experiment (`pip install 'ganscope[ray]'`).

Tune does not search here: the sweep file's axes are expanded and sampled by ganscope
(`ganscope.sweep.trials`), so that the same file plans the same trials on either backend,
and Tune gets a grid over the trials' names. What Tune adds is the cluster: each trial is
a function trainable with its own resources (`tune.with_resources`), it reports the
population's mean metric at every evaluation (`tune.report`), an ASHA scheduler can stop
the weak ones early on that metric, and an interrupted experiment continues with
`Tuner.restore`. The run folders are ganscope's, under the sweep's folder, so on a
cluster of several machines that folder must be on storage every node sees (NFS); Tune's
own experiment state lives beside them in `ray/`.

Resuming. The experiment's state names the trials it was started with
(`ray/experiment.json`); when any of them is still to do, the experiment is restored
(Tune keeps its scheduler's state), else a new one is started for the trials left. A
trial that already has a `trial.json` reports it and returns without training, and one
that Tune restarts resumes from its run folder's checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
from pathlib import Path
from typing import Any

import ray
from ray import tune

from ganscope.errors import GanscopeError
from ganscope.sweep.trials import Trial
from ganscope.sweep.results import metric_values
from ganscope.sweep.spec import ResourcesSpec, SchedulerSpec
from ganscope.sweep.worker import (
    TRIAL_JSON,
    Records,
    SweepInterrupted,
    failed_entry,
    read_entry,
    run_trial,
    stopped_entry,
    write_entry,
)
from ganscope.train.run import METRICS

RAY = "ray"
EXPERIMENT = "experiment.json"


class TrialFailed(GanscopeError):
    """A trial crashed; its trial.json holds the error. Raised so that Tune marks it errored."""


def population_metrics(step: int, scores: Records, metric: str, mode: str) -> dict[str, Any]:
    """What a trial reports to Tune: the step (ASHA's clock), the metric's mean over the
    seeds (what ASHA compares; a seed without a value counts as the worst possible) and
    its worst seed, and the headline numbers' means."""
    worst_possible = -math.inf if mode == "max" else math.inf
    values = [worst_possible if v is None else v for v in metric_values({"scores": scores}, metric)]
    reported = {"step": step, metric: sum(values) / len(values),
                f"{metric}_worst": min(values) if mode == "max" else max(values)}
    for key in ("modes_covered", "hq_fraction", "reverse_kl"):
        finite = [v for v in metric_values({"scores": scores}, key) if v is not None]
        reported.setdefault(key, sum(finite) / len(finite) if finite else math.nan)
    return reported


def _evaluations_at(trial: Trial, out: Path, step: int) -> Records:
    """The per-seed `eval` records a trial's run folder logged at `step`."""
    from ganscope.train.log import MetricsLog

    return [r for r in MetricsLog(trial.run_dir(out) / METRICS).read() if r["kind"] == "eval" and r["step"] == step]


def trainable(config: dict[str, Any], trials: dict[str, Trial], out: str, metric: str, mode: str, threads: int,
              retry_failed: bool) -> None:
    """One trial in a Ray worker: its recorded outcome when it has one, else trained with a
    report to Tune at each evaluation."""
    import torch

    torch.set_num_threads(threads)
    trial, folder = trials[config["trial"]], Path(out)
    entry = read_entry(trial, folder)
    if entry is None or (entry["status"] == "failed" and retry_failed):
        # The last evaluation is reported only once trial.json is written: Tune may end the
        # function at a report that reaches the scheduler's max_t, and the record must not
        # be lost with it.
        entry = run_trial(trial, folder, watch=lambda step, records: step < trial.steps and tune.report(
            population_metrics(step, records, metric, mode)))
    if entry["status"] == "failed":
        raise TrialFailed(f"{trial.name}: {entry['error']} (see {trial.run_dir(folder) / TRIAL_JSON})")
    if entry.get("scores"):
        tune.report(population_metrics(entry["step"], entry["scores"], metric, mode))


class Recorder(tune.Callback):
    """Records in the run folder what only the driver sees: a trial the scheduler stopped
    early (with the scores of its last evaluation) or one whose worker died."""

    def __init__(self, trials: dict[str, Trial], out: Path) -> None:
        self.trials = trials
        self.out = out

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        mine = self.trials[trial.config["trial"]]
        step = (trial.last_result or {}).get("step")
        if read_entry(mine, self.out) is None and step is not None and step < mine.steps:
            write_entry(self.out, stopped_entry(mine, int(step), _evaluations_at(mine, self.out, int(step)),
                                                trial.last_result.get("time_total_s")))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        mine = self.trials[trial.config["trial"]]
        if read_entry(mine, self.out) is None:
            error = trial.get_error() or RuntimeError("Ray reported an error without a message")
            write_entry(self.out, failed_entry(mine, error, (trial.last_result or {}).get("time_total_s") or 0.0, 0))


def _name(trials: list[Trial]) -> str:
    return "tune-" + hashlib.sha256(" ".join(sorted(t.key for t in trials)).encode()).hexdigest()[:12]


def _interrupted(grid: Any) -> bool:
    """Tune returns normally after Ctrl-C; trials neither finished nor errored say it did."""
    return grid.num_terminated + grid.num_errors < len(grid)


def run_ray(trials: list[Trial], pending: list[Trial], out: Path, *, metric: str, mode: str,
            resources: ResourcesSpec, scheduler: SchedulerSpec | None = None, address: str | None = None,
            workers: int | None = None, retry_failed: bool = False, progress: bool = True) -> None:
    """Train `pending` (of the plan's `trials`) as a Tune experiment, restoring the one an
    earlier call left unfinished, each trial with `resources` and reporting the population's
    mean `metric` (better when `mode`: max or min) at every evaluation to the `scheduler`,
    if any; connects to `address` (a running cluster) unless Ray is already initialised,
    else starts a local one."""
    out = Path(out).resolve()
    storage = out / RAY
    storage.mkdir(parents=True, exist_ok=True)
    table = {t.name: t for t in trials}
    fn = tune.with_parameters(trainable, trials=table, out=str(out), metric=metric, mode=mode,
                              threads=max(1, int(resources.cpu)), retry_failed=retry_failed)
    fn = tune.with_resources(fn, {"cpu": resources.cpu, "gpu": resources.gpu})
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=progress)
    try:
        state_path = storage / EXPERIMENT
        todo = {t.key for t in pending}
        state = json.loads(state_path.read_text()) if state_path.is_file() else None
        if state and todo & set(state["keys"]) and tune.Tuner.can_restore(storage / state["name"]):
            tuner = tune.Tuner.restore(str(storage / state["name"]), fn, resume_unfinished=True,
                                       resume_errored=retry_failed)
            if _interrupted(tuner.fit()):
                raise SweepInterrupted(out, signal.SIGINT)
            # Tune's finished trials are done; one it counts finished without a record (its
            # worker died after the last report) trains again in a new experiment.
            pending = [t for t in pending if t.key not in set(state["keys"]) or read_entry(t, out) is None]
        if not pending:
            return
        attempt = state.get("attempt", 0) + 1 if state else 0
        name = f"{_name(pending)}-{attempt}"
        state_path.write_text(json.dumps({"name": name, "keys": [t.key for t in pending], "attempt": attempt}) + "\n")
        asha = None
        if scheduler is not None:
            from ray.tune.schedulers import ASHAScheduler

            asha = ASHAScheduler(time_attr="step", max_t=max(t.steps for t in pending),
                                 grace_period=scheduler.grace_period, reduction_factor=scheduler.reduction_factor)
        tuner = tune.Tuner(
            fn,
            param_space={"trial": tune.grid_search([t.name for t in pending])},
            tune_config=tune.TuneConfig(metric=metric, mode=mode, scheduler=asha,
                                        max_concurrent_trials=workers or None),
            run_config=tune.RunConfig(name=name, storage_path=str(storage), callbacks=[Recorder(table, out)],
                                      verbose=1 if progress else 0),
        )
        if _interrupted(tuner.fit()):
            raise SweepInterrupted(out, signal.SIGINT)
    finally:
        if started_here:
            ray.shutdown()

