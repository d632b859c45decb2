"""Sweeps: a base config, axes over any of its keys, seeds, and a metric to rank by, run
as many trials on this machine (`local`) or on a Ray cluster (`ray`).

Python API::

    from ganscope.sweep import load_sweep, plan, run_sweep
    sweep = load_sweep("benchmarks/sweeps/ring-cheapest.yaml")
    trials = plan(sweep)                      # what would train, validated, nothing trained
    result = run_sweep(sweep, "runs/sweeps/ring-cheapest")
    result.best[None][0]["values"]            # the best trial's axis values

Why this shape. A population of seeds costs about what one seed costs, so trials that
differ only in their seed are one population run (`ganscope.sweep.trials`, "the packing
rule"), and a sweep over S seeds never pays S times. Every trial is an ordinary run folder
under the sweep's folder, with its outcome in `trial.json` beside it (`ganscope.sweep.
worker`): re-running the same command trains only what is not recorded, continues an
interrupted trial from its checkpoint, and keeps a crashed trial's error instead of
stopping the sweep. The results (`sweep.json`, `sweep.md`, `compare.html`) are rendered
from those files alone (`ganscope.sweep.results`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from ganscope.errors import ConfigError
from ganscope.sweep.trials import TRIALS, Trial, plan
from ganscope.sweep.results import (
    Entry,
    best,
    collect,
    metric_cell,
    save,
    write_compare,
)
from ganscope.sweep.spec import METRICS, ResourcesSpec, SchedulerSpec, Sweep, load_sweep, validate_sweep
from ganscope.sweep.worker import TRIAL_JSON, SweepInterrupted, read_entry
from ganscope.train.checkpoint import atomic_write_text

__all__ = [
    "METRICS", "TRIALS", "TRIAL_JSON", "Sweep", "SweepInterrupted", "SweepResult", "Trial", "default_out",
    "load_sweep", "plan", "run_sweep", "validate_sweep",
]

SWEEP_FILE = "sweep.yaml"
"""The sweep as it was run, kept in its output folder."""


def default_out(sweep: Sweep) -> Path:
    return Path("runs") / "sweeps" / sweep.name


def done(entry: Entry | None, retry_failed: bool = False) -> bool:
    """Whether a recorded trial is finished with: trained, stopped early, or failed (unless retried)."""
    return entry is not None and (entry["status"] != "failed" or not retry_failed)


@dataclass
class SweepResult:
    """What one `run_sweep` call left: every trial's entry (in the plan's order), the best
    of each protocol, how many trained now and the files written."""

    sweep: Sweep
    entries: list[Entry]
    best: dict[str | None, list[Entry]]
    ran: int
    skipped: int
    json_path: Path
    markdown_path: Path
    compare_path: Path | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.sweep.name, "metric": self.sweep.metric, "mode": self.sweep.mode,
            "json": str(self.json_path), "markdown": str(self.markdown_path),
            "compare": None if self.compare_path is None else str(self.compare_path),
            "ran": self.ran, "skipped": self.skipped,
            "best": {str(p): [e["name"] for e in chosen] for p, chosen in self.best.items()},
            "trials": self.entries,
        }


def _announce(trials: list[Trial], out: Path) -> Any:
    index = {t.key: i for i, t in enumerate(trials, start=1)}

    def announce(trial: Trial) -> None:
        print(f"[{index[trial.key]}/{len(trials)}] {trial.label()} -> {trial.run_dir(out)}", file=sys.stderr)

    return announce


def run_sweep(
    sweep: Sweep | Path | str,
    out: Path | str | None = None,
    *,
    backend: Literal["local", "ray"] | None = None,
    workers: int | None = None,
    address: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> SweepResult:
    """Train every trial of `sweep` not yet recorded in `out` (default runs/sweeps/NAME)
    and write the results there; `backend`, `workers` and `address` replace the sweep
    file's. `retry_failed` trains the failed trials again (a crash may have been the
    machine's). Progress and one line per trial go to stderr."""
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    backend = backend or sweep.spec.backend
    if sweep.spec.scheduler is not None and backend != "ray":
        raise ConfigError(f"the sweep's scheduler ({sweep.spec.scheduler.name}) stops trials early on Ray Tune, and "
                          "the local backend runs every trial to its end; use --backend ray or drop scheduler")
    trials = plan(sweep)
    out = Path(out) if out is not None else default_out(sweep)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SWEEP_FILE, yaml.safe_dump(sweep.spec.model_dump(mode="json", exclude_none=True),
                                                       sort_keys=False))
    pending = [t for t in trials if not done(read_entry(t, out), retry_failed)]
    todo = {t.key for t in pending}
    for i, trial in enumerate(trials, start=1):
        if trial.key not in todo:
            print(f"[{i}/{len(trials)}] {trial.label()}: already in {trial.run_dir(out) / TRIAL_JSON}, skipped",
                  file=sys.stderr)
    workers = workers if workers is not None else sweep.spec.workers

    def record(entry: Entry) -> None:
        if entry["status"] == "failed":
            line = f"failed: {entry['error']}"
        else:
            line = f"{sweep.metric} {metric_cell(entry, sweep.metric, sweep.mode)}"
        print(f"{entry['name']}: {line}", file=sys.stderr)
        save(sweep, collect(trials, out), out)  # the table after every trial

    try:
        if pending and backend == "local":
            from ganscope.sweep.local import run_local

            run_local(pending, out, _announce(trials, out), record, 0 if workers is None else workers,
                      sweep.spec.threads, progress)
        elif pending:
            run_on_ray(trials, pending, out, metric=sweep.metric, mode=sweep.mode, resources=sweep.spec.resources,
                       scheduler=sweep.spec.scheduler, address=address or sweep.spec.address, workers=workers,
                       retry_failed=retry_failed, progress=progress)
    finally:
        entries = collect(trials, out)
        json_path, markdown_path = save(sweep, entries, out)
    ran = sum(read_entry(t, out) is not None for t in pending)
    return SweepResult(sweep, entries, best(sweep, entries), ran, len(trials) - len(pending), json_path,
                       markdown_path, write_compare(sweep, entries, out))


def run_on_ray(trials: list[Trial], pending: list[Trial], out: Path, *, metric: str, mode: str,
               resources: ResourcesSpec, scheduler: SchedulerSpec | None = None, address: str | None = None,
               workers: int | None = None, retry_failed: bool = False, progress: bool = True) -> None:
    """The Ray backend (`ganscope.sweep.ray_backend.run_ray`), refused in one line when Ray
    Tune is not installed."""
    try:
        from ganscope.sweep.ray_backend import run_ray
    except ImportError as err:
        if err.name is None or not err.name.startswith("ray"):
            raise
        raise ConfigError("backend ray needs Ray Tune: pip install 'ganscope[ray]' (or 'ray[tune]>=2.9'), or use "
                          "backend: local") from None
    run_ray(trials, pending, out, metric=metric, mode=mode, resources=resources, scheduler=scheduler, address=address,
            workers=workers, retry_failed=retry_failed, progress=progress)
