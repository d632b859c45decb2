"""The small trainer: a run folder, the loop, evaluation, checkpoints and resume.

Everything method-specific lives in the scheme; this module only schedules steps,
evaluates with the dataset's mode oracle, logs, and saves and restores state so that a
resumed run continues bit-for-bit.

Faults. A run folder always holds a complete, finite checkpoint (one is written at
creation; writes are atomic; non-finite weights are never saved), so `kill -9` at any
moment loses at most one checkpoint interval and resume rewrites the log to that
checkpoint. One process at a time trains in a folder (`RUN/.lock`). A NaN or infinity in
a loss, gradient norm or weight stops the run at its last finite checkpoint or, with
`train.on_divergence: rollback`, restores that checkpoint with lower learning rates and
trains on. The seeds of a population share one checkpoint and one optimiser per network,
so a divergence of any seed stops or rolls back the whole population, and every seed's
learning rates are lowered (from then on a seed no longer follows its solo trajectory).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import numpy as np
import torch
from tqdm import tqdm

from ganscope import distributed
from ganscope.batch import Batch
from ganscope.config import (
    Config,
    TrainConfig,
    dump_config,
    load_config,
    parse_overrides,
    piece_params,
    read_yaml,
)
from ganscope.data import Reading, evaluation_size
from ganscope.devices import configure_backends
from ganscope.errors import CheckpointError, ConfigError, GanscopeError
from ganscope.metrics.modes import ModeScore, population_summary, score_modes
from ganscope.monitor import DETECTORS, Event, Monitor, describe_events
from ganscope.monitor.monitor import suggest
from ganscope.nets.modifiers import pack_size
from ganscope.nets.stylegan import style_generator, truncated
from ganscope.schemes import SCHEMES, Parts, Scheme
from ganscope.train.checkpoint import (
    atomic_write,
    atomic_write_text,
    folder_lock,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
    save_weights,
)
from ganscope.train.log import MetricsLog, TensorBoard, jsonable
from ganscope.train.snapshots import SNAPSHOTS, final_indices, save_snapshot

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
SAMPLES = "samples.npy"
#: Marks the records that say why and where a run rolled back; the rollbacks that follow
#: from the same checkpoint keep them.
ROLLED_BACK = "rolled_back_to"


#: Streams that checkpoints written before labels and network draws existed lack; such a
#: run never drew from them, so a resume starts them fresh.
STREAMS_SINCE_LABELS = ("labels", "network", "pool")


class Evaluated(NamedTuple):
    """One evaluation: per-seed scores, the (S, n, ...) samples, the oracle's readings."""

    scores: list[ModeScore]
    samples: torch.Tensor
    readings: list[Reading]
    labels: torch.Tensor | None = None  # (S, n) the classes a conditional G was asked for


def resume_command(run_dir: Path) -> str:
    """The command that continues `run_dir` as this process's launch trained it."""
    world = distributed.current()
    if not world.parallel:
        return f"ganscope resume {run_dir}"
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world.size))
    nodes = "" if per_node == world.size else " on every node with its rendezvous flags"
    return f"torchrun --nproc_per_node={per_node} -m ganscope resume {run_dir}{nodes}"


class Interrupted(GanscopeError):
    """SIGINT or SIGTERM arrived; the run saved a checkpoint and stopped."""

    def __init__(self, run_dir: Path, step: int, signum: int) -> None:
        self.signum = signum
        super().__init__(
            f"interrupted at step {step}; checkpoint saved; continue with `{resume_command(run_dir)}`"
        )


@dataclass(frozen=True)
class Divergence:
    """NaN or infinite values found at `step`: what held them, per seed, and the
    `divergence` events that name those seeds."""

    step: int
    found: dict[int, list[str]]
    events: list[Event]

    def describe(self) -> str:
        """e.g. `seed 1: g_loss, generator weights not finite (and 2 more seeds)`."""
        seed, what = next(iter(self.found.items()))
        more = f" (and {len(self.found) - 1} more seeds)" if len(self.found) > 1 else ""
        return f"seed {seed}: {', '.join(what)} not finite{more}"


class Diverged(GanscopeError):
    """Training produced a NaN or infinity and stopped at its last finite checkpoint;
    `summary` is what `fit` wrote for that checkpoint (None when nothing was written)."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        self.summary = summary
        super().__init__(message)


def schedule_factor(step: int, tcfg: TrainConfig) -> float:
    """The learning-rate multiplier of `train.lr_schedule` at `step`: cosine (Loshchilov &
    Hutter 2017, SGDR, eq. 5, one cycle without restarts) or linear decay to
    `lr_final_fraction` at `train.steps`, starting after the first `lr_decay_start` share
    of the steps."""
    if tcfg.lr_schedule == "constant":
        return 1.0
    start = tcfg.lr_decay_start
    progress = max(0.0, (step / tcfg.steps - start) / (1 - start))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if tcfg.lr_schedule == "cosine" else 1 - progress
    return tcfg.lr_final_fraction + (1 - tcfg.lr_final_fraction) * shape


def progress_line(scores: list[ModeScore]) -> str:
    """The progress bar's score: `modes/K HQ%` per seed up to four seeds (`8/8 97% | 7/8
    95%`), else the population's mean ± std; short enough that nothing cuts it."""
    if len(scores) <= 4:
        return " | ".join(f"{s.modes_covered}/{s.n_modes} {100 * s.hq_fraction:.0f}%" for s in scores)
    stats = population_summary(scores)
    return (f"{stats['modes_covered_mean']:.1f}±{stats['modes_covered_std']:.1f}/{scores[0].n_modes} "
            f"{100 * stats['hq_fraction_mean']:.0f}±{100 * stats['hq_fraction_std']:.0f}% HQ")


def _first_difference(ours: Any, theirs: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted key whose value differs, among keys both configs have (a key one
    lacks is a default of another ganscope version, not a difference)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for k in [k for k in ours if k in theirs]:
            found = _first_difference(ours[k], theirs[k], f"{key}.{k}" if key else k)
            if found:
                return found
        return None
    return None if ours == theirs else (key, ours, theirs)


@contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """Record SIGINT/SIGTERM instead of dying mid-step; the loop checks and saves."""
    received: list[int] = []
    previous = {}

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: signals stay with the caller
        pass
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Run:
    """A GAN training run over a population of seeds, backed by a run folder."""

    #: Tags for the MLflow run (`train.mlflow`), e.g. a sweep's trial and axis values.
    tracking_tags: dict[str, str]

    def __init__(self, cfg: Config, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.tracking_tags = {}
        self.parts = Parts.from_config(cfg)
        #: Rank 0 of a data-parallel run, or the only process: it alone prints, and its
        #: run folder is the run's (the others train alike in scratch folders).
        self.leader = self.parts.world.leader
        distributed.check_config(cfg, self.parts.world, SCHEMES.get(cfg.scheme.name).data_parallel,
                                 pack_size(self.parts.d_modifiers))
        configure_backends(cfg.train.tf32)
        self.scheme: Scheme = SCHEMES.get(cfg.scheme.name)(self.parts, piece_params(cfg, "scheme"))
        if cfg.train.ema_kimg > 0:
            self.scheme.keep_average()
        # Built on the CPU (initialisation draws from CPU generators), then moved: the
        # optimisers keep the same parameter objects, and their state is created lazily.
        for module in self.scheme.modules.values():
            module.to(self.parts.device)
        self.step = 0
        self.log = MetricsLog(self.run_dir / METRICS)
        # Sums of per-seed scalars since the last log line; checkpointed so that a resumed
        # run logs the same window averages as an uninterrupted one.
        self.window: dict[str, torch.Tensor] = {}
        self.window_count = 0
        #: Steps each key of the window was logged in, where fewer than `window_count` (a
        #: lazy penalty's); checkpointed too.
        self.window_counts: dict[str, int] = {}
        #: Product of the rollbacks' learning-rate factors, and their number (checkpointed).
        self.lr_scale = 1.0
        self.rollbacks = 0
        #: The `train` section the run folder held before `open` applied overrides.
        self.previous_train: TrainConfig | None = None
        #: The latest evaluation, keyed by (step, samples per seed, noise key).
        self._last_read: tuple[tuple[int, int, int], Evaluated] | None = None

    # ---- creating and reopening run folders -------------------------------------------

    @classmethod
    def create(cls, cfg: Config, run_dir: Path) -> Run:
        """A new run in `run_dir`, which must not already hold one, with its step-0
        checkpoint: from here on the folder can always be resumed."""
        run_dir = Path(run_dir)
        run = cls(cfg, run_dir)
        with folder_lock(run_dir):
            if (run_dir / CONFIG).exists() or (run_dir / CHECKPOINT).exists():
                raise GanscopeError(
                    f"{run_dir} already holds a run; continue it with `ganscope resume {run_dir}` or choose another -o"
                )
            atomic_write_text(run_dir / CONFIG, dump_config(cfg))
            run.save()
        return run

    @classmethod
    def open(cls, run_dir: Path, overrides: list[str] | None = None, device: str | None = None) -> Run:
        """Reopen a run at its last checkpoint; only `train.*` keys may be overridden, and
        they are written back to the folder. `device` places the run for this process only
        (to evaluate a GPU run on a CPU-only machine, say), leaving the folder's config as it is."""
        run_dir = Path(run_dir)
        if not (run_dir / CONFIG).is_file():
            raise CheckpointError(f"{run_dir} is not a ganscope run folder (no {CONFIG})")
        for path, _ in parse_overrides(overrides or []):
            if path[0] != "train":
                raise ConfigError(
                    f"{'.'.join(path)}: a resumed run keeps its model; only train.* keys may change"
                )
        saved = read_yaml(run_dir / CONFIG)
        placed = [f"train.device={device}"] if device is not None else []
        run = cls(load_config(saved, [*(overrides or []), *placed]), run_dir)
        run.previous_train = load_config(saved).train
        # Killed between writing its config and its step-0 checkpoint, a run has nothing
        # to lose: it starts from step 0. Past that, a missing checkpoint is an error.
        if (run_dir / CHECKPOINT).exists() or (run_dir / METRICS).exists():
            run.load_state_dict(load_checkpoint(run_dir / CHECKPOINT))
        if overrides:
            run.log.read()  # a damaged log stops the resume here, before the config changes
            with folder_lock(run_dir):
                atomic_write_text(run_dir / CONFIG, dump_config(run.cfg))
        return run

    # ---- state ------------------------------------------------------------------------

    def _model_config(self) -> dict[str, Any]:
        """Everything the checkpoint's tensors depend on: the config less `train`, which a
        resume may change (the seeds are checked on their own)."""
        return {k: v for k, v in self.cfg.to_dict().items() if k != "train"}

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "step": self.step,
            "seeds": self.parts.seeds,
            "config": self._model_config(),
            "modules": {k: m.state_dict() for k, m in self.scheme.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.scheme.optimizers.items()},
            "streams": {k: r.get_state() for k, r in self.parts.streams.items()},
            "window": dict(self.window),
            "window_count": self.window_count,
            "window_counts": dict(self.window_counts),
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint, refusing one written for another config, before any change."""
        where = self.run_dir / CHECKPOINT
        if state.get("seeds") != self.parts.seeds:
            raise CheckpointError(
                f"{where} holds seeds {state.get('seeds')} but {CONFIG} asks for {self.parts.seeds}; "
                f"put back this run's own checkpoint or train a new run"
            )
        different = _first_difference(self._model_config(), state.get("config", {}))
        if different:
            key, ours, theirs = different
            raise CheckpointError(
                f"{where} was written for another config ({key}: {theirs!r} there, {ours!r} in {CONFIG}); "
                f"put back this run's own checkpoint or train a new run"
            )
        try:
            for k, module in self.scheme.modules.items():
                module.load_state_dict(state["modules"][k])
            for k, opt in self.scheme.optimizers.items():
                opt.load_state_dict(state["optimizers"][k])
            for k, rng in self.parts.streams.items():
                if k in state["streams"] or k not in STREAMS_SINCE_LABELS:
                    rng.set_state(state["streams"][k])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(
                f"{where} does not match this run's networks ({str(err).splitlines()[0]}); "
                f"put back this run's own checkpoint or train a new run"
            ) from None
        self._last_read = None  # other weights now, maybe at a step already evaluated
        self.step = int(state["step"])
        self.window = {k: v.to(self.parts.device) for k, v in state["window"].items()}
        self.window_count = int(state["window_count"])
        counts = state.get("window_counts", {})  # absent before lazy penalties: every key every step
        self.window_counts = {k: int(counts.get(k, self.window_count)) for k in self.window}
        self.lr_scale = float(state.get("lr_scale", 1.0))  # checkpoints from before rollbacks
        self.rollbacks = int(state.get("rollbacks", 0))

    def save(self) -> None:
        """Write the checkpoint; weights with a NaN or infinity never replace a finite one."""
        bad = self._non_finite_weights()
        if bad:
            raise Diverged(f"refusing to save a checkpoint at step {self.step}: "
                           f"{Divergence(self.step, bad).describe()}; {self.run_dir / CHECKPOINT} is kept")
        save_checkpoint(self.run_dir / CHECKPOINT, self.state_dict())

    def resume_message(self) -> str:
        """`resumed from step N of M`, and what changed `train.*` keys do to the learning
        rate at step N: a decay schedule is a function of step / train.steps, so raising
        `train.steps` stretches it and the learning rate jumps back up."""
        tcfg = self.cfg.train
        line = f"resumed from step {self.step} of {tcfg.steps}"
        if self.step >= tcfg.steps:
            line += "; it already reached train.steps: raise it with -s train.steps=N to train on"
        before = self.previous_train or tcfg
        if before.lr_schedule == tcfg.lr_schedule == "constant":
            return line
        changed = [k for k in ("steps", "lr_schedule", "lr_final_fraction") if getattr(before, k) != getattr(tcfg, k)]
        if not changed:
            return line
        if changed == ["steps"]:
            how = (f"train.steps {before.steps} -> {tcfg.steps} "
                   f"{'stretches' if tcfg.steps > before.steps else 'compresses'} the {tcfg.lr_schedule} "
                   f"learning-rate decay over {tcfg.steps} steps")
        else:
            how = ", ".join(f"train.{k} {getattr(before, k)} -> {getattr(tcfg, k)}" for k in changed)
            how += " changes the learning-rate schedule"
        return f"{line}; {how}: {self._learning_rate_change(before)}"

    def _learning_rate_change(self, before: TrainConfig) -> str:
        """How each optimiser's learning rate at this step moves from the `before` schedule."""
        old, new = (schedule_factor(self.step, t) * self.lr_scale for t in (before, self.cfg.train))
        rates = {
            name: (base * old, base * new)
            for name, opt in self.scheme.optimizers.items()
            for base in {g.get("initial_lr", g["lr"]) for g in opt.param_groups}
        }
        if len(set(rates.values())) > 1:
            shown = ", ".join(f"{name} {a:.3g} -> {b:.3g}" for name, (a, b) in rates.items())
            return f"at step {self.step} the learning rates change: {shown}"
        (a, b), = set(rates.values())
        if a == b:
            return f"the learning rate stays at {a:.3g} at step {self.step}"
        return f"the learning rate {'rises' if b > a else 'falls'} from {a:.3g} to {b:.3g} at step {self.step}"

    # ---- sampling and scoring ------------------------------------------------------------

    def sample(self, n: int, key: int | None = None, labels: torch.Tensor | None = None,
               truncation: float | None = None) -> torch.Tensor:
        """(S, n, *sample_shape) samples; `key` (default: the current step) fixes the inputs
        (`Scheme.sample_inputs`: the noise and, in a conditional run, the labels unless
        `labels` (S, n) says); `truncation` psi pulls a style-based G's styles towards their
        average (`ganscope.nets.stylegan`)."""
        inputs = self.sample_inputs(n, key, labels)
        if truncation is None:
            return self._generate(inputs)
        sampler = self.scheme.sampling_generator()
        if style_generator(sampler) is None:
            raise ConfigError(f"truncation needs a style-based generator, and this run's is "
                              f"{self.cfg.generator.name}; drop --truncation or train with generator.name=stylegan")
        with truncated(sampler, truncation):
            return self._generate(inputs)

    def sample_inputs(self, n: int, key: int | None = None, labels: torch.Tensor | None = None) -> Batch:
        """The inputs `sample` generates from under `key` (default: the current step)."""
        return self.scheme.sample_inputs(n, self.step if key is None else key, labels)

    def _generate(self, inputs: Batch) -> torch.Tensor:
        self.scheme.train(False)
        try:
            return self.scheme.generate(inputs)
        finally:
            self.scheme.train(True)

    def evaluate(self, n: int | None = None, key: int | None = None) -> tuple[list[ModeScore], torch.Tensor]:
        """Scores of (S, n, ...) samples, which come back on the CPU, where the oracle reads them."""
        scores, samples, *_ = self._read_samples(n, key)
        return scores, samples

    def _read_samples(self, n: int | None = None, key: int | None = None) -> Evaluated:
        """`evaluate` with the oracle's reading of each seed's samples, which the monitor
        reuses: an image oracle classifies each sample once per evaluation. The last one is
        kept, so that `finish` does not draw and classify the same samples again."""
        n = n or evaluation_size(self.cfg, self.parts.data)
        key = self.step if key is None else key
        if self._last_read is not None and self._last_read[0] == (self.step, n, key):
            return self._last_read[1]
        inputs = self.sample_inputs(n, key)
        samples = self._generate(inputs).cpu()
        labels = None if inputs.labels is None else inputs.labels.cpu()
        readings = [self.parts.data.oracle.read(s) for s in samples]
        per_seed_labels = [None] * len(samples) if labels is None else list(labels)
        evaluated = Evaluated(
            [score_modes(s, self.parts.data.oracle, r, y, self.parts.data.mode_labels)
             for s, r, y in zip(samples, readings, per_seed_labels)],
            samples, readings, labels,
        )
        self._last_read = ((self.step, n, key), evaluated)
        return evaluated

    def verdict(self, scores: list[ModeScore]) -> str:
        name = self.parts.data.name
        if len(scores) == 1:
            return f"{name}: {scores[0].summary()}"
        stats = population_summary(scores)
        k = scores[0].n_modes
        text = (
            f"{name} ({len(scores)} seeds): {stats['modes_covered_mean']:.1f} ± {stats['modes_covered_std']:.1f}/{k} "
            f"modes covered, {100 * stats['hq_fraction_mean']:.1f} ± {100 * stats['hq_fraction_std']:.1f}% high "
            f"quality, reverse KL {stats['reverse_kl_mean']:.3f} ± {stats['reverse_kl_std']:.3f}"
        )
        for key, name in (("label_fidelity", "label fidelity"), ("intra_class_coverage", "intra-class coverage")):
            if f"{key}_mean" in stats:
                text += f", {name} {100 * stats[f'{key}_mean']:.1f} ± {100 * stats[f'{key}_std']:.1f}%"
        if "protocol_modes_mean" in stats:
            text += (f"; protocol over all samples: {stats['protocol_modes_mean']:.1f} ± "
                     f"{stats['protocol_modes_std']:.1f} modes, KL {stats['protocol_kl_mean']:.3f} ± "
                     f"{stats['protocol_kl_std']:.3f}")
        return text

    # ---- the loop -----------------------------------------------------------------------

    def _eval_records(self, scores: list[ModeScore], diversity: list[dict[str, float]]) -> list[dict[str, Any]]:
        """Mode scores plus the monitor's diversity statistics, one record per seed."""
        return [
            {"step": self.step, "seed": seed, "kind": "eval", **score.to_dict(), **extra}
            for seed, score, extra in zip(self.parts.seeds, scores, diversity, strict=True)
        ]

    def _set_learning_rates(self) -> None:
        """Every optimiser's learning rate: its configured value times `train.lr_schedule`'s
        factor times the rollbacks' `lr_scale`.

        A pure function of the step and checkpointed numbers, so resume needs no scheduler
        state; decaying at the end of training lets samples settle into narrow modes (the
        ring's std is 0.01).
        """
        factor = schedule_factor(self.step, self.cfg.train) * self.lr_scale
        for opt in self.scheme.optimizers.values():
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor

    def _accumulate(self, out: dict[str, torch.Tensor]) -> None:
        for k, v in out.items():
            if not k.endswith("grad_norm"):  # diagnostics are instantaneous, not averaged
                self.window[k] = self.window[k] + v if k in self.window else v.clone()
                self.window_counts[k] = self.window_counts.get(k, 0) + 1
        self.window_count += 1

    def _train_records(self, latest: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        """Window averages of the losses plus the latest diagnostics, one record per seed."""
        values = {k: (v / self.window_counts[k]).tolist() for k, v in self.window.items()}
        values.update({k: v.tolist() for k, v in latest.items() if k not in self.window})
        self.window, self.window_count, self.window_counts = {}, 0, {}
        return [
            {"step": self.step, "seed": seed, "kind": "train", **{k: v[i] for k, v in values.items()}}
            for i, seed in enumerate(self.parts.seeds)
        ]

    def logged_by_checkpoint(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records an uninterrupted run had written when it saved its checkpoint at
        this step, so that a resumed log equals an uninterrupted one: all of earlier steps,
        and all of this step but a final evaluation off the `eval_every` schedule (a shorter
        run's last one) with the events it raised, which follow it in the log."""
        off_schedule = self.step % self.cfg.train.eval_every != 0
        kept, final_evaluation = [], False
        for r in records:
            now = r["step"] == self.step
            final_evaluation = final_evaluation or (now and off_schedule and r["kind"] == "eval")
            if r["step"] < self.step or (now and not (final_evaluation and r["kind"] in ("eval", "event"))):
                kept.append(r)
        return kept

    def _monitor_from_log(self) -> Monitor:
        """A monitor that has seen the log: it re-derives its state, and the events it
        raises on the way are logged already."""
        monitor = Monitor(self.cfg, self.parts.data)
        monitor.observe(self.log.read())
        return monitor

    def _open_board(self) -> TensorBoard:
        """TensorBoard, dropping any scalars an earlier process wrote after this step."""
        folder = self.run_dir / "tensorboard"
        return TensorBoard(folder, purge_step=self.step + 1 if folder.exists() else None)

    def fit(self, progress: bool = True) -> dict[str, Any]:
        """Train to `train.steps`, evaluating, logging and checkpointing on schedule, holding
        the run folder's lock; an opened run first says where it resumes. A NaN or infinity
        raises `Diverged` after writing the summary of the last finite checkpoint, or rolls
        back (`train.on_divergence`)."""
        tcfg = self.cfg.train
        if tcfg.mlflow.enabled:
            from ganscope.tracking import require_mlflow

            require_mlflow()
        with folder_lock(self.run_dir):
            for folder in (self.run_dir, self.run_dir / SNAPSHOTS):
                remove_stale_temporaries(folder)
            self.log.rewrite(self.logged_by_checkpoint)
            monitor = self._monitor_from_log()
            if self.previous_train is not None and self.leader:  # after the lock and the log: a refused resume says one line
                print(self.resume_message(), file=sys.stderr)
            stopped: Event | None = None
            divergence: Divergence | None = None
            board = self._open_board()
            started, steps_done = time.perf_counter(), 0
            bar = tqdm(total=tcfg.steps, initial=self.step, disable=not (progress and self.leader), dynamic_ncols=True,
                       desc=f"{self.parts.data.name} {self.cfg.objective.name}", unit="step")
            try:
                with stop_on_signals() as received:
                    while self.step < tcfg.steps:
                        stopped, divergence, interrupted = self._advance(monitor, board, bar, bool(received))
                        steps_done += 1
                        if divergence is not None:
                            if tcfg.on_divergence == "stop" or self.rollbacks >= tcfg.max_rollbacks:
                                break
                            board.close()
                            monitor, board = self._roll_back(divergence)
                            bar.n = self.step
                            continue
                        bar.update(1)
                        if interrupted:
                            raise Interrupted(self.run_dir, self.step, received[0])
                        if stopped is not None:
                            break
            finally:
                bar.close()
                board.close()
            elapsed = time.perf_counter() - started
            if divergence is not None:
                self._stop_diverged(divergence, elapsed, steps_done)
            self.save()
            return self.finish(elapsed, steps_done, stopped)

    def _advance(
        self, monitor: Monitor, board: TensorBoard, bar: tqdm, interrupted: bool
    ) -> tuple[Event | None, Divergence | None, bool]:
        """One training step, then what is due after it: the log, a check for NaN and
        infinities, an evaluation, a checkpoint. Returns the event to stop on, if any, or
        the divergence found (then nothing was evaluated or saved), and whether a signal
        asked to stop (`interrupted` here, or on any data-parallel process)."""
        tcfg = self.cfg.train
        diagnostics = (self.step + 1) % tcfg.log_every == 0
        self._set_learning_rates()
        self.parts.step = self.step
        out, interrupted = distributed.average_step(self.scheme.train_step(diagnostics), interrupted)
        self.step += 1
        if self.cfg.train.ema_kimg > 0:
            self.scheme.update_average(self.step)
        self._accumulate(out)
        evaluating = self.step % tcfg.eval_every == 0 or self.step == tcfg.steps
        saving = self.step % tcfg.checkpoint_every == 0 or interrupted
        records = self._train_records(out) if diagnostics else []
        events = monitor.observe(records)  # a non-finite loss: divergence, at once
        divergence = self._find_divergence(records, events) if records or evaluating or saving else None
        self._report(events + ([e for e in divergence.events if e not in events] if divergence else []), board)
        self.log.append(records)
        board.scalars(records)
        if divergence is not None:
            return None, divergence, interrupted
        stopped = monitor.stop_reason(events)
        if evaluating:
            # Every process evaluates the same weights alike; rank 0's decision is taken
            # all the same, so that no process trains on while another stopped.
            stopped = distributed.from_leader(self._evaluate_and_log(monitor, board, bar) or stopped)
        if saving:
            self.save()
        return stopped, None, interrupted

    def _evaluate_and_log(self, monitor: Monitor, board: TensorBoard, bar: tqdm) -> Event | None:
        """Score every seed, keep a snapshot, log and monitor; the event to stop on, if any."""
        scores, samples, readings, labels = self._read_samples()
        save_snapshot(self.run_dir, self.step, samples)  # the report's per-evaluation pictures
        records = self._eval_records(scores, monitor.measure(samples, readings, labels))
        self.log.append(records)
        board.scalars(records)
        events = monitor.observe(records)
        self._report(events, board)
        bar.set_postfix_str(progress_line(scores))
        return monitor.stop_reason(events)

    def _report(self, events: list[Event], board: TensorBoard) -> None:
        """Monitor events to the metrics log, TensorBoard (text) and the console; tqdm.write
        prints above the progress bar, on stderr so that `--json` output stays clean."""
        if not events:
            return
        self.log.append(e.to_record() for e in events)
        for e in events:
            board.text(f"events/seed_{e.seed}", e.line(), e.step)
            if self.leader:
                tqdm.write(e.line(), file=sys.stderr)

    # ---- divergence -----------------------------------------------------------------------

    def _non_finite_weights(self) -> dict[int, list[str]]:
        """Per seed, the networks whose weights or buffers hold a NaN or infinity (every
        tensor has the population's seed axis first)."""
        found: dict[int, list[str]] = {}
        n_seeds = len(self.parts.seeds)
        for name, module in self.scheme.modules.items():
            tensors = [t for t in module.state_dict().values() if t.is_floating_point()]
            finite = torch.stack([torch.isfinite(t).reshape(n_seeds, -1).all(1) for t in tensors]).all(0)
            for i in torch.nonzero(~finite).flatten().tolist():
                found.setdefault(self.parts.seeds[i], []).append(f"{name} weights")
        return found

    def _find_divergence(self, records: list[dict[str, Any]], events: list[Event]) -> Divergence | None:
        """NaN or infinities in this step's train records, the losses summed since the last
        one, or the weights; None when all are finite. Seeds the monitor's `events` do not
        name (its detector judges losses only; a disabled monitor judges nothing) get a
        `divergence` event here."""
        found: dict[int, list[str]] = {}
        for r in records:
            bad = [k for k, v in r.items() if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                found.setdefault(r["seed"], []).extend(bad)
        for key, sums in self.window.items():
            for i in torch.nonzero(~torch.isfinite(sums)).flatten().tolist():
                found.setdefault(self.parts.seeds[i], []).append(key)
        for seed, networks in self._non_finite_weights().items():
            found.setdefault(seed, []).extend(networks)
        if not found:
            return None
        found = {seed: found[seed] for seed in self.parts.seeds if seed in found}
        named = [e for e in events if e.kind == "divergence" and e.status == "started" and e.seed in found]
        remedy = suggest(self.cfg, DETECTORS.get("divergence").remedies)
        made = [
            Event("divergence", seed, self.step, self.step, {}, f"{', '.join(what)} not finite", remedy)
            for seed, what in found.items()
            if seed not in {e.seed for e in named}
        ]
        return Divergence(self.step, found, named + made)

    def _roll_back(self, divergence: Divergence) -> tuple[Monitor, TensorBoard]:
        """Restore the last checkpoint with every learning rate times
        `train.rollback_lr_factor`, rewrite the log to it (keeping why earlier rollbacks
        from it happened) and log this rollback; the new monitor and TensorBoard."""
        scale, count = self.lr_scale * self.cfg.train.rollback_lr_factor, self.rollbacks + 1
        self.load_state_dict(load_checkpoint(self.run_dir / CHECKPOINT))
        self.lr_scale, self.rollbacks = scale, count
        self.log.rewrite(
            lambda records: self.logged_by_checkpoint(records)
            + [r for r in records if ROLLED_BACK in r and r["step"] > self.step]
        )
        text = (f"step {divergence.step}, {divergence.describe()}; rolled back to step {self.step} with the "
                f"learning rates x{scale:g} (rollback {count} of at most {self.cfg.train.max_rollbacks})")
        self.log.append([{**e.to_record(), ROLLED_BACK: self.step} for e in divergence.events] + [
            {"step": divergence.step, "seed": next(iter(divergence.found)), "kind": "rollback",
             ROLLED_BACK: self.step, "lr_scale": scale, "rollback": count, "text": text}
        ])
        if self.leader:
            tqdm.write(text, file=sys.stderr)
        board = self._open_board()
        board.text("events/rollback", text, divergence.step)
        return self._monitor_from_log(), board

    def _stop_diverged(self, divergence: Divergence, elapsed: float, steps_done: int) -> NoReturn:
        """Finish from the last finite checkpoint, then raise `Diverged` with one line."""
        tried = self.lr_scale, self.rollbacks  # this process's rollbacks, for the summary
        self.load_state_dict(load_checkpoint(self.run_dir / CHECKPOINT))
        self.lr_scale, self.rollbacks = tried
        summary = self.finish(elapsed, steps_done, diverged=divergence)
        after = f" after {self.rollbacks} rollback(s)" if self.rollbacks else ""
        fix = ("train again with lower optimizer.*.lr" if self.cfg.train.on_divergence == "rollback"
               else f"continue with `{resume_command(self.run_dir)} -s train.on_divergence=rollback` "
               f"or train again with lower optimizer.*.lr")
        raise Diverged(
            f"training diverged at step {divergence.step}{after} ({divergence.describe()}); the last finite "
            f"checkpoint (step {self.step}) is kept in {self.run_dir} and summarised in {SUMMARY}; {fix}",
            summary,
        )

    def finish(self, elapsed: float, steps_done: int, stopped: Event | None = None,
               diverged: Divergence | None = None) -> dict[str, Any]:
        """Final scores, samples, weights, summary, plots and the HTML page (unless
        `train.report` is off); `stopped` is the event that ended training early
        (`train.monitor.stop_on`), if one did, and `diverged` the NaN or infinity that did
        (the scores are then the last finite checkpoint's)."""
        scores, samples = self.evaluate(key=self.step)
        kept = torch.from_numpy(final_indices(samples.shape[1], samples[0, 0].numel()))
        atomic_write(self.run_dir / SAMPLES, lambda tmp: _save_npy(tmp, samples[:, kept].cpu().numpy()))
        self.scheme.train(False)
        try:
            own_scores, own_text = self.scheme.final_scores(evaluation_size(self.cfg, self.parts.data), self.step)
            for name, array in self.scheme.final_arrays(self.step).items():
                atomic_write(self.run_dir / name, lambda tmp, array=array: _save_npy(tmp, array.numpy()))
        finally:
            self.scheme.train(True)
        for name, module in self.scheme.modules.items():
            save_weights(self.run_dir / f"{name}.safetensors", module)
        events = [r for r in self.log.read() if r["kind"] == "event"]
        verdict = f"{self.verdict(scores)} (modes: {self.parts.data.oracle.description})"
        if own_text:
            verdict = f"{verdict}; {own_text}"
        # What holds at the end, re-judged from the log with the last evaluation as final.
        monitor = self._monitor_from_log()
        monitor.conclude()
        if self.cfg.train.monitor.enabled:
            verdict = f"{verdict}; {describe_events(events, monitor.current)}"
        if self.rollbacks:
            verdict = f"{verdict}; rolled back {self.rollbacks} time(s), learning rates x{self.lr_scale:g}"
        if stopped is not None:
            verdict = f"stopped early at step {self.step} on {stopped.kind} (seed {stopped.seed}); {verdict}"
        if diverged is not None:
            verdict = (f"diverged at step {diverged.step} ({diverged.describe()}); "
                       f"scores of the last finite checkpoint, step {self.step}: {verdict}")
        summary = {
            "step": self.step,
            "seeds": self.parts.seeds,
            "verdict": verdict,
            "modes_found_by": self.parts.data.oracle.description,
            "scores": [s.to_dict() for s in scores],
            **{k: v for k, v in population_summary(scores).items() if not isinstance(v, list)},
            **own_scores,
            "wall_time_s": elapsed,
            "seed_steps_per_s": steps_done * len(scores) / elapsed if elapsed > 0 else None,
            "events": events,
            "conditions_at_end": {str(seed): sorted(kind for s, kind in monitor.current if s == seed)
                                  for seed in self.parts.seeds},
            "stopped_early": None if stopped is None else stopped.to_record(),
            "diverged": None if diverged is None else {"step": diverged.step, "non_finite": diverged.found},
            "rollbacks": self.rollbacks,
            "lr_scale": self.lr_scale,
        }
        atomic_write_text(self.run_dir / SUMMARY, json.dumps(jsonable(summary), indent=2))
        if not self.leader:  # a data-parallel follower's folder is scratch (`process_folder`)
            return summary
        if self.cfg.train.report:
            from ganscope.report import write_report  # matplotlib and scikit-learn: only for the page

            write_report(self.run_dir)
        if self.cfg.train.mlflow.enabled:
            from ganscope.tracking import copy_or_warn

            mlflow = self.cfg.train.mlflow
            copy_or_warn(self.run_dir, mlflow.uri, mlflow.experiment, self.tracking_tags)
        return summary

def process_folder(leader_folder: Callable[[], Path], resuming: bool) -> Path:
    """The folder this process trains in: `leader_folder()` for rank 0 or the only process.

    The other processes of a data-parallel run train alike in scratch folders of their own
    (removed at exit) that hold, when `resuming`, rank 0's config, checkpoint and log, sent
    over the process group, so that no shared file system is needed. A refusal on rank 0
    (a folder that is not empty, say) stops every process."""
    world = distributed.current()
    if not world.parallel:
        return leader_folder()
    folder, refusal, files = None, None, {}
    if world.leader:
        try:
            folder = Path(leader_folder())
            if resuming:
                files = {name: (folder / name).read_bytes() for name in (CONFIG, CHECKPOINT, METRICS)
                         if (folder / name).is_file()}
        except GanscopeError as err:
            refusal = err
    said, files = distributed.from_leader((None if refusal is None else str(refusal), files))
    if refusal is not None:
        raise refusal
    if said is not None:
        raise GanscopeError(said)
    if folder is not None:
        return folder
    scratch = Path(tempfile.mkdtemp(prefix=f"ganscope-rank{world.rank}-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    for name, content in files.items():
        (scratch / name).write_bytes(content)
    return scratch


def _save_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:
        np.save(handle, array)
