"""Min-max is not max-min: a GAN generator hops between modes, and remedies stop it.

The argument (docs/FAILURE_MODES.md, section 1; Goodfellow 2016, "NIPS 2016 Tutorial: Generative
Adversarial Networks", Sec. 5.1.1; Metz et al. 2016, "Unrolled Generative Adversarial
Networks", Sec. 1-2). The GAN game is

    min_G max_D V(D, G):

for each G the discriminator answers with its best response D*_G, and G is judged by
V(D*_G, G) = -log 4 + 2 JSD(p_data || p_g), which is smallest when p_g covers every mode
of p_data. Gradient steps on both players do not say which player moves first, and in
the other order,

    max_D min_G V(D, G),

the *inner* player is G: against a fixed D, G's best response puts all its mass on the
point(s) D currently rates most real, a single mode. D then learns that this mode is fake
and lowers its score there, some other mode now looks most real, and G jumps to it. G
hops from mode to mode and never covers them. Training behaves like max-min whenever G
is effectively optimised against the *current* D, e.g. when G learns much faster than D:
here G's learning rate is 10 times D's, as in the setting of Metz et al. (docs/PROTOCOLS.md).

Unrolling (Metz et al. 2016, Sec. 2.2; `ganscope.schemes.unrolled`) evaluates G's loss
against D after K of D's own updates and differentiates through them, so G sees how D
would answer: piling onto one mode is punished by the D that follows, which pushes the
dynamics back towards min-max, and G spreads over the modes. Other remedies break the
chase differently: PacGAN's D judges packs of samples, and a pack of m copies of one
mode is easy to call fake however real each sample looks, so G cannot gain by piling
onto the mode D currently likes (Lin et al. 2018, Sec. 4).

The demonstration trains, on the 2-D ring of 8 modes, each as one population of seeds,
(a) the plain non-saturating GAN with alternating steps and (b) each remedy of
`remedies`, named as in `ganscope bench` (default: the unrolled GAN with K = 5, the
paper's value, and PacGAN with m = 2), otherwise identical. At every evaluation the trainer records
each seed's histogram of high-quality samples over the modes (`counts` in
metrics.jsonl); from it we read the *dominant mode* (the argmax) and the number of modes
covered. A *hop* is a change of the dominant mode between consecutive evaluations at
which G is collapsed (it covers 1 or 2 modes); evaluations without any high-quality
sample (G in transit between modes) are skipped, and one covering more than 2 modes
breaks the chain, so a generator that covers the ring never counts hops however its
argmax wanders.

Defaults: the Metz et al. family (Adam beta1 0.5, D lr 1e-4, G lr 1e-3, two hidden layers
of 128 ReLU units in G and D, 5 unrolling steps) scaled to a CPU budget of a few minutes:
z of dimension 64 instead of 256, batch 256 instead of 512, 2,000 steps instead of 25k.
In this setting the plain GAN's blob jumps every hundred steps or so, and the unrolled
GAN spreads over the ring within about 500 steps.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.gridspec import GridSpec  # noqa: E402
from pydantic import Field, PositiveFloat, PositiveInt, ValidationError, field_validator  # noqa: E402

from ganscope.bench import METHODS, method_overrides  # noqa: E402
from ganscope.config import describe_validation_error, load_config  # noqa: E402
from ganscope.errors import ConfigError  # noqa: E402
from ganscope.registry import Params  # noqa: E402
from ganscope.train.checkpoint import atomic_write, atomic_write_text  # noqa: E402
from ganscope.train.log import MetricsLog, jsonable  # noqa: E402
from ganscope.train.run import METRICS, Run  # noqa: E402
from ganscope.train.snapshots import load_snapshot, snapshot_steps  # noqa: E402

COLLAPSED_MODES = 2  # an evaluation covering at most this many modes counts as collapsed
HOPPING_MIN = 2.0  # mean hops per seed for "the plain GAN hops"
COVERING_FRACTION = 0.75  # share of the modes covered for "a remedy covers the ring"


class ModeHoppingSettings(Params):
    """One mode-hopping experiment: the plain GAN and every remedy share all of these."""

    steps: PositiveInt = 2000
    seeds: PositiveInt = 4
    eval_every: PositiveInt = 50
    eval_samples: PositiveInt = 2500  # the ring protocol's sample count
    remedies: list[str] = Field(default_factory=lambda: ["unrolled", "pacgan2"], min_length=1)
    z_dim: PositiveInt = 64
    batch_size: PositiveInt = 256
    hidden: PositiveInt = 128
    depth: PositiveInt = 2
    g_lr: PositiveFloat = 1e-3  # 10x D's: G effectively optimised against the current D
    d_lr: PositiveFloat = 1e-4
    beta1: float = Field(0.5, ge=0.0, lt=1.0)
    snapshots: PositiveInt = 6  # columns of sample scatter plots over time
    last_fraction: float = Field(0.25, gt=0.0, le=1.0)  # "last evaluations" for the coverage mean

    @field_validator("remedies")
    @classmethod
    def _known_and_distinct(cls, remedies: list[str]) -> list[str]:
        unknown = [r for r in remedies if r not in METHODS]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}; valid: {', '.join(METHODS)}")
        if len(set(remedies)) < len(remedies):
            raise ValueError("each remedy at most once")
        return remedies

    def config_overrides(self) -> list[str]:
        """The shared ganscope config of both methods, as `-s` overrides."""
        net = [f"{n}.{k}={v}" for n in ("generator", "discriminator")
               for k, v in (("hidden", self.hidden), ("depth", self.depth), ("activation", "relu"))]
        opt = [f"optimizer.{n}.{k}={v}" for n, lr in (("generator", self.g_lr), ("discriminator", self.d_lr))
               for k, v in (("name", "adam"), ("lr", lr), ("betas", [self.beta1, 0.999]))]
        return net + opt + [
            "data.name=ring",
            "objective.name=nonsaturating",
            f"noise.z_dim={self.z_dim}",
            f"train.steps={self.steps}",
            f"train.seeds={self.seeds}",
            f"train.batch_size={self.batch_size}",
            f"train.eval_every={self.eval_every}",
            f"train.eval_samples={self.eval_samples}",
            f"train.log_every={self.eval_every}",
            f"train.checkpoint_every={self.steps}",
            "train.lr_schedule=constant",
            "train.monitor.enabled=false",  # its events would only repeat what the picture shows
        ]

    def methods(self) -> dict[str, list[str]]:
        """The plain GAN and each remedy, as overrides on top of the shared config."""
        return {"plain": [], **{name: method_overrides(name, self.batch_size) for name in self.remedies}}


#: A small setting for tests and a first look, under a minute on one CPU core: the unrolled
#: GAN starts to spread over the ring by step 500 while the plain one keeps hopping.
QUICK = {"steps": 500, "seeds": 2, "eval_every": 25, "eval_samples": 1000, "snapshots": 4}


def mode_hopping_settings(quick: bool = False, **changes: Any) -> ModeHoppingSettings:
    """The default (or quick) settings with `changes` applied; a bad value is a ConfigError."""
    try:
        return ModeHoppingSettings(**{**(QUICK if quick else {}), **changes})
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, ModeHoppingSettings)) from None


def count_hops(counts: np.ndarray, collapsed_modes: int = COLLAPSED_MODES) -> int:
    """Changes of the dominant mode between consecutive collapsed evaluations (1 to
    `collapsed_modes` modes covered); evaluations without high-quality samples are
    skipped, and one covering more modes breaks the chain. `counts`: (evaluations, K)."""
    hops, last = 0, None
    for row in counts:
        covered = int((row > 0).sum())
        if covered > collapsed_modes:
            last = None
        elif covered:
            mode = int(row.argmax())
            hops += int(last is not None and mode != last)
            last = mode
    return hops


def seed_record(seed: int, evals: list[dict[str, Any]], last_fraction: float) -> dict[str, Any]:
    """Dominant mode, coverage and hops of one seed from its evaluation records."""
    counts = np.array([r["counts"] for r in evals])
    covered = (counts > 0).sum(axis=1)
    collapsed = (covered >= 1) & (covered <= COLLAPSED_MODES)
    last = max(1, math.ceil(last_fraction * len(evals)))
    return {
        "seed": seed,
        "steps": [r["step"] for r in evals],
        "dominant_mode": [int(row.argmax()) if row.any() else None for row in counts],
        "modes_covered": covered.tolist(),
        "hq_fraction": [r["hq_fraction"] for r in evals],
        "counts": counts.tolist(),
        "hops": count_hops(counts),
        "modes_visited_while_collapsed": len(set(counts[collapsed].argmax(axis=1).tolist())),
        "collapsed_fraction": float(collapsed.mean()),
        "mean_modes_covered_last": float(covered[-last:].mean()),
        "final_modes_covered": int(covered[-1]),
        "final_hq_fraction": evals[-1]["hq_fraction"],
    }


SUMMARY_KEYS = ("hops", "modes_visited_while_collapsed", "collapsed_fraction", "mean_modes_covered_last",
                "final_modes_covered", "final_hq_fraction")


@dataclass
class MethodResult:
    """One method's population: its run folder, per-seed records and the ring's centres."""

    name: str
    run_dir: Path
    seeds: list[dict[str, Any]]
    centres: np.ndarray = field(repr=False)
    wall_time_s: float  # training alone, without the run's final report

    def mean(self, key: str) -> float:
        return float(np.mean([s[key] for s in self.seeds]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "wall_time_s": self.wall_time_s,
            **{f"{k}_mean": self.mean(k) for k in SUMMARY_KEYS},
            "seeds": self.seeds,
        }


def train_method(name: str, overrides: list[str], out_dir: Path, settings: ModeHoppingSettings,
                 progress: bool) -> MethodResult:
    """Train one method's population in `out_dir/name` and read its evaluations back."""
    run = Run.create(load_config(overrides=overrides), out_dir / name)
    summary = run.fit(progress=progress)
    evals = [r for r in MetricsLog(run.run_dir / METRICS).read() if r["kind"] == "eval"]
    seeds = [
        seed_record(seed, [r for r in evals if r["seed"] == seed], settings.last_fraction)
        for seed in run.parts.seeds
    ]
    return MethodResult(name, run.run_dir, seeds, run.parts.data.centres.numpy(), summary["wall_time_s"])


def run_mode_hopping(settings: ModeHoppingSettings, out_dir: Path, progress: bool = False) -> dict[str, Any]:
    """Train the plain GAN and each remedy, write `mode_hopping.png` and `result.json` into
    `out_dir` (one run folder per method beside them); return the numbers and a summary."""
    out_dir = Path(out_dir)
    shared = settings.config_overrides()
    methods = {
        name: train_method(name, shared + extra, out_dir, settings, progress)
        for name, extra in settings.methods().items()
    }
    result: dict[str, Any] = {
        "settings": settings.model_dump(),
        "collapsed_modes": COLLAPSED_MODES,
        "methods": {name: m.to_dict() for name, m in methods.items()},
        **outcome(methods),
    }
    result["summary"] = _summary(settings, methods, result)
    picture = out_dir / "mode_hopping.png"
    _plot(picture, settings, methods)
    result["files"] = [str(picture), str(out_dir / "result.json")]
    atomic_write_text(out_dir / "result.json", json.dumps(jsonable(result), indent=2) + "\n")
    return result


def outcome(methods: dict[str, MethodResult]) -> dict[str, Any]:
    """Whether the run shows what the theory predicts: the plain GAN hops (at least
    HOPPING_MIN hops per seed on average), and which remedies cure it: fewer hops than the
    plain GAN and at least COVERING_FRACTION of the modes covered over the last
    evaluations, more than the plain GAN."""
    plain, *remedies = methods.values()
    n_modes = len(plain.centres)

    def cures(m: MethodResult) -> bool:
        coverage = m.mean("mean_modes_covered_last")
        return (
            m.mean("hops") < plain.mean("hops")
            and coverage >= COVERING_FRACTION * n_modes
            and coverage > plain.mean("mean_modes_covered_last")
        )

    return {"plain_hops": plain.mean("hops") >= HOPPING_MIN, "remedy_cures": {m.name: cures(m) for m in remedies}}


def _summary(settings: ModeHoppingSettings, methods: dict[str, MethodResult], shown: dict[str, Any]) -> str:
    plain, *remedies = methods.values()

    def describe(m: MethodResult) -> str:
        hops = ", ".join(str(s["hops"]) for s in m.seeds)
        return (
            f"collapsed on <= {COLLAPSED_MODES} modes at {100 * m.mean('collapsed_fraction'):.0f}% of evaluations, "
            f"dominant mode hopped {m.mean('hops'):.1f} times per seed ({hops}) across "
            f"{m.mean('modes_visited_while_collapsed'):.1f} distinct modes, and covered "
            f"{m.mean('mean_modes_covered_last'):.1f}/{len(m.centres)} modes over the last "
            f"{100 * settings.last_fraction:.0f}% of evaluations (trained in {m.wall_time_s:.0f} s)"
        )

    cured = [name for name, ok in shown["remedy_cures"].items() if ok]
    failed = [name for name, ok in shown["remedy_cures"].items() if not ok]
    if shown["plain_hops"]:
        verdict = "As the max-min argument predicts, the plain generator chases the current discriminator from mode to mode"
    else:
        verdict = "The plain generator did not hop clearly in this run (try more seeds or steps)"
    if cured:
        verdict += f"; {', '.join(cured)} stop{'s' * (len(cured) == 1)} the hopping and cover the ring"
    if failed:
        verdict += f"; {', '.join(failed)} do{'es' * (len(failed) == 1)} not, in this setting"
    remedies_text = " ".join(f"{m.name} ({METHODS[m.name].description}): {describe(m)}." for m in remedies)
    return (
        f"Mode hopping on the 2-D ring (8 modes), {settings.seeds} seeds x {settings.steps} steps, evaluated every "
        f"{settings.eval_every} steps; G lr {settings.g_lr:g} vs D lr {settings.d_lr:g}. The plain GAN "
        f"{describe(plain)}. {remedies_text} {verdict}."
    )


def _share_raster(seeds: list[dict[str, Any]]) -> np.ndarray:
    """Per-seed bands of K rows (modes) x evaluations: each mode's share of the HQ samples,
    NaN rows between the bands."""
    bands = []
    for s in seeds:
        counts = np.array(s["counts"], dtype=float).T  # (K, E)
        totals = counts.sum(axis=0, keepdims=True)
        bands.append(np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0))
        bands.append(np.full((1, counts.shape[1]), np.nan))
    return np.concatenate(bands[:-1])


def _plot(path: Path, settings: ModeHoppingSettings, methods: dict[str, MethodResult]) -> None:
    """Top: each mode's share of HQ samples over time per seed, dots on the dominant mode
    of collapsed evaluations. Middle: modes covered. Bottom: the first seed's samples at
    several steps, ring centres marked."""
    n_snap, n_methods = settings.snapshots, len(methods)
    fig = plt.figure(figsize=(max(6 * n_methods, 2.2 * n_snap), 10 + 1.5 * n_methods))
    grid = GridSpec(2 + n_methods, n_methods * n_snap, figure=fig, height_ratios=[3, 1.3] + [1.3] * n_methods)
    half = n_snap
    for col, m in enumerate(methods.values()):
        k = len(m.centres)
        steps = np.array(m.seeds[0]["steps"])
        width = steps[1] - steps[0] if len(steps) > 1 else steps[0]
        extent = (steps[0] - width / 2, steps[-1] + width / 2, len(m.seeds) * (k + 1) - 1.5, -0.5)
        ax = fig.add_subplot(grid[0, col * half:(col + 1) * half])
        ax.imshow(_share_raster(m.seeds), aspect="auto", cmap="Blues", vmin=0, vmax=1, extent=extent,
                  interpolation="nearest")
        for i, s in enumerate(m.seeds):
            covered = np.array(s["modes_covered"])
            collapsed = (covered >= 1) & (covered <= COLLAPSED_MODES)
            dominant = np.array([d if d is not None else -1 for d in s["dominant_mode"]])
            ax.plot(steps[collapsed], i * (k + 1) + dominant[collapsed], "o", ms=3, color="tab:red")
        ax.set_yticks([i * (k + 1) + (k - 1) / 2 for i in range(len(m.seeds))],
                      [f"seed {s['seed']}\n({s['hops']} hops)" for s in m.seeds], fontsize=7)
        ax.set_xlabel("step")
        ax.set_title(f"{m.name}: share of HQ samples per mode (rows 0-{k - 1} per seed);\n"
                     f"red: dominant mode while collapsed (<= {COLLAPSED_MODES} modes)", fontsize=10)
        ax = fig.add_subplot(grid[1, col * half:(col + 1) * half])
        for s in m.seeds:
            ax.plot(s["steps"], s["modes_covered"], lw=1, label=f"seed {s['seed']}")
        ax.set_ylim(-0.3, k + 0.3)
        ax.set_ylabel("modes covered")
        ax.set_xlabel("step")
        ax.legend(fontsize=7, ncol=len(m.seeds), loc="upper left")
    for row, m in enumerate(methods.values(), start=2):
        steps = snapshot_steps(m.run_dir)  # the trainer keeps samples of every evaluation
        chosen = sorted({steps[int(i)] for i in np.linspace(0, len(steps) - 1, n_snap).round()})
        for j, step in enumerate(chosen):
            ax = fig.add_subplot(grid[row, n_methods * j:n_methods * (j + 1)])
            points = load_snapshot(m.run_dir, step)[0]
            ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.4, color="tab:blue")
            ax.scatter(m.centres[:, 0], m.centres[:, 1], marker="x", s=30, color="black")
            lim = 1.5 * float(np.abs(m.centres).max())
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{m.name}, seed {m.seeds[0]['seed']}, step {step}", fontsize=8)
    fig.suptitle("Min-max is not max-min: the plain GAN hops between modes; "
                 f"remedies ({', '.join(settings.remedies)}) against it", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
