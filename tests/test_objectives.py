"""Every objective against numbers worked out by hand on tiny logits, per seed; stability
at saturated logits; seed independence of the gradients; WGAN's weight clipping."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from ganscope.objectives import OBJECTIVES, Objective
from ganscope.objectives.least_squares import LeastSquares, LeastSquaresParams
from ganscope.objectives.wasserstein import WGAN, WGANParams
from ganscope.regularizers import REGULARIZERS

# Two seeds, two samples each, one logit per sample: (S, B, 1).
REAL = torch.tensor([[[0.0], [2.0]], [[-1.0], [3.0]]])
FAKE = torch.tensor([[[1.0], [-2.0]], [[0.0], [4.0]]])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# D's cross-entropy, shared by minimax and nonsaturating: mean softplus(-real) + mean softplus(fake).
CROSS_ENTROPY_D = [
    (softplus(0) + softplus(-2)) / 2 + (softplus(1) + softplus(-2)) / 2,  # log 2 = 0.6931..., log(1 + e^-2) = 0.1269...
    (softplus(1) + softplus(-3)) / 2 + (softplus(0) + softplus(4)) / 2,
]

# name -> (d_loss per seed, g_loss per seed), written out from the papers' formulas.
EXPECTED = {
    # G: -mean softplus(fake)
    "minimax": (CROSS_ENTROPY_D, [-(softplus(1) + softplus(-2)) / 2, -(softplus(0) + softplus(4)) / 2]),
    # G: mean softplus(-fake)
    "nonsaturating": (CROSS_ENTROPY_D, [(softplus(-1) + softplus(2)) / 2, (softplus(0) + softplus(-4)) / 2]),
    # D: mean fake - mean real = (-1/2 - 2/2, 4/2 - 2/2); G: -mean fake
    "wgan": ([-1.5, 1.0], [0.5, -2.0]),
    "wgan-gp": ([-1.5, 1.0], [0.5, -2.0]),
    # D: 0.5 mean (real-1)^2 + 0.5 mean fake^2 = (0.5*1 + 0.5*2.5, 0.5*4 + 0.5*8)
    # G: 0.5 mean (fake-1)^2 = (0.5*4.5, 0.5*5)
    "least-squares": ([1.75, 6.0], [2.25, 2.5]),
    # D: mean relu(1-real) + mean relu(1+fake) = ((1+0)/2 + (2+0)/2, (2+0)/2 + (1+5)/2)
    "hinge": ([1.5, 4.0], [0.5, -2.0]),
}


def build(name: str) -> Objective:
    entry = OBJECTIVES.entry(name)
    return entry.obj(entry.params())


def test_every_objective_has_hand_computed_numbers() -> None:
    assert set(EXPECTED) == set(OBJECTIVES.names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_losses_match_hand_computed_values_per_seed(name: str) -> None:
    objective = build(name)
    d_expected, g_expected = EXPECTED[name]
    d_loss, g_loss = objective.d_loss(REAL, FAKE), objective.g_loss(FAKE)
    assert d_loss.shape == g_loss.shape == (2,)
    torch.testing.assert_close(d_loss, torch.tensor(d_expected))
    torch.testing.assert_close(g_loss, torch.tensor(g_expected))


def test_least_squares_targets_are_parameters() -> None:
    # a=-1, b=1, c=0 (Mao et al. Eq. 9 choice): D 0.5 mean (real-1)^2 + 0.5 mean (fake+1)^2,
    # G 0.5 mean fake^2. Seed 0: 0.5*(1+1)/2 + 0.5*(4+1)/2 = 1.75; G 0.5*(1+4)/2 = 1.25.
    objective = LeastSquares(LeastSquaresParams(a=-1, b=1, c=0))
    torch.testing.assert_close(objective.d_loss(REAL, FAKE)[0], torch.tensor(1.75))
    torch.testing.assert_close(objective.g_loss(FAKE)[0], torch.tensor(1.25))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_saturated_logits_give_finite_losses_and_gradients(name: str) -> None:
    objective = build(name)
    real = torch.tensor([[[100.0], [-100.0]], [[-100.0], [100.0]]], requires_grad=True)
    fake = torch.tensor([[[-100.0], [100.0]], [[100.0], [-100.0]]], requires_grad=True)
    loss = objective.d_loss(real, fake).sum() + objective.g_loss(fake).sum()
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_seed_gets_exactly_its_own_gradient(name: str) -> None:
    objective = build(name)
    real, fake = REAL.clone().requires_grad_(True), FAKE.clone().requires_grad_(True)
    (objective.d_loss(real, fake).sum() + objective.g_loss(fake).sum()).backward()
    alone_real, alone_fake = REAL[1:].clone().requires_grad_(True), FAKE[1:].clone().requires_grad_(True)
    (objective.d_loss(alone_real, alone_fake).sum() + objective.g_loss(alone_fake).sum()).backward()
    torch.testing.assert_close(real.grad[1:], alone_real.grad, rtol=0, atol=0)
    torch.testing.assert_close(fake.grad[1:], alone_fake.grad, rtol=0, atol=0)


def test_wgan_constrain_clamps_every_parameter_in_place() -> None:
    critic = torch.nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[-1.0, 0.005, 2.0]]))
        critic.bias.fill_(-0.3)
    weight = critic.weight
    WGAN(WGANParams(clip=0.01)).constrain(critic)
    assert critic.weight is weight
    torch.testing.assert_close(critic.weight, torch.tensor([[-0.01, 0.005, 0.01]]))
    torch.testing.assert_close(critic.bias, torch.tensor([-0.01]))


def test_wgan_default_clip_is_the_papers() -> None:
    assert OBJECTIVES.entry("wgan").params().clip == 0.01
    with pytest.raises(ValidationError):
        WGANParams(clip=-0.01)


def test_only_wgan_clips() -> None:
    critic = torch.nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.fill_(3.0)
    for name in sorted(set(EXPECTED) - {"wgan"}):
        build(name).constrain(critic)
    assert (critic.weight == 3.0).all()


def test_required_regularizers_are_registered() -> None:
    assert OBJECTIVES.get("wgan-gp").required_regularizers == ("gradient-penalty",)
    for entry in OBJECTIVES:
        assert all(name in REGULARIZERS for name in entry.obj.required_regularizers)
