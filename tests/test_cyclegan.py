"""CycleGAN: the history pool's rule, the cycle and identity losses on tiny tensors, the
networks' shapes, seed independence, bit-exact resume with the pools, the two domains'
config errors, the schedule's constant phase, and `ganscope translate` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ganscope
from ganscope.cli import main
from ganscope.config import piece_params
from ganscope.errors import ConfigError, DataError
from ganscope.schemes import SCHEMES, Parts
from ganscope.schemes.cyclegan import HistoryPool, l1
from ganscope.seeding import PopulationRandom
from ganscope.train.run import schedule_factor

#: Two domains of 8x8 digits (the same data on both sides: the mechanics, not the result).
TINY = [
    "data.name=domains", "data.a={name: digits}", "data.b={name: digits}", "scheme.name=cyclegan",
    "generator.name=resnet", "generator.width=4", "generator.blocks=1", "discriminator.name=patchgan",
    "discriminator.width=4", "discriminator.layers=1", "objective.name=least-squares", "train.batch_size=4",
    "scheme.pool_size=3", "train.lr_schedule=constant", "train.eval_samples=200", "train.eval_every=10",
    "train.checkpoint_every=10", "train.log_every=5", "train.report=false",
]


def scheme_of(overrides: list[str]):
    cfg = ganscope.load_config(overrides=[*TINY, *overrides])
    return SCHEMES.get(cfg.scheme.name)(Parts.from_config(cfg), piece_params(cfg, "scheme"))


def test_history_pool_fills_then_swaps_half_the_time() -> None:
    pool = HistoryPool(n_seeds=1, size=2, sample_shape=(1,))
    rng = PopulationRandom([7], "pool")
    replay = PopulationRandom([7], "pool").generators[0]
    stored: list[float] = []
    for call in range(6):
        fakes = torch.tensor([[[10.0 * call], [10.0 * call + 1]]])
        shown = pool.query(fakes, rng)
        coins, slots = torch.rand(2, generator=replay), torch.randint(2, (2,), generator=replay)
        expected = []
        for i, value in enumerate(fakes[0, :, 0].tolist()):
            if len(stored) < 2:
                stored.append(value)
                expected.append(value)
            elif coins[i] > 0.5:
                expected.append(stored[int(slots[i])])
                stored[int(slots[i])] = value
            else:
                expected.append(value)
        assert shown[0, :, 0].tolist() == expected, call
        assert pool.images[0, :, 0].tolist() == stored and int(pool.count[0]) == 2
    assert HistoryPool(1, 0, (1,)).query(fakes, rng) is fakes, "a pool of size 0 passes the fakes through"


def test_translator_loss_is_adversarial_plus_weighted_cycle_and_identity() -> None:
    scheme = scheme_of(["train.seeds=2", "scheme.cycle_weight=3", "scheme.identity_weight=0.5"])
    a, b = scheme.domain_batches()
    g, f = scheme.translators["ab"], scheme.translators["ba"]
    d_b, d_a = scheme.discriminators["b"], scheme.discriminators["a"]
    loss, out, (fake_b, fake_a) = scheme.translator_loss(a, b)
    lsgan = lambda logits: 0.5 * (logits - 1).square().flatten(1).mean(dim=1)  # noqa: E731  Mao et al.: (D - 1)^2 / 2
    adversarial = lsgan(d_b(g(a))) + lsgan(d_a(f(b)))
    cycle = (f(g(a)) - a).abs().flatten(1).mean(1) + (g(f(b)) - b).abs().flatten(1).mean(1)
    identity = (g(b) - b).abs().flatten(1).mean(1) + (f(a) - a).abs().flatten(1).mean(1)
    torch.testing.assert_close(out["g_loss"], adversarial.detach())
    torch.testing.assert_close(loss, adversarial + 3 * cycle + 3 * 0.5 * identity)
    torch.testing.assert_close(out["cycle_a"] + out["cycle_b"], cycle.detach())
    torch.testing.assert_close(l1(a, a), torch.zeros(2))
    assert d_b(fake_b).shape == (2, 4, 4), "a 4x4 map of patch logits per 8x8 image"


def test_a_seed_in_a_population_equals_it_alone() -> None:
    # 16x16 images and the paper's learning rate: at 8x8 the innermost maps are 2x2, and
    # instance norm over 4 pixels amplifies float rounding chaotically within a few steps.
    extra = ["data.a={name: digits, size: 16}", "data.b={name: digits, size: 16}", "optimizer.generator.lr=2e-4",
             "optimizer.discriminator.lr=2e-4"]
    both, alone = scheme_of(["train.seeds=[1,3]", *extra]), scheme_of(["train.seeds=[3]", *extra])
    for _ in range(8):  # the pools fill (3 images) and then swap
        out_both, out_alone = both.train_step(), alone.train_step()
        for key in out_alone:
            torch.testing.assert_close(out_both[key][1:], out_alone[key], rtol=0, atol=1e-5, msg=key)
    torch.testing.assert_close(both.pools["b"].images[1:], alone.pools["b"].images, rtol=0, atol=1e-4)


def test_resume_is_bit_exact_with_the_pools(tmp_path: Path) -> None:
    straight = ganscope.Run.create(ganscope.load_config(overrides=[*TINY, "train.steps=20"]), tmp_path / "a")
    straight.fit(progress=False)
    first = ganscope.Run.create(ganscope.load_config(overrides=[*TINY, "train.steps=10"]), tmp_path / "b")
    first.fit(progress=False)
    resumed = ganscope.Run.open(tmp_path / "b", overrides=["train.steps=20", "train.report=true"])
    summary = resumed.fit(progress=False)
    for name, module in straight.scheme.modules.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, resumed.scheme.modules[name].state_dict()[key]), (name, key)
    assert int(resumed.scheme.pools["a"].count[0]) == 3
    for key in ("cycle_a", "cycle_b", "preserved_ab", "preserved_ba", "untranslated_ab", "untranslated_ba"):
        assert len(summary[key]) == 1, key
    assert "label preservation A->B" in summary["verdict"] and "(untranslated " in summary["verdict"]
    assert summary["untranslated_ab"][0] >= 0.9, "the same digits on both sides: untranslated, B's oracle reads A's"
    translations = np.load(tmp_path / "b" / "translations.npy")
    assert translations.shape == (1, 3, 8, 1, 8, 8)
    assert "Translations" in (tmp_path / "b" / "report.html").read_text()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["scheme.name=cyclegan", "data.name=digits", "generator.name=resnet", "discriminator.name=patchgan"],
         "give data.name=domains"),
        ([*TINY, "generator={name: dcgan}"], "needs a translator"),
        ([*TINY, "data.a={name: nope}"], "data.a.name: unknown dataset 'nope'"),
        ([*TINY, "data.b={name: digits, size: 9}"], "data.b.size"),
        ([*TINY, "conditioning.name=cgan"], "scheme cyclegan does not pass labels"),
    ],
)
def test_bad_two_domain_configs_say_why(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ganscope.load_config(overrides=overrides)


def test_domains_of_different_shapes_are_refused() -> None:
    cfg = ganscope.load_config(overrides=[*TINY, "data.b={name: digits, size: 16}"])
    with pytest.raises(DataError, match="give both the same channels and side"):
        Parts.from_config(cfg)


def test_resnet_is_refused_outside_cyclegan() -> None:
    with pytest.raises(ConfigError, match="use it with scheme.name=cyclegan"):
        ganscope.load_config(overrides=["data.name=digits", "generator.name=resnet", "discriminator.name=dcgan"])


def test_learning_rate_is_constant_until_the_decay_starts() -> None:
    tcfg = ganscope.load_config(overrides=["train.steps=100", "train.lr_schedule=linear",
                                           "train.lr_decay_start=0.5"]).train
    assert [schedule_factor(s, tcfg) for s in (0, 25, 50)] == [1.0, 1.0, 1.0]
    assert schedule_factor(75, tcfg) == pytest.approx(0.5) and schedule_factor(100, tcfg) == pytest.approx(0.0)


def test_translate_cli_on_a_folder_and_an_array(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    run_dir = tmp_path / "run"
    ganscope.Run.create(ganscope.load_config(overrides=[*TINY, "train.steps=10", "train.seeds=2"]), run_dir).fit(
        progress=False)
    folder = tmp_path / "inputs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((12, 12), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    assert main(["translate", str(run_dir), str(folder), "-o", str(tmp_path / "t.png")]) == 0
    grid = np.asarray(Image.open(tmp_path / "t.png"))
    assert grid.shape == (1 + 9, 1 + 6 * 9), "one row of 3 input | translation pairs of 8x8 images"
    array = tmp_path / "in.npy"
    np.save(array, np.random.default_rng(0).uniform(0, 255, (4, 8, 8)).astype(np.uint8))
    out = tmp_path / "t.npy"
    assert main(["translate", str(run_dir), str(array), "-o", str(out), "--direction", "ba", "--seed", "1"]) == 0
    translated = np.load(out)
    assert translated.shape == (4, 1, 8, 8) and np.abs(translated).max() <= 1
    run = ganscope.Run.open(run_dir)
    inputs = torch.from_numpy(np.load(array)).float().div(255).mul(2).sub(1).unsqueeze(1)
    run.scheme.train(False)
    expected = run.scheme.translate(inputs.expand(2, *inputs.shape), "ba")[1]
    np.testing.assert_allclose(translated, expected.numpy(), atol=1e-5)
    for argv, message in (
        ([str(run_dir), str(folder), "-o", str(tmp_path / "t.txt")], "write the translations as a PNG grid"),
        ([str(run_dir), str(folder), "-o", str(tmp_path / "u.png"), "--seed", "9"], "seed 9 is not in"),
        ([str(run_dir), str(tmp_path / "none.txt"), "-o", str(tmp_path / "u.png")], "neither a folder"),
    ):
        capsys.readouterr()
        assert main(["translate", *argv]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "u.png").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["preserved_ab"]) == 2
    capsys.readouterr()
    assert main(["eval", str(run_dir), "-n", "100", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert len(evaluated["preserved_ba"]) == 2 and "label preservation A->B" in evaluated["verdict"]
