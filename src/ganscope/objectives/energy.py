"""The energy-based GAN's losses (Zhao, Mathieu & LeCun 2017, "Energy-based Generative
Adversarial Network"), as pure functions of energies and codes.

EBGAN's discriminator is not a classifier but an energy function: low on the data, high
elsewhere. Its losses are therefore functions of energies, not of logits, and EBGAN does
not fit the `Objective` interface (the `ebgan` scheme replaces the objective instead of
registering one). Every function takes tensors with the population's seed axis first and
returns one value per seed, shape (S,), like the objectives do.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ganscope.objectives.base import per_seed_mean


def reconstruction_energy(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """D(x) = ||Dec(Enc(x)) - x||, the autoencoder discriminator's energy (Sec. 2.3, Eq. 6),
    for samples (S, B, *sample_shape): energies (S, B).

    Eq. 6 writes the plain Euclidean (L2) norm of the whole sample's error, not its square
    and not a per-feature mean (MSE), which is what most re-implementations use. We follow
    the equation: its gradient has unit length however close a fake is to being
    reconstructed, so G's signal does not fade as the energies fall (the square's would),
    and the margins re-implementations quote from the paper (m = 10 for 28x28 MNIST,
    larger for larger images) are on the scale of a whole-sample norm, which grows with
    the number of features; a per-pixel mean does not. The norm's gradient at an exact
    reconstruction is taken as 0.
    """
    return torch.linalg.vector_norm((reconstruction - x).flatten(2), dim=-1)


def margin_discriminator_loss(real_energy: torch.Tensor, fake_energy: torch.Tensor, margin: float) -> torch.Tensor:
    """L_D = D(x) + [m - D(G(z))]^+ (Eq. 1), averaged over each seed's batch: (S,).

    D pulls the energy of real samples down and pushes that of fakes up, but only until
    they reach the margin m: fakes already above m cost nothing, which keeps D from
    spending its capacity on driving far-away fakes to infinite energy.
    """
    return per_seed_mean(real_energy) + per_seed_mean(F.relu(margin - fake_energy))


def energy_generator_loss(fake_energy: torch.Tensor) -> torch.Tensor:
    """L_G = D(G(z)) (Eq. 2): G lowers the energy of its samples, per seed (S,)."""
    return per_seed_mean(fake_energy)


def pull_away_term(codes: torch.Tensor) -> torch.Tensor:
    """f_PT(S) = 1/(N(N-1)) sum_i sum_{j != i} (S_i^T S_j / (||S_i|| ||S_j||))^2 (Eq. 7).

    `codes` (S, N, ...) are the encoder's representations of a batch of N >= 2 fakes; the
    term is the mean squared cosine similarity over the N(N-1) ordered pairs of distinct
    samples, per seed (S,). G minimises it (weighted, 0.1 in the paper, Sec. 4.1) so that
    its samples have near-orthogonal codes: a collapsed batch, whose codes all point the
    same way, scores 1; mutually orthogonal codes score 0. The i = j terms, always 1,
    are left out, as the equation says (including them adds a constant 1/(N-1) and
    rescales the term). A zero code counts as orthogonal to everything.
    """
    n = codes.shape[1]
    if n < 2:
        raise ValueError(f"the pull-away term needs a batch of at least 2 samples, got {n}")
    unit = F.normalize(codes.flatten(2), dim=-1)
    cosines = unit @ unit.transpose(1, 2)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=codes.device)
    return (cosines.square() * off_diagonal).sum(dim=(1, 2)) / (n * (n - 1))
