"""The unrolled scheme: its gradient is the true gradient of the surrogate f_K (finite
differences, through SGD and Adam updates, with a gradient penalty too), its surrogate D
steps are the real D steps, K = 0 is the alternating scheme, and it touches neither the
real D nor its optimiser, nor couples population seeds."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch

import ganscope
from ganscope.batch import Batch
from ganscope.config import piece_params
from ganscope.errors import ConfigError
from ganscope.regularizers.base import Critic
from ganscope.regularizers.gradient_penalty import GradientPenalty
from ganscope.schemes import SCHEMES, Parts
from ganscope.schemes.unrolled import DifferentiableAdam, Unrolled, UnrollDraws
from ganscope.seeding import PopulationRandom

TINY = [
    "generator.hidden=8",
    "generator.depth=2",
    "generator.activation=tanh",  # smooth, so finite differences never straddle a kink
    "discriminator.hidden=8",
    "discriminator.depth=2",
    "discriminator.activation=tanh",
    "noise.z_dim=3",
    "train.batch_size=16",
    "scheme.name=unrolled",
    "optimizer.discriminator.lr=0.05",  # large, so that unrolling visibly moves D
]
OPTIMIZERS = {
    "sgd": ["optimizer.discriminator.name=sgd", "optimizer.discriminator.momentum=0.9"],
    "adam": ["optimizer.discriminator.name=adam", "optimizer.discriminator.weight_decay=0.01"],
    "rmsprop": [
        "optimizer.discriminator.name=rmsprop",
        "optimizer.discriminator.momentum=0.5",
        "optimizer.discriminator.weight_decay=0.01",
    ],
}


# WGAN-GP with the library's own gradient penalty, which keeps the surrogate fakes' graph to
# G in its interpolates and computes in float64 here, so f_K is exactly the function whose
# finite differences we take.
WGAN_GP = ["objective.name=wgan-gp", "regularizers=[{name: gradient-penalty, weight: 1.0}]"]


class DetachedFakesPenalty(GradientPenalty):
    """The gradient penalty with G cut out of its interpolates x_hat = eps x + (1 - eps) G(z),
    as the library's once was: the same values, a biased unrolled gradient."""

    def penalty(self, critic: Critic, real: Batch, fake: Batch, rng: PopulationRandom) -> torch.Tensor:
        return super().penalty(critic, real, Batch(fake.x.detach()), rng)


@pytest.fixture
def float64() -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build(overrides: list[str], warmup: int = 2) -> Unrolled:
    """An unrolled scheme after `warmup` training steps, so D's optimiser has state."""
    cfg = ganscope.load_config(overrides=TINY + overrides)
    parts = Parts.from_config(cfg)
    scheme = SCHEMES.get(cfg.scheme.name)(parts, piece_params(cfg, "scheme"))
    for _ in range(warmup):
        scheme.train_step()
    return scheme


def surrogate(scheme: Unrolled, draws: UnrollDraws, penalty_state: torch.Tensor) -> torch.Tensor:
    """f_K summed over seeds, from scratch, with the penalty stream rewound."""
    scheme.parts.streams["penalty"].set_state(penalty_state)
    return scheme.surrogate_g_loss(draws)[0].sum()


PROBES = [("body.0.weight", (0, 1, 2)), ("body.2.bias", (0, 0, 5)), ("out.weight", (0, 4, 1))]


def probe_gradients(scheme: Unrolled, draws: UnrollDraws) -> tuple[torch.Tensor, torch.Tensor]:
    """(autograd, central finite differences) of f_K at a few entries of G's parameters."""
    params = dict(scheme.generator.named_parameters())
    penalty_state = scheme.parts.streams["penalty"].get_state()
    grads = torch.autograd.grad(surrogate(scheme, draws, penalty_state), [params[n] for n, _ in PROBES])
    analytic = torch.stack([g[index] for g, (_, index) in zip(grads, PROBES, strict=True)])
    h, numeric = 1e-6, []
    for name, index in PROBES:
        original = params[name][index].item()
        values = []
        for shifted in (original + h, original - h):
            with torch.no_grad():
                params[name][index] = shifted
            values.append(surrogate(scheme, draws, penalty_state).item())
        with torch.no_grad():
            params[name][index] = original
        numeric.append((values[0] - values[1]) / (2 * h))
    return analytic, torch.tensor(numeric)


@pytest.mark.parametrize("seeds", ["[0]", "[0,1]"])
@pytest.mark.parametrize("case", ["sgd", "adam", "adam+penalty"])
def test_gradient_matches_finite_differences_of_the_unrolled_loss(float64, case: str, seeds: str) -> None:
    optimizer, _, penalty = case.partition("+")
    extra = WGAN_GP if penalty else []
    scheme = build(OPTIMIZERS[optimizer] + extra + [f"train.seeds={seeds}", "scheme.unroll_steps=3"])
    draws = scheme.draw()
    analytic, numeric = probe_gradients(scheme, draws)
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-8)

    # Differentiating through the updates matters: K = 0 (same G noise) gives another gradient.
    plain, _ = probe_gradients(scheme, UnrollDraws(draws.g_noise, draws.g_labels, (), ()))
    assert (analytic - plain).abs().max() > 1e-2 * analytic.abs().max()


def test_gradient_penalty_passes_the_fakes_gradient_to_g(float64) -> None:
    scheme = build(OPTIMIZERS["adam"] + WGAN_GP + ["scheme.unroll_steps=3"])
    draws, stream = scheme.draw(), scheme.parts.streams["penalty"]
    state = stream.get_state()
    analytic, numeric = probe_gradients(scheme, draws)
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-8)

    # Detaching the fakes leaves f_K's values alone but drops the path from G through the
    # interpolates into D's surrogate updates: the gradient is then visibly wrong.
    penalty = scheme.parts.regularizers["gradient-penalty"]
    scheme.parts.regularizers["gradient-penalty"] = DetachedFakesPenalty(penalty.params)
    stream.set_state(state)  # the same interpolation weights
    biased, same_numeric = probe_gradients(scheme, draws)
    torch.testing.assert_close(same_numeric, numeric, rtol=0, atol=0)
    assert (biased - numeric).abs().max() > 1e-2 * numeric.abs().max()


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_one_surrogate_step_is_the_real_d_step(optimizer: str) -> None:
    scheme = build(OPTIMIZERS[optimizer] + ["regularizers=[{name: dragan, weight: 1.0}]"])
    streams = scheme.parts.streams
    states = {k: streams[k].get_state() for k in ("data", "noise", "penalty")}
    real, noise = scheme.parts.real_batch(), scheme.parts.noise_batch()
    for k, state in states.items():
        streams[k].set_state(state)
    unrolled = scheme.unroll([real], [noise])
    for k, state in states.items():
        streams[k].set_state(state)
    scheme.d_step(diagnostics=False)  # draws the same batches and penalty noise
    for name, param in scheme.discriminator.named_parameters():
        torch.testing.assert_close(unrolled[name], param, rtol=1e-6, atol=1e-7)


def test_unrolling_leaves_the_real_discriminator_and_its_optimiser_alone() -> None:
    scheme = build(OPTIMIZERS["adam"] + ["discriminator.batch_norm=true", "scheme.unroll_steps=3"])
    d_before = copy.deepcopy(scheme.discriminator.state_dict())
    opt_before = copy.deepcopy(scheme.optimizers["discriminator"].state_dict())
    g_before = copy.deepcopy(scheme.generator.state_dict())
    d_grads = [p.grad.clone() for p in scheme.discriminator.parameters()]  # from the last D step
    scheme.g_step(diagnostics=True)
    for key, value in scheme.discriminator.state_dict().items():
        assert torch.equal(value, d_before[key]), key
    opt_after = scheme.optimizers["discriminator"].state_dict()
    assert opt_after["param_groups"] == opt_before["param_groups"]
    for index, state in opt_after["state"].items():
        for key, value in state.items():
            assert torch.equal(value, opt_before["state"][index][key]), (index, key)
    for grad, param in zip(d_grads, scheme.discriminator.parameters(), strict=True):
        assert torch.equal(param.grad, grad)
    assert not torch.equal(scheme.generator.state_dict()["out.weight"], g_before["out.weight"])


def test_zero_unroll_steps_is_the_alternating_scheme() -> None:
    common = ["generator.depth=2", "discriminator.depth=2", "noise.z_dim=4", "train.batch_size=32"]
    alternating = build(common + ["scheme.name=alternating"], warmup=0)
    unrolled = build(common + ["scheme.unroll_steps=0"], warmup=0)
    for _ in range(4):
        a, u = alternating.train_step(diagnostics=True), unrolled.train_step(diagnostics=True)
        assert a.keys() == u.keys()
        for key in a:
            assert torch.equal(a[key], u[key]), key
    for name in ("generator", "discriminator"):
        for key, value in alternating.modules[name].state_dict().items():
            assert torch.equal(value, unrolled.modules[name].state_dict()[key]), (name, key)


def test_seed_inside_population_matches_seed_alone() -> None:
    extra = OPTIMIZERS["adam"] + ["scheme.unroll_steps=2"]
    together = build(extra + ["train.seeds=[0,1]"], warmup=0)
    alone = build(extra + ["train.seeds=[1]"], warmup=0)
    for _ in range(4):
        a, b = together.train_step(), alone.train_step()
        for key in ("d_loss", "g_loss"):
            assert a[key][1].item() == pytest.approx(b[key][0].item(), abs=1e-5)
    for key, value in alone.generator.state_dict().items():
        torch.testing.assert_close(together.generator.state_dict()[key][1:], value, rtol=1e-4, atol=1e-5)


def test_a_parameter_with_zero_gradient_does_not_poison_the_unrolled_gradient() -> None:
    # Adam's second moment is exactly 0 for a weight that never had a gradient (a dead ReLU
    # unit's); sqrt'(0) = inf must not turn the surrogate's gradient into NaN.
    param = torch.nn.Parameter(torch.ones(3))
    rule = DifferentiableAdam(torch.optim.Adam([param], lr=0.1), [param])
    x = torch.ones(3, requires_grad=True)
    (new,) = rule.step([param.detach()], [x * 0.0])
    (grad,) = torch.autograd.grad((new * x).sum(), x)
    assert torch.isfinite(grad).all()


def test_weight_clipping_cannot_be_unrolled() -> None:
    with pytest.raises(ConfigError, match="weight clipping"):
        build(["objective.name=wgan"], warmup=0)
