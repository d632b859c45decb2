"""Alternating gradient updates: `n_critic` D steps, then one G step."""

from __future__ import annotations

import torch
from pydantic import PositiveInt

from ganscope.registry import Params
from ganscope.schemes.base import (
    SCHEMES,
    Parts,
    Scheme,
    frozen,
    grad_norm_per_seed,
    new_optimizer,
    real_and_fake_logits,
)


class AlternatingParams(Params):
    n_critic: PositiveInt = 1


@SCHEMES.register("alternating", "n_critic D updates then one G update (Goodfellow et al. 2014, Alg. 1)", AlternatingParams)
class Alternating(Scheme):
    """Algorithm 1 of Goodfellow et al. 2014: k = `n_critic` steps of D on fresh real and
    fake batches, then one G step on fresh noise. The paper used k = 1; WGAN uses 5."""

    params: AlternatingParams

    def __init__(self, parts: Parts, params: AlternatingParams) -> None:
        super().__init__(parts, params)
        self.generator = parts.new_generator()
        self.discriminator = parts.new_discriminator()
        self.modules = {"generator": self.generator, "discriminator": self.discriminator}
        optim = parts.cfg.optimizer
        self.optimizers = {
            "generator": new_optimizer(list(self.generator.parameters()), optim.generator),
            "discriminator": new_optimizer(list(self.discriminator.parameters()), optim.discriminator),
        }

    def d_step(self, diagnostics: bool) -> dict[str, torch.Tensor]:
        parts, opt = self.parts, self.optimizers["discriminator"]
        real = parts.real_batch()
        with parts.autocast():
            with torch.no_grad():
                fake = self.generator(parts.noise_batch())
            real_logits, fake_logits = real_and_fake_logits(self.discriminator, real, fake)
            loss = parts.objective.d_loss(real_logits.float(), fake_logits.float())
            out = {"d_loss": loss.detach()}
            for name, reg in parts.regularizers.items():
                penalty = reg.penalty(self.discriminator, real, fake, parts.streams["penalty"])
                out[f"penalty_{name}"] = penalty.detach()
                loss = loss + reg.weight * penalty
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        if diagnostics:
            out["d_grad_norm"] = grad_norm_per_seed(self.discriminator)
        opt.step()
        parts.objective.constrain(self.discriminator)
        return out

    def g_step(self, diagnostics: bool) -> dict[str, torch.Tensor]:
        parts, opt = self.parts, self.optimizers["generator"]
        with parts.autocast(), frozen(self.discriminator):
            fake_logits = self.discriminator(self.generator(parts.noise_batch()))
            loss = parts.objective.g_loss(fake_logits.float())
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        out = {"g_loss": loss.detach()}
        if diagnostics:
            out["g_grad_norm"] = grad_norm_per_seed(self.generator)
        opt.step()
        return out

    def train_step(self, diagnostics: bool = False) -> dict[str, torch.Tensor]:
        for _ in range(self.params.n_critic):
            out = self.d_step(diagnostics)
        out.update(self.g_step(diagnostics))
        return out

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z).float()
