"""Class conditioning: how labels enter the generator and the discriminator.

A conditioning (`conditioning.name` in the config, one registry entry each) wraps the
configured networks, so it composes with every architecture, D-modifier, objective and
regulariser: G's builder is asked for a wider noise input, D's for other outputs or
input channels, and the labels travel with the samples in each `Batch`. Labels are the
data's (`Dataset.label_weights`): a sample's label is its mode as the oracle counts
modes, so the oracle checks whether G made what it was asked for (label fidelity).

- `none`: unconditional (the default).
- `cgan`: Mirza & Osindero 2014 ("Conditional Generative Adversarial Nets", Sec. 3.2):
  y fed to both players as an extra input, one-hot; G sees concat(z, y), D sees the
  sample with y appended: K more features of a point, or K constant maps of an image.
- `projection`: Miyato & Koyama 2018 ("cGANs with Projection Discriminator", Eq. 3):
  D(x, y) = psi(phi(x)) + <V y, phi(x)>, with phi D's features (after any extensions),
  psi its head and V a learned class embedding of phi's width (Xavier-uniform init, no
  spectral norm on V); G as in `cgan`. With packing a pack's term uses the mean of its m
  samples' embeddings.
- `acgan`: Odena et al. 2017 ("Conditional Image Synthesis with Auxiliary Classifier
  GANs", Eq. 2-3): G as in `cgan`, D unconditional with K more outputs that classify the
  sample; both players also minimise L_C, the cross-entropy of those class logits against
  the labels (D on real and fake samples, G on its fakes), times `class_weight` (1 in the
  paper). L_C is the regulariser `acgan-class`, which the conditioning adds by itself
  and which acts on both players. Its class logits come from the objective's pass of D
  over the same batch where there is one (`AuxiliaryClassifier`).

How G sees the label is the option `generator` of all three: `input` (default, as
above) or `batch-norm`, categorical conditional batch norm (de Vries et al. 2017,
"Modulating early visual processing by language", Sec. 3; the conditional G of Miyato &
Koyama 2018, Sec. 5, after Dumoulin et al. 2017): G's input is the noise alone and every
batch norm of G is followed by a per-class gain and shift, y = BN(x) g[y] + b[y] with g
and b one vector per class and seed, initialised to 1 and 0 (so G starts as the
unconditional G). With the batch norm's own affine the per-class gain is the product
gamma g[y], which spans the same per-class affine maps. G must have batch norm (`dcgan`,
or `mlp` with `batch_norm: true`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import PositiveFloat
from torch import nn

from ganscope.config import Config, piece_params
from ganscope.nets.base import CONDITIONINGS
from ganscope.nets.discriminator import Discriminator
from ganscope.batch import Batch
from ganscope.nets.conv import PopBatchNorm2d, input_convolution
from ganscope.nets.layers import PopBatchNorm, PopulationModule, at_least_float32
from ganscope.objectives.base import per_seed_mean
from ganscope.registry import Params
from ganscope.regularizers.base import Critic, Regularizer, RegularizerParams
from ganscope.seeding import PopulationRandom

#: The schemes that pass labels to their networks and penalties.
CONDITIONAL_SCHEMES = ("alternating", "unrolled", "madgan")
#: Builds a discriminator for samples of a shape with a number of outputs.
DiscriminatorBuilder = Callable[[tuple[int, ...], int], nn.Module]
#: Builds a generator for noise of a width.
GeneratorBuilder = Callable[[int], nn.Module]


def one_hot_like(labels: torch.Tensor, n_classes: int, like: torch.Tensor) -> torch.Tensor:
    """One-hot labels (S, B, K) in `like`'s dtype and device, broadcast over `like`'s
    trailing image axes: (S, B, K, H, W) for images (S, B, C, H, W), (S, B, K) for points."""
    codes = F.one_hot(labels, n_classes).to(like.dtype)
    spatial = like.shape[3:]
    return codes.view(*codes.shape, *([1] * len(spatial))).expand(*codes.shape, *spatial)


class LabelledInput(nn.Module):
    """G(z, y) = inner(concat(z, one_hot(y))): a generator built for z_dim + K inputs."""

    def __init__(self, inner: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.inner = inner
        self.n_classes = n_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.cat([z, one_hot_like(labels, self.n_classes, z)], dim=-1))


class LabelChannels(nn.Module):
    """D(x, y) = inner(concat(x, one_hot(y))) along the first sample axis (features of a
    point, channels of an image); the inner D, built for the wider samples, is unconditional.
    Outermost, so a pack concatenates each sample's (x, y) pair.

    When the inner D names the convolution that alone reads its images (`input_conv`),
    the maps are not built: that convolution takes the labels as indices
    (`PopConv2d.one_hot_classes`), the same function without reading K constant channels
    of every image."""

    def __init__(self, inner: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.inner = inner
        self.n_classes = n_classes
        self.batch_coupled = getattr(inner, "batch_coupled", False)
        # A tuple, not an attribute of module type: the layer stays registered once, in `inner`.
        self.label_reader = (input_convolution(inner),)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            raise ValueError("a cgan discriminator needs the samples' labels")
        conv = self.label_reader[0]
        if conv is None:
            return self.inner(torch.cat([x, one_hot_like(labels, self.n_classes, x)], dim=2))
        with conv.one_hot_classes(self.n_classes, labels):
            return self.inner(x)


class ClassProjection(PopulationModule):
    """<V y, phi(x)> per input, (S, B, 1), V (S, K, F) one embedding per class and seed."""

    def __init__(self, n_seeds: int, n_classes: int, feature_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_seeds, n_classes, feature_dim))

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        bound = math.sqrt(6.0 / sum(self.weight.shape[1:]))  # Xavier uniform, as the authors' code
        with torch.no_grad():
            for row, g in zip(self.weight, generators, strict=True):
                row.uniform_(-bound, bound, generator=g)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """`labels` (S, B) or (S, B, m) for packs (mean embedding of the pack)."""
        index = labels.reshape(labels.shape[0], -1, 1).expand(-1, -1, self.weight.shape[2])
        embedded = torch.gather(self.weight, 1, index).view(*labels.shape, -1)
        if labels.dim() == 3:
            embedded = embedded.mean(dim=2)
        return (embedded.to(features.dtype) * features).sum(dim=-1, keepdim=True)


class ClassBatchNorm(PopulationModule):
    """A population batch norm followed by a per-class gain and shift: BN(x) g[s, y] + b[s,
    y] for inputs (S, N, C, ...), g and b (S, K, C), the class y of each sample set in
    `labels` (S, N) by `ClassNormGenerator` before G runs."""

    def __init__(self, norm: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.norm = norm
        n_seeds, channels = norm.weight.shape[0], norm.weight.shape[-1]
        self.gain = nn.Parameter(torch.ones(n_seeds, n_classes, channels))
        self.shift = nn.Parameter(torch.zeros(n_seeds, n_classes, channels))
        self.labels: torch.Tensor | None = None

    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        with torch.no_grad():
            self.gain.fill_(1.0)
            self.shift.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.labels is None:
            raise ValueError("a class-conditional batch norm needs the samples' labels")
        y = self.norm(x)
        seeds = torch.arange(self.labels.shape[0], device=self.labels.device)[:, None]
        gain, shift = self.gain[seeds, self.labels], self.shift[seeds, self.labels]  # (S, N, C)
        trailing = (1,) * (y.dim() - 3)
        return y * gain.view(*gain.shape, *trailing) + shift.view(*shift.shape, *trailing)


class ClassNormGenerator(nn.Module):
    """G(z, y) = inner(z) with every batch norm of `inner` made class-conditional
    (`ClassBatchNorm`): the labels reach them for the length of one call."""

    def __init__(self, inner: nn.Module, n_classes: int) -> None:
        super().__init__()
        norms = [(parent, name, child) for parent in inner.modules() for name, child in parent.named_children()
                 if isinstance(child, PopBatchNorm | PopBatchNorm2d)]
        if not norms:
            raise ValueError("conditional batch norm needs a generator with batch norm")
        for parent, name, child in norms:
            setattr(parent, name, ClassBatchNorm(child, n_classes))
        self.inner = inner
        self.norms = [m for m in inner.modules() if isinstance(m, ClassBatchNorm)]

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        for norm in self.norms:
            norm.labels = labels
        try:
            return self.inner(z)
        finally:
            for norm in self.norms:
                norm.labels = None


class AuxiliaryClassifier(nn.Module):
    """An unconditional D with `n_classes` more outputs: `forward` gives the objective's
    `n_outputs` logits, `classify` the class logits (AC-GAN's auxiliary classifier).

    The objective asks for the realness logits of a batch and the class loss for the class
    logits of the same batch; both are outputs of one pass of D, as in the paper, so the
    last few passes are kept (`PASSES_KEPT`) and a second question about the same samples
    tensor, with D's parameters unchanged (the same tensors at the same versions: no
    optimiser step, no other parameters from a functional call) and the same grad mode,
    reads the kept output instead of running D again."""

    PASSES_KEPT: ClassVar[int] = 4

    def __init__(self, inner: nn.Module, n_outputs: int) -> None:
        super().__init__()
        self.inner = inner
        self.n_outputs = n_outputs
        self.batch_coupled = getattr(inner, "batch_coupled", False)
        self._passes: list[tuple[torch.Tensor, tuple, torch.Tensor]] = []

    def _pass(self, x: torch.Tensor) -> torch.Tensor:
        """inner(x), or the kept output of the same pass."""
        key = (x._version, torch.is_grad_enabled(), self.training,
               tuple((id(p), p._version) for p in self.inner.parameters()))
        for seen, seen_key, out in self._passes:
            if seen is x and seen_key == key:
                return out
        out = self.inner(x)
        self._passes = [*self._passes[-(self.PASSES_KEPT - 1):], (x, key, out)]
        return out

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, classes: bool = False) -> torch.Tensor:
        """The objective's logits of `x` (labels are ignored), or with `classes` the class
        logits (S, B, K): one entry point, so a functional call with other parameters (the
        unrolled scheme's) reaches both."""
        out = self._pass(x)
        return out[..., self.n_outputs:] if classes else out[..., : self.n_outputs]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (S, B, K) of samples `x`."""
        return self(x, classes=True)


class ConditioningParams(Params):
    pass


class LabelledParams(ConditioningParams):
    #: How G sees the label: `input` (one-hot joined to the noise) or `batch-norm`
    #: (categorical conditional batch norm in every batch norm of G).
    generator: Literal["input", "batch-norm"] = "input"


class Conditioning:
    """How a run's networks see labels; the base class is the unconditional case."""

    #: Whether G and D take labels (and the data must have them).
    conditional: ClassVar[bool] = True

    def __init__(self, params: Params, n_classes: int | None) -> None:
        self.params = params
        self.n_classes = n_classes or 0

    def generator(self, build: GeneratorBuilder, z_dim: int) -> nn.Module:
        """G(z, y): the configured generator fed concat(z, one_hot(y)), or with
        `generator: batch-norm` fed z, its batch norms conditional on y."""
        if getattr(self.params, "generator", "input") == "batch-norm":
            return ClassNormGenerator(build(z_dim), self.n_classes)
        return LabelledInput(build(z_dim + self.n_classes), self.n_classes)

    def discriminator(self, build: DiscriminatorBuilder, sample_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        """D(x, y) built from the configured (and modified) discriminator's builder."""
        return build(sample_shape, n_outputs)

    def regularizers(self) -> dict[str, Regularizer]:
        """Penalties the conditioning brings to the players' losses (AC-GAN's class loss)."""
        return {}

    @classmethod
    def check_config(cls, params: Params, cfg: Config) -> str | None:
        """Schemes that pass labels: alternating, unrolled and madgan. (Whether the data has
        labels is known once it is read: `Parts.from_config` says so.)"""
        scheme = cfg.scheme.name
        if cls.conditional and scheme not in CONDITIONAL_SCHEMES:
            return (f"conditioning {cfg.conditioning.name} works with the {', '.join(CONDITIONAL_SCHEMES)} schemes; "
                    f"scheme {scheme} does not pass labels yet: use scheme.name=alternating")
        if getattr(params, "generator", "input") == "batch-norm":
            generator = piece_params(cfg, "generator")
            if not getattr(generator, "batch_norm", False):
                return (f"conditioning.generator=batch-norm makes G's batch norms conditional, and generator "
                        f"{cfg.generator.name} has none; set generator.batch_norm=true (mlp, dcgan) or use "
                        f"conditioning.generator=input")
        return None


@CONDITIONINGS.register("none", "unconditional: G(z), D(x)", ConditioningParams)
class Unconditional(Conditioning):
    conditional = False

    def generator(self, build: GeneratorBuilder, z_dim: int) -> nn.Module:
        return build(z_dim)


@CONDITIONINGS.register("cgan", "CGAN: one-hot label joined to G's noise and to D's input (Mirza & Osindero 2014)",
                        LabelledParams)
class ConcatConditioning(Conditioning):
    def discriminator(self, build: DiscriminatorBuilder, sample_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        wider = (sample_shape[0] + self.n_classes, *sample_shape[1:])
        return LabelChannels(build(wider, n_outputs), self.n_classes)


@CONDITIONINGS.register("projection", "projection D: psi(phi(x)) + <V y, phi(x)>; G as cgan (Miyato & Koyama 2018)",
                        LabelledParams)
class ProjectionConditioning(Conditioning):
    def discriminator(self, build: DiscriminatorBuilder, sample_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        net = build(sample_shape, n_outputs)
        inner = next((m for m in net.modules() if isinstance(m, Discriminator)), None)
        if inner is None:
            raise ValueError("the projection needs a discriminator with a feature head")
        n_seeds = inner.head.weight.shape[0]
        inner.projection = ClassProjection(n_seeds, self.n_classes, inner.feature_dim)
        return net

    @classmethod
    def check_config(cls, params: Params, cfg: Config) -> str | None:
        if cfg.discriminator.name not in ("mlp", "dcgan"):
            return f"the projection needs a discriminator with a feature head (mlp or dcgan), not {cfg.discriminator.name}"
        return super().check_config(params, cfg)


class ACGANParams(LabelledParams):
    class_weight: PositiveFloat = 1.0


def class_cross_entropy(critic: Critic, batch: Batch) -> torch.Tensor:
    """Per-seed mean cross-entropy (S,) of the auxiliary classifier's logits of `batch`
    against its labels, in at least float32."""
    logits = at_least_float32(critic.classify(batch.x))  # type: ignore[attr-defined]
    assert batch.labels is not None
    losses = F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), reduction="none")
    return per_seed_mean(losses.view(batch.labels.shape))


class ClassLoss(Regularizer):
    """AC-GAN's L_C (Odena et al. 2017, Eq. 2), as cross-entropies to minimise: D's penalty
    is CE on the real batch plus CE on the fake batch, G's is CE on its fakes."""

    players = ("discriminator", "generator")

    def penalty(self, critic: Critic, real: Batch, fake: Batch, rng: PopulationRandom) -> torch.Tensor:
        if getattr(critic, "batch_coupled", False):
            return class_cross_entropy(critic, real) + class_cross_entropy(critic, fake)
        # Real and fake batches are equally large: twice the pooled mean is the sum of both
        # means. `real.cat(fake)` is the objective's joined batch, so D's pass is shared.
        return 2 * class_cross_entropy(critic, real.cat(fake))

    def generator_penalty(self, critic: Critic, fake: Batch, rng: PopulationRandom,
                          generator: nn.Module) -> torch.Tensor:
        return class_cross_entropy(critic, fake)


@CONDITIONINGS.register("acgan", "AC-GAN: D classifies samples, both players minimise the class loss "
                        "(Odena et al. 2017)", ACGANParams)
class AuxiliaryClassifierConditioning(Conditioning):
    params: ACGANParams

    def discriminator(self, build: DiscriminatorBuilder, sample_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        return AuxiliaryClassifier(build(sample_shape, n_outputs + self.n_classes), n_outputs)

    def regularizers(self) -> dict[str, Regularizer]:
        return {"acgan_class": ClassLoss(RegularizerParams(weight=self.params.class_weight))}

    @classmethod
    def check_config(cls, params: Params, cfg: Config) -> str | None:
        if any(piece.name == "pack" for piece in cfg.d_modifiers):
            return "acgan classifies single samples, and packing makes D judge packs; drop one of the two"
        return super().check_config(params, cfg)
