"""Unrolled GAN (Metz et al. 2016, "Unrolled Generative Adversarial Networks").

Why: alternating gradient steps let G chase the discriminator it faces *now*. If G is
(effectively) optimised against the current D, the game behaves like max_D min_G: G jumps
to whatever D rates most real, D follows, and G hops from mode to mode instead of
spreading over them (docs/FAILURE_MODES.md, section 1; `ganscope theory mode-hopping` shows it). Metz et al.
give G the loss it would suffer after D has *responded*:

    theta_D^0 = theta_D,
    theta_D^{k+1} = theta_D^k + eta^k dV(theta_G, theta_D^k) / dtheta_D^k      (Sec. 2.2, Eqs. 5-6)
    f_K(theta_G, theta_D) = V(theta_G, theta_D^K(theta_G, theta_D)),

and G descends df_K/dtheta_G, *differentiating through the K updates*. The second term of
that derivative, dV/dtheta_D^K . dtheta_D^K/dtheta_G, tells G how D would react to where
it moves, and Metz et al. credit it with the reduced mode collapse; a stale copy of D (no
gradient through the updates) lacks it. As K grows f_K approaches V(G, D*(G)), the
min-max game G is meant to play.
D itself keeps taking ordinary steps on V. The paper uses K = 5 on the 2-D ring (and up
to 10 elsewhere): the default `unroll_steps` is 5. K = 0 is the alternating scheme.

How, here:
- The K surrogate updates follow D's *own* optimiser rule (Adam, SGD with momentum or
  RMSProp, as `optimizer.discriminator` builds it) from a copy of the real optimiser's
  current state and hyperparameters (step count, moments, lr, betas, eps, weight decay),
  so theta_D^1 is exactly the parameters D's next real step would produce on the same
  batches. Eq. 6 writes a plain gradient step; D's actual rule makes f_K the loss against
  the D that training would really produce.
- The updates are pure tensor functions on a dict of non-leaf parameter tensors, evaluated
  with `torch.func.functional_call`; the real D, its buffers and its optimiser state are
  never written to.
- Each surrogate step draws a fresh real batch and fresh noise from the population's
  streams (order: G's own noise first, then K real batches, then K noise batches), an
  unbiased sample of the expectation in V at every step; graph-based re-implementations
  that reuse the current minibatch for all K steps optimise the same surrogate with
  correlated samples. Fake batches are G(z) *with* their graph to G, since the gradient
  through the surrogate is the point of the method. The config's regularisers are part
  of every surrogate D loss, as of the real one (the gradient penalty's interpolates keep
  the fakes' graph to G too). Objectives that project D after each
  update (WGAN's weight clipping) are rejected: a projection in place cannot be unrolled.
- Every loss is a per-seed vector summed over seeds and every optimiser rule is
  elementwise, so each population seed's surrogate depends on that seed alone.

Cost: one G step does K + 1 forward passes of G and D, K double-backward passes of D and
a backward through all of it; with K = 5 a training step on the ring's MLPs takes about 10
times as long as an alternating one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import NonNegativeInt
from torch import nn
from torch.func import functional_call

from ganscope.batch import Batch
from ganscope.errors import ConfigError
from ganscope.nets.layers import at_least_float32
from ganscope.objectives.base import Objective
from ganscope.regularizers.base import judge
from ganscope.schemes.alternating import Alternating, AlternatingParams
from ganscope.schemes.base import SCHEMES, Parts, add_generator_penalties, apply_update, run_generator


class UnrolledParams(AlternatingParams):
    unroll_steps: NonNegativeInt = 5  # K; 0 is the alternating scheme


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt(x) for x >= 0 with gradient 0 instead of NaN at x == 0.

    A parameter whose gradient has always been exactly zero (the weights into a dead ReLU
    unit) has a zero second moment; sqrt'(0) = inf times its zero gradient would turn the
    whole unrolled gradient into NaN. The values are exactly those of torch.sqrt.
    """
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


class DifferentiableOptimizer(ABC):
    """A torch optimiser's update rule as a pure, differentiable function.

    Built from a real optimiser, it copies each parameter's hyperparameters (its param
    group) and state; `step` maps parameters and gradients to *new* tensors, carrying the
    graph through the optimiser's moments, and advances only its own copy of the state.
    The formulas and their order of operations follow torch's implementations for the
    options ganscope uses (coupled L2 weight decay, no maximize), so a step without graph
    reproduces the real optimiser's step to rounding.
    """

    #: Param-group options this rule implements only at the given values.
    required_options: ClassVar[dict[str, Any]] = {"maximize": False}

    def __init__(self, optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter]) -> None:
        group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
        self.groups = [group_of[id(p)] for p in params]
        for group in self.groups:
            for key, value in self.required_options.items():
                if group.get(key, value) != value:
                    raise ConfigError(
                        f"unrolled: {type(optimizer).__name__} with {key}={group[key]!r} has no differentiable copy"
                    )
        self.states = [
            self.copy_state(optimizer.state.get(p, {}), p, group) for p, group in zip(params, self.groups, strict=True)
        ]

    @abstractmethod
    def copy_state(self, state: dict[str, Any], param: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """A private copy of one parameter's optimiser state (initial state if empty)."""

    @abstractmethod
    def update(
        self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The new parameter and state after one step with `grad` (weight decay added)."""

    def step(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        new_params = []
        for i, (param, grad) in enumerate(zip(params, grads, strict=True)):
            group = self.groups[i]
            if group["weight_decay"] != 0:
                grad = grad.add(param, alpha=group["weight_decay"])
            new_param, self.states[i] = self.update(param, grad, self.states[i], group)
            new_params.append(new_param)
        return new_params


class DifferentiableAdam(DifferentiableOptimizer):
    """Adam (Kingma & Ba 2015, Alg. 1) as torch's multi-tensor implementation computes it."""

    required_options = {"maximize": False, "amsgrad": False, "decoupled_weight_decay": False}

    def copy_state(self, state: dict[str, Any], param: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        if not state:
            return {"step": 0, "exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}
        return {
            "step": int(state["step"]),
            "exp_avg": state["exp_avg"].clone(),
            "exp_avg_sq": state["exp_avg_sq"].clone(),
        }

    def update(
        self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        beta1, beta2 = group["betas"]
        step = state["step"] + 1
        exp_avg = torch.lerp(state["exp_avg"], grad, 1 - beta1)
        exp_avg_sq = torch.addcmul(state["exp_avg_sq"] * beta2, grad, grad, value=1 - beta2)
        step_size = (group["lr"] / (1 - beta1**step)) * -1
        denom = safe_sqrt(exp_avg_sq) / (1 - beta2**step) ** 0.5 + group["eps"]
        new_param = torch.addcdiv(param, exp_avg, denom, value=step_size)
        return new_param, {"step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


class DifferentiableSGD(DifferentiableOptimizer):
    """SGD with heavy-ball momentum (torch's form: buf = mu buf + g, p -= lr buf)."""

    required_options = {"maximize": False, "nesterov": False, "dampening": 0}

    def copy_state(self, state: dict[str, Any], param: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        buffer = state.get("momentum_buffer")
        return {"momentum_buffer": None if buffer is None else buffer.clone()}

    def update(
        self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        if group["momentum"] == 0:
            return param.add(grad, alpha=-group["lr"]), state
        buffer = state["momentum_buffer"]
        buffer = grad if buffer is None else buffer * group["momentum"] + grad
        return param.add(buffer, alpha=-group["lr"]), {"momentum_buffer": buffer}


class DifferentiableRMSprop(DifferentiableOptimizer):
    """RMSProp (Tieleman & Hinton 2012) in torch's form, optionally with momentum."""

    required_options = {"maximize": False, "centered": False}

    def copy_state(self, state: dict[str, Any], param: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        square_avg = state["square_avg"].clone() if state else torch.zeros_like(param)
        buffer = state["momentum_buffer"].clone() if state and group["momentum"] > 0 else torch.zeros_like(param)
        return {"square_avg": square_avg, "momentum_buffer": buffer}

    def update(
        self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        alpha = group["alpha"]
        square_avg = torch.addcmul(state["square_avg"] * alpha, grad, grad, value=1 - alpha)
        avg = safe_sqrt(square_avg) + group["eps"]
        if group["momentum"] > 0:
            buffer = torch.addcdiv(state["momentum_buffer"] * group["momentum"], grad, avg)
            return param.add(buffer, alpha=-group["lr"]), {"square_avg": square_avg, "momentum_buffer": buffer}
        return torch.addcdiv(param, grad, avg, value=-group["lr"]), {**state, "square_avg": square_avg}


DIFFERENTIABLE_OPTIMIZERS: dict[type[torch.optim.Optimizer], type[DifferentiableOptimizer]] = {
    torch.optim.Adam: DifferentiableAdam,
    torch.optim.SGD: DifferentiableSGD,
    torch.optim.RMSprop: DifferentiableRMSprop,
}


def differentiable_copy(optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter]) -> DifferentiableOptimizer:
    """The differentiable twin of `optimizer` for `params`, starting from its current state."""
    rule = DIFFERENTIABLE_OPTIMIZERS.get(type(optimizer))
    if rule is None:
        raise ConfigError(f"unrolled: no differentiable update for {type(optimizer).__name__}")
    return rule(optimizer, params)


class FunctionalCritic:
    """D evaluated with the given parameter and buffer tensors instead of its own.

    It carries D's `batch_coupled` flag, so `real_and_fake_logits` and the regularisers
    treat it exactly as they treat D.
    """

    def __init__(self, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        self.module = module
        self.tensors = tensors
        self.batch_coupled = getattr(module, "batch_coupled", False)

    def __call__(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return functional_call(self.module, self.tensors, (x, labels))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """An auxiliary classifier's class logits (AC-GAN) under these parameters."""
        return functional_call(self.module, self.tensors, (x,), {"classes": True})


@dataclass(frozen=True)
class UnrollDraws:
    """The random inputs of one unrolled G step: the noise G's loss is evaluated on and,
    for each of the K surrogate D updates, a real batch and the noise of its fake batch."""

    g_noise: torch.Tensor
    g_labels: torch.Tensor | None
    real: tuple[Batch, ...]
    noise: tuple[torch.Tensor, ...]


@SCHEMES.register(
    "unrolled",
    "G's loss against D after unroll_steps differentiable D updates (Metz et al. 2016)",
    UnrolledParams,
)
class Unrolled(Alternating):
    """`n_critic` ordinary D steps (inherited), then one G step on the unrolled surrogate
    loss f_K (Metz et al. 2016, Sec. 2.2). Paper defaults: K = 5, one D step per G step."""

    params: UnrolledParams
    #: The unrolled D steps follow each process's own gradients, not the full batch's.
    data_parallel = False

    def __init__(self, parts: Parts, params: UnrolledParams) -> None:
        if type(parts.objective).constrain is not Objective.constrain:
            raise ConfigError(
                f"scheme unrolled: objective {parts.cfg.objective.name!r} projects D's weights after every "
                "update (weight clipping), which cannot be differentiated through; use wgan-gp instead"
            )
        super().__init__(parts, params)

    def draw(self) -> UnrollDraws:
        """Fresh draws from the population's noise and data streams."""
        parts, k = self.parts, self.params.unroll_steps
        g_noise, g_labels = parts.noise_batch(), parts.generator_labels()
        real = tuple(parts.real_batch() for _ in range(k))
        noise = tuple(parts.noise_batch() for _ in range(k))
        return UnrollDraws(g_noise, g_labels, real, noise)

    def unroll(self, real: Sequence[Batch], noise: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """theta_D^K: D's parameters (and buffers) after one surrogate update per pair of
        batches, as non-leaf tensors with their graph to G's parameters."""
        names = [name for name, _ in self.discriminator.named_parameters()]
        params: list[torch.Tensor] = [p.detach().requires_grad_() for p in self.discriminator.parameters()]
        buffers = {name: b.clone() for name, b in self.discriminator.named_buffers()}
        rule = differentiable_copy(self.optimizers["discriminator"], list(self.discriminator.parameters()))
        for real_k, noise_k in zip(real, noise, strict=True):
            critic = FunctionalCritic(self.discriminator, {**dict(zip(names, params)), **buffers})
            with self.parts.autocast():
                loss, _ = self.critic_loss(real_k, run_generator(self.generator, noise_k, real_k.labels), critic)
            grads = torch.autograd.grad(loss.sum(), params, create_graph=True)
            params = rule.step(params, grads)
        return {**dict(zip(names, params)), **buffers}

    def surrogate_g_loss(self, draws: UnrollDraws) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """f_K per seed, (S,): the objective's G loss against theta_D^K, plus the penalties
        that act on G under that same D; and the log."""
        critic = FunctionalCritic(self.discriminator, self.unroll(draws.real, draws.noise))
        with self.parts.autocast():
            fake = run_generator(self.generator, draws.g_noise, draws.g_labels)
            loss = self.parts.objective.g_loss(at_least_float32(judge(critic, fake)))
            out = {"g_loss": loss.detach()}
            return add_generator_penalties(self.parts, critic, fake, loss, out, self.generator), out

    def g_step(self, diagnostics: bool) -> dict[str, torch.Tensor]:
        """G descends f_K. D is not frozen: the surrogate runs on copies of its parameters,
        and the backward pass is limited to G's parameters (the copies need no gradient)."""
        loss, out = self.surrogate_g_loss(self.draw())
        params = list(self.generator.parameters())
        update = apply_update(self.optimizers["generator"], loss, self.generator, diagnostics, "g_grad_norm", params)
        return {**out, **update}

