"""Gradient-norm penalties: keep the norm of D's input gradient near a target k.

Both penalties are lambda E (||grad_x D(x_hat)||_2 - k)^2 and differ only in where x_hat
lies: WGAN-GP between real and fake samples, DRAGAN around the real data. The norm is
per input of D over all its features, every channel and pixel of an image (S, B, C, H, W);
one interpolation weight per input, broadcast over those features, keeps each interpolate
on a segment between a real and a fake input. The expectation is a per-seed mean, so each
seed's penalty depends on its own critic, batch and random stream alone.

An input of D is one sample, or with PacGAN's packing (`pack` = m) the m consecutive
samples D sees concatenated: the penalty is then defined on the packs, as on any critic
of m * d inputs, with one interpolation weight and one gradient norm per pack.

Both papers define the penalty for a D whose output for one input depends on that input
alone; a D that couples the samples of a batch (batch norm, minibatch discrimination)
mixes every sample's gradient into every output, so `check_config` rejects the pairing.
"""

from __future__ import annotations

import torch
from pydantic import NonNegativeFloat

from ganscope.batch import Batch
from ganscope.config import Config, piece_params
from ganscope.nets.base import D_MODIFIERS
from ganscope.nets.layers import at_least_float32
from ganscope.objectives.base import per_seed_mean
from ganscope.regularizers.base import REGULARIZERS, Critic, Regularizer, RegularizerParams
from ganscope.registry import Params
from ganscope.seeding import PopulationRandom


def gradient_norm_penalty(critic: Critic, batch: Batch, target: float = 1.0, pack: int = 1) -> torch.Tensor:
    """Per-seed mean of (||grad_x D(x, y)||_2 - target)^2 over the samples x (S, B,
    *sample_shape) of `batch` with their labels y, one norm per input of D: per sample, or
    per run of `pack` consecutive samples.

    Differentiating the summed output gives each sample its own gradient as long as D
    does not couple the samples of a batch (no batch norm or minibatch features), the
    setting in which both papers define the penalty. `create_graph` keeps the gradient
    differentiable, so the penalty trains D's parameters.

    Points that already require grad keep their graph: the unrolled GAN's surrogate D
    steps interpolate towards fakes G(z) that carry their graph to G, and G's gradient
    through the penalty is part of the surrogate's true gradient. Ordinary D steps make
    their fakes without gradient, so there the points become a fresh leaf. The norms are
    taken in at least float32 (bf16 promoted, float64 kept).
    """
    points = batch.x if batch.x.requires_grad else batch.x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(points, batch.labels).sum(), points, create_graph=True)
    n_seeds, batch = grad.shape[:2]
    per_input = at_least_float32(grad).reshape(n_seeds, batch // pack, -1)
    norms = torch.linalg.vector_norm(per_input, dim=2)
    return per_seed_mean((norms - target).square())


def per_input_uniform(rng: PopulationRandom, like: torch.Tensor, pack: int = 1) -> torch.Tensor:
    """U[0, 1) of shape (S, B, 1, ..., 1): one draw per input of D (a sample, or a pack of
    `pack` consecutive samples), shared by all its features.

    One weight per input keeps x_hat on the segment between a real and a fake input; a
    weight per pixel (a bug PyTorch-GAN copied across scripts), or per sample of a pack,
    lands off that segment.
    """
    n_features = like.dim() - 2
    draws = rng.rand(like.shape[1] // pack, *([1] * n_features)).to(like)
    return draws.repeat_interleave(pack, dim=1)


class GradientNormRegularizer(Regularizer):
    """A penalty on D's input gradient: needs D's output for an input to depend on it alone."""

    @classmethod
    def check_config(cls, params: Params, cfg: Config) -> str | None:
        return cls.check_batch_norm(cfg) or cls.check_coupling_modifiers(cfg)

    @staticmethod
    def check_batch_norm(cfg: Config) -> str | None:
        if getattr(piece_params(cfg, "discriminator"), "batch_norm", False):
            return (
                f"a gradient penalty needs a discriminator without batch norm, and discriminator.name="
                f"{cfg.discriminator.name} has batch_norm=true (it couples the samples of a batch; Gulrajani et al. "
                "2017, Sec. 4); set discriminator.batch_norm=false"
            )
        return None

    @staticmethod
    def check_coupling_modifiers(cfg: Config) -> str | None:
        coupled = [p.name for p in cfg.d_modifiers if D_MODIFIERS.get(p.name).couples_batch]
        if coupled:
            return (
                f"a gradient penalty needs each output of D to depend on one input alone, and d_modifier "
                f"{coupled[0]!r} couples the samples of a batch; drop one of the two"
            )
        return None


@REGULARIZERS.register(
    "gradient-penalty",
    "WGAN-GP: (||grad D||-1)^2 at random real/fake interpolates (Gulrajani et al. 2017)",
    RegularizerParams,
)
class GradientPenalty(GradientNormRegularizer):
    """Gulrajani et al. 2017, Eq. 3 and Algorithm 1 (lines 4-7): eps ~ U[0, 1] per sample,
    x_hat = eps x + (1 - eps) G(z), penalty E (||grad D(x_hat)||_2 - 1)^2, weight
    lambda = 10. An optimal critic has unit gradient norm on the segments between coupled
    real and fake points (Proposition 1), so the penalty enforces the 1-Lipschitz
    constraint softly where it matters, replacing WGAN's weight clipping.
    """

    def penalty(self, critic: Critic, real: Batch, fake: Batch, rng: PopulationRandom) -> torch.Tensor:
        """Interpolates carry the real samples' labels: a conditional scheme makes the fakes
        of D's step for those labels, so each segment joins a real and a fake of one class."""
        eps = per_input_uniform(rng, real.x, self.pack)
        return gradient_norm_penalty(critic, real.with_samples(eps * real.x + (1 - eps) * fake.x), pack=self.pack)


class DraganParams(RegularizerParams):
    perturb_scale: NonNegativeFloat = 0.5
    k: NonNegativeFloat = 1.0


@REGULARIZERS.register(
    "dragan",
    "DRAGAN: (||grad D||-k)^2 at noisy points around the real data (Kodali et al. 2017)",
    DraganParams,
)
class Dragan(GradientNormRegularizer):
    """DRAGAN (Kodali et al. 2017, "On Convergence and Stability of GANs", Section 5):
    sharp D gradients around the real data are the local equilibria in which G collapses
    onto a few modes, so D's gradient norm is held near k in a neighbourhood of the data
    rather than between data and fakes.

    The paper writes the penalty as lambda E_{x, delta ~ N(0, cI)} (||grad D(x + delta)|| - k)^2
    with lambda ~ 10, k = 1, c ~ 10. We implement what the authors' reference code
    (github.com/kodalinaveen3/DRAGAN, DRAGAN.ipynb) trains with, since that is the code
    released with the paper and the version other ports follow:
        x_p   = x + C * std(x) * u,  u ~ U[0, 1) per element, C = 0.5,
                std over every element of the real batch (numpy's population std),
        x_hat = x + alpha (x_p - x),  alpha ~ U[0, 1] per sample (per pack if packed),
        penalty = E (||grad D(x_hat)||_2 - k)^2, per-sample (per-pack) norm, lambda = 10,
    with D and G trained on the non-saturating GAN loss (Adam lr 1e-4, betas (0.5, 0.9),
    one D step per G step). Here std(x) is taken per seed, over that seed's batch. The
    uniform noise is one-sided (it shifts every coordinate upwards); use
    `perturb_scale` to widen or narrow the neighbourhood.
    """

    params: DraganParams

    def penalty(self, critic: Critic, real: Batch, fake: Batch, rng: PopulationRandom) -> torch.Tensor:
        x = real.x
        sigma = x.flatten(1).std(dim=1, correction=0).view(-1, *([1] * (x.dim() - 1)))
        noise = rng.rand(*x.shape[1:]).to(x)
        perturbed = x + self.params.perturb_scale * sigma * noise
        alpha = per_input_uniform(rng, x, self.pack)
        return gradient_norm_penalty(critic, real.with_samples(x + alpha * (perturbed - x)), self.params.k, self.pack)
