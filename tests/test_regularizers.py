"""Gradient-norm penalties against critics whose input gradients are known in closed form,
the per-sample (not per-pixel) interpolation weight, DRAGAN's reference-code perturbation,
and per-seed independence of the random streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from ganscope.batch import Batch
from ganscope.config import load_config
from ganscope.nets import DISCRIMINATORS, init_population
from ganscope.nets.modifiers import Packed
from ganscope.regularizers import REGULARIZERS, Critic, Regularizer
from ganscope.regularizers.gradient_penalty import Dragan, DraganParams
from ganscope.schemes import Parts
from ganscope.seeding import PopulationRandom


def build(name: str, **options: float) -> Regularizer:
    entry = REGULARIZERS.entry(name)
    return entry.obj(entry.params(**options))


def linear_critic(w: torch.Tensor) -> Critic:
    """D_s(x) = <w_s, x>: its input gradient is w_s everywhere, so ||grad|| = |w_s|."""
    return lambda x, labels=None: (x * w.unsqueeze(1)).flatten(2).sum(dim=2, keepdim=True)


class Recorder:
    """A linear critic that keeps the points it is evaluated at."""

    def __init__(self, w: torch.Tensor) -> None:
        self.critic = linear_critic(w)
        self.points: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.points = x.detach().clone()
        return self.critic(x)


def batches(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen), torch.randn(shape, generator=gen) + 2


@pytest.mark.parametrize("name", ["gradient-penalty", "dragan"])
def test_linear_critic_penalty_is_norm_of_weights_minus_one_squared(name: str) -> None:
    # |w_0| = |(3, 4)| = 5 -> (5-1)^2 = 16; |w_1| = |(0, 0.5)| = 0.5 -> 0.25.
    w = torch.tensor([[3.0, 4.0], [0.0, 0.5]], requires_grad=True)
    real, fake = batches((2, 6, 2))
    penalty = build(name).penalty(linear_critic(w), Batch(real), Batch(fake), PopulationRandom([0, 1], "penalty"))
    assert penalty.shape == (2,)
    torch.testing.assert_close(penalty, torch.tensor([16.0, 0.25]))
    # create_graph: the penalty trains D. d/dw (|w|-1)^2 = 2(|w|-1) w/|w|.
    penalty.sum().backward()
    torch.testing.assert_close(w.grad, torch.tensor([[4.8, 6.4], [0.0, -1.0]]))


def test_dragan_target_norm_k() -> None:
    w = torch.tensor([[3.0, 4.0]])
    real, fake = batches((1, 4, 2))
    rng = PopulationRandom([0], "penalty")
    penalty = build("dragan", k=2.0).penalty(linear_critic(w), Batch(real), Batch(fake), rng)
    torch.testing.assert_close(penalty, torch.tensor([9.0]))  # (5 - 2)^2


def test_gradient_penalty_on_quadratic_critic_at_known_interpolates() -> None:
    # D_s(x) = a_s/2 ||x||^2 has grad a_s x, so the penalty is mean_b (a_s ||x_hat_b|| - 1)^2
    # with x_hat = eps real + (1 - eps) fake and eps replayed from the same seeded stream.
    a = torch.tensor([0.5, 2.0])
    real, fake = batches((2, 5, 3))
    critic = lambda x, labels=None: 0.5 * a.view(2, 1, 1) * x.square().sum(dim=2, keepdim=True)  # noqa: E731
    penalty = build("gradient-penalty").penalty(critic, Batch(real), Batch(fake), PopulationRandom([3, 4], "penalty"))
    eps = PopulationRandom([3, 4], "penalty").rand(5, 1)
    x_hat = eps * real + (1 - eps) * fake
    expected = [
        sum((a[s].item() * math.sqrt(sum(v * v for v in x_hat[s, b].tolist())) - 1) ** 2 for b in range(5)) / 5
        for s in range(2)
    ]
    torch.testing.assert_close(penalty, torch.tensor(expected))


def test_gradient_penalty_keeps_the_fakes_graph_and_float64() -> None:
    # Fakes that carry a graph (the unrolled GAN's) keep it through the interpolates, and a
    # float64 critic gets a float64 penalty: its gradient to the fakes is the closed form's.
    a = torch.tensor([0.5, 2.0], dtype=torch.float64)
    real, fake = (b.double() for b in batches((2, 5, 3)))
    fake.requires_grad_()
    critic = lambda x, labels=None: 0.5 * a.view(2, 1, 1) * x.square().sum(dim=2, keepdim=True)  # noqa: E731
    penalty = build("gradient-penalty").penalty(critic, Batch(real), Batch(fake), PopulationRandom([3, 4], "penalty"))
    assert penalty.dtype == torch.float64
    eps = PopulationRandom([3, 4], "penalty").rand(5, 1).double()
    x_hat = eps * real + (1 - eps) * fake
    expected = (a.view(2, 1) * torch.linalg.vector_norm(x_hat, dim=2) - 1).square().mean(dim=1)
    torch.testing.assert_close(penalty, expected, rtol=1e-14, atol=0)
    (grad,) = torch.autograd.grad(penalty.sum(), fake)
    (expected_grad,) = torch.autograd.grad(expected.sum(), fake)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-14)


def test_interpolation_weight_is_one_per_sample_not_per_pixel() -> None:
    # real = 1, fake = 0, so x_hat = eps: every pixel of a sample must carry the same eps.
    shape = (2, 8, 3, 4, 4)
    recorder = Recorder(torch.ones(2, 3, 4, 4))
    real, fake = Batch(torch.ones(shape)), Batch(torch.zeros(shape))
    build("gradient-penalty").penalty(recorder, real, fake, PopulationRandom([0, 1], "penalty"))
    points = recorder.points.flatten(2)
    per_sample = points[:, :, :1]
    assert (points == per_sample).all(), "one epsilon per sample, broadcast over C, H, W"
    assert ((per_sample >= 0) & (per_sample <= 1)).all()
    assert per_sample.unique().numel() == 16, "fresh epsilon for every sample of every seed"


def test_dragan_points_follow_the_authors_reference_code() -> None:
    # x_p = x + C std(x) u with u ~ U[0,1) per element and std over the seed's whole batch
    # (numpy's population std); x_hat = x + alpha (x_p - x) with one alpha per sample.
    shape = (2, 6, 2, 3, 3)
    real, fake = batches(shape)
    recorder = Recorder(torch.ones(2, 2, 3, 3))
    build("dragan", perturb_scale=0.5).penalty(recorder, Batch(real), Batch(fake), PopulationRandom([0, 1], "penalty"))
    rng = PopulationRandom([0, 1], "penalty")
    u, alpha = rng.rand(*shape[1:]), rng.rand(6, 1, 1, 1)
    sigma = torch.tensor([np.std(real[s].numpy()) for s in range(2)]).view(2, 1, 1, 1, 1)
    expected = real + alpha * (0.5 * sigma * u)
    torch.testing.assert_close(recorder.points, expected)
    step = recorder.points - real
    assert (step >= 0).all() and (step <= 0.5 * sigma).all()


def test_packed_critic_gets_one_weight_and_one_norm_per_pack() -> None:
    # PacGAN + penalty: D's input is a pack of m = 2 samples, so the interpolate must lie on
    # the segment between a real and a fake *pack* (one eps for both samples) and the norm
    # is over the pack's 4 inputs. D(pack) = <w, pack> with w = (1, 2, 2, 0): ||grad|| = 3,
    # penalty (3 - 1)^2 = 4; per-sample norms sqrt(5) and 2 would give 1.26 instead.
    w = torch.tensor([[1.0, 2.0, 2.0, 0.0]])
    recorder = Recorder(w)
    critic = Packed(recorder, 2)
    entry = REGULARIZERS.entry("gradient-penalty")
    real, fake = Batch(torch.ones(1, 6, 2)), Batch(torch.zeros(1, 6, 2))
    penalty = entry.obj(entry.params(), pack=2).penalty(critic, real, fake, PopulationRandom([0], "penalty"))
    torch.testing.assert_close(penalty, torch.tensor([4.0]))
    eps = recorder.points  # real = 1, fake = 0: the packed interpolates are the weights
    assert eps.shape == (1, 3, 4)
    assert (eps == eps[..., :1]).all(), "one epsilon per pack, shared by its samples"
    assert eps[..., 0].unique().numel() == 3


def test_parts_give_regularizers_the_pack_size() -> None:
    cfg = load_config(overrides=["d_modifiers=[{name: pack, m: 3}]", "train.batch_size=12",
                                 "regularizers=[{name: dragan}]"])
    assert Parts.from_config(cfg).regularizers["dragan"].pack == 3
    assert Parts.from_config(load_config(overrides=["regularizers=[{name: dragan}]"])).regularizers["dragan"].pack == 1


def population_critic(seeds: list[int]) -> torch.nn.Module:
    """A real population MLP critic; seed s's weights depend on s alone."""
    entry = DISCRIMINATORS.entry("mlp")
    net = entry.obj(entry.params(hidden=16, depth=2), len(seeds), (2, 2, 2), 1)
    init_population(net, PopulationRandom(seeds, "init", 1, 0).generators)
    return net


@pytest.mark.parametrize("name", ["gradient-penalty", "dragan"])
def test_seed_in_a_population_gets_exactly_its_penalty_alone(name: str) -> None:
    real, fake = batches((2, 7, 2, 2, 2))
    regularizer = build(name)
    both = regularizer.penalty(population_critic([0, 1]), Batch(real), Batch(fake), PopulationRandom([0, 1], "penalty"))
    rng = PopulationRandom([1], "penalty")
    alone = regularizer.penalty(population_critic([1]), Batch(real[1:]), Batch(fake[1:]), rng)
    assert both.shape == (2,) and alone.shape == (1,)
    torch.testing.assert_close(both[1:], alone, rtol=0, atol=0)
    assert both[0] != both[1]


def test_penalty_draws_only_from_the_given_stream() -> None:
    real, fake = batches((1, 5, 2, 2, 2))
    critic = population_critic([0])
    torch.manual_seed(0)
    first = build("dragan").penalty(critic, Batch(real), Batch(fake), PopulationRandom([0], "penalty"))
    torch.manual_seed(123)
    second = build("dragan").penalty(critic, Batch(real), Batch(fake), PopulationRandom([0], "penalty"))
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_flat_critic_gives_finite_gradient() -> None:
    # ||grad|| = 0 is where the norm is not differentiable; the penalty must stay usable.
    w = torch.zeros(1, 2, requires_grad=True)
    real, fake = batches((1, 4, 2))
    rng = PopulationRandom([0], "penalty")
    penalty = build("gradient-penalty").penalty(linear_critic(w), Batch(real), Batch(fake), rng)
    torch.testing.assert_close(penalty, torch.tensor([1.0]))
    penalty.sum().backward()
    assert torch.isfinite(w.grad).all()


def test_defaults_are_the_papers() -> None:
    assert build("gradient-penalty").weight == 10.0
    dragan = build("dragan")
    assert isinstance(dragan, Dragan)
    assert (dragan.weight, dragan.params.perturb_scale, dragan.params.k) == (10.0, 0.5, 1.0)
    with pytest.raises(ValidationError):
        DraganParams(perturb_scale=-1)
    with pytest.raises(ValidationError):
        REGULARIZERS.entry("gradient-penalty").params(k=2)
