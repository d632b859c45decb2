"""The optimal discriminator against a fixed generator, checked against its closed form.

Goodfellow et al. 2014 (Generative Adversarial Nets), Proposition 1: for a fixed G the
discriminator maximising V(D, G) = E_pdata log D(x) + E_pg log(1 - D(x)) is

    D*(x) = p_data(x) / (p_data(x) + p_g(x)),

and Theorem 1: the value there is C(G) = V(D*, G) = -log 4 + 2 JSD(p_data || p_g).

Why check it: every argument that the GAN game minimises the Jensen-Shannon divergence
rests on D reaching D*. Here both densities are Gaussian mixtures known in closed form,
so we can train ganscope's own discriminator (the population MLP, with the library's
minimax D loss) against a fixed p_g and measure how close it gets. This tests the whole
D side of the library (networks, initialisation, loss signs, optimiser) against theory,
and shows how far a finite network and finite training actually get from the optimum the
theory assumes.

Errors are measured on a grid over a box holding at least 99.9% of every mixture
component's mass (so of p_data and p_g). The headline "mean error" is the mean of
|sigmoid(D(x)) - D*(x)| weighted by (p_data + p_g)/2; the unweighted mean and the maximum
are taken over the grid cells where (p_data + p_g)/2 is at least 1% of its peak (the
support; far in the tails D* is a ratio of two vanishing densities and no sample ever
constrains D). The game value and the JSD are integrated by quadrature on the same grid.
The game value is stationary at D* (its first variation vanishes there), so it matches
the theory to ~1e-4 even while D is off by ~1e-2: the pointwise error is the sharper test.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt  # noqa: E402
from scipy.stats import norm  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from ganscope.data.mixture import GaussianMixture  # noqa: E402
from ganscope.nets.layers import init_population  # noqa: E402
from ganscope.nets.mlp import ActivationName, MLPDiscriminator, MLPDiscriminatorParams  # noqa: E402
from ganscope.objectives.gan import Minimax  # noqa: E402
from ganscope.registry import Params  # noqa: E402
from ganscope.seeding import make_generator  # noqa: E402
from ganscope.train.checkpoint import atomic_write, atomic_write_text  # noqa: E402
from ganscope.train.log import jsonable  # noqa: E402

GRID_MASS = 0.999  # each mixture component keeps at least this much mass inside the grid's box
SUPPORT_FRACTION = 0.01  # support: (p_data + p_g)/2 >= this fraction of its peak on the grid
DEFAULT_GRID_POINTS = {1: 2001, 2: 201}  # per axis


class OptimalDSettings(Params):
    """One optimal-D experiment; the defaults reach a weighted mean error below 0.02."""

    dim: Literal[1, 2] = 1
    steps: PositiveInt = 3000
    seed: NonNegativeInt = 0
    batch_size: PositiveInt = 512  # samples from each of p_data and p_g per step
    lr: PositiveFloat = 2e-3  # Adam
    decay_fraction: float = Field(0.5, ge=0.0, le=1.0)  # last fraction of steps: cosine decay of lr to 0
    hidden: PositiveInt = 64
    depth: PositiveInt = 3
    activation: ActivationName = "elu"  # type: ignore[valid-type]  # smooth, like D*
    grid_points: int | None = Field(None, ge=2)  # per axis; None: 2001 in 1-D, 201 in 2-D


def _mixture(name: str, centres: list[list[float]], std: float, weights: list[float]) -> GaussianMixture:
    return GaussianMixture(
        name,
        torch.tensor(centres, dtype=torch.float64),
        torch.full((len(centres),), std, dtype=torch.float64),
        torch.tensor(weights, dtype=torch.float64),
    )


def default_mixtures(dim: Literal[1, 2]) -> tuple[GaussianMixture, GaussianMixture]:
    """(p_data, p_g): a 2-mode data mixture and a broader 3-mode generator mixture that
    overlap, so D* takes every value between about 0.1 and 0.9 rather than saturating."""
    if dim == 1:
        return (
            _mixture("p_data", [[-1.0], [1.5]], 0.5, [1.0, 1.0]),
            _mixture("p_g", [[-2.0], [0.0], [2.0]], 0.7, [0.3, 0.4, 0.3]),
        )
    return (
        _mixture("p_data", [[-1.0, 0.0], [1.0, 0.5]], 0.5, [1.0, 1.0]),
        _mixture("p_g", [[0.0, 1.2], [-1.5, -1.0], [1.5, -0.8]], 0.7, [0.3, 0.4, 0.3]),
    )


def log_density(mixture: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """Closed-form log density of an isotropic Gaussian mixture at points x (N, d), float64
    (from the oracle's float64 copy of the parameters; the sampler's are float32)."""
    exact = mixture.oracle
    d = exact.centres.shape[1]
    sq = torch.cdist(x.double(), exact.centres).square()  # (N, K)
    log_comp = -0.5 * sq / exact.stds**2 - d * torch.log(exact.stds) - 0.5 * d * math.log(2 * math.pi)
    return torch.logsumexp(log_comp + torch.log(exact.weights), dim=1)


@dataclass(frozen=True)
class Grid:
    """A regular grid: `points` (N, d) in row-major order of `axes`, each cell of volume `cell`."""

    axes: list[np.ndarray]
    points: torch.Tensor
    cell: float

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)


def support_grid(mixtures: tuple[GaussianMixture, ...], points_per_axis: int) -> Grid:
    """A box holding at least GRID_MASS of every component of every mixture.

    An isotropic component keeps mass m_1^d in a box reaching k std from its centre on
    every axis, with m_1 = 1 - 2 Phi(-k); k is chosen so that m_1^d = GRID_MASS.
    """
    d = mixtures[0].centres.shape[1]
    k = norm.ppf(0.5 + 0.5 * GRID_MASS ** (1.0 / d))
    centres = torch.cat([m.oracle.centres for m in mixtures])
    reach = torch.cat([m.oracle.stds for m in mixtures])[:, None] * k
    lo, hi = (centres - reach).amin(0).numpy(), (centres + reach).amax(0).numpy()
    axes = [np.linspace(a, b, points_per_axis) for a, b in zip(lo, hi, strict=True)]
    mesh = np.meshgrid(*axes, indexing="ij")
    points = torch.from_numpy(np.stack([m.reshape(-1) for m in mesh], axis=1))
    cell = float(np.prod([a[1] - a[0] for a in axes]))
    return Grid(axes, points, cell)


def jsd(log_p: torch.Tensor, log_q: torch.Tensor, cell: float) -> float:
    """JSD(p || q) in nats by quadrature from log densities on a grid of cell volume `cell`."""
    log_m = torch.logaddexp(log_p, log_q) - math.log(2)
    kl_pm = (log_p.exp() * (log_p - log_m)).sum() * cell
    kl_qm = (log_q.exp() * (log_q - log_m)).sum() * cell
    return float(0.5 * (kl_pm + kl_qm))


def mixture_jsd(p: GaussianMixture, q: GaussianMixture, points_per_axis: int | None = None) -> float:
    """JSD between two mixtures by quadrature on a grid covering both."""
    d = p.centres.shape[1]
    grid = support_grid((p, q), points_per_axis or DEFAULT_GRID_POINTS[d])
    return jsd(log_density(p, grid.points), log_density(q, grid.points), grid.cell)


def _lr_factor(step: int, steps: int, decay_fraction: float) -> float:
    """1 until the last `decay_fraction` of the run, then a cosine down to 0."""
    decay_steps = decay_fraction * steps
    start = steps - decay_steps
    if step <= start:  # also covers decay_fraction == 0
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - start) / decay_steps))


def train_discriminator(
    settings: OptimalDSettings, p_data: GaussianMixture, p_g: GaussianMixture
) -> MLPDiscriminator:
    """Train one seed of the MLP discriminator with the minimax D loss against fixed p_g,
    drawing fresh samples from both distributions at every step."""
    p = MLPDiscriminatorParams(hidden=settings.hidden, depth=settings.depth, activation=settings.activation)
    net = MLPDiscriminator(1, p_data.sample_shape, 1, p)
    init_population(net, [make_generator(settings.seed, "init")])
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: _lr_factor(step, settings.steps, settings.decay_fraction)
    )
    data_rng, g_rng = make_generator(settings.seed, "data"), make_generator(settings.seed, "noise")
    objective, b = Minimax(), settings.batch_size
    # Kernels this small gain nothing from a second thread, only synchronisation: on
    # 2 cores one thread trained 2-3x faster in wall time.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(settings.steps):
            batch = torch.cat([p_data.sample(b, data_rng), p_g.sample(b, g_rng)])[None]
            real_logits, fake_logits = net(batch).split(b, dim=1)  # one pass: no batch-coupled layers
            loss = objective.d_loss(real_logits, fake_logits).sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def run_optimal_d(settings: OptimalDSettings | None = None, out_dir: Path | None = None) -> dict[str, Any]:
    """Train D against a fixed p_g and compare it with D*; write `optimal_d.png` and
    `result.json` to `out_dir` when given. Returns the numbers and a one-paragraph summary."""
    settings = settings or OptimalDSettings()
    start = time.perf_counter()
    p_data, p_g = default_mixtures(settings.dim)
    net = train_discriminator(settings, p_data, p_g)
    train_seconds = time.perf_counter() - start

    grid = support_grid((p_data, p_g), settings.grid_points or DEFAULT_GRID_POINTS[settings.dim])
    log_p, log_q = log_density(p_data, grid.points), log_density(p_g, grid.points)
    with torch.no_grad():
        logits = net(grid.points.float()[None])[0, :, 0].double()
    d_star = torch.sigmoid(log_p - log_q)
    d_learned = torch.sigmoid(logits)
    error = (d_learned - d_star).abs()
    p, q = log_p.exp(), log_q.exp()
    mix = 0.5 * (p + q)
    support = mix >= SUPPORT_FRACTION * mix.max()
    # -log D = softplus(-logit) and -log(1 - D) = softplus(logit), finite where D saturates.
    game_value = float(-(p * F.softplus(-logits) + q * F.softplus(logits)).sum() * grid.cell)
    divergence = jsd(log_p, log_q, grid.cell)
    optimal_value = -math.log(4.0) + 2.0 * divergence

    result: dict[str, Any] = {
        "dim": settings.dim,
        "settings": settings.model_dump(),
        "p_data": _describe(p_data),
        "p_g": _describe(p_g),
        "mean_error": float((error * mix).sum() / mix.sum()),
        "mean_error_unweighted": float(error[support].mean()),
        "max_error": float(error[support].max()),
        "max_error_grid": float(error.max()),
        "game_value": game_value,
        "optimal_game_value": optimal_value,
        "game_value_gap": optimal_value - game_value,
        "jsd": divergence,
        "grid_points": len(grid.points),
        "grid_mass_p_data": float(p.sum() * grid.cell),
        "grid_mass_p_g": float(q.sum() * grid.cell),
        "support_fraction_of_grid": float(support.double().mean()),
        "train_seconds": train_seconds,
    }
    result["summary"] = _summary(result)
    if out_dir is not None:
        out_dir = Path(out_dir)
        values = {"p_data": p, "p_g": q, "D*": d_star, "learned D": d_learned, "|error|": error}
        fields = {k: v.reshape(grid.shape).numpy() for k, v in values.items()}
        _plot(out_dir / "optimal_d.png", grid, fields, support.reshape(grid.shape).numpy(), result)
        result["files"] = [str(out_dir / "optimal_d.png"), str(out_dir / "result.json")]
        atomic_write_text(out_dir / "result.json", json.dumps(jsonable(result), indent=2) + "\n")
    return result


def _describe(mixture: GaussianMixture) -> dict[str, list[Any]]:
    exact = mixture.oracle
    return {"centres": exact.centres.tolist(), "stds": exact.stds.tolist(), "weights": exact.weights.tolist()}


def _summary(r: dict[str, Any]) -> str:
    return (
        f"Optimal discriminator, {r['dim']}-D: D trained {r['settings']['steps']} steps "
        f"({r['train_seconds']:.1f} s) with the minimax loss against a fixed 3-mode p_g, "
        f"p_data a 2-mode mixture. Against D* = p_data/(p_data+p_g) (Goodfellow et al. 2014, "
        f"Prop. 1): mean error |sigmoid(D) - D*| weighted by (p_data+p_g)/2 = {r['mean_error']:.4f}; "
        f"over the support ((p_data+p_g)/2 >= {SUPPORT_FRACTION:g} of its peak) unweighted mean "
        f"{r['mean_error_unweighted']:.4f}, max {r['max_error']:.4f}. Game value V(D, G) = "
        f"{r['game_value']:.4f} vs -log 4 + 2 JSD = {r['optimal_game_value']:.4f} "
        f"(Theorem 1; JSD = {r['jsd']:.4f} nats), gap {r['game_value_gap']:.4f}."
    )


def _plot(
    path: Path, grid: Grid, fields: dict[str, np.ndarray], support: np.ndarray, result: dict[str, Any]
) -> None:
    """1-D: densities, D* and learned D on one axis. 2-D: heatmaps of D*, learned D, |error|."""
    title = (
        f"mean |D - D*| (density-weighted) = {result['mean_error']:.4f}, "
        f"max on support = {result['max_error']:.4f};  "
        f"V(D,G) = {result['game_value']:.4f} vs -log4 + 2JSD = {result['optimal_game_value']:.4f}"
    )
    if len(grid.axes) == 1:
        x = grid.axes[0]
        fig, ax = plt.subplots(figsize=(9, 4.8))
        ax.fill_between(x, fields["p_data"], alpha=0.25, color="tab:blue", label="p_data (2 modes)")
        ax.fill_between(x, fields["p_g"], alpha=0.25, color="tab:orange", label="p_g (3 modes, fixed)")
        ax.plot(x, fields["D*"], color="black", lw=2.5, label="D* = p_data / (p_data + p_g)")
        ax.plot(x, fields["learned D"], color="tab:red", lw=1.5, ls="--", label="learned sigmoid(D)")
        ax.plot(x, fields["|error|"], color="tab:green", lw=1, label="|learned D - D*|")
        ax.set_xlabel("x")
        ax.set_ylabel("density  /  D(x)")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(x[0], x[-1])
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title(title, fontsize=9)
    else:
        extent = (grid.axes[0][0], grid.axes[0][-1], grid.axes[1][0], grid.axes[1][-1])
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), constrained_layout=True)
        panels = (("D*", "D* = p_data / (p_data + p_g)"), ("learned D", "learned sigmoid(D)"))
        for ax, (key, name) in zip(axes[:2], panels):
            im = ax.imshow(fields[key].T, origin="lower", extent=extent, vmin=0, vmax=1, cmap="RdBu_r")
            ax.set_title(name)
        fig.colorbar(im, ax=axes[:2].tolist(), shrink=0.85, label="D(x)")
        im = axes[2].imshow(fields["|error|"].T, origin="lower", extent=extent, cmap="magma")
        axes[2].contour(grid.axes[0], grid.axes[1], support.T.astype(float), levels=[0.5],
                        colors="white", linewidths=1, linestyles="--")
        axes[2].set_title("|learned D - D*|  (dashed: support)")
        fig.colorbar(im, ax=axes[2], shrink=0.85, label="absolute error")
        for ax in axes[:2]:
            for key, style in (("p_data", "solid"), ("p_g", "dashed")):
                ax.contour(grid.axes[0], grid.axes[1], fields[key].T, levels=3, colors="black",
                           linewidths=0.7, linestyles=style, alpha=0.7)
        for ax in axes:
            ax.set_xlabel("x1")
            ax.set_ylabel("x2")
        fig.suptitle(f"2-D; contours: p_data solid, p_g dashed.  {title}", fontsize=10)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
