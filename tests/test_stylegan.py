"""StyleGAN-lite: its layers against their definitions, its regularisers against autograd,
the moving average, lazy regularisation, per-seed streams and bit-exact resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import ganscope
from ganscope.batch import Batch
from ganscope.cli import main
from ganscope.config import load_config, piece_params
from ganscope.errors import ConfigError
from ganscope.nets.layers import attach_stream, init_population
from ganscope.nets.stylegan import (
    EqualLinear,
    ModulatedConv2d,
    StyleGANGenerator,
    StyleGANParams,
    StyleDiscriminator,
    StyleDiscriminatorParams,
    truncated,
)
from ganscope.regularizers import REGULARIZERS
from ganscope.schemes import SCHEMES, Parts
from ganscope.schemes.base import AVERAGE, add_penalties
from ganscope.seeding import PopulationRandom

SHAPE = (1, 8, 8)
TINY = [
    "data.name=digits", "generator.name=stylegan", "discriminator.name=stylegan", "generator.width=8",
    "discriminator.width=8", "generator.w_dim=16", "generator.mapping_depth=2", "noise.z_dim=8",
    "noise.dist=gaussian", "train.batch_size=8", "train.lr_schedule=constant", "train.eval_samples=200",
    "train.log_every=2", "train.eval_every=4", "train.checkpoint_every=4", "train.report=false",
]
REGULARISED = [*TINY, "regularizers=[{name: r1, every: 2}, {name: path-length, every: 3}]", "train.ema_kimg=0.1"]


@pytest.fixture(scope="module", autouse=True)
def oracle_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANSCOPE_CACHE", str(tmp_path_factory.mktemp("oracle-cache")))
        yield


def generator(seeds: list[int], **params: object) -> StyleGANGenerator:
    g = StyleGANGenerator(StyleGANParams(width=8, w_dim=16, mapping_depth=2, **params), len(seeds), 8, SHAPE)
    init_population(g, PopulationRandom(seeds, "init").generators)
    attach_stream(g, PopulationRandom(seeds, "network"))
    return g


# ---- layers ------------------------------------------------------------------------------


def test_demodulation_gives_unit_variance_for_unit_variance_input() -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(2, 16, 64, 32, 3)
    init_population(conv, PopulationRandom([0, 1], "init").generators)
    x = torch.randn(2, 64, 64, 16, 16)
    w = torch.randn(2, 64, 16) * 3  # styles far from 1: demodulation must undo their scale
    y = conv(x, w)[..., 1:-1, 1:-1]  # zero padding lowers the variance at the border
    assert abs(y.var().item() - 1.0) < 0.05
    # by hand for one sample: the modulated weight divided by its per-output-channel norm
    styles = conv.affine(w)[0, 5]
    weight = conv.conv.weight[0] * conv.conv.gain * styles.view(1, -1, 1, 1)
    weight = weight / weight.square().sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
    by_hand = torch.nn.functional.conv2d(x[0, 5:6], weight, padding=1)[0]
    assert torch.allclose(conv(x, w)[0, 5], by_hand, atol=1e-4)


def test_equalised_linear_scales_at_run_time() -> None:
    layer = EqualLinear(2, 50, 7, lr_mult=0.01, bias_init=1.0)
    init_population(layer, PopulationRandom([0, 1], "init").generators)
    assert abs(layer.weight.std().item() - 100.0) < 10.0  # N(0, 1/lr_mult^2) storage
    x = torch.randn(2, 4, 50)
    expected = x @ (layer.weight * 0.01 / math.sqrt(50)) + layer.bias * 0.01
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert torch.allclose(layer.bias * 0.01, torch.ones(2, 1, 7))  # the affine maps' bias starts at 1


def test_noise_inputs_are_reproducible_and_per_seed() -> None:
    z = torch.randn(1, 6, 8)
    pair, alone = generator([4, 9]), generator([9])
    for g in (pair, alone):
        for module in g.modules():
            if hasattr(module, "strength"):
                module.strength.data.fill_(1.0)
        g.train(False)
    attach_stream(pair, PopulationRandom([4, 9], "network"))
    attach_stream(alone, PopulationRandom([9], "network"))
    together = pair(z.expand(2, -1, -1))[1]
    assert torch.allclose(together, alone(z)[0], atol=1e-5)
    attach_stream(alone, PopulationRandom([9], "network"))
    again = alone(z)[0]
    assert torch.allclose(again, together, atol=1e-5)
    assert not torch.allclose(alone(z)[0], again), "the stream moved on: fresh noise"


def test_style_mixing_switches_at_one_crossover_per_seed() -> None:
    g = generator([0, 1, 2, 3], mixing_prob=1.0)
    z = torch.randn(4, 5, 8)
    w = g.mapping(z, track=False)
    mixed = g.styles(z)
    for s in range(4):
        first = (mixed[s] - w[s].unsqueeze(1)).abs().amax(dim=(0, 2)) < 1e-6  # per layer: still z's style
        crossover = int(first.sum())
        assert 1 <= crossover < g.n_styles and first[:crossover].all() and not first[crossover:].any()
    assert torch.equal(generator([0], mixing_prob=0.0).styles(z[:1]), generator([0], mixing_prob=0.0).mapping(
        z[:1], track=False).unsqueeze(2).expand(-1, -1, g.n_styles, -1))


def test_truncation_pulls_styles_to_their_average() -> None:
    g = generator([0, 1])
    g.train(True)
    g.mapping(torch.randn(2, 64, 8))  # moves w_avg away from zero
    g.train(False)
    z = torch.randn(2, 6, 8)
    with truncated(g, 0.0):
        images = g(z)
        assert torch.allclose(images, images[:, :1].expand_as(images), atol=1e-5)
    with truncated(g, 0.5):
        half = g.styles(z)
    avg = g.mapping.w_avg[:, None, None]
    assert torch.allclose(half, avg + 0.5 * (g.styles(z) - avg), atol=1e-6)
    assert g.truncation_psi == 1.0


# ---- regularisers ------------------------------------------------------------------------


def test_r1_matches_autograd_and_lazy_scaling(tmp_path: Path) -> None:
    cfg = load_config(overrides=[*TINY, "regularizers=[{name: r1, weight: 3.0, every: 4}]", "train.seeds=2"])
    parts = Parts.from_config(cfg)
    d = StyleDiscriminator(StyleDiscriminatorParams(width=8), 2, SHAPE, 1)
    init_population(d, PopulationRandom([0, 1], "init").generators)
    real = Batch(torch.randn(2, 8, *SHAPE))
    r1 = parts.regularizers["r1"]
    penalty = r1.penalty(d, real, real, parts.streams["penalty"])
    x = real.x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x).sum(), x)
    assert torch.allclose(penalty, 0.5 * grad.flatten(2).square().sum(2).mean(1), rtol=1e-5)
    zero = torch.zeros(2)
    for step, expected in ((0, 3.0 * 4 * penalty), (1, zero), (3, zero), (4, 3.0 * 4 * penalty)):
        parts.step = step
        out: dict[str, torch.Tensor] = {}
        loss = add_penalties(parts, d, real, real, zero, out)
        assert torch.allclose(loss, expected, rtol=1e-5), step
        assert ("penalty_r1" in out) == (step % 4 == 0)


def test_path_length_matches_its_definition() -> None:
    cfg = load_config(overrides=[*TINY, "generator.mixing_prob=0", "generator.noise=false",
                                 "regularizers=[{name: path-length, batch_shrink: 1}]", "train.seeds=1"])
    parts = Parts.from_config(cfg)
    scheme = SCHEMES.get("alternating")(parts, piece_params(cfg, "scheme"))
    g, reg = scheme.generator, parts.regularizers["path-length"]
    rng_state = parts.streams["penalty"].get_state()
    fake = Batch(torch.zeros(1, 3, *SHAPE))
    penalty = reg.generator_penalty(scheme.discriminator, fake, parts.streams["penalty"], g)
    # the same draws, by the definition: J_w^T y per sample from the full Jacobian
    rng = PopulationRandom([0], "penalty")
    rng.set_state(rng_state)
    z = rng.randn(3, 8)
    y = rng.randn(3, *SHAPE) / math.sqrt(64)
    ws = g.styles(z).detach()
    lengths = []
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda w: g.synthesis(w)[0, 0], ws[:, i:i + 1])  # (C,H,W, 1,1,L,D)
        jty = torch.einsum("chw,chwld->ld", y[0, i], jac[:, :, :, 0, 0])
        lengths.append(jty.square().sum(-1).mean().sqrt())
    lengths = torch.stack(lengths)
    a = 0.01 * lengths.mean()  # pl_mean starts at 0 and moves by decay 0.01
    assert torch.allclose(g.pl_mean, a.view(1), rtol=1e-4)
    assert torch.allclose(penalty, (lengths - a).square().mean().view(1), rtol=1e-4)


def test_path_length_needs_an_unconditional_stylegan() -> None:
    with pytest.raises(ConfigError, match="generator.name=stylegan"):
        load_config(overrides=["data.name=digits", "generator.name=dcgan", "discriminator.name=dcgan",
                               "regularizers=[{name: path-length}]"])
    with pytest.raises(ConfigError, match="drop path-length"):
        load_config(overrides=[*TINY, "conditioning.name=cgan", "regularizers=[{name: path-length}]"])


def test_moving_average_follows_the_half_life() -> None:
    cfg = load_config(overrides=[*TINY, "train.ema_kimg=0.04", "train.ema_rampup=null", "train.seeds=1"])
    parts = Parts.from_config(cfg)
    scheme = SCHEMES.get("alternating")(parts, piece_params(cfg, "scheme"))
    scheme.keep_average()
    before = {k: v.clone() for k, v in scheme.modules[AVERAGE].state_dict().items()}
    scheme.train_step()
    scheme.update_average(1)
    beta = 0.5 ** (8 / 40)  # batch 8, half-life 40 images
    g = scheme.generator.state_dict()
    for key, value in scheme.modules[AVERAGE].state_dict().items():
        if key.endswith(("w_avg", "pl_mean")):
            assert torch.equal(value, g[key])  # buffers are copied
        else:
            assert torch.allclose(value, beta * before[key] + (1 - beta) * g[key], atol=1e-6), key
    assert scheme.sampling_generator() is scheme.modules[AVERAGE]


def test_moving_average_of_a_translator_is_refused() -> None:
    cfg = load_config(overrides=["data.name=domains", "data.a={name: digits}", "data.b={name: digits}",
                                 "scheme.name=cyclegan", "generator.name=resnet", "discriminator.name=patchgan", "discriminator.layers=1",
                                 "objective.name=least-squares", "train.ema_kimg=1"])
    with pytest.raises(ConfigError, match="set train.ema_kimg=0"):
        ganscope.Run(cfg, Path("unused"))


# ---- training ----------------------------------------------------------------------------


def test_seed_is_the_same_inside_a_population() -> None:
    def losses(seeds: str) -> list[torch.Tensor]:
        cfg = load_config(overrides=[*REGULARISED, "d_modifiers=[{name: minibatch-stddev, group_size: 2}]",
                                     f"train.seeds={seeds}"])
        scheme = SCHEMES.get("alternating")(Parts.from_config(cfg), piece_params(cfg, "scheme"))
        out = []
        for step in range(4):
            scheme.parts.step = step
            log = scheme.train_step()
            out.append(torch.stack([log["d_loss"][-1], log["g_loss"][-1]]))
        return out

    for a, b in zip(losses("[2, 7]"), losses("[7]"), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_resume_is_bit_exact_and_evaluation_does_not_change_training(tmp_path: Path) -> None:
    straight = ganscope.Run.create(load_config(overrides=[*REGULARISED, "train.steps=8", "train.eval_every=8",
                                                          "train.report=true"]), tmp_path / "a")
    straight.fit(progress=False)
    first = ganscope.Run.create(load_config(overrides=[*REGULARISED, "train.steps=4"]), tmp_path / "b")
    first.fit(progress=False)  # evaluates at step 4 (eval_every 4), which `straight` did not
    resumed = ganscope.Run.open(tmp_path / "b", overrides=["train.steps=8"])
    resumed.fit(progress=False)
    assert set(straight.scheme.modules) == {"generator", "discriminator", AVERAGE}
    for name, module in straight.scheme.modules.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, resumed.scheme.modules[name].state_dict()[key]), (name, key)
    for name in ("mixing.png", "truncation.png", "generator_ema.safetensors"):
        assert (tmp_path / "a" / name).exists(), name
    assert "Style mixing" in (tmp_path / "a" / "report.html").read_text()


def test_sample_truncation_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    run_dir = tmp_path / "style"
    assert main(["train", "-q", "-o", str(run_dir), "-s", *TINY, "train.steps=2"]) == 0
    out = tmp_path / "t.npy"
    assert main(["sample", str(run_dir), "-n", "5", "--truncation", "0", "-o", str(out)]) == 0
    truncated_spread = np.load(out).std(axis=0).mean()
    assert main(["sample", str(run_dir), "-n", "5", "-o", str(out)]) == 0
    # psi 0: every latent gets the average style; only the (barely trained) noise inputs vary
    assert truncated_spread < 0.05 * np.load(out).std(axis=0).mean()
    ganscope.Run.create(load_config(overrides=["train.steps=2"]), tmp_path / "mlp").fit(progress=False)
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "mlp"), "--truncation", "0.7", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs a style-based generator" in err and err.count("\n") == 1
