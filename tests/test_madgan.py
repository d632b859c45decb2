"""MAD-GAN: the (k + 1)-way game, the mixture sampler, the diversity penalty, training."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

import ganscope
from ganscope.batch import Batch
from ganscope.cli import main
from ganscope.errors import ConfigError
from ganscope.objectives.gan import NonSaturating
from ganscope.schemes.madgan import MadGAN, discriminator_loss, generator_losses, pairwise_cosine_similarity
from ganscope.train.run import METRICS, SUMMARY
from tests.test_train import _weights

MADGAN = ["scheme.name=madgan"]


def scheme_of(overrides: list[str]) -> MadGAN:
    scheme = ganscope.Run(ganscope.load_config(overrides=overrides), Path("unused")).scheme
    assert isinstance(scheme, MadGAN)
    return scheme


def test_discriminator_has_one_output_per_generator_plus_real(tiny_overrides) -> None:
    scheme = scheme_of(tiny_overrides + MADGAN + ["scheme.generators=4", "train.seeds=2"])
    assert scheme.discriminator(torch.zeros(2, 5, 2)).shape == (2, 5, 5)
    assert sorted(scheme.modules) == ["discriminator", *[f"generator_{i}" for i in range(4)]]


def test_nonsaturating_d_loss_is_the_papers_k_plus_one_cross_entropy() -> None:
    torch.manual_seed(0)
    n_seeds, k, n_real, m = 2, 3, 5, 4
    real_logits, fake_logits = torch.randn(n_seeds, n_real, k + 1), torch.randn(n_seeds, k, m, k + 1)
    loss, identify = discriminator_loss(NonSaturating(), real_logits, fake_logits)
    # Class k is "real", class i is "made by G_i"; the mean over real and over fake rows.
    made_by = torch.arange(k).repeat_interleave(m)
    for s in range(n_seeds):
        expected = F.cross_entropy(real_logits[s], torch.full((n_real,), k)) + F.cross_entropy(
            fake_logits[s].flatten(0, 1), made_by
        )
        assert loss[s].item() == pytest.approx(expected.item(), abs=1e-6)
        among_fakes = F.cross_entropy(fake_logits[s, ..., :k].flatten(0, 1), made_by)
        assert identify[s].item() == pytest.approx(among_fakes.item(), abs=1e-6)
    # Generators: -log D_{k+1}(G_i(z)), the paper's non-saturating generator loss.
    expected_g = -fake_logits.log_softmax(dim=-1)[..., k].mean(dim=2)
    torch.testing.assert_close(generator_losses(NonSaturating(), fake_logits), expected_g)


def test_one_generator_is_the_ordinary_gan_on_a_two_logit_d() -> None:
    torch.manual_seed(1)
    real_logits, fake_logits = torch.randn(2, 6, 2), torch.randn(2, 1, 6, 2)
    loss, identify = discriminator_loss(NonSaturating(), real_logits, fake_logits)
    odds = lambda logits: logits[..., 1] - logits[..., 0]  # noqa: E731
    torch.testing.assert_close(loss, NonSaturating().d_loss(odds(real_logits), odds(fake_logits[:, 0])))
    assert torch.equal(identify, torch.zeros(2))


def test_d_step_reports_that_cross_entropy_on_its_own_batches(tiny_overrides) -> None:
    scheme = scheme_of(tiny_overrides + MADGAN + ["scheme.generators=4", "train.seeds=2"])
    parts = scheme.parts
    states = {name: rng.get_state() for name, rng in parts.streams.items()}
    with torch.no_grad():
        real, fake = parts.real_batch().x, scheme.fakes().x
        real_logits, fake_logits = scheme.discriminator(real), scheme.discriminator(fake.flatten(1, 2))
    for name, rng in parts.streams.items():
        rng.set_state(states[name])
    reported = scheme.d_step(diagnostics=False)["d_loss"]
    made_by = torch.arange(4).repeat_interleave(16)
    for s in range(2):
        expected = F.cross_entropy(real_logits[s], torch.full((64,), 4)) + F.cross_entropy(fake_logits[s], made_by)
        assert reported[s].item() == pytest.approx(expected.item(), abs=1e-5)


@pytest.mark.parametrize("share_layers", [False, True])
def test_samples_come_from_every_generator_in_contiguous_chunks(tiny_overrides, share_layers) -> None:
    scheme = scheme_of(tiny_overrides + MADGAN + ["scheme.generators=4", f"scheme.share_layers={share_layers}"])
    scheme.train(False)
    z = torch.randn(1, 10, 8)
    samples = scheme.generate(Batch(z))
    assert samples.shape == (1, 10, 2)
    with torch.no_grad():
        own = [g(scheme.body(z)) for g in scheme.generators]  # every generator on every z
    start = 0
    for i, size in enumerate((3, 3, 2, 2)):  # torch.tensor_split: the first 10 mod 4 chunks are longer
        chunk = slice(start, start + size)
        torch.testing.assert_close(samples[:, chunk], own[i][:, chunk])  # batch size may change rounding
        for j in set(range(4)) - {i}:
            assert not torch.allclose(samples[:, chunk], own[j][:, chunk])
        start += size


def test_shared_layers_are_one_body_with_a_head_per_generator(tiny_overrides) -> None:
    scheme = scheme_of(tiny_overrides + MADGAN + ["scheme.generators=3", "scheme.share_layers=true", "train.batch_size=63"])
    assert sorted(scheme.modules) == ["discriminator", "generator_0", "generator_1", "generator_2", "generator_body"]
    for i in range(3):
        assert all(key.startswith("out.") for key in scheme.modules[f"generator_{i}"].state_dict())
    optimised = {id(p) for group in scheme.optimizers["generator"].param_groups for p in group["params"]}
    owned = {id(p) for name, m in scheme.modules.items() if name != "discriminator" for p in m.parameters()}
    assert optimised == owned


def test_batch_must_split_evenly_among_generators(tiny_overrides) -> None:
    with pytest.raises(ConfigError, match="multiple of scheme.generators"):
        scheme_of(tiny_overrides + MADGAN + ["scheme.generators=3"])


def test_packs_must_not_straddle_two_generators(tiny_overrides) -> None:
    # 36 samples / 4 generators = 9 each: packs of 2 would mix two generators' samples.
    with pytest.raises(ConfigError, match="packs of 2 from that generator alone; make train.batch_size a multiple of 8"):
        scheme_of(tiny_overrides + MADGAN + ["scheme.generators=4", "d_modifiers=[{name: pack, m: 2}]",
                                             "train.batch_size=36"])


def test_madgan_with_packing_names_the_generator_of_each_pack(tmp_path, tiny_overrides) -> None:
    overrides = tiny_overrides + MADGAN + ["scheme.generators=4", "d_modifiers=[{name: pack, m: 2}]",
                                           "train.steps=30"]
    scheme = scheme_of(overrides)
    fake = scheme.fakes()
    assert scheme.discriminator(fake.x.flatten(1, 2)).shape == (1, 32, 5)  # 64 samples -> 32 packs, k + 1 logits
    loss, out = scheme.critic_loss(scheme.parts.real_batch(), fake)
    assert loss.shape == (1,) and torch.isfinite(out["d_identify"]).all()
    run = ganscope.Run.create(ganscope.load_config(overrides=overrides), tmp_path / "run")
    summary = run.fit(progress=False)
    assert all(torch.isfinite(torch.tensor(s["hq_fraction"])) for s in summary["scores"])


def test_pairwise_cosine_similarity_matches_a_loop_over_pairs() -> None:
    torch.manual_seed(2)
    samples = torch.randn(2, 3, 4, 2)  # (seeds, generators, z, features)
    expected = torch.zeros(2)
    for i, j in itertools.combinations(range(3), 2):
        expected += F.cosine_similarity(samples[:, i], samples[:, j], dim=-1).mean(dim=1)
    torch.testing.assert_close(pairwise_cosine_similarity(samples), expected)
    same = samples[:, :1].expand(-1, 3, -1, -1)
    torch.testing.assert_close(pairwise_cosine_similarity(same), torch.full((2,), 3.0))


def test_diversity_penalty_is_its_weight_times_the_similarity_and_off_by_default(tiny_overrides) -> None:
    samples = torch.randn(1, 4, 16, 2)
    off = scheme_of(tiny_overrides + MADGAN)
    assert torch.equal(off.diversity_penalty(samples), torch.zeros(1))
    on = scheme_of(tiny_overrides + MADGAN + ["scheme.diversity=0.5"])
    torch.testing.assert_close(on.diversity_penalty(samples), 0.5 * pairwise_cosine_similarity(samples))
    assert (on.train_step()["g_diversity"] != 0).all()


def cli_train(run_dir: Path, overrides: list[str]) -> None:
    assert main(["train", "-q", "-o", str(run_dir), *[a for o in overrides for a in ("-s", o)]]) == 0


def test_short_training_on_the_ring_runs_end_to_end(tmp_path, tiny_overrides) -> None:
    cli_train(tmp_path / "run", tiny_overrides + MADGAN + ["train.steps=200", "train.seeds=2"])
    summary = json.loads((tmp_path / "run" / SUMMARY).read_text())
    assert summary["step"] == 200 and len(summary["scores"]) == 2
    records = [json.loads(line) for line in (tmp_path / "run" / METRICS).read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert len(train) == 2 * 20 and all(torch.isfinite(torch.tensor(r["d_identify"])) for r in train)
    assert {f"generator_{i}.safetensors" for i in range(4)} <= {p.name for p in (tmp_path / "run").iterdir()}


@pytest.mark.parametrize("share_layers", [False, True])
def test_resume_continues_bit_for_bit(tmp_path, tiny_overrides, share_layers) -> None:
    overrides = tiny_overrides + MADGAN + ["train.seeds=2", f"scheme.share_layers={share_layers}", "scheme.diversity=0.1"]
    cli_train(tmp_path / "full", overrides + ["train.steps=40"])
    cli_train(tmp_path / "half", overrides + ["train.steps=20"])
    assert main(["resume", "-q", str(tmp_path / "half"), "-s", "train.steps=40"]) == 0
    full, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "half")
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    assert (tmp_path / "full" / METRICS).read_text() == (tmp_path / "half" / METRICS).read_text()


def test_wgan_gp_with_madgan_trains(tmp_path, tiny_overrides) -> None:
    hybrid = ["objective.name=wgan-gp", "regularizers=[{name: gradient-penalty}]", "scheme.n_critic=2"]
    cli_train(tmp_path / "run", tiny_overrides + MADGAN + hybrid + ["train.steps=40"])
    train = [json.loads(line) for line in (tmp_path / "run" / METRICS).read_text().splitlines()]
    penalties = [r["penalty_gradient-penalty"] for r in train if r["kind"] == "train"]
    assert penalties and all(p >= 0 for p in penalties)


def losses_of(overrides: list[str], steps: int) -> list[dict[str, list[float]]]:
    scheme = scheme_of(overrides)
    return [{k: v.tolist() for k, v in scheme.train_step().items()} for _ in range(steps)]


def test_seed_inside_population_matches_seed_alone(tiny_overrides) -> None:
    overrides = tiny_overrides + MADGAN + ["scheme.diversity=0.1"]
    together = losses_of(overrides + ["train.seeds=[0,1]"], 5)
    alone = losses_of(overrides + ["train.seeds=[1]"], 5)
    for step_together, step_alone in zip(together, alone, strict=True):
        for key in ("d_loss", "d_identify", "g_loss", "g_diversity"):
            assert step_together[key][1] == pytest.approx(step_alone[key][0], abs=1e-5)
