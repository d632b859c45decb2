"""Every objective, regulariser, D-modifier and scheme on images with the DCGAN networks: a
tiny population of 8x8 digits trains a few steps under each combination (finite losses,
right shapes, every parameter moves); a seed inside a population computes exactly as
alone with batch norm and with spectral norm; the gradient penalties on images match a
per-image (per-pack) autograd loop; the minibatch standard deviation matches hand-computed
values; MR-GAN's encoder and EBGAN's autoencoder are convolutional on images."""

from __future__ import annotations

import math

import pytest
import torch

from ganscope.config import load_config, piece_params
from ganscope.errors import ConfigError
from ganscope.nets import init_population
from ganscope.nets.autoencoder import Autoencoder
from ganscope.nets.conv import PopBatchNorm2d, PopConv2d, PopConvTranspose2d, PopSpectralNorm
from ganscope.nets.dcgan import DCGANDiscriminator, DCGANDiscriminatorParams, DCGANGenerator, DCGANLinear
from ganscope.nets.mlp import MLPDiscriminator
from ganscope.nets.modifiers import MinibatchStddevFeatures, Packed
from ganscope.objectives import OBJECTIVES
from ganscope.regularizers import REGULARIZERS
from ganscope.schemes import SCHEMES, Parts, Scheme
from ganscope.batch import Batch
from ganscope.schemes.base import real_and_fake_logits
from ganscope.seeding import PopulationRandom

SEEDS = 2
BATCH = 8
SHAPE = (1, 8, 8)  # scikit-learn's digits at 8x8: one stride-2 stage, 8 -> 4
IMAGES = [
    "data.name=digits",
    "generator.name=dcgan",
    "discriminator.name=dcgan",
    "generator.width=8",
    "discriminator.width=8",
    "noise.z_dim=8",
    f"train.batch_size={BATCH}",
    "train.lr_schedule=constant",
    "train.report=false",
]
NO_BN = "discriminator.batch_norm=false"
SPECTRAL = [NO_BN, "discriminator.spectral_norm=true"]
PACK = "{name: pack, m: 2}"
STDDEV = "{name: minibatch-stddev, group_size: 2}"
MINIBATCH = "{name: minibatch, kernels: 4, kernel_dim: 3}"
GP = [NO_BN, "objective.name=wgan-gp", "regularizers=[{name: gradient-penalty}]"]
DRAGAN = [NO_BN, "regularizers=[{name: dragan}]"]
UNROLLED = ["scheme.name=unrolled", "scheme.unroll_steps=2"]
MADGAN = ["scheme.name=madgan", "scheme.generators=2"]
MRGAN = ["scheme.name=mrgan", "scheme.encoder.width=8"]
EBGAN = ["scheme.name=ebgan", "scheme.code_dim=8"]


def modifiers(*pieces: str) -> str:
    return f"d_modifiers=[{', '.join(pieces)}]"


def scheme_of(overrides: list[str], seeds: str = str(SEEDS)) -> Scheme:
    cfg = load_config(overrides=IMAGES + overrides + [f"train.seeds={seeds}"])
    return SCHEMES.get(cfg.scheme.name)(Parts.from_config(cfg), piece_params(cfg, "scheme"))


def parameters(scheme: Scheme) -> dict[str, torch.Tensor]:
    return {
        f"{m}.{k}": p.detach().clone() for m, module in scheme.modules.items() for k, p in module.named_parameters()
    }


#: Objectives whose D loss is a difference of means, E D(fake) - E D(real) (hinge too while
#: every output lies within its margins, as at the start): D's output bias cancels out of
#: it, so that one parameter keeps its initial value.
BIAS_FREE_OBJECTIVES = ("wgan", "wgan-gp", "hinge")


def train_and_check(scheme: Scheme, steps: int = 3) -> dict[str, torch.Tensor]:
    """`steps` training steps: every logged value finite and per seed, every parameter of
    every module moved (but D's output bias under a difference-of-means objective);
    returns the last step's log."""
    before = parameters(scheme)
    for _ in range(steps):
        out = scheme.train_step(diagnostics=True)
        for key, value in out.items():
            assert value.shape == (SEEDS,) and torch.isfinite(value).all(), (key, value)
    after = parameters(scheme)
    assert before.keys() == after.keys()
    unmoved = {name for name in before if torch.equal(before[name], after[name])}
    if scheme.parts.cfg.objective.name in BIAS_FREE_OBJECTIVES:
        unmoved -= {name for name in unmoved if name.startswith("discriminator.") and name.endswith("head.bias")}
    assert not unmoved, unmoved
    return out


# ---- every scheme with its relevant modifiers and regularisers ----------------------------

# (overrides, D's output per real batch of 8 images: (inputs, outputs); () for EBGAN's energies)
CASES = {
    "alternating": ([], (8, 1)),
    "alternating-pack": ([modifiers(PACK)], (4, 1)),
    "alternating-minibatch": ([modifiers(MINIBATCH)], (8, 1)),
    "alternating-minibatch-stddev": ([modifiers(STDDEV)], (8, 1)),
    "alternating-pack-minibatch-stddev": ([modifiers(PACK, STDDEV)], (4, 1)),
    "alternating-spectral-norm": (SPECTRAL, (8, 1)),
    "alternating-wgan-gp": (GP, (8, 1)),
    "alternating-wgan-gp-pack": ([*GP, modifiers(PACK)], (4, 1)),
    "alternating-dragan": (DRAGAN, (8, 1)),
    "alternating-dragan-spectral-norm": ([*DRAGAN, *SPECTRAL], (8, 1)),
    "unrolled": (UNROLLED, (8, 1)),
    "unrolled-pack": ([*UNROLLED, modifiers(PACK)], (4, 1)),
    "unrolled-minibatch-stddev": ([*UNROLLED, modifiers(STDDEV)], (8, 1)),
    "unrolled-spectral-norm": ([*UNROLLED, *SPECTRAL], (8, 1)),
    "unrolled-wgan-gp": ([*UNROLLED, *GP], (8, 1)),
    "madgan": (MADGAN, (8, 3)),
    "madgan-shared-body": ([*MADGAN, "scheme.share_layers=true"], (8, 3)),
    "madgan-pack": ([*MADGAN, modifiers(PACK)], (4, 3)),
    "madgan-minibatch-stddev": ([*MADGAN, modifiers(STDDEV)], (8, 3)),
    "madgan-wgan-gp": ([*MADGAN, *GP], (8, 3)),
    "mrgan": (MRGAN, (8, 1)),
    "mrgan-regularized-gan": ([*MRGAN, "scheme.manifold_diffusion=false"], (8, 1)),
    "mrgan-pack": ([*MRGAN, modifiers(PACK)], (4, 1)),
    "mrgan-dragan": ([*MRGAN, *DRAGAN], (8, 1)),
    "ebgan": (EBGAN, (8,)),
    "ebgan-wgan-gp-penalty": ([*EBGAN, NO_BN, "regularizers=[{name: gradient-penalty}]"], (8,)),
}


@pytest.mark.parametrize(("overrides", "d_shape"), list(CASES.values()), ids=list(CASES))
def test_scheme_trains_on_a_tiny_image_population(overrides, d_shape) -> None:
    scheme = scheme_of(overrides)
    real = scheme.parts.real_batch().x
    assert real.shape == (SEEDS, BATCH, *SHAPE)
    with torch.no_grad():
        assert scheme.modules["discriminator"](real).shape == (SEEDS, *d_shape)
    out = train_and_check(scheme)
    assert {"d_loss", "g_loss", "d_grad_norm", "g_grad_norm"} <= set(out)
    for name in ("gradient-penalty", "dragan"):
        if f"regularizers=[{{name: {name}}}]" in overrides:
            assert out[f"penalty_{name}"].gt(0).all()
    scheme.train(False)
    samples = scheme.generate(Batch(scheme.parts.noise_batch(5)))
    assert samples.shape == (SEEDS, 5, *SHAPE)
    assert samples.abs().le(1).all()  # tanh output: pixels in [-1, 1] like the data


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_every_objective_trains_on_images(name) -> None:
    extra = GP if name == "wgan-gp" else []
    scheme = scheme_of([f"objective.name={name}", *extra])
    train_and_check(scheme)
    if name == "wgan":  # the projection reaches every weight of the convolutional critic
        clip = scheme.parts.objective.params.clip
        assert all(p.abs().max() <= clip for p in scheme.modules["discriminator"].parameters())


def test_madgan_shares_the_dcgan_generators_body() -> None:
    scheme = scheme_of([*MADGAN, "scheme.share_layers=true"])
    body = scheme.modules["generator_body"]  # 8x8: the projection to 4x4 maps and its batch norm
    assert [type(layer) for layer in body] == [DCGANLinear, torch.nn.Unflatten, PopBatchNorm2d, torch.nn.ReLU]
    for i in range(2):
        head = scheme.modules[f"generator_{i}"]
        assert isinstance(head.body, torch.nn.Identity)
        assert isinstance(head.out[0], PopConvTranspose2d)  # each its own output layer
    assert scheme.generator(scheme.parts.noise_batch(4)).shape == (SEEDS, 2, 4, *SHAPE)


@pytest.mark.parametrize("overrides", [[], SPECTRAL], ids=["batch-norm", "spectral-norm"])
def test_unrolling_leaves_the_conv_discriminators_buffers_alone(overrides) -> None:
    """The surrogate D steps run on copies of D's running statistics and power-iteration
    vectors: G's unrolled step moves none of the real D's state."""
    scheme = scheme_of([*UNROLLED, *overrides, "data.size=16"])  # 16x16: two stages, batch norm on the second
    state = {k: v.clone() for k, v in scheme.modules["discriminator"].state_dict().items()}
    assert any(k.endswith(("running_mean", ".u")) for k in state)
    scheme.g_step(diagnostics=False)
    for key, value in scheme.modules["discriminator"].state_dict().items():
        assert torch.equal(value, state[key]), key


# ---- seed independence --------------------------------------------------------------------


def losses(overrides: list[str], seeds: str, steps: int = 10) -> list[dict[str, list[float]]]:
    scheme = scheme_of(overrides, seeds)
    return [{k: v.tolist() for k, v in scheme.train_step().items()} for _ in range(steps)]


@pytest.mark.parametrize(
    "overrides",
    [[], SPECTRAL, [modifiers(PACK, STDDEV)], UNROLLED, MADGAN, MRGAN, EBGAN],
    ids=["batch-norm", "spectral-norm", "pack-minibatch-stddev", "unrolled", "madgan", "mrgan", "ebgan"],
)
def test_seed_inside_population_matches_seed_alone(overrides) -> None:
    """Seed 3 trained beside seed 1 follows the trajectory of seed 3 trained alone: grouped
    convolutions, per-seed batch norm, per-seed spectral norm and per-seed minibatch
    statistics never mix seeds. 16x16 digits: two stages, so D has batch norm (on its
    second convolution) or spectral norm in every layer."""
    overrides = [*overrides, "data.size=16"]
    d_layers = {type(m) for m in scheme_of(overrides, "[3]").modules["discriminator"].modules()}
    assert (PopSpectralNorm if SPECTRAL[1] in overrides else PopBatchNorm2d) in d_layers
    together, alone = losses(overrides, "[1,3]"), losses(overrides, "[3]")
    for step_together, step_alone in zip(together, alone, strict=True):
        assert step_together.keys() == step_alone.keys()
        for key in step_together:
            assert step_together[key][1] == pytest.approx(step_alone[key][0], abs=1e-5), key
    other = losses(overrides, "[1]", steps=1)
    assert other[0]["d_loss"][0] != pytest.approx(alone[0]["d_loss"][0], abs=1e-5)


# ---- gradient penalties on images against autograd ------------------------------------------


def critic(seeds: list[int], sample_shape: tuple[int, ...]) -> DCGANDiscriminator:
    """A convolutional critic without batch norm (width 4), initialised per seed."""
    params = DCGANDiscriminatorParams(width=4, batch_norm=False)
    net = DCGANDiscriminator(params, len(seeds), sample_shape, 1).double()
    init_population(net, PopulationRandom(seeds, "init", 1, 0).generators)
    return net


def images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    real = torch.rand(SEEDS, n, *SHAPE, generator=gen, dtype=torch.float64) * 2 - 1
    return real, torch.rand(SEEDS, n, *SHAPE, generator=gen, dtype=torch.float64) * 2 - 1


def penalty_by_loop(net: torch.nn.Module, points: torch.Tensor, pack: int, target: float) -> torch.Tensor:
    """mean over inputs of (||grad D(input)|| - target)^2, one input (an image, or a pack of
    `pack` images) through D at a time, its own autograd call; differentiable in D."""
    terms = []
    for start in range(0, points.shape[1], pack):
        x = points[:, start : start + pack].detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)  # seeds do not mix: one grad each
        terms.append((torch.linalg.vector_norm(grad.flatten(1), dim=1) - target).square())
    return torch.stack(terms, dim=1).mean(dim=1)


def assert_penalty_and_its_gradient_match(net: torch.nn.Module, penalty: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(penalty, expected, rtol=1e-10, atol=0)
    params = list(net.parameters())  # the head's bias does not reach an input gradient: no grad
    grads = torch.autograd.grad(penalty.sum(), params, allow_unused=True)
    expected_grads = torch.autograd.grad(expected.sum(), params, allow_unused=True)
    assert sum(g is not None for g in grads) == len(params) - 1
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        if grad is None:
            assert expected_grad is None
        else:
            torch.testing.assert_close(grad, expected_grad, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("pack", [1, 2])
def test_gradient_penalty_on_images_matches_a_per_image_autograd_loop(pack) -> None:
    """WGAN-GP on images: one eps per image (per pack) broadcast over C, H, W, and one
    gradient norm per image (per pack, over all its channels and pixels)."""
    seeds, n = [0, 1], 6
    real, fake = images(n, seed=0)
    inner = critic(seeds, (pack * SHAPE[0], *SHAPE[1:]))
    net = inner if pack == 1 else Packed(inner, pack)
    entry = REGULARIZERS.entry("gradient-penalty")
    penalty = entry.obj(entry.params(), pack).penalty(net, Batch(real), Batch(fake), PopulationRandom(seeds, "penalty"))
    eps = PopulationRandom(seeds, "penalty").rand(n // pack, 1, 1, 1).double().repeat_interleave(pack, dim=1)
    assert_penalty_and_its_gradient_match(net, penalty, penalty_by_loop(net, eps * real + (1 - eps) * fake, pack, 1.0))


def test_dragan_on_images_matches_a_per_image_autograd_loop() -> None:
    seeds, n, k = [0, 1], 6, 0.5
    real, fake = images(n, seed=1)
    net = critic(seeds, SHAPE)
    entry = REGULARIZERS.entry("dragan")
    penalty = entry.obj(entry.params(k=k)).penalty(net, Batch(real), Batch(fake), PopulationRandom(seeds, "penalty"))
    rng = PopulationRandom(seeds, "penalty")
    noise, alpha = rng.rand(n, *SHAPE).double(), rng.rand(n, 1, 1, 1).double()
    sigma = real.flatten(1).std(dim=1, correction=0).view(SEEDS, 1, 1, 1, 1)
    points = real + alpha * (0.5 * sigma * noise)
    assert_penalty_and_its_gradient_match(net, penalty, penalty_by_loop(net, points, 1, k))


def test_gradient_penalty_with_a_batch_norm_dcgan_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=IMAGES + ["regularizers=[{name: dragan}]"])
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("regularizers.0: a gradient penalty needs a discriminator without batch norm, and "
                              "discriminator.name=dcgan has batch_norm=true")
    assert message.endswith("set discriminator.batch_norm=false")
    load_config(overrides=IMAGES + ["regularizers=[{name: dragan}]", NO_BN])


# ---- minibatch standard deviation ------------------------------------------------------------


def test_minibatch_stddev_matches_hand_computed_values() -> None:
    # Four samples, groups of two, strided as in the authors' code: samples 0 and 2 form
    # group 0, samples 1 and 3 group 1. Each std is sqrt(biased variance + 1e-8).
    # Seed 0, group 0: features (0, 2) and (0, 4): stds 1 and 2 -> 1.5
    #         group 1: features (1, 5) and (3, 3): stds 2 and 1e-4 -> 1.00005
    # Seed 1, both groups: features (1, 1) and (0, 2): stds 1e-4 and 1 -> 0.50005, its own.
    f = torch.tensor([
        [[0.0, 0.0], [1.0, 3.0], [2.0, 4.0], [5.0, 3.0]],
        [[1.0, 0.0], [1.0, 0.0], [1.0, 2.0], [1.0, 2.0]],
    ])
    out = MinibatchStddevFeatures(2, group_size=2)(f)
    assert out.shape == (2, 4, 3)
    assert torch.equal(out[..., :2], f)
    group0 = (math.sqrt(1 + 1e-8) + math.sqrt(4 + 1e-8)) / 2
    group1 = (math.sqrt(4 + 1e-8) + math.sqrt(1e-8)) / 2
    seed1 = (math.sqrt(1e-8) + math.sqrt(1 + 1e-8)) / 2
    assert [group0, group1, seed1] == pytest.approx([1.5, 1.00005, 0.50005], rel=1e-7)
    expected = torch.tensor([[group0, group1, group0, group1], [seed1] * 4])
    torch.testing.assert_close(out[..., 2], expected)
    # A group larger than the batch is one group of the whole batch (min(group_size, N)).
    whole = MinibatchStddevFeatures(2, group_size=8)(f[:1])[0, :, 2]
    stds = f[0].std(dim=0, correction=0)
    torch.testing.assert_close(whole, torch.full((4,), ((stds.square() + 1e-8).sqrt()).mean().item()))
    with pytest.raises(ValueError, match="does not split into groups of 3"):
        MinibatchStddevFeatures(2, group_size=3)(f)


def test_minibatch_stddev_on_the_dcgan_discriminator_sees_its_feature_maps_spread() -> None:
    scheme = scheme_of([NO_BN, modifiers(STDDEV)])
    net = scheme.modules["discriminator"]
    assert net.batch_coupled
    widths = 8 * 4 * 4  # 8 channels at 4x4, flattened
    assert net.head.weight.shape == (SEEDS, widths + 1, 1)
    x = scheme.parts.real_batch().x
    features = net.body(x)
    grouped = features.reshape(SEEDS, 2, BATCH // 2, widths)  # sample j * 4 + m in group m
    sigma = (grouped.var(dim=1, correction=0) + 1e-8).sqrt().mean(dim=2).repeat(1, 2)
    torch.testing.assert_close(net.extensions(features)[..., -1], sigma)
    # A collapsed batch (one image eight times) has no spread, so D judges the same image in
    # it differently than in a varied batch; without the statistic (and without batch norm,
    # which couples a batch too) it would not.
    collapsed = x[:, :1].expand_as(x)
    assert not torch.allclose(net(collapsed)[:, 0], net(x)[:, 0])
    plain = scheme_of([NO_BN]).modules["discriminator"]
    torch.testing.assert_close(plain(collapsed)[:, 0], plain(x)[:, 0])
    real_logits, fake_logits = real_and_fake_logits(net, Batch(x), Batch(collapsed))  # kept apart, never merged
    torch.testing.assert_close(real_logits, net(x))
    torch.testing.assert_close(fake_logits, net(collapsed))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.batch_size=10", modifiers("{name: minibatch-stddev}")],
         "d_modifiers.0: the minibatch stddev splits the 10 inputs D sees per batch into groups of 4"),
        (["train.batch_size=12", modifiers(PACK, "{name: minibatch-stddev}")],
         "d_modifiers.1: the minibatch stddev splits the 6 inputs D sees per batch into groups of 4"),
        ([modifiers("{name: minibatch-stddev, group_size: 1}")],
         "d_modifiers.0.group_size: Input should be greater than or equal to 2"),
        ([*GP, modifiers(STDDEV)], "d_modifier 'minibatch-stddev' couples the samples of a batch"),
    ],
)
def test_bad_minibatch_stddev_configs_are_refused_in_one_line(overrides, message) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=IMAGES + overrides)
    assert "\n" not in str(err.value) and message in str(err.value)


def test_minibatch_stddev_works_on_the_mlp_discriminator_too() -> None:
    mlps = [o for o in IMAGES if not o.startswith(("generator.", "discriminator."))]
    cfg = load_config(overrides=mlps + ["discriminator.hidden=16", modifiers(STDDEV), f"train.seeds={SEEDS}"])
    scheme = SCHEMES.get("alternating")(Parts.from_config(cfg), piece_params(cfg, "scheme"))
    assert isinstance(scheme.modules["discriminator"], MLPDiscriminator)
    assert scheme.modules["discriminator"].head.weight.shape == (SEEDS, 16 + 1, 1)
    train_and_check(scheme)


# ---- convolutional encoder and autoencoder ----------------------------------------------------


def test_mrgan_encoder_is_convolutional_on_images_and_an_mlp_on_points() -> None:
    encoder = scheme_of(MRGAN).modules["encoder"]
    assert isinstance(encoder, DCGANDiscriminator)
    assert encoder.body[0].weight.shape == (SEEDS, 8, 1, 4, 4)  # scheme.encoder.width=8 channels, 4x4 kernels
    codes = encoder(torch.zeros(SEEDS, 3, *SHAPE))
    assert codes.shape == (SEEDS, 3, 8)  # z_dim
    named = scheme_of(["scheme.name=mrgan", "scheme.encoder.name=mlp", "scheme.encoder.hidden=16"])
    assert isinstance(named.modules["encoder"], MLPDiscriminator)
    ring = load_config(overrides=["scheme.name=mrgan", "scheme.encoder.hidden=16", "train.batch_size=8"])
    on_points = SCHEMES.get("mrgan")(Parts.from_config(ring), piece_params(ring, "scheme"))
    assert isinstance(on_points.modules["encoder"], MLPDiscriminator)


def test_bad_encoder_parameters_are_one_line_errors() -> None:
    # A named encoder is checked when the config loads ...
    with pytest.raises(ConfigError) as err:
        load_config(overrides=IMAGES + ["scheme.name=mrgan", "scheme.encoder.name=dcgan", "scheme.encoder.hidden=3"])
    assert str(err.value) == (
        "scheme: encoder.hidden: unknown key; valid keys: width, depth, batch_norm (the dcgan encoder's parameters)"
    )
    with pytest.raises(ConfigError, match="unknown encoder 'conv'; valid: auto, dcgan, mlp"):
        load_config(overrides=IMAGES + ["scheme.name=mrgan", "scheme.encoder.name=conv"])
    # ... and `auto`, which follows the data, when the encoder is built for the data.
    with pytest.raises(ConfigError) as err:
        scheme_of(["scheme.name=mrgan", "scheme.encoder.hidden=3"])
    assert str(err.value) == (
        "scheme.encoder.hidden: unknown key; valid keys: width, depth, batch_norm (the dcgan encoder's parameters)"
    )


@pytest.mark.parametrize("batch_norm", [True, False])
def test_ebgan_autoencoder_is_convolutional_for_the_dcgan_discriminator(batch_norm) -> None:
    scheme = scheme_of([*EBGAN, f"discriminator.batch_norm={batch_norm}"])
    autoencoder = scheme.modules["discriminator"].autoencoder
    assert isinstance(autoencoder, Autoencoder) and autoencoder.batch_coupled == batch_norm
    assert isinstance(autoencoder.encoder, DCGANDiscriminator) and isinstance(autoencoder.decoder, DCGANGenerator)
    assert isinstance(autoencoder.encoder.body[0], PopConv2d)
    x = scheme.parts.real_batch().x
    reconstruction, code = autoencoder(x)
    assert reconstruction.shape == x.shape and code.shape == (SEEDS, BATCH, 8)
    energy = scheme.modules["discriminator"](x)
    torch.testing.assert_close(energy, (reconstruction - x).flatten(2).norm(dim=2))
