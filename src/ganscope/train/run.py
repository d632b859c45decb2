"""The small trainer: a run folder, the loop, evaluation, checkpoints and resume.

Everything method-specific lives in the scheme; this module only schedules steps,
evaluates with the dataset's mode oracle, logs, and saves and restores state so that a
resumed run continues bit-for-bit.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ganscope.config import Config, dump_config, load_config, parse_overrides, piece_params, read_yaml
from ganscope.errors import CheckpointError, ConfigError, GanscopeError
from ganscope.metrics.modes import ModeScore, population_summary, score_modes
from ganscope.monitor import Event, Monitor, describe_events
from ganscope.schemes import SCHEMES, Parts, Scheme
from ganscope.seeding import PopulationRandom
from ganscope.train.checkpoint import atomic_write, atomic_write_text, load_checkpoint, save_checkpoint, save_weights
from ganscope.train.log import MetricsLog, TensorBoard, jsonable
from ganscope.train.snapshots import save_snapshot

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
SAMPLES = "samples.npy"


class Interrupted(GanscopeError):
    """SIGINT or SIGTERM arrived; the run saved a checkpoint and stopped."""

    def __init__(self, run_dir: Path, step: int, signum: int) -> None:
        self.signum = signum
        super().__init__(
            f"interrupted at step {step}; checkpoint saved; continue with `ganscope resume {run_dir}`"
        )


class Diverged(GanscopeError):
    """A loss became NaN or infinite."""


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

    def __init__(self, cfg: Config, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.parts = Parts.from_config(cfg)
        self.scheme: Scheme = SCHEMES.get(cfg.scheme.name)(self.parts, piece_params(cfg, "scheme"))
        self.step = 0
        self.log = MetricsLog(self.run_dir / METRICS)
        # Sums of per-seed scalars since the last log line; checkpointed so that a resumed
        # run logs the same window averages as an uninterrupted one.
        self.window: dict[str, torch.Tensor] = {}
        self.window_count = 0

    # ---- creating and reopening run folders -------------------------------------------

    @classmethod
    def create(cls, cfg: Config, run_dir: Path) -> Run:
        """A new run in `run_dir`, which must not already hold one."""
        run_dir = Path(run_dir)
        if (run_dir / CONFIG).exists() or (run_dir / CHECKPOINT).exists():
            raise GanscopeError(
                f"{run_dir} already holds a run; continue it with `ganscope resume {run_dir}` or choose another -o"
            )
        run = cls(cfg, run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CONFIG, dump_config(cfg))
        return run

    @classmethod
    def open(cls, run_dir: Path, overrides: list[str] | None = None) -> Run:
        """Reopen a run at its last checkpoint; only `train.*` keys may be overridden."""
        run_dir = Path(run_dir)
        if not (run_dir / CONFIG).is_file():
            raise CheckpointError(f"{run_dir} is not a ganscope run folder (no {CONFIG})")
        for path, _ in parse_overrides(overrides or []):
            if path[0] != "train":
                raise ConfigError(
                    f"{'.'.join(path)}: a resumed run keeps its model; only train.* keys may change"
                )
        cfg = load_config(read_yaml(run_dir / CONFIG), overrides)
        state = load_checkpoint(run_dir / CHECKPOINT)
        run = cls(cfg, run_dir)
        run.load_state_dict(state)
        if overrides:
            atomic_write_text(run_dir / CONFIG, dump_config(cfg))
        return run

    # ---- state ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "step": self.step,
            "seeds": self.parts.seeds,
            "modules": {k: m.state_dict() for k, m in self.scheme.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.scheme.optimizers.items()},
            "streams": {k: r.get_state() for k, r in self.parts.streams.items()},
            "window": dict(self.window),
            "window_count": self.window_count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("seeds") != self.parts.seeds:
            raise CheckpointError(
                f"checkpoint holds seeds {state.get('seeds')} but the config asks for {self.parts.seeds}"
            )
        try:
            for k, module in self.scheme.modules.items():
                module.load_state_dict(state["modules"][k])
            for k, opt in self.scheme.optimizers.items():
                opt.load_state_dict(state["optimizers"][k])
            for k, rng in self.parts.streams.items():
                rng.set_state(state["streams"][k])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"checkpoint does not match this run's networks ({str(err).splitlines()[0]})") from None
        self.step = int(state["step"])
        self.window = dict(state["window"])
        self.window_count = int(state["window_count"])

    def save(self) -> None:
        save_checkpoint(self.run_dir / CHECKPOINT, self.state_dict())

    # ---- sampling and scoring ------------------------------------------------------------

    def sample(self, n: int, key: int | None = None) -> torch.Tensor:
        """(S, n, *sample_shape) samples; `key` (default: the current step) fixes the noise."""
        rng = PopulationRandom(self.parts.seeds, "eval", self.step if key is None else key)
        z = self.parts.noise.draw(rng, n)
        self.scheme.train(False)
        try:
            return self.scheme.generate(z)
        finally:
            self.scheme.train(True)

    def evaluate(self, n: int | None = None, key: int | None = None) -> tuple[list[ModeScore], torch.Tensor]:
        samples = self.sample(n or self.cfg.train.eval_samples, key)
        return [score_modes(s, self.parts.data.oracle) for s in samples], samples

    def verdict(self, scores: list[ModeScore]) -> str:
        name = self.parts.data.name
        if len(scores) == 1:
            return f"{name}: {scores[0].summary()}"
        stats = population_summary(scores)
        k = scores[0].n_modes
        return (
            f"{name} ({len(scores)} seeds): {stats['modes_covered_mean']:.1f} ± {stats['modes_covered_std']:.1f}/{k} "
            f"modes covered, {100 * stats['hq_fraction_mean']:.1f} ± {100 * stats['hq_fraction_std']:.1f}% high "
            f"quality, reverse KL {stats['reverse_kl_mean']:.3f} ± {stats['reverse_kl_std']:.3f}"
        )

    # ---- the loop -----------------------------------------------------------------------

    def _eval_records(self, scores: list[ModeScore], diversity: list[dict[str, float]]) -> list[dict[str, Any]]:
        """Mode scores plus the monitor's diversity statistics, one record per seed."""
        return [
            {"step": self.step, "seed": seed, "kind": "eval", **score.to_dict(), **extra}
            for seed, score, extra in zip(self.parts.seeds, scores, diversity, strict=True)
        ]

    def _set_learning_rates(self) -> None:
        """Decay every optimiser's learning rate with `train.lr_schedule`.

        A pure function of the step, so resume needs no scheduler state; decaying at the
        end of training lets samples settle into narrow modes (the ring's std is 0.01).
        """
        tcfg = self.cfg.train
        if tcfg.lr_schedule == "constant":
            return
        progress = self.step / tcfg.steps
        shape = 0.5 * (1 + math.cos(math.pi * progress)) if tcfg.lr_schedule == "cosine" else 1 - progress
        factor = tcfg.lr_final_fraction + (1 - tcfg.lr_final_fraction) * shape
        for opt in self.scheme.optimizers.values():
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor

    def _accumulate(self, out: dict[str, torch.Tensor]) -> None:
        for k, v in out.items():
            if not k.endswith("grad_norm"):  # diagnostics are instantaneous, not averaged
                self.window[k] = self.window[k] + v if k in self.window else v.clone()
        self.window_count += 1

    def _train_records(self, latest: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        """Window averages of the losses plus the latest diagnostics, one record per seed."""
        values = {k: (v / self.window_count).tolist() for k, v in self.window.items()}
        values.update({k: v.tolist() for k, v in latest.items() if k not in self.window})
        self.window, self.window_count = {}, 0
        return [
            {"step": self.step, "seed": seed, "kind": "train", **{k: v[i] for k, v in values.items()}}
            for i, seed in enumerate(self.parts.seeds)
        ]

    def is_scheduled(self, record: dict[str, Any]) -> bool:
        """Whether an uninterrupted run would have logged this record (final evaluations
        of a shorter run are not), so a resumed log equals an uninterrupted one."""
        at_evals = record["kind"] in ("eval", "event")  # events are decided at evaluations
        every = self.cfg.train.eval_every if at_evals else self.cfg.train.log_every
        return record["step"] < self.step or (record["step"] == self.step and self.step % every == 0)

    def fit(self, progress: bool = True) -> dict[str, Any]:
        """Train to `train.steps`, evaluating, logging and checkpointing on schedule."""
        tcfg = self.cfg.train
        monitor = Monitor(self.cfg, self.parts.data)
        if self.step > 0:
            self.log.keep_only(self.is_scheduled)
            monitor.observe(self.log.read())  # re-derive its state; those events are logged already
        stopped: Event | None = None
        board = TensorBoard(self.run_dir / "tensorboard", purge_step=self.step + 1 if self.step else None)
        started, start_step = time.perf_counter(), self.step
        bar = tqdm(total=tcfg.steps, initial=self.step, disable=not progress, dynamic_ncols=True,
                   desc=f"{self.parts.data.name} {self.cfg.objective.name}", unit="step")
        try:
            with stop_on_signals() as received:
                while self.step < tcfg.steps:
                    diagnostics = (self.step + 1) % tcfg.log_every == 0
                    self._set_learning_rates()
                    out = self.scheme.train_step(diagnostics)
                    self.step += 1
                    self._accumulate(out)
                    if diagnostics:
                        records = self._train_records(out)
                        self._report(monitor.observe(records), board)  # a non-finite loss: divergence
                        self._check_finite(records)
                        self.log.append(records)
                        board.scalars(records)
                    if self.step % tcfg.eval_every == 0 or self.step == tcfg.steps:
                        scores, samples = self.evaluate()
                        save_snapshot(self.run_dir, self.step, samples)  # the report's per-evaluation pictures
                        records = self._eval_records(scores, monitor.measure(samples))
                        self.log.append(records)
                        board.scalars(records)
                        events = monitor.observe(records)
                        self._report(events, board)
                        stopped = monitor.stop_reason(events)
                        bar.set_postfix_str(self.verdict(scores).split(": ", 1)[1][:60])
                    if self.step % tcfg.checkpoint_every == 0:
                        self.save()
                    bar.update(1)
                    if received:
                        self.save()
                        raise Interrupted(self.run_dir, self.step, received[0])
                    if stopped is not None:
                        break
        finally:
            bar.close()
            board.close()
        elapsed = time.perf_counter() - started
        self.save()
        return self.finish(elapsed, self.step - start_step, stopped)

    def _report(self, events: list[Event], board: TensorBoard) -> None:
        """Monitor events to the metrics log, TensorBoard (text) and the console; tqdm.write
        prints above the progress bar, on stderr so that `--json` output stays clean."""
        if not events:
            return
        self.log.append(e.to_record() for e in events)
        for e in events:
            board.text(f"events/seed_{e.seed}", e.line(), e.step)
            tqdm.write(e.line(), file=sys.stderr)

    def _check_finite(self, records: list[dict[str, Any]]) -> None:
        for r in records:
            bad = [k for k, v in r.items() if isinstance(v, float) and not np.isfinite(v)]
            if bad:
                raise Diverged(
                    f"training diverged at step {r['step']} for seed {r['seed']} ({', '.join(bad)} not finite); "
                    f"the last good checkpoint is kept in {self.run_dir}; lower the learning rates and resume"
                )

    def finish(self, elapsed: float, steps_done: int, stopped: Event | None = None) -> dict[str, Any]:
        """Final scores, samples, weights, summary, plots and the HTML page; `stopped` is
        the event that ended training early (`train.monitor.stop_on`), if one did."""
        from ganscope.report import write_report

        scores, samples = self.evaluate(key=self.step)
        atomic_write(self.run_dir / SAMPLES, lambda tmp: _save_npy(tmp, samples.numpy()))
        for name, module in self.scheme.modules.items():
            save_weights(self.run_dir / f"{name}.safetensors", module)
        events = [r for r in self.log.read() if r["kind"] == "event"]
        verdict = self.verdict(scores)
        if self.cfg.train.monitor.enabled:
            verdict = f"{verdict}; {describe_events(events)}"
        if stopped is not None:
            verdict = f"stopped early at step {self.step} on {stopped.kind} (seed {stopped.seed}); {verdict}"
        summary = {
            "step": self.step,
            "seeds": self.parts.seeds,
            "verdict": verdict,
            "modes_found_by": self.parts.data.oracle.description,
            "scores": [s.to_dict() for s in scores],
            **{k: v for k, v in population_summary(scores).items() if not isinstance(v, list)},
            "wall_time_s": elapsed,
            "seed_steps_per_s": steps_done * len(scores) / elapsed if elapsed > 0 else None,
            "events": events,
            "stopped_early": None if stopped is None else stopped.to_record(),
        }
        atomic_write_text(self.run_dir / SUMMARY, json.dumps(jsonable(summary), indent=2))
        write_report(self.run_dir)
        return summary


def _save_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:
        np.save(handle, array)
