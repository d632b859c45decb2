"""MAD-GAN (Ghosh et al. 2018, "Multi-Agent Diverse Generative Adversarial Networks").

Why: one generator can lower its loss by covering the single mode D currently rates most
real. MAD-GAN trains k generators against one discriminator with k + 1 softmax outputs,
"made by G_1" ... "made by G_k" and "real" (Section 3). D must not only reject fakes but
also say *which* generator made each one; it can only do so when the generators produce
different things, so its identification gradient pushes them apart, each towards its own
modes, while every G_i keeps trying to look real. The generators together form the model
p_g = (1/k) sum_i p_gi, whose global optimum is p_g = p_data (the paper's analysis).

The game, here (class order: generators 0..k-1, real = k, the paper's D_{k+1} last):
- D's logits l split exactly into two parts. The *realness* logit
      r(x) = l_k - logsumexp(l_0, ..., l_{k-1})
  is the log-odds D gives to "real" against "any generator", so sigmoid(r) = D_{k+1}(x).
  Hence, for the (k+1)-way cross-entropy H(delta, D(x)) of the paper's D objective,
      -log D_{k+1}(x)  = softplus(-r(x)),
      -log D_i(G_i(z)) = softplus(r) - log softmax(l_0..l_{k-1})_i,
  the binary real/fake loss on r plus a k-way *identification* cross-entropy among the
  generator classes only.
- So D's loss is `objective.d_loss(r(real), r(fake))` + the identification cross-entropy
  of the fakes, and G_i's loss is `objective.g_loss(r(G_i(z)))`. With `nonsaturating` that
  is exactly the paper's cross-entropy H(delta, D(x)) for D (summed over the real and the
  fake half of the batch, as `nonsaturating` sums the two means for one generator) and the
  paper's practical generator loss -log D_{k+1}(G_i(z)); `minimax` gives the
  log(1 - D_{k+1}(G_i(z))) of the paper's analysis. With k = 1 the identification term
  vanishes and the scheme is the ordinary GAN on a two-logit D.
- Any other objective plays its own real/fake game on r, which is an unbounded score like
  any critic output: WGAN-GP's critic is r (the gradient penalty and every regulariser get
  `critic`, which returns r), hinge and least squares put their margins and targets on r.
  The identification cross-entropy depends only on the differences among the k generator
  logits, a part of D's head that r leaves free, so it adds the generator-naming task
  without changing what the configured objective asks of the realness score. This is the
  source material's "WGAN-GP with MAD-GAN" combination (README, "Methods are combinations").

Batch and weighting: one noise batch z of batch_size / k vectors goes to every generator
(the diversity penalty compares G_i(z) with G_j(z) on the same z, at no extra cost), so D
sees batch_size real and batch_size generated samples per step, as a one-generator GAN
does, and each generator's share of the fakes is 1/k. The paper's analysis weights the
real data like each single generator (its optimal D_{k+1} is p_d / (p_d + sum_i p_gi));
here the real batch weighs as much as all generators together, the weighting every other
objective needs (a Wasserstein critic's mean gap is only a distance between equally
weighted distributions). It moves D's optimal realness to p_d / (p_d + p_g) but not the
generators' optimum, p_g = p_data. The public TensorFlow re-implementation of MAD-GAN
trains on the same balanced batch.

Diversity penalty (`diversity`, default 0 = off): the source material's pairwise
similarity penalty, added to the generators' loss,
    L_reg = sum_{i<j} cos(G_i(z), G_j(z)),  mean over z,
with each sample flattened to a vector. It rewards generators for mapping the same z in
different directions from the origin (so it suits data centred there, like the ring). The
paper's own similarity-based variant (MAD-GAN-Sim, in its appendix) builds a user-defined
similarity into a competing objective instead; this is the simpler penalty the source material names.

Sampling: `generate` splits the n noise vectors into k contiguous, near-equal chunks
(`torch.tensor_split`: the first n mod k chunks one longer) and chunk i comes from G_i.
With i.i.d. noise this is the uniform mixture of the generators, stratified, and the same
noise always gives the same samples.

Defaults: k = 4 generators (as in the public re-implementation of the paper's 1-D
Gaussian-mixture experiment); separate networks (`share_layers` false: the paper shares
the early layers of its image generators, which learn common low-level features; true
here shares one body, every layer but the output layer, and gives each generator its own
output layer); one D step per G step.
"""

from __future__ import annotations

import torch
from pydantic import NonNegativeFloat, PositiveInt
from torch import nn
from torch.nn import functional as F

from ganscope.batch import Batch
from ganscope.config import Config
from ganscope.errors import ConfigError
from ganscope.nets.modifiers import modifiers_from_config, pack_size
from ganscope.objectives.base import Objective, per_seed_mean
from ganscope.regularizers.base import judge
from ganscope.schemes.base import (
    SCHEMES,
    Parts,
    TwoPlayer,
    TwoPlayerParams,
    add_generator_penalties,
    add_penalties,
    real_and_fake_logits,
)


class MadGANParams(TwoPlayerParams):
    generators: PositiveInt = 4
    share_layers: bool = False
    diversity: NonNegativeFloat = 0.0


def realness(logits: torch.Tensor) -> torch.Tensor:
    """Log-odds of "real" against "any generator" from D's k + 1 logits (real last):
    (S, B, k + 1) -> (S, B), with sigmoid(realness) = D_{k+1}(x)."""
    return logits[..., -1] - logits[..., :-1].logsumexp(dim=-1)


def identification_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Per-seed mean of -log P(made by G_i | made by a generator) over fakes, (S,).

    `fake_logits` is (S, k, m, k + 1), block i holding D's logits for G_i's m samples (or,
    with PacGAN's packing, for its m packs: D names the generator of a whole pack).
    """
    log_p = fake_logits[..., :-1].log_softmax(dim=-1)  # (S, k, m, k)
    return -per_seed_mean(log_p.diagonal(dim1=1, dim2=3))  # entries log_p[s, i, j, i]


def discriminator_loss(
    objective: Objective, real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """D's loss and its identification part, (S,) each, from its logits for the real batch
    (S, B, k + 1) and for the fakes (S, k, m, k + 1): the objective's game on the realness
    logits plus the identification cross-entropy of the fakes."""
    identify = identification_loss(fake_logits)
    return objective.d_loss(realness(real_logits), realness(fake_logits.flatten(1, 2))) + identify, identify


def generator_losses(objective: Objective, fake_logits: torch.Tensor) -> torch.Tensor:
    """Each G_i's own loss, the objective's G loss on its samples' realness: (S, k) from
    D's logits for the fakes (S, k, m, k + 1)."""
    return torch.stack([objective.g_loss(realness(logits)) for logits in fake_logits.unbind(dim=1)], dim=1)


def pairwise_cosine_similarity(samples: torch.Tensor) -> torch.Tensor:
    """sum_{i<j} cos(G_i(z), G_j(z)), mean over z, for samples (S, k, m, *shape): (S,).

    With unit vectors u_i, sum_{i<j} u_i . u_j = (|sum_i u_i|^2 - sum_i |u_i|^2) / 2, one
    pass instead of k(k - 1)/2; a zero sample has no direction and contributes 0.
    """
    units = F.normalize(samples.flatten(3), dim=-1)
    together = units.sum(dim=1).square().sum(dim=-1)
    apart = units.square().sum(dim=(1, 3))
    return per_seed_mean((together - apart) / 2)


class RealnessCritic:
    """D's realness logit r(x) of samples x (with their labels): the critic every
    regulariser penalises; it passes on D's batch coupling and, for AC-GAN, its classifier."""

    def __init__(self, discriminator: nn.Module) -> None:
        self.discriminator = discriminator
        self.batch_coupled = getattr(discriminator, "batch_coupled", False)

    def __call__(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return realness(self.discriminator(x, labels))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The class logits of an auxiliary classifier (`conditioning.name=acgan`)."""
        return self.discriminator.classify(x)


def pool(fake: Batch) -> Batch:
    """The k generators' fakes (S, k, m, ...) as one batch (S, k m, ...), labels alike."""
    return Batch(fake.x.flatten(1, 2), None if fake.labels is None else fake.labels.flatten(1, 2))


def split_shared_body(generators: list[nn.Module]) -> nn.Module:
    """Make generator 0's `body` (every layer but the output layer) the one shared body;
    each generator keeps only its own head. Needs generators of the form head(body(z))."""
    if not all(isinstance(getattr(g, "body", None), nn.Module) for g in generators):
        raise ConfigError(
            "scheme.share_layers: this generator has no `body` of shared layers to split off; "
            "use an mlp generator or set scheme.share_layers=false"
        )
    body = generators[0].body
    for g in generators:
        g.body = nn.Identity()
    return body


class GeneratorTeam(nn.Module):
    """The k generators as one module: an optional shared body (`nn.Identity` when
    generators share nothing) and each generator's own layers. Its parameters list the
    body once, so one optimiser and one gradient norm cover all generators; Adam being
    elementwise, one optimiser equals one per generator."""

    def __init__(self, body: nn.Module, generators: list[nn.Module]) -> None:
        super().__init__()
        self.body = body
        self.heads = nn.ModuleList(generators)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Every generator on the same noise (S, m, z_dim): (S, k, m, *sample_shape); in a
        conditional run generator i makes its samples for `labels[:, i]` ((S, k, m))."""
        features = self.body(z)
        if labels is None:
            return torch.stack([g(features) for g in self.heads], dim=1)
        return torch.stack([g(features, labels[:, i]) for i, g in enumerate(self.heads)], dim=1)

    def mixture(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Samples of the mixture (S, n, *sample_shape): noise (S, n, z_dim) (and labels
        (S, n)) in k contiguous, near-equal chunks, chunk i through G_i (see the module
        docstring)."""
        chunks = self.body(z).tensor_split(len(self.heads), dim=1)
        if labels is None:
            return torch.cat([g(c) for g, c in zip(self.heads, chunks, strict=True)], dim=1)
        label_chunks = labels.tensor_split(len(self.heads), dim=1)
        return torch.cat([g(c, y) for g, c, y in zip(self.heads, chunks, label_chunks, strict=True)], dim=1)


@SCHEMES.register(
    "madgan", "k generators; D also names which one made each fake (Ghosh et al. 2018)", MadGANParams
)
class MadGAN(TwoPlayer):
    """MAD-GAN's training step: `n_critic` D steps, then one step of all generators."""

    params: MadGANParams
    generator: GeneratorTeam

    def __init__(self, parts: Parts, params: MadGANParams) -> None:
        k = params.generators
        self.per_generator = parts.batch_size // k
        self.generators = [parts.new_generator(index=i) for i in range(k)]
        self.body = split_shared_body(self.generators) if params.share_layers else nn.Identity()
        team = GeneratorTeam(self.body, self.generators)
        super().__init__(parts, params, team, parts.new_discriminator(n_outputs=k + 1))
        self.critic = RealnessCritic(self.discriminator)
        # Checkpoints keep each generator (and the shared body) under its own name.
        self.modules = {f"generator_{i}": g for i, g in enumerate(self.generators)}
        if params.share_layers:
            self.modules["generator_body"] = self.body
        self.modules["discriminator"] = self.discriminator

    @classmethod
    def check_config(cls, params: MadGANParams, cfg: Config) -> str | None:
        """Every generator gets batch_size / k noise vectors, and with packing each pack
        must come from one generator, so D can name the generator of a pack."""
        k, batch = params.generators, cfg.train.batch_size
        if batch % k:
            return (
                f"train.batch_size ({batch}) must be a multiple of scheme.generators ({k}): "
                "every generator gets batch_size / generators noise vectors"
            )
        if cfg.conditioning.name != "none" and params.share_layers:
            return ("a conditional generator takes its label at its input, before any layer MAD-GAN could share; "
                    "set scheme.share_layers=false")
        if cfg.conditioning.name == "projection":
            return ("the projection term would shift all k + 1 of MAD-GAN's logits alike, which its realness "
                    "score cancels; use conditioning.name=cgan or acgan")
        pack = pack_size(modifiers_from_config(cfg))
        if (batch // k) % pack:
            return (
                f"each generator's {batch // k} samples per step must split into packs of {pack} from that "
                f"generator alone; make train.batch_size a multiple of {k * pack}"
            )
        return None

    def fakes(self, labels: torch.Tensor | None = None) -> Batch:
        """Every generator on one fresh noise batch: (S, k, batch_size / k, *sample_shape);
        in a conditional run for `labels` (S, batch_size) (default: fresh draws of the class
        shares), generator i taking the i-th run of batch_size / k of them."""
        parts, k = self.parts, self.params.generators
        if labels is None:
            labels = parts.generator_labels()
        grouped = None if labels is None else labels.unflatten(1, (k, self.per_generator))
        return Batch(self.generator(parts.noise_batch(self.per_generator), grouped), grouped)

    def diversity_penalty(self, fake: torch.Tensor) -> torch.Tensor:
        """`diversity` times the pairwise cosine similarity of `fake` (S, k, m, ...), (S,);
        zeros, without computing it, when the penalty is off."""
        if not self.params.diversity:
            return fake.new_zeros(fake.shape[0])
        return self.params.diversity * pairwise_cosine_similarity(fake)

    def critic_loss(self, real: Batch, fake: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective's game on the realness logits, the identification cross-entropy of
        the fakes (pooled over generators for D's one pass) and the penalties of `critic`."""
        pooled = pool(fake)
        real_logits, fake_logits = real_and_fake_logits(self.discriminator, real, pooled)
        loss, identify = discriminator_loss(
            self.parts.objective, real_logits.float(), fake_logits.float().unflatten(1, (fake.x.shape[1], -1))
        )
        out = {"d_loss": loss.detach(), "d_identify": identify.detach()}
        return add_penalties(self.parts, self.critic, real, pooled, loss, out), out

    def generator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each G_i minimises its own loss, so the backward pass sums them (a shared body
        gets the sum of its heads' gradients); the logged `g_loss` is their mean."""
        fake = self.fakes()
        pooled = pool(fake)
        fake_logits = judge(self.discriminator, pooled).float().unflatten(1, (fake.x.shape[1], -1))
        losses = generator_losses(self.parts.objective, fake_logits)
        diversity = self.diversity_penalty(fake.x.float())
        out = {"g_loss": losses.detach().mean(dim=1), "g_diversity": diversity.detach()}
        loss = add_generator_penalties(self.parts, self.critic, pooled, losses.sum(dim=1) + diversity, out,
                                       self.generator)
        return loss, out

    @torch.no_grad()
    def generate(self, inputs: Batch) -> torch.Tensor:
        return self.sampling_generator().mixture(inputs.x, inputs.labels).float()

    @classmethod
    def generator_of_samples(cls, params: MadGANParams, n: int) -> torch.Tensor:
        """Which generator made each of `generate`'s n samples (n,), the chunks of
        `GeneratorTeam.mixture`; a classmethod, so a report colours samples by generator
        from the run's files without building networks."""
        chunks = torch.arange(n).tensor_split(params.generators)
        return torch.cat([torch.full_like(chunk, i) for i, chunk in enumerate(chunks)])
