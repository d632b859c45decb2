"""Energy-based GAN (Zhao, Mathieu & LeCun 2017, "Energy-based Generative Adversarial
Network").

Why: a classifier D saturates and tells G only "fake" about any far-away sample. EBGAN's D
is an energy function, low on the data and high elsewhere, here an autoencoder whose
reconstruction error is the energy (Sec. 2.3, Eq. 6): D(x) = ||Dec(Enc(x)) - x||. The
autoencoder is trained on the data as any autoencoder is, so it keeps a picture of the
whole data manifold, every mode included, instead of one decision boundary, and G
descends the energy. Its losses (`ganscope.objectives.energy`):

    L_D = D(x) + [m - D(G(z))]^+                         (Eq. 1)
    L_G = D(G(z)) + w_PT f_PT(Enc(G(z)))                  (Eq. 2 and Sec. 2.5, Eq. 7)

The margin m stops D pushing fakes' energies up once they reach m. The pull-away term
f_PT, the mean squared cosine similarity of the encoder's codes of a fake batch, is
EBGAN's own remedy for mode collapse: G is penalised for a batch whose codes all point the
same way (the "repelling regularizer", Sec. 2.5; "EBGAN-PT" in the paper).

Defaults and where they come from:
- `pt_weight` = 0.1, the paper's weight of the pull-away term (Sec. 4.1).
- `margin` = 1. The paper tunes m per dataset for images of hundreds of pixels (m = 10 is
  the MNIST value re-implementations quote; larger for larger images); m is on the scale
  of the energy, a whole-sample norm, so for the 2-D ring, whose points have norm 1, m = 1
  asks D to push fakes one ring radius off their reconstruction. Raise it with the
  sample dimension.
- `code_dim` = 32, our choice, and the autoencoder's widths from `discriminator.*`: the
  pull-away term asks the codes of a batch to point in different directions, which a code
  of the data's 2 dimensions could not offer many samples.
- `n_critic` = 1: one autoencoder step per G step, as in the paper.

EBGAN brings its own losses, so it accepts only the default objective (it would be
silently ignored otherwise), and its discriminator is an autoencoder built from
`discriminator.*` (`ganscope.nets.autoencoder.AUTOENCODERS`), to which the discriminator
modifiers do not apply; `check_config` rejects both mistakes at load time. Regularisers
(gradient penalties) apply to the energy as D's output.

On images, `discriminator.name=dcgan` makes the autoencoder convolutional, as the paper's
autoencoders for its LSUN, CelebA and ImageNet images are (Zhao et al. 2017, Sec. 4;
its MNIST grid search uses fully connected ones, `discriminator.name=mlp` here): the
DCGAN discriminator's stride-2 convolutions down to a `code_dim` code, the DCGAN
generator's transposed convolutions back (`ganscope.nets.autoencoder.build_dcgan_autoencoder`).
The energy is the norm of the whole image's error, so the margin grows with the image
(m = 10 is the value re-implementations quote for 28x28 MNIST).
"""

from __future__ import annotations

import torch
from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt
from torch import nn

from ganscope.batch import Batch
from ganscope.config import Config, piece_params
from ganscope.nets.autoencoder import AUTOENCODERS, Autoencoder
from ganscope.nets.layers import init_population
from ganscope.objectives.base import per_seed_mean
from ganscope.objectives.energy import (
    energy_generator_loss,
    margin_discriminator_loss,
    pull_away_term,
    reconstruction_energy,
)
from ganscope.schemes.base import SCHEMES, Parts, TwoPlayer, TwoPlayerParams, add_penalties, real_and_fake_logits
from ganscope.seeding import PopulationRandom


class EBGANParams(TwoPlayerParams):
    margin: PositiveFloat = 1.0
    pt_weight: NonNegativeFloat = 0.1
    code_dim: PositiveInt = 32


class EnergyDiscriminator(nn.Module):
    """EBGAN's D: samples (S, B, *sample_shape) -> energies D(x) (S, B), the reconstruction
    error of an autoencoder. As a module with `batch_coupled` it goes wherever a
    discriminator goes (one pass over real and fake, regularisers, `frozen`)."""

    def __init__(self, autoencoder: Autoencoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.batch_coupled = autoencoder.batch_coupled

    def energy_and_code(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reconstruction, code = self.autoencoder(x)
        return reconstruction_energy(x, reconstruction), code

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Energies of `x`; EBGAN is unconditional, so labels are ignored."""
        return self.energy_and_code(x)[0]


@SCHEMES.register(
    "ebgan",
    "autoencoder D, energy = reconstruction error, margin loss + pull-away term (Zhao et al. 2017)",
    EBGANParams,
)
class EBGAN(TwoPlayer):
    """`n_critic` autoencoder steps on L_D, then one G step on L_G (see the module docstring).
    The objective is the default one, so the shared D step's projection is none."""

    params: EBGANParams
    discriminator: EnergyDiscriminator

    def __init__(self, parts: Parts, params: EBGANParams) -> None:
        generator = parts.new_generator()
        autoencoder = AUTOENCODERS.get(parts.cfg.discriminator.name)(
            piece_params(parts.cfg, "discriminator"), parts.n_seeds, parts.data.sample_shape, params.code_dim
        )
        # D's own initialisation stream (role 1, as `Parts.new_discriminator` uses).
        init_population(autoencoder, PopulationRandom(parts.seeds, "init", 1, 0).generators)
        super().__init__(parts, params, generator, EnergyDiscriminator(autoencoder))

    @classmethod
    def check_config(cls, params: EBGANParams, cfg: Config) -> str | None:
        """Why `cfg` cannot train EBGAN, in one line (consulted by `config.validate_pieces`)."""
        default_objective = Config.model_fields["objective"].default.name
        if cfg.objective.name != default_objective:
            return (
                f"ebgan replaces the objective with its margin loss (Zhao et al. 2017, Eq. 1-2); "
                f"remove objective.name={cfg.objective.name}"
            )
        if cfg.discriminator.name not in AUTOENCODERS:
            return (
                f"ebgan needs an autoencoder discriminator; discriminator.name={cfg.discriminator.name} has none "
                f"(valid: {', '.join(AUTOENCODERS.names())})"
            )
        if cfg.d_modifiers:
            return "ebgan's autoencoder discriminator takes no d_modifiers; remove them"
        if params.pt_weight > 0 and cfg.train.batch_size < 2:
            return "ebgan's pull-away term compares pairs of samples; use train.batch_size >= 2 or pt_weight=0"
        return None

    def critic_loss(self, real: Batch, fake: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_D (Eq. 1) on the energies plus the penalties of the energy; logs both energies."""
        real_energy, fake_energy = (e.float() for e in real_and_fake_logits(self.discriminator, real, fake))
        loss = margin_discriminator_loss(real_energy, fake_energy, self.params.margin)
        out = {
            "d_loss": loss.detach(),
            "real_energy": per_seed_mean(real_energy.detach()),
            "fake_energy": per_seed_mean(fake_energy.detach()),
        }
        return add_penalties(self.parts, self.discriminator, real, fake, loss, out), out

    def generator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_G (Eq. 2) with the pull-away term of the fakes' codes (Eq. 7)."""
        energy, code = self.discriminator.energy_and_code(self.fakes().x)
        pull_away = pull_away_term(code.float())
        loss = energy_generator_loss(energy.float()) + self.params.pt_weight * pull_away
        return loss, {"g_loss": loss.detach(), "pull_away": pull_away.detach()}
