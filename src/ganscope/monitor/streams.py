"""Constructed training streams with a known condition, for validating the monitor.

Why: a detector can only be called right or wrong where the truth is known. A stream is
what the trainer logs for one seed of a run on a Gaussian mixture or on digit images: a
train record every `log_every` steps and an eval record every `eval_every`. The eval
records come from samples drawn around chosen modes with a chosen spread (points), or
real training images of the chosen classes from a pool of chosen size (images), scored
by the dataset's own oracle and measured by the monitor's diversity statistics, exactly
as in training; the
losses are synthetic series shaped like each condition. Healthy stretches look like a
converged run (every mode, real spread, losses with noise and a slow drift). Each
variant draws its modes, onset, spreads and rates at random from one numpy Generator,
so (condition, rng seed) always gives the same stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ganscope.data.images import DigitDataset
from ganscope.data.mixture import GaussianMixture
from ganscope.metrics.modes import score_modes
from ganscope.monitor.monitor import Monitor

SAMPLE_CONDITIONS = ("collapse", "dropping", "hopping")
LOSS_CONDITIONS = ("oscillation", "vanishing-gradient", "divergence", "loss-signature")
CONDITIONS = ("healthy", *SAMPLE_CONDITIONS, *LOSS_CONDITIONS)

#: Conditions that hold alongside another by construction: a hopping generator sits on
#: one mode at each evaluation, so it is also collapsed (spread lost) or dropping modes.
IMPLIED = {"hopping": ("collapse", "dropping")}


@dataclass(frozen=True)
class Schedule:
    evaluations: int = 14
    eval_every: int = 500
    log_every: int = 50
    samples: int = 1000

    @property
    def eval_steps(self) -> list[int]:
        return [(i + 1) * self.eval_every for i in range(self.evaluations)]

    @property
    def log_steps(self) -> np.ndarray:
        return np.arange(self.log_every, self.evaluations * self.eval_every + 1, self.log_every)


@dataclass(frozen=True)
class Stream:
    """One seed's records in log order; `onset` is the first step that deviates from
    health (None for a healthy stream)."""

    condition: str
    onset: int | None
    records: list[dict[str, Any]]


# ---- samples --------------------------------------------------------------------------


@dataclass(frozen=True)
class ModeState:
    """What the generator produces at one evaluation: mass and spread (in units of the
    mode's std) per mode, and the share of low-quality samples."""

    weights: np.ndarray
    spread: np.ndarray
    low_quality: float

    def toward(self, target: ModeState, alpha: float) -> ModeState:
        """Part of the way to `target` (alpha in [0, 1]): a gradual onset."""
        return ModeState(
            (1 - alpha) * self.weights + alpha * target.weights,
            self.spread ** (1 - alpha) * target.spread ** alpha,
            (1 - alpha) * self.low_quality + alpha * target.low_quality,
        )


def healthy_state(weights: np.ndarray, rng: np.random.Generator) -> ModeState:
    """A generator that covers the data: every mode near its true weight (Dirichlet with
    concentration 300 per mode), 85-115% of the real spread, up to 5% low-quality samples."""
    k = len(weights)
    return ModeState(rng.dirichlet(300 * k * weights), rng.uniform(0.85, 1.15, k), rng.uniform(0, 0.05))


def draw(data: GaussianMixture, state: ModeState, n: int, rng: np.random.Generator) -> torch.Tensor:
    """n samples: Gaussian around the chosen modes, plus uniform low-quality ones in the
    box around the centres."""
    centres, stds = data.centres.double().numpy(), data.stds.double().numpy()
    n_low = rng.binomial(n, state.low_quality)
    modes = rng.choice(len(centres), size=n - n_low, p=state.weights / state.weights.sum())
    good = centres[modes] + (stds[modes] * state.spread[modes])[:, None] * rng.standard_normal((len(modes), centres.shape[1]))
    low, high = centres.min(axis=0) - 0.5, centres.max(axis=0) + 0.5
    return torch.from_numpy(np.concatenate([good, rng.uniform(low, high, (n_low, centres.shape[1]))])).float()


def draw_images(data: DigitDataset, state: ModeState, n: int, rng: np.random.Generator) -> torch.Tensor:
    """n images standing for a generator in `state`: each picks a mode by the state's
    weights, and each of the mode's digits (one, or three for stacked data) is a training
    image of that class from the class's first max(1, spread x its count) images, so a
    spread below 1 repeats images (diversity lost within the mode), as a collapsed
    generator's near-copies do. A low-quality sample is the mean of two training images of
    different classes (a blend the classifier is unsure of); what it reads is scored as
    in training, so an ambiguous blend may still count."""
    split, parts = data.split, data.oracle.parts
    labels = split.train_labels.numpy()
    n_classes = int(labels.max()) + 1
    by_class = [np.flatnonzero(labels == c) for c in range(n_classes)]
    n_low = rng.binomial(n, state.low_quality)
    modes = rng.choice(len(state.weights), size=n - n_low, p=state.weights / state.weights.sum())
    digits = np.stack([modes // n_classes ** (parts - 1 - i) % n_classes for i in range(parts)], axis=1)
    pools = np.clip(np.ceil(np.minimum(state.spread, 1.0)[modes, None] * [[len(c) for c in by_class]]), 1, None)
    index = np.empty_like(digits)
    for (i, j), digit in np.ndenumerate(digits):
        pool = by_class[digit]
        index[i, j] = pool[rng.integers(min(len(pool), int(pools[i, digit])))]
    images = split.train_images[:, 0]
    good = images[torch.from_numpy(index.reshape(-1))].reshape(len(modes), parts, *images.shape[1:])
    first = rng.integers(len(labels), size=(n_low, parts))
    second = np.array([[rng.choice(np.flatnonzero(labels != labels[f])) for f in row] for row in first],
                      dtype=np.int64).reshape(first.shape)
    low = (images[torch.from_numpy(first.reshape(-1))] + images[torch.from_numpy(second.reshape(-1))]) / 2
    return torch.cat([good, low.reshape(n_low, parts, *images.shape[1:])]).float()


def _spread_out(k: int, chosen: np.ndarray, mass: np.ndarray, rest: float) -> np.ndarray:
    """Weights with `mass` on the chosen modes and `rest` shared by the others."""
    weights = np.full(k, rest / max(k - len(chosen), 1))
    weights[chosen] = mass * (1 - rest)
    return weights / weights.sum()


def _collapse_target(w: np.ndarray, rng: np.random.Generator) -> ModeState:
    """1 to 3 modes take almost all mass, each shrunk to 5-30% of the real spread."""
    k = len(w)
    chosen = rng.choice(k, size=rng.integers(1, 4), replace=False)
    spread = np.ones(k)
    spread[chosen] = rng.uniform(0.05, 0.3, len(chosen))
    weights = _spread_out(k, chosen, rng.dirichlet(np.full(len(chosen), 5.0)), rng.uniform(0, 0.05))
    return ModeState(weights, spread, rng.uniform(0, 0.05))


def _dropping_target(w: np.ndarray, rng: np.random.Generator) -> ModeState:
    """1 to 5 modes get (almost) nothing; the others keep even mass and 50-120% of the
    real spread (trained GANs are often narrower than the data)."""
    k = len(w)
    dropped = rng.choice(k, size=rng.integers(1, 6), replace=False)
    weights = rng.dirichlet(300 * k * w)
    weights[dropped] = w[dropped] * rng.uniform(0, 0.02, len(dropped))
    return ModeState(weights / weights.sum(), rng.uniform(0.5, 1.2, k), rng.uniform(0, 0.05))


def _sample_states(condition: str, w: np.ndarray, onset: int, n: int, rng: np.random.Generator) -> list[ModeState]:
    """The generator's state at each of n evaluations; deviating from evaluation `onset`."""
    healthy = [healthy_state(w, rng) for _ in range(n)]
    if condition in ("collapse", "dropping"):
        target = (_collapse_target if condition == "collapse" else _dropping_target)(w, rng)
        ramp = int(rng.integers(0, 3))  # evaluations on the way before the target is reached
        return [
            s if i < onset else s.toward(target, min(1.0, (i - onset + 1) / (ramp + 1)))
            for i, s in enumerate(healthy)
        ]
    if condition == "hopping":
        k, period, width = len(w), int(rng.integers(1, 3)), rng.uniform(0.2, 1.1)
        mode, states = int(rng.integers(k)), list(healthy[:onset])
        for i in range(onset, n):
            if i > onset and (i - onset) % period == 0:
                mode = int(rng.choice([m for m in range(k) if m != mode]))
            spread = np.ones(k)
            spread[mode] = width * rng.uniform(0.9, 1.1)
            weights = _spread_out(k, np.array([mode]), np.ones(1), rng.uniform(0, 0.2))
            states.append(ModeState(weights, spread, rng.uniform(0, 0.05)))
        return states
    return healthy


# ---- losses ---------------------------------------------------------------------------


def healthy_losses(schedule: Schedule, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Window-averaged losses of a converged cross-entropy GAN at every log step: near
    log 4 for D, a slow drift and noise; instantaneous gradient norms with log-normal noise."""
    n = len(schedule.log_steps)
    drift = np.linspace(0, 1, n)
    return {
        "d_loss": 1.3 + rng.uniform(-0.05, 0.05) * drift + rng.normal(0, 0.02, n),
        "g_loss": 0.8 + rng.uniform(-0.1, 0.1) * drift + rng.normal(0, 0.03, n),
        "d_grad_norm": np.exp(rng.normal(np.log(0.3), 0.3, n)),
        "g_grad_norm": np.exp(rng.normal(np.log(0.5), 0.3, n)),
    }


def _oscillation(x: dict[str, np.ndarray], after: np.ndarray, rng: np.random.Generator) -> None:
    """D and G take turns winning: the losses alternate with 25-75% of their size."""
    sign = np.where(np.arange(after.sum()) % 2 == 0, 1.0, -1.0)
    x["d_loss"][after] += rng.uniform(0.25, 0.75) * 1.3 * sign
    x["g_loss"][after] -= rng.uniform(0.25, 0.75) * 0.8 * sign


def _vanishing(x: dict[str, np.ndarray], after: np.ndarray, rng: np.random.Generator) -> None:
    """D's loss decays to about 0.01 and G's gradient norm to 1e-4..1e-3 within a few records."""
    k = np.arange(after.sum())
    decay = np.exp(-k / rng.uniform(0.5, 2.0))
    x["d_loss"][after] = 0.01 + (x["d_loss"][after] - 0.01) * decay
    x["g_loss"][after] = x["g_loss"][after] * decay - 0.01
    floor = 10 ** rng.uniform(-4, -3)
    x["g_grad_norm"][after] = floor + (x["g_grad_norm"][after] - floor) * decay


def _divergence(x: dict[str, np.ndarray], after: np.ndarray, rng: np.random.Generator) -> None:
    """Losses grow 1.5-3x per record; half the variants turn NaN after 2-8 records (the
    stream ends there, as training does)."""
    k = np.arange(after.sum())
    growth = rng.uniform(1.5, 3.0) ** k
    for key in ("d_loss", "g_loss"):
        x[key][after] = np.minimum(x[key][after] * growth, 1e12)
    if rng.random() < 0.5:
        last = int(rng.integers(2, 9))
        x["d_loss"][np.flatnonzero(after)[last]] = np.nan


def _signature(x: dict[str, np.ndarray], after: np.ndarray, rng: np.random.Generator) -> None:
    """G's loss falls by 30-60% over 10-40 records with little noise; D's barely moves."""
    k = np.arange(after.sum())
    length = rng.integers(10, 41)
    level = float(np.median(x["g_loss"][~after][-5:]))
    fall = rng.uniform(0.3, 0.6) * level * np.minimum(k / length, 1.0)
    x["g_loss"][after] = level - fall + rng.normal(0, 0.005, len(k))
    x["d_loss"][after] = x["d_loss"][after].mean() + rng.normal(0, 0.01, len(k))


LOSS_SHAPES: dict[str, Callable[[dict[str, np.ndarray], np.ndarray, np.random.Generator], None]] = {
    "oscillation": _oscillation,
    "vanishing-gradient": _vanishing,
    "divergence": _divergence,
    "loss-signature": _signature,
}


# ---- streams --------------------------------------------------------------------------


def build_stream(
    condition: str, monitor: Monitor, data: GaussianMixture | DigitDataset, rng: np.random.Generator, schedule: Schedule = Schedule()
) -> Stream:
    """One seed's stream (seed 0 of `monitor`) with `condition` from a random onset."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; valid: {', '.join(CONDITIONS)}")
    w = data.oracle.weights.double().numpy()
    onset_eval = int(rng.integers(3, schedule.evaluations - 5))
    states = _sample_states(condition, w, onset_eval, schedule.evaluations, rng)
    losses = healthy_losses(schedule, rng)
    onset: int | None = schedule.eval_steps[onset_eval] if condition in SAMPLE_CONDITIONS else None
    if condition in LOSS_SHAPES:
        first, last = schedule.eval_steps[2] // schedule.log_every, schedule.eval_steps[-5] // schedule.log_every
        onset = int(rng.integers(first, last + 1)) * schedule.log_every
        LOSS_SHAPES[condition](losses, schedule.log_steps >= onset, rng)
    return Stream(condition, onset, log_records(states, losses, monitor, data, rng, schedule))


def log_records(
    states: list[ModeState], losses: dict[str, np.ndarray], monitor: Monitor, data: GaussianMixture | DigitDataset,
    rng: np.random.Generator, schedule: Schedule,
) -> list[dict[str, Any]]:
    """The records the trainer would log for seed 0: the generator in `states[i]` at the
    i-th evaluation, `losses` at every log step; ends at the first non-finite loss."""
    evals = dict(zip(schedule.eval_steps, states, strict=True))
    records: list[dict[str, Any]] = []
    for i, step in enumerate(int(t) for t in schedule.log_steps):
        records.append({"step": step, "seed": 0, "kind": "train", **{k: float(v[i]) for k, v in losses.items()}})
        if not all(np.isfinite(v[i]) for v in losses.values()):
            break
        if step in evals:
            samples = (draw_images if isinstance(data, DigitDataset) else draw)(data, evals[step], schedule.samples, rng)
            records.append({"step": step, "seed": 0, "kind": "eval", **score_modes(samples, data.oracle).to_dict(),
                            **monitor.measure(samples[None])[0]})
    return records
