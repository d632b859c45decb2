"""Mode-regularized GAN (Che, Li, Jacob, Bengio & Li 2017, "Mode Regularized Generative
Adversarial Networks"); "MR-GAN" in the source material.

Why: a GAN's G is only pulled towards the data where D's gradient points, and D's gradient
points at the modes G already covers, so a mode that G misses early can stay missed. MR-GAN
learns an encoder E beside G and asks G to *reconstruct every real sample*: G(E(x)) must
be close to x (the geometric regulariser, Sec. 3.1) and must look real to D (the mode
regulariser, Sec. 3.2). Every mode of the data then has samples that G must be able to
produce, so the mass of G(z) is not free to drop it.

The G and E losses as the paper prints them (Sec. 3.2; Eqs. 3-4 in our numbering):

    T_G = -E_z[log D(G(z))] + E_x[lambda1 d(x, G∘E(x)) + lambda2 log D(G∘E(x))]
    T_E =                     E_x[lambda1 d(x, G∘E(x)) + lambda2 log D(G∘E(x))]

**The sign of the lambda2 term.** Both are minimised, and G∘E(x) is meant to look real,
i.e. D(G∘E(x)) should *rise*. But minimising +lambda2 log D(G∘E(x)) *lowers*
D(G∘E(x)): as printed, the mode regulariser pushes reconstructions away from what D
finds real, against the paper's own text and against the adversarial term next to it,
-log D(G(z)), which has the opposite sign. Algorithm 1 (MDGAN) has it the other way: its
manifold step updates G by gradient *ascent* on lambda log D1(G(E(x_i))) - ||x_i - G(E(x_i))||^2,
which is descent on ||x - G(E(x))||^2 - lambda log D1(G(E(x))): reconstruction error down,
D(G∘E(x)) up. We implement that consistent direction: the mode regulariser is
G's non-saturating adversarial loss on the reconstructions, -log D(G∘E(x)), minimised.
The printed sign is a typo we do not reproduce (popular re-implementations do: the
widely copied wiseodd/generative-models one adds +lambda2 D(G(E(x))), without even the
log, to both G's and E's losses, which also lowers D(G∘E(x))). The test
`test_mode_regularizer_step_raises_d_of_reconstructions` pins the direction. Sources:
T_G and T_E as the project brief quotes them; Algorithm 1 as we recall it from the paper,
whose body (Sec. 3 and Algorithm 1) we could not retrieve here to re-check word for word.

Written through the configured objective, the mode regulariser is `objective.g_loss` on
D's logits for G∘E(x) (for the default non-saturating objective, exactly
-log D(G∘E(x))), and D's loss is `objective.d_loss`, so MR-GAN composes with any objective
and regulariser. The paper uses the original log-loss GAN.

Two ways to train (`manifold_diffusion`):
- off, the regularised GAN of Sec. 3.1-3.2: one D, real against G(z); G minimises T_G
  and E minimises T_E (one backward pass gives both: the -log D(G(z)) term does not
  depend on E).
- on (default), MDGAN, Sec. 3.3 and Algorithm 1: the *manifold step* trains D_M on real
  against G(E(x)) and G, E on lambda1 ||x - G(E(x))||^2 + lambda2 (-log D_M(G(E(x)))), so
  the reconstructions match the data manifold, every mode included; the *diffusion step*
  trains D_D on G(E(x)) (as "real") against G(z) and G on -log D_D(G(z)), so G(z) spreads
  over the mass the reconstructions cover. D_D is the collapse detector: G(z) piling up on
  a few modes is exactly what tells it apart from the reconstructions.
Each step draws one minibatch and uses it for its D update and then its G (and E) update,
as Algorithm 1 does. The log has `d_loss` (D, or D_M), `g_loss` (G's adversarial loss on
G(z)), `reconstruction` and `mode_regularizer` (unweighted) and, for MDGAN,
`diffusion_d_loss`.

The encoder (`scheme.encoder`, a piece of `ganscope.nets.autoencoder.ENCODERS`): E maps a
sample to a noise vector, the way D maps a sample to its logits, so it is built as a
discriminator with a z_dim-wide head. `name: auto` (the default) follows the samples: for
points a population MLP (`mlp`, the MLP generator's defaults: 3 hidden layers of 128), for
images (channels, height, width) a convolutional encoder (`dcgan`: the DCGAN
discriminator's stride-2 stages, `width` 64, batch norm, then a linear layer to z_dim),
which sees the image as D does instead of as a flat vector of pixels. Name one to choose
it, with its parameters beside the name: `scheme.encoder={name: dcgan, width: 16}`.

Defaults: lambda1 = 1, lambda2 = 0.01, manifold diffusion on, the encoder as above; d is
the squared Euclidean distance, summed over a sample's features (every pixel of an
image), as in Algorithm 1. Algorithm 1 weighs the reconstruction error by 1 and the
adversarial term by a small lambda; the paper tunes lambda1, lambda2 per dataset by grid
search, and we could not retrieve its values. On the 2-D ring (seeds 0-1, 2,000 steps,
default networks) lambda2 = 0.01 covered 8/8 modes with reverse KL 0.06 (the alternating
GAN: 8/8, 0.92), lambda2 = 0.1 7.5/8 and 0.33. Weighing the two terms alike (lambda1 =
lambda2 = 0.5) lets the mode regulariser, itself a GAN loss on G∘E(x), collapse the
reconstructions: the reconstruction error rose from 0.02 to 1.6, E's gradient vanished,
and the diffusion step copied the collapse onto G(z) (2/8 modes). The encoder's codes
need not look like draws of p_z (on the ring they sit near the origin, the noise on a
shell of radius sqrt(z_dim)), so G serves two regions of its input; the diffusion step,
not E, ties them together.
"""

from __future__ import annotations

import torch
from pydantic import NonNegativeFloat
from torch import nn

from ganscope.batch import Batch
from ganscope.config import Config
from ganscope.errors import ConfigError
from ganscope.nets.autoencoder import AUTO, EncoderChoice, build_encoder, encoder_params
from ganscope.nets.layers import init_population
from ganscope.objectives.base import Objective, per_seed_mean
from ganscope.registry import Params
from ganscope.schemes.base import (
    SCHEMES,
    Parts,
    Scheme,
    apply_update,
    frozen,
    grad_norm_per_seed,
    new_optimizer,
    objective_critic_loss,
)
from ganscope.seeding import PopulationRandom


class MRGANParams(Params):
    lambda1: NonNegativeFloat = 1.0
    lambda2: NonNegativeFloat = 0.01
    manifold_diffusion: bool = True
    encoder: EncoderChoice = EncoderChoice()


def reconstruction_loss(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """E_x d(x, G∘E(x)) with d the squared Euclidean distance of whole samples, per seed (S,)."""
    return per_seed_mean((reconstruction - x).flatten(2).square().sum(dim=-1))


def mode_regularizer(objective: Objective, reconstruction_logits: torch.Tensor) -> torch.Tensor:
    """G's adversarial loss on the reconstructions G∘E(x), per seed (S,): -E_x log D(G∘E(x))
    for the non-saturating objective. Minimised, it *raises* D(G∘E(x)); the paper's
    printed +lambda2 log D(G∘E(x)) would lower it (see the module docstring)."""
    return objective.g_loss(reconstruction_logits)


def discriminator_step(
    parts: Parts,
    critic: nn.Module,
    optimizer: torch.optim.Optimizer,
    real: Batch,
    fake: Batch,
    diagnostics: bool,
    prefix: str = "",
) -> dict[str, torch.Tensor]:
    """One update of `critic` on the objective's D loss for `real` against `fake` plus the
    config's regularisers, then the objective's projection; logs under `prefix`."""
    with parts.autocast():
        loss, out = objective_critic_loss(parts, critic, real, fake, prefix)
    out.update(apply_update(optimizer, loss, critic, diagnostics, f"{prefix}d_grad_norm"))
    parts.objective.constrain(critic)
    return out


@SCHEMES.register(
    "mrgan",
    "encoder E, reconstruction + mode regularisers, manifold/diffusion Ds (Che et al. 2017)",
    MRGANParams,
)
class MRGAN(Scheme):
    """Regularised GAN or MDGAN (see the module docstring); E, G and every D are in
    `modules` with their optimisers, so checkpoints and resume cover them."""

    params: MRGANParams

    @classmethod
    def check_config(cls, params: MRGANParams, cfg: Config) -> str | None:
        """A named encoder's parameters are checked at load time; with `auto` the
        architecture follows the data's sample shape, so they are checked when it is built."""
        if params.encoder.name == AUTO:
            return None
        try:
            encoder_params(params.encoder, params.encoder.name, "encoder")
        except ConfigError as err:
            return str(err)
        return None

    def __init__(self, parts: Parts, params: MRGANParams) -> None:
        super().__init__(parts, params)
        self.generator = parts.new_generator()
        self.encoder = build_encoder(
            params.encoder, parts.n_seeds, parts.data.sample_shape, parts.noise.z_dim, "scheme.encoder"
        )
        # The encoder's own initialisation stream (role 2; G and D use roles 0 and 1).
        init_population(self.encoder, PopulationRandom(parts.seeds, "init", 2, 0).generators)
        self.discriminator = parts.new_discriminator()
        self.modules = {"generator": self.generator, "encoder": self.encoder, "discriminator": self.discriminator}
        optim = parts.cfg.optimizer
        self.optimizers = {
            "generator": new_optimizer(list(self.generator.parameters()), optim.generator),
            "encoder": new_optimizer(list(self.encoder.parameters()), optim.generator),
            "discriminator": new_optimizer(list(self.discriminator.parameters()), optim.discriminator),
        }
        if params.manifold_diffusion:
            self.diffusion_discriminator = parts.new_discriminator(index=1)
            self.modules["diffusion_discriminator"] = self.diffusion_discriminator
            self.optimizers["diffusion_discriminator"] = new_optimizer(
                list(self.diffusion_discriminator.parameters()), optim.discriminator
            )

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """G(E(x)) for real samples x (S, B, *sample_shape)."""
        return self.generator(self.encoder(x))

    def generator_step(
        self, loss: torch.Tensor, logs: dict[str, torch.Tensor], diagnostics: bool
    ) -> dict[str, torch.Tensor]:
        """Minimise `loss` (S,) over G and E and return `logs` with the gradient norms. E's
        gradient is zero for terms of G(z) alone, so on T_G E takes exactly T_E's step, and
        on the diffusion step, where it has no gradient, none."""
        nets = {"generator": "g_grad_norm", "encoder": "e_grad_norm"}
        for name in nets:
            self.optimizers[name].zero_grad(set_to_none=True)
        loss.sum().backward()
        out = {k: v.detach() for k, v in logs.items()}
        for name, log_key in nets.items():
            if diagnostics and any(p.grad is not None for p in self.modules[name].parameters()):
                out[log_key] = grad_norm_per_seed(self.modules[name])
            self.optimizers[name].step()
        return out

    def encoder_loss(self, real: torch.Tensor, critic: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """T_E = lambda1 E d(x, G∘E(x)) + lambda2 mode regulariser under `critic`, (S,), and
        its two terms unweighted for the log."""
        reconstruction = self.reconstruct(real)
        terms = {
            "reconstruction": reconstruction_loss(real, reconstruction.float()),
            "mode_regularizer": mode_regularizer(self.parts.objective, critic(reconstruction).float()),
        }
        return self.params.lambda1 * terms["reconstruction"] + self.params.lambda2 * terms["mode_regularizer"], terms

    def regularized_gan_step(self, diagnostics: bool) -> dict[str, torch.Tensor]:
        """Sec. 3.1-3.2: D on real vs G(z); G on T_G and E on T_E against that same D."""
        parts = self.parts
        real, z = parts.real_batch(), parts.noise_batch()
        with torch.no_grad(), parts.autocast():
            fake = Batch(self.generator(z))
        out = discriminator_step(parts, self.discriminator, self.optimizers["discriminator"], real, fake, diagnostics)
        with parts.autocast(), frozen(self.discriminator):
            g_loss = parts.objective.g_loss(self.discriminator(self.generator(z)).float())
            loss, logs = self.encoder_loss(real.x, self.discriminator)
        out.update(self.generator_step(g_loss + loss, {"g_loss": g_loss, **logs}, diagnostics))
        return out

    def manifold_diffusion_step(self, diagnostics: bool) -> dict[str, torch.Tensor]:
        """Algorithm 1: the manifold step (D_M: real vs G(E(x)); G, E: T_E under D_M), then
        the diffusion step (D_D: G(E(x)) vs G(z); G: adversarial loss under D_D)."""
        parts = self.parts
        real = parts.real_batch()
        with torch.no_grad(), parts.autocast():
            reconstruction = Batch(self.reconstruct(real.x))
        out = discriminator_step(
            parts, self.discriminator, self.optimizers["discriminator"], real, reconstruction, diagnostics
        )
        with parts.autocast(), frozen(self.discriminator):
            loss, logs = self.encoder_loss(real.x, self.discriminator)
        out.update(self.generator_step(loss, logs, diagnostics))

        real, z = parts.real_batch(), parts.noise_batch()
        with torch.no_grad(), parts.autocast():
            reconstruction, fake = Batch(self.reconstruct(real.x)), Batch(self.generator(z))
        critic = self.diffusion_discriminator
        out.update(
            discriminator_step(
                parts, critic, self.optimizers["diffusion_discriminator"], reconstruction, fake, diagnostics,
                prefix="diffusion_",
            )
        )
        with parts.autocast(), frozen(critic):
            g_loss = parts.objective.g_loss(critic(self.generator(z)).float())
        out.update(self.generator_step(g_loss, {"g_loss": g_loss}, diagnostics))
        return out

    def train_step(self, diagnostics: bool = False) -> dict[str, torch.Tensor]:
        if self.params.manifold_diffusion:
            return self.manifold_diffusion_step(diagnostics)
        return self.regularized_gan_step(diagnostics)
