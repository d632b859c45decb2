"""Discriminator modifiers: packing (PacGAN) and minibatch discrimination, alone and together."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from ganscope.cli import main
from ganscope.config import load_config, piece_params
from ganscope.errors import ConfigError
from ganscope.nets import init_population
from ganscope.nets.modifiers import MinibatchFeatures, Packed, pack
from ganscope.schemes import SCHEMES, Parts
from ganscope.batch import Batch
from ganscope.schemes.base import real_and_fake_logits
from ganscope.seeding import PopulationRandom
from ganscope.train.run import Run

SMALL_D = ["discriminator.hidden=16", "discriminator.depth=2"]
PACK3 = "d_modifiers=[{name: pack, m: 3}]"
MINIBATCH = "d_modifiers=[{name: minibatch, kernels: 6, kernel_dim: 3}]"
BOTH = "d_modifiers=[{name: pack, m: 2}, {name: minibatch, kernels: 6, kernel_dim: 3}]"


def discriminator(overrides: list[str], n_outputs: int = 1) -> nn.Module:
    return Parts.from_config(load_config(overrides=SMALL_D + overrides)).new_discriminator(n_outputs)


# ---- packing ----------------------------------------------------------------------------


def test_packed_discriminator_gives_one_logit_per_pack() -> None:
    net = discriminator(["train.seeds=2", "train.batch_size=6", PACK3], n_outputs=4)
    assert isinstance(net, Packed)
    assert net.inner.body[0].weight.shape == (2, 3 * 2, 16)  # built for packs of three 2-D samples
    assert net(torch.randn(2, 6, 2)).shape == (2, 2, 4)


def test_packs_concatenate_consecutive_samples() -> None:
    x = torch.randn(2, 6, 2)
    packs = pack(x, 3)
    for j in range(2):
        assert torch.equal(packs[:, j], torch.cat([x[:, 3 * j], x[:, 3 * j + 1], x[:, 3 * j + 2]], dim=-1))
    images = torch.randn(2, 4, 3, 5, 5)  # (S, B, C, H, W): packs concatenate along channels
    assert torch.equal(pack(images, 2)[:, 1], torch.cat([images[:, 2], images[:, 3]], dim=1))

    net = discriminator(["train.batch_size=6", PACK3])
    seen: list[torch.Tensor] = []
    net.inner.register_forward_pre_hook(lambda _module, args: seen.append(args[0]))
    net(x[:1])
    assert torch.equal(seen[0], packs[:1])


def test_packed_real_and_fake_pass_matches_separate_passes() -> None:
    net = discriminator(["train.batch_size=6", PACK3])
    assert not net.batch_coupled
    real, fake = torch.randn(1, 6, 2), torch.randn(1, 6, 2)
    real_logits, fake_logits = real_and_fake_logits(net, Batch(real), Batch(fake))
    assert torch.allclose(real_logits, net(real)) and torch.allclose(fake_logits, net(fake))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["train.batch_size=10", PACK3],
            "d_modifiers.0: packing m=3 samples needs train.batch_size divisible by 3 (got 10)",
        ),
        (["d_modifiers=[{name: pack, m: 5}]"], "d_modifiers.0.m: Input should be 2, 3 or 4"),
        (["d_modifiers=[{name: pack}, {name: pack, m: 4}]"], "d_modifiers: 'pack' is given twice"),
        (
            ["d_modifiers=[{name: packing}]"],
            "d_modifiers.0.name: unknown discriminator modifier 'packing'; valid: minibatch, minibatch-stddev, pack",
        ),
        (["d_modifiers=[{name: minibatch, kernel: 3}]"], "d_modifiers.0.kernel: unknown key"),
        (
            [MINIBATCH, "regularizers=[{name: gradient-penalty}]"],
            "regularizers.0: a gradient penalty needs each output of D to depend on one input alone, and "
            "d_modifier 'minibatch' couples the samples of a batch",
        ),
        (
            [BOTH, "regularizers=[{name: dragan}]"],
            "regularizers.0: a gradient penalty needs each output of D to depend on one input alone",
        ),
        (
            ["discriminator.batch_norm=true", "objective.name=wgan-gp", "regularizers=[{name: gradient-penalty}]"],
            "regularizers.0: a gradient penalty needs a discriminator without batch norm",
        ),
    ],
)
def test_bad_modifiers_are_rejected_at_config_time_in_one_line(overrides, message) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    assert "\n" not in str(info.value)
    assert message in str(info.value)


# ---- minibatch discrimination -----------------------------------------------------------


def minibatch_features(
    n_seeds: int = 2, in_features: int = 4, kernels: int = 3, kernel_dim: int = 2
) -> MinibatchFeatures:
    layer = MinibatchFeatures(n_seeds, in_features, kernels, kernel_dim)
    init_population(layer, PopulationRandom(list(range(n_seeds)), "init").generators)
    return layer


def test_identical_samples_are_close_to_all_others() -> None:
    layer = minibatch_features()
    f = torch.randn(2, 1, 4).expand(2, 5, 4).clone().requires_grad_(True)
    out = layer(f)
    assert out.shape == (2, 5, 4 + 3)
    assert torch.equal(out[..., :4], f)
    assert torch.allclose(out[..., 4:], torch.full((2, 5, 3), 4.0))  # exp(0) for each of the 4 others
    out.sum().backward()
    assert torch.isfinite(f.grad).all() and torch.isfinite(layer.weight.grad).all()


def test_far_apart_samples_are_close_to_none() -> None:
    layer = minibatch_features()
    out = layer(1e3 * torch.eye(4).expand(2, 4, 4))
    assert out[..., 4:].abs().max() < 1e-6


def test_closeness_matches_a_direct_loop() -> None:
    n_seeds, n, a, kernels, dim = 2, 4, 3, 2, 2
    layer = MinibatchFeatures(n_seeds, a, kernels, dim)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(n_seeds * a * kernels * dim).view(n_seeds, a, kernels * dim) % 5 / 4 - 0.5)
    f = torch.randn(n_seeds, n, a, generator=torch.Generator().manual_seed(0))
    expected = torch.zeros(n_seeds, n, kernels)
    for s in range(n_seeds):
        m = (f[s] @ layer.weight[s]).view(n, kernels, dim)  # M_i in R^{B x C}
        for i in range(n):
            for b in range(kernels):
                for j in range(n):
                    if j != i:
                        expected[s, i, b] += math.exp(-(m[i, b] - m[j, b]).abs().sum().item())
    assert torch.allclose(layer(f)[..., a:], expected, atol=1e-6)


def test_minibatch_discriminator_sees_the_rest_of_the_batch() -> None:
    same = torch.randn(1, 1, 2).expand(1, 8, 2)
    distinct = torch.cat([same[:, :1], torch.randn(1, 7, 2)], dim=1)
    plain, with_features = discriminator([]), discriminator([MINIBATCH])
    assert torch.allclose(plain(same)[:, 0], plain(distinct)[:, 0])
    assert not torch.allclose(with_features(same)[:, 0], with_features(distinct)[:, 0])
    assert with_features.extensions[0].weight.shape == (1, 16, 6 * 3)
    assert with_features.head.weight.shape == (1, 16 + 6, 1)


def test_batch_coupling_follows_the_modifiers() -> None:
    assert not discriminator([]).batch_coupled
    assert discriminator([MINIBATCH]).batch_coupled
    assert discriminator([BOTH]).batch_coupled


# ---- composition ------------------------------------------------------------------------


def test_both_modifiers_compose_in_either_order() -> None:
    first = discriminator([BOTH])
    swapped = discriminator(["d_modifiers=[{name: minibatch, kernels: 6, kernel_dim: 3}, {name: pack, m: 2}]"])
    x = torch.randn(1, 8, 2)
    assert isinstance(first, Packed) and first.inner.extensions[0].weight.shape == (1, 16, 18)
    assert first(x).shape == (1, 4, 1)
    assert torch.equal(first(x), swapped(x))


def first_steps(
    overrides: list[str], steps: int = 3
) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    """D's initial state and the per-seed outputs of the first `steps` training steps."""
    cfg = load_config(overrides=SMALL_D + overrides)
    scheme = SCHEMES.get(cfg.scheme.name)(Parts.from_config(cfg), piece_params(cfg, "scheme"))
    initial = {k: v.clone() for k, v in scheme.modules["discriminator"].state_dict().items()}
    return initial, [scheme.train_step() for _ in range(steps)]


def test_seed_in_population_matches_seed_alone_with_both_modifiers(tiny_overrides) -> None:
    together_init, together = first_steps(tiny_overrides + [BOTH, "train.seeds=[0,1]"])
    alone_init, alone = first_steps(tiny_overrides + [BOTH, "train.seeds=[1]"])
    assert "inner.extensions.0.weight" in together_init
    for key, value in together_init.items():
        assert torch.equal(value[1], alone_init[key][0]), key
    for step_together, step_alone in zip(together, alone, strict=True):
        for key in ("d_loss", "g_loss"):
            assert step_together[key][1].item() == pytest.approx(step_alone[key][0].item(), abs=1e-5)


@pytest.mark.parametrize("modifiers", ["[{name: pack, m: 2}]", "[{name: minibatch, kernels: 10}]"])
def test_training_with_a_modifier_runs_end_to_end(tmp_path, capsys, tiny_overrides, modifiers) -> None:
    args = ["train", "-q", "-o", str(tmp_path / "run"), "-s", "train.steps=150", "-s", f"d_modifiers={modifiers}"]
    assert main(args + [a for o in tiny_overrides for a in ("-s", o)]) == 0
    assert capsys.readouterr().out.startswith("ring: ")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert math.isfinite(summary["hq_fraction_mean"])
    assert all(math.isfinite(score["reverse_kl"]) for score in summary["scores"] if score["reverse_kl"] is not None)


@pytest.mark.parametrize("scheme", ["alternating", "unrolled", "madgan", "mrgan"])
def test_packing_and_a_penalty_compose_with_every_scheme_that_takes_a_discriminator(
    tmp_path, tiny_overrides, scheme
) -> None:
    overrides = [*tiny_overrides, f"scheme.name={scheme}", "d_modifiers=[{name: pack, m: 2}]",
                 "regularizers=[{name: dragan}]", "train.steps=6", "train.eval_every=6", "train.log_every=3"]
    run = Run.create(load_config(overrides=overrides), tmp_path / scheme)
    run.fit(progress=False)
    trained = [json.loads(line) for line in (tmp_path / scheme / "metrics.jsonl").read_text().splitlines()]
    losses = [r["d_loss"] for r in trained if r["kind"] == "train"]
    assert run.step == 6 and losses and all(math.isfinite(v) for v in losses)


def test_list_shows_the_modifiers(capsys) -> None:
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {e["name"]: e["params"] for e in listing["d_modifiers"]} == {
        "minibatch": ["kernels", "kernel_dim"],
        "minibatch-stddev": ["group_size"],
        "pack": ["m"],
    }
