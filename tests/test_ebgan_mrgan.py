"""EBGAN and MR-GAN: their losses against hand-computed numbers, the direction of MR-GAN's
mode regulariser, end-to-end training on the ring, bit-exact resume, config-time errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import ganscope
from ganscope.cli import main
from ganscope.config import piece_params
from ganscope.errors import ConfigError
from ganscope.nets.autoencoder import AUTOENCODERS
from ganscope.nets.layers import PopLinear
from ganscope.nets.mlp import MLPDiscriminatorParams
from ganscope.objectives import OBJECTIVES
from ganscope.objectives.energy import (
    energy_generator_loss,
    margin_discriminator_loss,
    pull_away_term,
    reconstruction_energy,
)
from ganscope.schemes import SCHEMES, Parts
from ganscope.schemes.base import frozen
from ganscope.schemes.ebgan import EnergyDiscriminator
from ganscope.schemes.mrgan import MRGAN, mode_regularizer, reconstruction_loss
from ganscope.train.run import CHECKPOINT, METRICS

MRGAN_TINY = ["scheme.name=mrgan", "scheme.encoder.hidden=32", "scheme.encoder.depth=2"]

# ---- EBGAN's losses ---------------------------------------------------------------------


def test_margin_loss_matches_hand_computed_values() -> None:
    # Two seeds, two samples each; margin 1: [1 - e]^+ is 0 for fakes at or above 1.
    real = torch.tensor([[0.2, 0.4], [1.0, 3.0]])
    fake = torch.tensor([[0.5, 2.0], [0.0, 1.0]])
    d = margin_discriminator_loss(real, fake, margin=1.0)
    # seed 0: mean(0.2, 0.4) + mean(0.5, 0) = 0.3 + 0.25; seed 1: mean(1, 3) + mean(1, 0) = 2 + 0.5
    assert d.tolist() == pytest.approx([0.55, 2.5])
    assert energy_generator_loss(fake).tolist() == pytest.approx([1.25, 0.5])
    # A larger margin keeps pushing the fake at energy 2 of seed 0: mean(3 - 0.5, 3 - 2) = 1.75.
    assert margin_discriminator_loss(real, fake, margin=3.0)[0].item() == pytest.approx(0.3 + 1.75)


def test_pull_away_term_of_parallel_orthogonal_and_mixed_codes() -> None:
    parallel = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [-3.0, 0.0]]])  # same direction up to sign
    orthogonal = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.5]]])
    assert pull_away_term(parallel).tolist() == pytest.approx([1.0])
    assert pull_away_term(orthogonal).tolist() == pytest.approx([0.0], abs=1e-7)
    # cos^2 of the pairs (a, b), (a, c), (b, c) = 1/2, 0, 1/2; ordered pairs i != j: 2 * 1 / (3 * 2).
    # Counting the i = j terms too would give (2 + 3) / 6 instead.
    mixed = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
    assert pull_away_term(mixed).tolist() == pytest.approx([1 / 3])
    # Per seed: the population axis leads.
    both = torch.cat([parallel[:, :, :2], mixed])
    assert pull_away_term(both).tolist() == pytest.approx([1.0, 1 / 3])


def test_energy_is_the_euclidean_norm_of_the_reconstruction_error() -> None:
    x = torch.tensor([[[3.0, 4.0], [1.0, 1.0]]])
    reconstruction = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    assert reconstruction_energy(x, reconstruction).tolist() == [[5.0, 0.0]]  # ||(3, 4)||, not 25 or 12.5


def test_perfectly_reconstructing_autoencoder_has_zero_energy() -> None:
    # Encoder h = relu([x, -x]), code = h; decoder relu(code) @ [I; -I] = relu(x) - relu(-x) = x.
    params = MLPDiscriminatorParams(hidden=4, depth=1)
    autoencoder = AUTOENCODERS.get("mlp")(params, 2, (2,), 4)
    encoder_in, head, decoder_in, decoder_out = [m for m in autoencoder.modules() if isinstance(m, PopLinear)]
    eye = torch.eye(2)
    with torch.no_grad():
        for layer, weight in (
            (encoder_in, torch.cat([eye, -eye], dim=1)),
            (head, torch.eye(4)),
            (decoder_in, torch.eye(4)),
            (decoder_out, torch.cat([eye, -eye], dim=0)),
        ):
            layer.weight.copy_(weight.expand_as(layer.weight))
            layer.bias.zero_()
    x = torch.randn(2, 16, 2, generator=torch.Generator().manual_seed(0))
    energy = EnergyDiscriminator(autoencoder)(x)
    assert energy.shape == (2, 16)
    assert torch.allclose(energy, torch.zeros_like(energy), atol=1e-6)
    with torch.no_grad():
        decoder_out.bias.fill_(0.1)  # every reconstruction now off by (0.1, 0.1)
    assert torch.allclose(EnergyDiscriminator(autoencoder)(x), torch.full((2, 16), 0.1 * math.sqrt(2)))


# ---- MR-GAN's losses and the sign of the mode regulariser ---------------------------------


def test_reconstruction_loss_and_mode_regularizer_match_hand_computed_values() -> None:
    x = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
    reconstruction = torch.tensor([[[1.0, 0.0], [3.0, 4.0]]])
    assert reconstruction_loss(x, reconstruction).tolist() == pytest.approx([(4 + 25) / 2])
    # D = sigmoid(logit) = 1/2 and 3/4: the regulariser is -mean log D(G(E(x))).
    logits = torch.tensor([[[0.0], [math.log(3.0)]]])
    nonsaturating = OBJECTIVES.get("nonsaturating")()
    assert mode_regularizer(nonsaturating, logits).tolist() == pytest.approx([(math.log(2) + math.log(4 / 3)) / 2])


def _mrgan(tiny_overrides: list[str], extra: list[str]) -> MRGAN:
    cfg = ganscope.load_config(overrides=tiny_overrides + MRGAN_TINY + ["train.seeds=2"] + extra)
    return SCHEMES.get("mrgan")(Parts.from_config(cfg), piece_params(cfg, "scheme"))


def _d_of_reconstructions(scheme: MRGAN, real: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.sigmoid(scheme.discriminator(scheme.reconstruct(real))).mean(dim=(1, 2))


@pytest.mark.parametrize("manifold_diffusion", [True, False])
def test_mode_regularizer_step_raises_d_of_reconstructions(tiny_overrides, manifold_diffusion) -> None:
    """One G/E step on the lambda2 term alone must make G(E(x)) look *more* real to D; the
    paper's printed +lambda2 log D(G(E(x))) would make it look less real."""
    extra = [f"scheme.manifold_diffusion={manifold_diffusion}", "scheme.lambda1=0", "scheme.lambda2=1"]
    extra += [f"optimizer.generator.{k}" for k in ("name=sgd", "lr=0.05")]
    for sign in (1.0, -1.0):  # ours, then the printed sign
        scheme = _mrgan(tiny_overrides, extra)
        real = scheme.parts.real_batch().x
        before = _d_of_reconstructions(scheme, real)
        with frozen(scheme.discriminator):
            loss, logs = scheme.encoder_loss(real, scheme.discriminator)
        scheme.generator_step(sign * loss, logs, diagnostics=False)
        after = _d_of_reconstructions(scheme, real)
        assert bool(((after - before) * sign > 0).all()), (sign, before, after)


# ---- end to end -------------------------------------------------------------------------


def _train_records(run_dir: Path) -> list[dict[str, float]]:
    lines = (run_dir / METRICS).read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "train"]


@pytest.mark.parametrize(
    ("scheme", "keys"),
    [
        (["scheme.name=ebgan", "scheme.code_dim=8"], {"d_loss", "g_loss", "pull_away", "real_energy", "fake_energy"}),
        (MRGAN_TINY, {"d_loss", "g_loss", "reconstruction", "mode_regularizer", "diffusion_d_loss", "e_grad_norm"}),
        (MRGAN_TINY + ["scheme.manifold_diffusion=false"], {"d_loss", "g_loss", "reconstruction", "mode_regularizer"}),
    ],
    ids=["ebgan", "mdgan", "regularized-gan"],
)
def test_scheme_trains_on_the_ring_with_finite_losses(tmp_path, tiny_overrides, scheme, keys, capsys) -> None:
    args = ["train", "-q", "-o", str(tmp_path / "run"), "-s", "train.steps=200", "-s", "train.seeds=2"]
    args += [a for o in tiny_overrides + scheme for a in ("-s", o)]
    assert main(args) == 0
    records = _train_records(tmp_path / "run")
    assert len(records) == 2 * 200 // 10
    assert keys <= set(records[-1])
    for r in records:
        assert all(math.isfinite(v) for v in r.values() if isinstance(v, float)), r
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["step"] == 200 and "modes covered" in capsys.readouterr().out


@pytest.mark.parametrize("scheme", [MRGAN_TINY, ["scheme.name=ebgan"]], ids=["mrgan", "ebgan"])
def test_seed_inside_population_matches_seed_alone(tiny_overrides, scheme) -> None:
    def losses(seeds: str) -> list[dict[str, list[float]]]:
        cfg = ganscope.load_config(overrides=tiny_overrides + scheme + [seeds])
        run = ganscope.Run(cfg, Path("unused"))
        return [{k: v.tolist() for k, v in run.scheme.train_step().items()} for _ in range(3)]

    together, alone = losses("train.seeds=[1,3]"), losses("train.seeds=[3]")
    for step_together, step_alone in zip(together, alone, strict=True):
        for key in ("d_loss", "g_loss"):
            assert step_together[key][1] == pytest.approx(step_alone[key][0], abs=1e-5)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / CHECKPOINT, weights_only=True)
    return {f"{m}.{k}": v for m, sd in state["modules"].items() for k, v in sd.items()}


def test_mrgan_resume_is_bit_exact(tmp_path, tiny_overrides) -> None:
    base = tiny_overrides + MRGAN_TINY + ["train.seeds=2"]
    ganscope.Run.create(ganscope.load_config(overrides=base + ["train.steps=40"]), tmp_path / "full").fit(progress=False)
    ganscope.Run.create(ganscope.load_config(overrides=base + ["train.steps=20"]), tmp_path / "half").fit(progress=False)
    resumed = ganscope.Run.open(tmp_path / "half", ["train.steps=40"])
    assert resumed.step == 20
    resumed.fit(progress=False)

    full, half = _weights(tmp_path / "full"), _weights(tmp_path / "half")
    assert {k.split(".")[0] for k in full} == {"generator", "encoder", "discriminator", "diffusion_discriminator"}
    assert full.keys() == half.keys()
    for key in full:
        assert torch.equal(full[key], half[key]), key
    assert (tmp_path / "full" / METRICS).read_text() == (tmp_path / "half" / METRICS).read_text()


# ---- config-time errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["objective.name=wgan"], "scheme: ebgan replaces the objective with its margin loss"),
        (["d_modifiers=[{name: pack}]"], "scheme: ebgan's autoencoder discriminator takes no d_modifiers"),
        (["train.batch_size=1"], "pull-away term compares pairs"),
    ],
)
def test_ebgan_rejects_what_it_would_ignore(overrides, message) -> None:
    with pytest.raises(ConfigError) as info:
        ganscope.load_config(overrides=["scheme.name=ebgan"] + overrides)
    assert "\n" not in str(info.value) and message in str(info.value)
    ganscope.load_config(overrides=["scheme.name=ebgan", "train.batch_size=1", "scheme.pt_weight=0"])


def test_ebgan_with_another_objective_fails_on_the_command_line_in_one_line(tmp_path, capsys) -> None:
    args = ["train", "-q", "-o", str(tmp_path / "run"), "-s", "scheme.name=ebgan", "-s", "objective.name=hinge"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ebgan replaces the objective" in err and "hinge" in err
    assert not (tmp_path / "run").exists()
