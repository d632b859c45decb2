"""CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks"): two translators G: A -> B and F: B -> A, two discriminators D_B
and D_A, trained on unpaired images of two domains (`data.name=domains`).

One step, as the authors' PyTorch code orders it:
- G step (both Ds frozen): L = L_GAN(G, D_B) + L_GAN(F, D_A) + lambda (||F(G(a)) - a||_1 +
  ||G(F(b)) - b||_1) + lambda lambda_id (||G(b) - b||_1 + ||F(a) - a||_1)   (Eq. 1-3; the
  identity term of Sec. 5.2), with the configured objective's G loss as L_GAN (the paper
  uses least squares: `objective.name=least-squares`), lambda = `cycle_weight` (10) and
  lambda_id = `identity_weight` (0.5). The L1 terms are per-seed means over pixels.
- D step: each D on real images of its domain against translations drawn through a
  history pool of the last `pool_size` (50) translations (Shrivastava et al. 2017, kept
  per seed, saved in checkpoints), the objective's D loss halved, "which slows down the
  rate at which D learns relative to G" (Sec. 4), plus the configured regularisers.
- Learning rate: constant for the first half, then linear to zero (the paper's 100 + 100
  epochs): `train.lr_schedule=linear`, `train.lr_decay_start=0.5` (profile
  `cyclegan-digits`).

Evaluation translates real A images (`sample_inputs`) and reads the translations with B's
oracle (the `domains` data is domain B), so modes, HQ, the feature-space metrics and the
monitor judge translations as B samples, and label fidelity is label preservation: the
share of translations of an A image of class y that B's oracle reads as y. Translation
collapse (many inputs, one output) shows as lost diversity: near-duplicates and shrunken
spreads, the `collapse` and `class-collapse` events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic import NonNegativeFloat, NonNegativeInt
from torch import nn

from ganscope.batch import Batch
from ganscope.config import Config, piece_params
from ganscope.data import Dataset
from ganscope.data.domains import Domains
from ganscope.metrics.modes import mean_std
from ganscope.nets import GENERATORS, init_population
from ganscope.nets.layers import at_least_float32
from ganscope.objectives.base import per_seed_mean
from ganscope.registry import Params
from ganscope.schemes.base import SCHEMES, Parts, Scheme, add_penalties, apply_update, frozen, new_optimizer
from ganscope.seeding import PopulationRandom

#: The translators that the scheme accepts as `generator.name`.
TRANSLATORS = ("resnet",)
#: The report's translation rows: images per seed, and their file in the run folder.
TRANSLATION_ROWS, TRANSLATIONS = 8, "translations.npy"


class CycleGANParams(Params):
    cycle_weight: NonNegativeFloat = 10.0
    identity_weight: NonNegativeFloat = 0.5
    pool_size: NonNegativeInt = 50


class HistoryPool(nn.Module):
    """Per seed, the last `size` images shown to D (Shrivastava et al. 2017, Sec. 2.3, as
    CycleGAN's ImagePool): until full, every new image is stored and returned; then each new
    image is, with probability 1/2, returned as it is, or swapped for a stored image chosen
    uniformly, which it replaces. Its contents are buffers, so checkpoints keep them."""

    def __init__(self, n_seeds: int, size: int, sample_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(n_seeds, size, *sample_shape))
        self.register_buffer("count", torch.zeros(n_seeds, dtype=torch.long))

    def query(self, fakes: torch.Tensor, rng: PopulationRandom) -> torch.Tensor:
        """The images (S, B, ...) to show D for these new `fakes` (S, B, ...), drawing
        each seed's choices from its own generator in `rng` (B uniforms, then B indices,
        every call)."""
        if self.size == 0:
            return fakes
        fakes = fakes.detach()
        out = fakes.clone()
        for s, generator in enumerate(rng.generators):
            coins = torch.rand(fakes.shape[1], generator=generator)
            slots = torch.randint(self.size, (fakes.shape[1],), generator=generator)
            for i in range(fakes.shape[1]):
                filled = int(self.count[s])
                if filled < self.size:
                    self.images[s, filled] = fakes[s, i]
                    self.count[s] += 1
                elif coins[i] > 0.5:
                    slot = int(slots[i])
                    out[s, i] = self.images[s, slot]
                    self.images[s, slot] = fakes[s, i]
        return out


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-seed mean absolute difference, (S,)."""
    return per_seed_mean((at_least_float32(x) - at_least_float32(y)).abs())


@SCHEMES.register("cyclegan", "two translators and two Ds with cycle and identity losses, history pools "
                  "(Zhu et al. 2017)", CycleGANParams)
class CycleGAN(Scheme):
    """G: A -> B (`ab`) and F: B -> A (`ba`), D_B and D_A (see the module docstring)."""

    params: CycleGANParams

    def __init__(self, parts: Parts, params: CycleGANParams) -> None:
        super().__init__(parts, params)
        data = parts.data
        assert isinstance(data, Domains)
        shape, n_seeds = data.sample_shape, parts.n_seeds
        build = GENERATORS.get(parts.cfg.generator.name)
        gen_params = piece_params(parts.cfg, "generator")
        self.translators = nn.ModuleDict({"ab": build(gen_params, n_seeds, shape[0], shape),
                                          "ba": build(gen_params, n_seeds, shape[0], shape)})
        for index, net in enumerate(self.translators.values()):
            init_population(net, PopulationRandom(parts.seeds, "init", 0, index).generators)
        self.discriminators = nn.ModuleDict({"b": parts.new_discriminator(index=0),
                                             "a": parts.new_discriminator(index=1)})
        self.pools = nn.ModuleDict({d: HistoryPool(n_seeds, params.pool_size, shape) for d in ("b", "a")})
        self.modules = {"translators": self.translators, "discriminators": self.discriminators, "pools": self.pools}
        optim = parts.cfg.optimizer
        self.optimizers = {
            "translators": new_optimizer(list(self.translators.parameters()), optim.generator),
            "discriminators": new_optimizer(list(self.discriminators.parameters()), optim.discriminator),
        }

    @classmethod
    def check_config(cls, params: CycleGANParams, cfg: Config) -> str | None:
        if cfg.data.name != "domains":
            return "cyclegan translates between two domains; give data.name=domains with data.a and data.b"
        if cfg.generator.name not in TRANSLATORS:
            return (f"cyclegan needs a translator as its generator (valid: {', '.join(TRANSLATORS)}), not "
                    f"generator.name={cfg.generator.name}")
        if cfg.conditioning.name != "none":
            return "cyclegan is unconditional; use conditioning.name=none"
        return None

    def domain_batches(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh unpaired images of A and of B, (S, B, ...) each, from the data stream."""
        parts, data = self.parts, self.parts.data
        assert isinstance(data, Domains)
        stream, n = parts.streams["data"], parts.batch_size
        return (data.a.sample_population(stream, n).x.to(parts.device),
                data.b.sample_population(stream, n).x.to(parts.device))

    def translator_loss(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor],
                                                                          tuple[torch.Tensor, torch.Tensor]]:
        """Eq. 3 plus the identity term, per seed; its log; and the translations (G(a), F(b))."""
        g, f = self.translators["ab"], self.translators["ba"]
        d_b, d_a = self.discriminators["b"], self.discriminators["a"]
        objective, p = self.parts.objective, self.params
        fake_b, fake_a = g(a), f(b)
        adversarial = objective.g_loss(at_least_float32(d_b(fake_b))) + objective.g_loss(at_least_float32(d_a(fake_a)))
        cycle_a, cycle_b = l1(f(fake_b), a), l1(g(fake_a), b)
        loss = adversarial + p.cycle_weight * (cycle_a + cycle_b)
        out = {"g_loss": adversarial.detach(), "cycle_a": cycle_a.detach(), "cycle_b": cycle_b.detach()}
        if p.identity_weight > 0:
            identity = l1(g(b), b) + l1(f(a), a)
            loss = loss + p.cycle_weight * p.identity_weight * identity
            out["identity"] = identity.detach()
        return loss, out, (fake_b, fake_a)

    def discriminator_loss(self, domain: str, real: torch.Tensor, fake: torch.Tensor,
                           out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Half the objective's D loss of D_domain on `real` against pooled `fake`, plus the
        regularisers' penalties (logged under `d_<domain>_`)."""
        critic = self.discriminators[domain]
        shown = self.pools[domain].query(fake, self.parts.streams["pool"])
        loss = 0.5 * self.parts.objective.d_loss(at_least_float32(critic(real)), at_least_float32(critic(shown)))
        out[f"d_loss_{domain}"] = loss.detach()
        return add_penalties(self.parts, critic, Batch(real), Batch(shown), loss, out, prefix=f"d_{domain}_")

    def train_step(self, diagnostics: bool = False) -> dict[str, torch.Tensor]:
        parts = self.parts
        a, b = self.domain_batches()
        with parts.autocast(), frozen(self.discriminators):
            loss, out, (fake_b, fake_a) = self.translator_loss(a, b)
        out.update(apply_update(self.optimizers["translators"], loss, self.translators, diagnostics, "g_grad_norm"))
        with parts.autocast():
            d_loss = self.discriminator_loss("b", b, fake_b.detach(), out) + self.discriminator_loss(
                "a", a, fake_a.detach(), out)
        out["d_loss"] = d_loss.detach()
        out.update(apply_update(self.optimizers["discriminators"], d_loss, self.discriminators, diagnostics,
                                "d_grad_norm"))
        for critic in self.discriminators.values():
            parts.objective.constrain(critic)
        return out

    def sample_inputs(self, n: int, key: int, labels: torch.Tensor | None = None) -> Batch:
        """n real A images per seed (and their labels, if A has them) from the `eval` stream."""
        parts, data = self.parts, self.parts.data
        assert isinstance(data, Domains)
        rng = PopulationRandom(parts.seeds, "eval", key)
        if data.a.n_classes is None:
            return Batch(data.a.sample_population(rng, n).x.to(parts.device))
        return data.a.sample_population(rng, n, labelled=True).to(parts.device)

    @torch.no_grad()
    def generate(self, inputs: Batch) -> torch.Tensor:
        """A -> B translations of the A images `inputs.x`."""
        return self.translate(inputs.x, "ab")

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str = "ab") -> torch.Tensor:
        """Images (S, N, ...) of the source domain translated by each seed's translator
        (`ab`: A -> B, `ba`: B -> A)."""
        return self.translators[direction](images).float()

    def train(self, mode: bool = True) -> None:
        for name in ("translators", "discriminators"):
            self.modules[name].train(mode)

    def domain_inputs(self, n: int, key: int) -> tuple[Batch, Batch]:
        """n real images of A and of B per seed (with labels where the domain has them),
        from the `eval` stream of `key` (A's are `sample_inputs`'s)."""
        parts, data = self.parts, self.parts.data
        assert isinstance(data, Domains)
        b_rng = PopulationRandom(parts.seeds, "eval", key, 1)
        b = data.b.sample_population(b_rng, n, labelled=data.b.n_classes is not None).to(parts.device)
        return self.sample_inputs(n, key), b

    @torch.no_grad()
    def final_scores(self, n: int, key: int) -> tuple[dict[str, Any], str | None]:
        """Per seed: label preservation both ways (A -> B read by B's oracle against A's
        labels, B -> A by A's oracle against B's) where both domains are labelled, beside
        the same images untranslated read by the other domain's oracle (the share a
        translator that does nothing keeps: what a preservation is worth depends on how far
        apart the domains are), and the L1 cycle errors ||F(G(a)) - a|| and ||G(F(b)) - b||,
        on n real images of each."""
        data = self.parts.data
        assert isinstance(data, Domains)
        a, b = self.domain_inputs(n, key)
        to_b, to_a = self.translate(a.x, "ab"), self.translate(b.x, "ba")
        scores: dict[str, Any] = {"cycle_a": l1(self.translate(to_b, "ba"), a.x).tolist(),
                                  "cycle_b": l1(self.translate(to_a, "ab"), b.x).tolist()}
        text = f"cycle error (L1) A {mean_and_std(scores['cycle_a'])}, B {mean_and_std(scores['cycle_b'])}"
        if a.labels is not None and b.labels is not None:
            for way, target, translated, inputs in (("ab", data.b, to_b, a), ("ba", data.a, to_a, b)):
                for key_name, images in ((f"preserved_{way}", translated), (f"untranslated_{way}", inputs.x)):
                    scores[key_name] = [label_preservation(target, seed_images.cpu(), labels.cpu())
                                        for seed_images, labels in zip(images, inputs.labels, strict=True)]
            shares = {key: mean_and_std(values, 100) for key, values in scores.items() if not key.startswith("cycle")}
            text = (f"label preservation A->B {shares['preserved_ab']}% (untranslated {shares['untranslated_ab']}%), "
                    f"B->A {shares['preserved_ba']}% (untranslated {shares['untranslated_ba']}%); {text}")
        return scores, text

    @torch.no_grad()
    def final_arrays(self, key: int) -> dict[str, torch.Tensor]:
        """`translations.npy` (S, 3, m, ...): per seed, m real A images, their translations to
        B and those translated back to A (the report's rows)."""
        a = self.sample_inputs(TRANSLATION_ROWS, key).x
        to_b = self.translate(a, "ab")
        return {TRANSLATIONS: torch.stack([a.float(), to_b, self.translate(to_b, "ba")], dim=1).cpu()}


def label_preservation(target: Dataset, translated: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of `translated` images (N, ...) that `target`'s oracle reads as `labels` (N,)."""
    mode_labels = target.mode_labels
    assert mode_labels is not None
    return float((mode_labels[target.oracle.assign(translated).mode] == labels).double().mean())


def mean_and_std(values: Sequence[float], scale: float = 1.0) -> str:
    mean, std = mean_std([scale * v for v in values])
    return f"{mean:.1f} ± {std:.1f}" if scale != 1.0 else f"{mean:.3f} ± {std:.3f}"


