"""Population-batched image layers and the DCGAN networks: grouped convolutions equal a
per-seed loop, batch norm and spectral norm stay within each seed, a seed computes the
same inside a population as alone, and the networks fit every supported image size."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganscope.cli import main
from ganscope.config import load_config
from ganscope.train.run import Run
from ganscope.errors import ConfigError
from ganscope.nets import init_population
from ganscope.nets.conv import PopBatchNorm2d, PopConv2d, PopConvTranspose2d, PopSpectralNorm
from ganscope.nets.dcgan import (
    DCGANDiscriminator,
    DCGANDiscriminatorParams,
    DCGANGenerator,
    DCGANParams,
)
from ganscope.nets.modifiers import MinibatchFeatures
from ganscope.seeding import PopulationRandom

Z_DIM = 8


def initialised(net: nn.Module, seeds: list[int], role: int) -> nn.Module:
    """`net` initialised from each seed's own init stream, as the trainer does it."""
    init_population(net, PopulationRandom(seeds, "init", role, 0).generators)
    return net


def generator(seeds: list[int], sample_shape: tuple[int, ...] = (1, 16, 16), **params: object) -> DCGANGenerator:
    p = DCGANParams.model_validate({"width": 4, **params})
    return initialised(DCGANGenerator(p, len(seeds), Z_DIM, sample_shape), seeds, 0)


def discriminator(
    seeds: list[int], sample_shape: tuple[int, ...] = (1, 16, 16), **params: object
) -> DCGANDiscriminator:
    p = DCGANDiscriminatorParams.model_validate({"width": 4, **params})
    return initialised(DCGANDiscriminator(p, len(seeds), sample_shape, 1), seeds, 1)


@pytest.fixture(autouse=True)
def fixed_inputs() -> None:
    """Test inputs drawn from torch's global stream: fixed, so a tolerance that holds once holds always."""
    torch.manual_seed(0)


# ---- grouped convolutions ---------------------------------------------------------------


@pytest.mark.parametrize(("layer_type", "op"), [(PopConv2d, F.conv2d), (PopConvTranspose2d, F.conv_transpose2d)])
def test_grouped_convolution_equals_a_loop_over_seeds(layer_type, op) -> None:
    # In float64, so that summation order (grouped vs one call per seed) cannot hide a mix-up.
    layer = initialised(layer_type(3, 2, 5, kernel_size=4, stride=2, padding=1), [0, 1, 2], 0).double()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        layer.bias.normal_(generator=gen)  # zero at init: give the bias something to get wrong
    x = torch.randn(3, 4, 2, 6, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    loop = torch.stack([op(x[s], layer.weight[s], layer.bias[s], 2, 1) for s in range(3)])
    assert y.shape == loop.shape
    torch.testing.assert_close(y, loop, atol=1e-12, rtol=1e-12)

    upstream = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    grouped_grads = torch.autograd.grad(y, (x, layer.weight, layer.bias), upstream)
    loop_grads = torch.autograd.grad(loop, (x, layer.weight, layer.bias), upstream)
    for grouped, looped in zip(grouped_grads, loop_grads, strict=True):
        torch.testing.assert_close(grouped, looped, atol=1e-12, rtol=1e-12)


# ---- batch norm -------------------------------------------------------------------------


def test_batch_norm_is_torch_batch_norm_per_seed_in_train_and_eval_mode() -> None:
    norm = initialised(PopBatchNorm2d(2, 3), [0, 1], 0)
    references = [nn.BatchNorm2d(3) for _ in range(2)]
    for s, ref in enumerate(references):
        ref.weight.data.copy_(norm.weight[s])
    batches = [torch.randn(2, 5, 3, 4, 4) * torch.tensor([1.0, 10.0]).view(2, 1, 1, 1, 1) for _ in range(3)]
    for x in batches:
        out = norm(x)
        for s, ref in enumerate(references):
            torch.testing.assert_close(out[s], ref(x[s]))
    for s, ref in enumerate(references):
        torch.testing.assert_close(norm.running_mean[s], ref.running_mean)
        torch.testing.assert_close(norm.running_var[s], ref.running_var)
    norm.eval()
    x = torch.randn(2, 5, 3, 4, 4)
    for s, ref in enumerate(references):
        torch.testing.assert_close(norm(x)[s], ref.eval()(x[s]))


# ---- spectral norm ----------------------------------------------------------------------


def test_spectral_norm_matches_torch_on_one_seed() -> None:
    layer = initialised(PopConv2d(1, 3, 4, kernel_size=3, padding=1), [7], 0)
    ours = initialised(PopSpectralNorm(layer), [7], 0)
    reference = nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        reference.weight.copy_(layer.weight[0])
        reference.bias.copy_(layer.bias[0])
    reference = spectral_norm(reference)
    sn = reference.parametrizations.weight[0]
    sn._u.copy_(ours.u[0])  # same starting vectors (torch's own went through 15 warm-up steps)
    sn._v.copy_(ours.v[0])
    x = torch.randn(1, 2, 3, 5, 5)
    for _ in range(3):  # one power iteration per forward pass, in both
        torch.testing.assert_close(ours(x)[0], reference(x[0]))
    torch.testing.assert_close(ours.u[0], sn._u)
    torch.testing.assert_close(ours.v[0], sn._v)
    ours.eval(), reference.eval()
    torch.testing.assert_close(ours.normalised_weight()[0], reference.weight)


def test_spectral_norm_gives_each_seed_unit_spectral_norm() -> None:
    layer = initialised(PopConv2d(2, 3, 4, kernel_size=3), [0, 1], 0)
    with torch.no_grad():
        layer.weight[1].mul_(100.0)  # seeds of very different scale: a shared norm would shrink seed 0
    normalised = initialised(PopSpectralNorm(layer), [0, 1], 0)
    for _ in range(200):  # the power method converges slowly where the top singular values are close
        weight = normalised.normalised_weight()
    sigmas = torch.linalg.matrix_norm(weight.detach().flatten(2), ord=2)
    torch.testing.assert_close(sigmas, torch.ones(2), atol=1e-4, rtol=0)


# ---- seed independence ------------------------------------------------------------------


@pytest.mark.parametrize("d_params", [{"batch_norm": True}, {"batch_norm": False, "spectral_norm": True}])
def test_seed_inside_population_matches_seed_alone(d_params) -> None:
    """Seed 3 inside [1, 3, 4] and alone: same weights, outputs, gradients and buffers over
    two training passes (batch norm statistics, power iterations, running averages)."""
    together = generator([1, 3, 4]), discriminator([1, 3, 4], **d_params)
    alone = generator([3]), discriminator([3], **d_params)
    for net_together, net_alone in zip(together, alone, strict=True):
        for (name, value), (_, single) in zip(net_together.state_dict().items(), net_alone.state_dict().items()):
            assert torch.equal(value[1], single[0]), name
    for _ in range(2):
        z = torch.randn(3, 6, Z_DIM)
        out_together = together[1](together[0](z))
        out_alone = alone[1](alone[0](z[1:2]))
        torch.testing.assert_close(out_together[1], out_alone[0], atol=1e-5, rtol=0)
        out_together.sum().backward()
        out_alone.sum().backward()
    for net_together, net_alone in zip(together, alone, strict=True):
        for (name, p), (_, single) in zip(net_together.named_parameters(), net_alone.named_parameters()):
            torch.testing.assert_close(p.grad[1], single.grad[0], atol=1e-5, rtol=0, msg=name)
        for (name, b), (_, single) in zip(net_together.named_buffers(), net_alone.named_buffers()):
            torch.testing.assert_close(b[1], single[0], atol=1e-5, rtol=0, msg=name)


# ---- the DCGAN networks -----------------------------------------------------------------


@pytest.mark.parametrize(("side", "stages"), [(8, 1), (16, 2), (28, 2), (32, 3), (64, 4)])
@pytest.mark.parametrize("channels", [1, 3])
def test_networks_fit_every_image_size(side, stages, channels) -> None:
    shape = (channels, side, side)
    g, d = generator([0, 1], shape), discriminator([0, 1], shape)
    assert sum(isinstance(m, PopConvTranspose2d) for m in g.modules()) == stages
    assert sum(isinstance(m, PopConv2d) for m in d.modules()) == stages
    images = g(torch.randn(2, 3, Z_DIM))
    assert images.shape == (2, 3, *shape)
    assert images.abs().max() <= 1.0 and images.std() > 0
    assert d(images).shape == (2, 3, 1)


def test_depth_width_and_feature_extensions_shape_the_networks() -> None:
    g = generator([0], (1, 28, 28), width=6, depth=1)  # 14 -> 28
    assert g.body[0].weight.shape == (1, Z_DIM, 6 * 14 * 14)
    p = DCGANDiscriminatorParams(width=4, batch_norm=False)
    with_features = [lambda n_seeds, width: MinibatchFeatures(n_seeds, width, 5, 2)]
    minibatch = DCGANDiscriminator(p, 2, (6, 16, 16), 3, extensions=with_features)
    assert minibatch.head.weight.shape == (2, 8 * 4 * 4 + 5, 3)  # 8 channels of 4x4, then 5 minibatch features
    assert minibatch.batch_coupled and not DCGANDiscriminator(p, 2, (6, 16, 16), 3).batch_coupled
    assert discriminator([0]).batch_coupled  # batch norm on every layer but the first
    assert not discriminator([0], (1, 8, 8)).batch_coupled  # one layer: the first, without batch norm


@pytest.mark.parametrize(
    ("shape", "depth", "message"),
    [
        ((2,), None, "the dcgan networks need square images (channels, height, width), got samples of shape (2,)"),
        ((1, 28, 14), None, "got samples of shape (1, 28, 14)"),
        ((1, 7, 7), None, "a 7x7 image cannot be halved to a side of >= 4"),
        ((1, 28, 28), 3, "dcgan: depth=3 halves the side 3 times, and 28 does not divide by 8"),
    ],
)
def test_unusable_shapes_are_refused_in_one_line(shape, depth, message) -> None:
    for build in (lambda: generator([0], shape, depth=depth), lambda: discriminator([0], shape, depth=depth)):
        with pytest.raises(ConfigError, match=re.escape(message)) as err:
            build()
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("section", ["generator", "discriminator"])
def test_configs_pairing_dcgan_with_point_data_are_refused(section, tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        Run(load_config(overrides=[f"{section}.name=dcgan"]), tmp_path)
    assert str(err.value) == (
        "the dcgan networks need square images (channels, height, width), got samples of shape (2,); "
        "use the mlp networks for other data"
    )
