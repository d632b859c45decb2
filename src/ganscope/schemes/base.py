"""Training schemes: each owns one training step of the GAN game.

Following mimicry, the method owns its step and the trainer stays small. A scheme is
built from `Parts` (data, noise, objective, regularisers, network and optimiser
factories, the population's random streams), creates the networks and optimisers it
needs, and exposes them by name so the trainer can checkpoint any scheme the same way.
"""

from __future__ import annotations

import contextlib
import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import PositiveInt
from torch import nn

from ganscope import distributed
from ganscope.batch import Batch
from ganscope.config import Config, OptimizerConfig, piece_params, regularizer_params
from ganscope.data import Dataset, dataset_from_config
from ganscope.devices import autocast, resolve_device
from ganscope.distributed import World
from ganscope.errors import ConfigError
from ganscope.nets import DISCRIMINATORS, GENERATORS, PopBatchNorm, init_population
from ganscope.nets.conv import PopBatchNorm2d
from ganscope.nets.base import CONDITIONINGS
from ganscope.nets.conditioning import Conditioning
from ganscope.nets.discriminator import ExtensionFactory
from ganscope.nets.layers import at_least_float32, attach_stream
from ganscope.nets.stylegan import style_generator, truncated
from ganscope.nets.modifiers import DiscriminatorModifier, apply_modifiers, modifiers_from_config, pack_size
from ganscope.objectives import OBJECTIVES, Objective
from ganscope.registry import Params, new_registry
from ganscope.regularizers import REGULARIZERS, Regularizer
from ganscope.regularizers.base import Critic, judge
from ganscope.seeding import PopulationRandom, SharedRandom

SCHEMES = new_registry("scheme", "schemes")

#: The report's class-by-seed grid of a conditional image run: its file in the run folder,
#: the samples per class and seed, and the most classes shown.
CLASS_SAMPLES, CLASS_GRID_SAMPLES, MAX_CLASS_GRID = "classes.npy", 8, 20
#: A style-based G's report pictures: the style-mixing grid (`MIXING_SOURCES` sources a
#: side) and the truncation sweep (`TRUNCATION_SAMPLES` per psi in `TRUNCATION_PSIS`).
MIXING_FILE, MIXING_SOURCES = "mixing.npy", 5
TRUNCATION_FILE, TRUNCATION_SAMPLES, TRUNCATION_PSIS = "truncation.npy", 8, (1.0, 0.85, 0.7, 0.5, 0.25, 0.0)

#: The module holding the moving average of G's weights, when the run keeps one.
AVERAGE = "generator_ema"

#: The branch of the `network` stream that evaluations draw from (training's has none).
EVALUATION_DRAWS = 1

#: The population's random streams that training draws from and checkpoints save.
STREAM_NAMES = ("noise", "data", "penalty", "labels", "network", "pool")
#: Those of them whose draws have one entry per sample along their first axis, which the
#: processes of a data-parallel run share (`SharedRandom`); data and labels are shared
#: where they are drawn (`Parts.real_batch`, `Parts.generator_labels`).
SHARED_STREAMS = ("noise", "penalty")


@dataclass
class Noise:
    """The generator's input distribution p_z."""

    dist: str
    z_dim: int

    def draw(self, rng: PopulationRandom, n: int) -> torch.Tensor:
        """(S, n, z_dim): standard Gaussian or uniform on [-1, 1]."""
        if self.dist == "gaussian":
            return rng.randn(n, self.z_dim)
        return rng.rand(n, self.z_dim) * 2 - 1


@dataclass
class Parts:
    """Everything built from a config that a scheme combines."""

    cfg: Config
    seeds: list[int]
    data: Dataset
    noise: Noise
    objective: Objective
    regularizers: dict[str, Regularizer]
    streams: dict[str, PopulationRandom] = field(default_factory=dict)
    d_modifiers: list[DiscriminatorModifier] = field(default_factory=list)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    conditioning: Conditioning = field(default_factory=lambda: CONDITIONINGS.get("none")(None, None))
    #: The training step being taken (the trainer sets it): lazy regularisers use it.
    step: int = 0
    #: The data-parallel processes that share each seed's batch (`ganscope.distributed`).
    world: World = field(default_factory=World)

    @classmethod
    def from_config(cls, cfg: Config) -> Parts:
        seeds = cfg.seed_list()
        data = dataset_from_config(cfg)
        objective = OBJECTIVES.get(cfg.objective.name)(piece_params(cfg, "objective"))
        d_modifiers = modifiers_from_config(cfg)
        pack = pack_size(d_modifiers)
        regularizers = {
            piece.name: REGULARIZERS.get(piece.name)(params, pack)
            for piece, params in zip(cfg.regularizers, regularizer_params(cfg), strict=True)
        }
        conditioning = CONDITIONINGS.get(cfg.conditioning.name)(piece_params(cfg, "conditioning"), data.n_classes)
        if conditioning.conditional and data.n_classes is None:
            raise ConfigError(f"conditioning {cfg.conditioning.name} needs labelled data, and data {cfg.data.name} "
                              "has no labels; give labelled data or use conditioning.name=none")
        regularizers.update(conditioning.regularizers())
        world = distributed.current()
        device = distributed.process_device(resolve_device(cfg.train.device))
        streams = {
            name: SharedRandom(seeds, name, device=device, world=world) if name in SHARED_STREAMS and world.parallel
            else PopulationRandom(seeds, name, device=device)
            for name in STREAM_NAMES
        }
        noise = Noise(cfg.noise.dist, cfg.noise.z_dim)
        return cls(cfg, seeds, data, noise, objective, regularizers, streams, d_modifiers, device, conditioning,
                   world=world)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def batch_size(self) -> int:
        """Samples per seed and step, over all data-parallel processes."""
        return self.cfg.train.batch_size

    @property
    def process_batch_size(self) -> int:
        """This process's share of `batch_size`."""
        return self.batch_size // self.world.size

    @property
    def conditional(self) -> bool:
        return self.conditioning.conditional

    def real_batch(self) -> Batch:
        """A real batch per seed, with its labels when the run is conditional: this process's
        share of the batch drawn for all of them."""
        batch = self.data.sample_population(self.streams["data"], self.batch_size, labelled=self.conditional)
        if self.world.parallel:
            batch = Batch(self.world.share(batch.x), None if batch.labels is None else self.world.share(batch.labels))
        return batch.to(self.device)

    def noise_batch(self, n: int | None = None) -> torch.Tensor:
        """(S, n, z_dim) noise (default n: this process's share of the batch)."""
        return self.noise.draw(self.streams["noise"], n or self.process_batch_size)

    def generator_labels(self, n: int | None = None, rng: PopulationRandom | None = None) -> torch.Tensor | None:
        """Labels (S, n) for G to generate, drawn from the data's class shares with `rng`
        (default: the population's label stream, n this process's share of the batch, drawn
        as the batch of all processes); None when the run is unconditional."""
        weights = self.data.label_weights
        if not self.conditional or weights is None:
            return None
        shared = rng is None and self.world.parallel
        rng = rng or self.streams["labels"]
        count = (n or self.process_batch_size) * (self.world.size if shared else 1)
        draws = torch.stack([torch.multinomial(weights, count, replacement=True, generator=g) for g in rng.generators])
        return (self.world.share(draws) if shared else draws).to(self.device, non_blocking=True)

    def new_generator(self, index: int = 0) -> nn.Module:
        """A population generator (conditional when the run is); `index` separates the init
        streams of several."""
        builder = GENERATORS.get(self.cfg.generator.name)
        params = piece_params(self.cfg, "generator")

        def build(z_dim: int) -> nn.Module:
            return builder(params, self.n_seeds, z_dim, self.data.sample_shape)

        net = self.conditioning.generator(build, self.noise.z_dim)
        init_population(net, PopulationRandom(self.seeds, "init", 0, index).generators)
        attach_stream(net, self.streams["network"])
        self.sync_statistics(net)
        return net

    def new_discriminator(self, n_outputs: int = 1, index: int = 0) -> nn.Module:
        """A population discriminator changed by the config's `d_modifiers`, in order, and
        by its conditioning."""
        builder = DISCRIMINATORS.get(self.cfg.discriminator.name)
        params = piece_params(self.cfg, "discriminator")

        def build(sample_shape: tuple[int, ...], outputs: int) -> nn.Module:
            def plain(shape: tuple[int, ...], extensions: Sequence[ExtensionFactory]) -> nn.Module:
                return builder(params, self.n_seeds, shape, outputs, extensions)

            return apply_modifiers(plain, self.d_modifiers)(sample_shape, ())

        net = self.conditioning.discriminator(build, self.data.sample_shape, n_outputs)
        init_population(net, PopulationRandom(self.seeds, "init", 1, index).generators)
        attach_stream(net, self.streams["network"])
        self.sync_statistics(net)
        return net

    def sync_statistics(self, net: nn.Module) -> None:
        """In a data-parallel run with `train.distributed.sync_batch_norm`, make `net`'s batch
        norms take their statistics over every process's share of the batch."""
        if self.world.parallel and self.cfg.train.distributed.sync_batch_norm:
            for layer in net.modules():
                if isinstance(layer, PopBatchNorm | PopBatchNorm2d):
                    layer.synced = True

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        return autocast(self.device, self.cfg.train.precision) or contextlib.nullcontext()


def new_optimizer(params: list[nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """Adam, SGD or RMSProp. Elementwise updates keep population seeds independent;
    fused Adam does the whole update in one kernel per parameter group."""
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=True)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Stop gradients into `module`'s parameters: the G step needs gradients through D to
    its input only, so skipping D's weight gradients saves a third of D's backward pass."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def run_generator(generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None) -> Batch:
    """G's samples of noise `z` (for `labels`, when conditional) as a batch."""
    return Batch(generator(z) if labels is None else generator(z, labels), labels)


def real_and_fake_logits(critic: Critic, real: Batch, fake: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """D on both batches; one forward pass on their concatenation unless D couples samples.

    The logits are split in the batches' proportion, since a packing D gives one logit
    per pack of samples rather than one per sample.
    """
    if getattr(critic, "batch_coupled", False):
        return judge(critic, real), judge(critic, fake)
    logits = judge(critic, real.cat(fake))
    n_real = logits.shape[1] * real.size // (real.size + fake.size)
    return logits[:, :n_real], logits[:, n_real:]


def grad_norm_per_seed(module: nn.Module) -> torch.Tensor:
    """L2 norm of each seed's gradient over all of `module`'s parameters, (S,)."""
    squares = [p.grad.reshape(len(p.grad), -1).square().sum(dim=1) for p in module.parameters() if p.grad is not None]
    return torch.stack(squares).sum(dim=0).sqrt()


def add_penalties(
    parts: Parts,
    critic: Critic,
    real: Batch,
    fake: Batch,
    loss: torch.Tensor,
    out: dict[str, torch.Tensor],
    prefix: str = "",
) -> torch.Tensor:
    """`loss` plus the config's D-side regularisers' weighted penalties of `critic` on
    `real` and `fake`, per seed (S,), those that are due at this step (lazy ones are not
    always); each penalty goes unweighted into `out` as `<prefix>penalty_<name>`."""
    for name, reg in parts.regularizers.items():
        if "discriminator" in reg.players and reg.due(parts.step):
            penalty = reg.penalty(critic, real, fake, parts.streams["penalty"])
            out[f"{prefix}penalty_{name}"] = penalty.detach()
            loss = loss + reg.scale * penalty
    return loss


def add_generator_penalties(
    parts: Parts, critic: Critic, fake: Batch, loss: torch.Tensor, out: dict[str, torch.Tensor],
    generator: nn.Module,
) -> torch.Tensor:
    """`loss` plus the weighted G-side penalties of the regularisers that act on G (their
    `players` name "generator") and are due at this step, logged unweighted as
    `g_penalty_<name>`; `generator` made `fake`."""
    for name, reg in parts.regularizers.items():
        if "generator" in reg.players and reg.due(parts.step):
            penalty = reg.generator_penalty(critic, fake, parts.streams["penalty"], generator)
            out[f"g_penalty_{name}"] = penalty.detach()
            loss = loss + reg.scale * penalty
    return loss


def objective_critic_loss(
    parts: Parts, critic: Critic, real: Batch, fake: Batch, prefix: str = ""
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """D's per-seed loss in the objective's game on one pair of batches: the objective's
    d_loss on the logits (in at least float32) plus the weighted penalties; and the log
    (`<prefix>d_loss` and the penalties, detached)."""
    real_logits, fake_logits = real_and_fake_logits(critic, real, fake)
    loss = parts.objective.d_loss(at_least_float32(real_logits), at_least_float32(fake_logits))
    out = {f"{prefix}d_loss": loss.detach()}
    return add_penalties(parts, critic, real, fake, loss, out, prefix), out


def apply_update(
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    module: nn.Module,
    diagnostics: bool,
    key: str,
    inputs: Sequence[torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """One optimiser step on the per-seed `loss` summed over seeds (each seed's gradient is
    its own). Returns `{key: grad_norm_per_seed(module)}` when `diagnostics` is set, else
    nothing. `inputs` limits the backward pass to those leaves (default: all of them)."""
    optimizer.zero_grad(set_to_none=True)
    loss.sum().backward(inputs=inputs)
    distributed.average_gradients(p for group in optimizer.param_groups for p in group["params"])
    out = {key: grad_norm_per_seed(module)} if diagnostics else {}
    optimizer.step()
    return out


class Scheme(ABC):
    """One training step of a GAN method over a population of seeds."""

    #: Whether the scheme's step is exact when each seed's batch is split across the
    #: processes of a torchrun launch (`ganscope.distributed`): every draw it makes goes
    #: through `Parts`' shared draws and every loss is a mean over samples.
    data_parallel: ClassVar[bool] = False

    def __init__(self, parts: Parts, params: Params) -> None:
        self.parts = parts
        self.params = params
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    @abstractmethod
    def train_step(self, diagnostics: bool = False) -> dict[str, torch.Tensor]:
        """One iteration; returns per-seed scalars (S,) such as losses and, when
        `diagnostics` is set, gradient norms."""

    def sample_inputs(self, n: int, key: int, labels: torch.Tensor | None = None) -> Batch:
        """What `generate` turns into n samples per seed at evaluation `key`: noise (S, n,
        z_dim) from the population's `eval` stream and, in a conditional run, `labels` (S, n)
        or labels drawn from the data's class shares. The same key gives the same inputs. A
        translator overrides this with real images of its source domain and their labels."""
        parts = self.parts
        z = parts.noise.draw(PopulationRandom(parts.seeds, "eval", key, device=parts.device), n)
        if labels is None:
            labels = parts.generator_labels(n, PopulationRandom(parts.seeds, "labels", key, 1))
        return Batch(z, None if labels is None else labels.to(parts.device))

    @torch.no_grad()
    def generate(self, inputs: Batch) -> torch.Tensor:
        """Samples (S, n, *sample_shape) from `inputs` (`sample_inputs`: noise, with labels
        when the run is conditional), networks in eval mode: by default those of the
        `sampling_generator`; a scheme with several generators overrides this."""
        return run_generator(self.sampling_generator(), inputs.x, inputs.labels).x.float()

    def trained_generator(self) -> nn.Module:
        """The generator that training updates (all of MAD-GAN's, as one module)."""
        if "generator" not in self.modules:
            raise ConfigError(f"scheme {self.parts.cfg.scheme.name} has no single generator; its networks are "
                              f"{', '.join(self.modules)}")
        return self.modules["generator"]

    def sampling_generator(self) -> nn.Module:
        """What samples are drawn from: G's moving average when the run keeps one
        (`train.ema_kimg`), else G."""
        return self.modules[AVERAGE] if AVERAGE in self.modules else self.trained_generator()

    def train(self, mode: bool = True) -> None:
        """Training or evaluation mode. In evaluation, networks that draw as they run (noise
        inputs) draw from a fresh evaluation branch of the `network` stream, so every evaluation draws the same
        numbers and none of the training stream's: training is the same whether or how
        often it is evaluated, and resume stays bit-exact."""
        stream = self.parts.streams["network"] if mode else PopulationRandom(
            self.parts.seeds, "network", EVALUATION_DRAWS, device=self.parts.device)
        for module in self.modules.values():
            module.train(mode)
            attach_stream(module, stream)

    def keep_average(self) -> None:
        """Keep an exponential moving average of G's weights (`AVERAGE`), which sampling and
        evaluation then use (Karras et al. 2018, Sec. A.1; StyleGAN2's G_ema). Needs a
        scheme with one generator module (`trained_generator`)."""
        try:
            generator = self.trained_generator()
        except ConfigError as error:
            raise ConfigError(f"train.ema_kimg averages one generator: {error}; set train.ema_kimg=0") from None
        attach_stream(generator, None)  # a stream's generators are not copied
        average = copy.deepcopy(generator)
        attach_stream(generator, self.parts.streams["network"])
        attach_stream(average, self.parts.streams["network"])
        average.requires_grad_(False)
        self.modules[AVERAGE] = average

    @torch.no_grad()
    def update_average(self, step: int) -> None:
        """After `step` steps: average <- beta average + (1 - beta) G with beta = 0.5^(B /
        n_avg), a half-life of n_avg = `train.ema_kimg` thousand images, ramped up as
        min(n_avg, `ema_rampup` x images seen) (stylegan2-ada's ema_kimg and ema_rampup);
        buffers (batch norm's statistics, w_avg) are copied."""
        tcfg = self.parts.cfg.train
        half_life = tcfg.ema_kimg * 1000
        if tcfg.ema_rampup is not None:
            half_life = min(half_life, step * self.parts.batch_size * tcfg.ema_rampup)
        beta = 0.5 ** (self.parts.batch_size / max(half_life, 1e-8))
        average, generator = self.modules[AVERAGE], self.trained_generator()
        for p_avg, p in zip(average.parameters(), generator.parameters(), strict=True):
            p_avg.lerp_(p.detach(), 1 - beta)
        for b_avg, b in zip(average.buffers(), generator.buffers(), strict=True):
            b_avg.copy_(b)

    def final_scores(self, n: int, key: int) -> tuple[dict[str, Any], str | None]:
        """Scores of the scheme's own at the end of a run, beyond `score_modes`'s (a
        translator's both directions), for the summary, and a sentence for the verdict;
        networks are in eval mode. None by default."""
        return {}, None

    @torch.no_grad()
    def final_arrays(self, key: int) -> dict[str, torch.Tensor]:
        """Arrays the report draws beside the samples, by file name; networks are in eval
        mode. By default a conditional image run's class-by-seed grid (`CLASS_SAMPLES`:
        (S, K, m, C, H, W), `CLASS_GRID_SAMPLES` per class, at most `MAX_CLASS_GRID`
        classes), and an unconditional style-based G's style mixing and truncation
        pictures (`style_arrays`); a translator gives its inputs, translations and
        reconstructions."""
        parts = self.parts
        n_classes = parts.data.n_classes
        arrays = self.style_arrays(key)
        if not parts.conditional or len(parts.data.sample_shape) != 3 or n_classes > MAX_CLASS_GRID:
            return arrays
        labels = torch.arange(n_classes).repeat_interleave(CLASS_GRID_SAMPLES).expand(parts.n_seeds, -1)
        samples = self.generate(self.sample_inputs(n_classes * CLASS_GRID_SAMPLES, key, labels)).cpu()
        return {**arrays, CLASS_SAMPLES: samples.unflatten(1, (n_classes, CLASS_GRID_SAMPLES))}

    @torch.no_grad()
    def style_arrays(self, key: int) -> dict[str, torch.Tensor]:
        """For an unconditional style-based G (the one sampled from): `MIXING_FILE`, (S, m+1,
        m+1, C, H, W), row 0 the m sources B, column 0 the m sources A, cell (i, j) B_j's
        styles for the coarse half of the layers and A_i's for the rest (Karras et al.
        2019, Fig. 3); and `TRUNCATION_FILE`, (S, P, n, C, H, W), the same n latents at
        each psi of `TRUNCATION_PSIS` (Fig. 8). Nothing for other generators."""
        style = style_generator(self.sampling_generator())
        if style is None or style is not self.sampling_generator():
            return {}
        parts, m = self.parts, MIXING_SOURCES
        rng = PopulationRandom(parts.seeds, "eval", key, 2, device=parts.device)
        ws_a, ws_b = style.styles(parts.noise.draw(rng, m)), style.styles(parts.noise.draw(rng, m))
        coarse = style.n_styles // 2
        mixed = torch.cat([ws_b[:, None, :, :coarse].expand(-1, m, -1, -1, -1),
                           ws_a[:, :, None, coarse:].expand(-1, -1, m, -1, -1)], dim=3)
        cells = style.synthesis(mixed.flatten(1, 2)).unflatten(1, (m, m))
        a, b = style.synthesis(ws_a), style.synthesis(ws_b)
        corner = torch.full_like(a[:, :1], -1.0)
        grid = torch.cat([torch.cat([corner, b], dim=1).unsqueeze(1),
                          torch.cat([a.unsqueeze(2), cells], dim=2)], dim=1)
        z = parts.noise.draw(rng, TRUNCATION_SAMPLES)
        sweep = []
        for psi in TRUNCATION_PSIS:
            with truncated(style, psi):
                sweep.append(style(z))
        return {MIXING_FILE: grid.float().cpu(), TRUNCATION_FILE: torch.stack(sweep, dim=1).float().cpu()}


class TwoPlayerParams(Params):
    n_critic: PositiveInt = 1


class TwoPlayer(Scheme):
    """A generator and a discriminator trained in turns: `n_critic` D steps, each on fresh
    real and fake batches, then one G step on fresh noise (Goodfellow et al. 2014, Alg. 1).

    A scheme says what its losses are (`critic_loss`, `generator_loss`) and, if G alone
    does not make them, how fakes are made (`fakes`); the steps around them are shared:
    fakes for D made without gradient, D frozen in G's step, mixed precision, the optimiser
    update and, after each D update, the objective's projection of D (WGAN's clipping).

    In a conditional run D's fakes are made for the real batch's labels (each real sample
    has a fake of its class beside it, and the class shares are the data's), and G's for
    labels drawn from the data's class shares.
    """

    params: TwoPlayerParams

    def __init__(self, parts: Parts, params: TwoPlayerParams, generator: nn.Module, discriminator: nn.Module) -> None:
        """`generator` is everything G's optimiser trains (and its gradient norm covers)."""
        super().__init__(parts, params)
        self.generator = generator
        self.discriminator = discriminator
        self.modules = {"generator": generator, "discriminator": discriminator}
        optim = parts.cfg.optimizer
        self.optimizers = {
            "generator": new_optimizer(list(generator.parameters()), optim.generator),
            "discriminator": new_optimizer(list(discriminator.parameters()), optim.discriminator),
        }

    def trained_generator(self) -> nn.Module:
        return self.generator

    def fakes(self, labels: torch.Tensor | None = None) -> Batch:
        """A fake batch from fresh noise, for `labels` (default: fresh draws of the class
        shares when the run is conditional)."""
        parts = self.parts
        if labels is None:
            labels = parts.generator_labels()
        return run_generator(self.generator, parts.noise_batch(), labels)

    @abstractmethod
    def critic_loss(self, real: Batch, fake: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's per-seed loss on `real` against `fake` (penalties included) and its log."""

    @abstractmethod
    def generator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """G's per-seed loss on fresh fakes and its log (D is frozen meanwhile)."""

    def d_step(self, diagnostics: bool) -> dict[str, torch.Tensor]:
        parts = self.parts
        real = parts.real_batch()
        with parts.autocast():
            with torch.no_grad():
                fake = self.fakes(real.labels)
            loss, out = self.critic_loss(real, fake)
        out.update(apply_update(self.optimizers["discriminator"], loss, self.discriminator, diagnostics, "d_grad_norm"))
        parts.objective.constrain(self.discriminator)
        return out

    def g_step(self, diagnostics: bool) -> dict[str, torch.Tensor]:
        with self.parts.autocast(), frozen(self.discriminator):
            loss, out = self.generator_loss()
        out.update(apply_update(self.optimizers["generator"], loss, self.generator, diagnostics, "g_grad_norm"))
        return out

    def train_step(self, diagnostics: bool = False) -> dict[str, torch.Tensor]:
        for _ in range(self.params.n_critic):
            out = self.d_step(diagnostics)
        out.update(self.g_step(diagnostics))
        return out
