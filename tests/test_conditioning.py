"""Labels through the spine (data, batch, packing, D, G, penalties) and the three
conditionings: CGAN's inputs, the projection term and AC-GAN's class loss against hand
computations, labels aligned with their samples, seed independence, bit-exact resume,
label fidelity and `ganscope sample --label` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import ganscope
from ganscope.batch import Batch
from ganscope.cli import main
from ganscope.config import piece_params
from ganscope.data import dataset_from_config
from ganscope.errors import ConfigError, DataError
from ganscope.nets.conditioning import (
    AuxiliaryClassifier,
    ClassNormGenerator,
    ClassProjection,
    LabelChannels,
    LabelledInput,
)
from ganscope.nets.layers import StreamUser, attach_stream
from ganscope.nets.modifiers import Packed
from ganscope.schemes import SCHEMES, Parts
from ganscope.seeding import PopulationRandom, make_generator

CONDITIONINGS = ["cgan", "projection", "acgan"]


def scheme_of(overrides: list[str]):
    cfg = ganscope.load_config(overrides=overrides)
    return SCHEMES.get(cfg.scheme.name)(Parts.from_config(cfg), piece_params(cfg, "scheme"))


def weights(scheme) -> dict[str, torch.Tensor]:
    return {f"{m}.{k}": v.detach().clone() for m, mod in scheme.modules.items() for k, v in mod.state_dict().items()}


# ---- the batch and labelled data ---------------------------------------------------------


def test_batch_keeps_labels_with_their_samples() -> None:
    a = Batch(torch.arange(6.0).view(1, 3, 2), torch.tensor([[0, 1, 2]]))
    b = Batch(torch.arange(6.0, 10.0).view(1, 2, 2), torch.tensor([[3, 4]]))
    joined = a.cat(b)
    assert joined.size == 5 and joined.labels.tolist() == [[0, 1, 2, 3, 4]]
    assert torch.equal(joined.x[0, 3], b.x[0, 0])
    assert a.cat(b) is joined  # asked again: the same tensor, so a D that keeps its pass answers once
    b.x.add_(1)
    again = a.cat(b)
    assert again is not joined and torch.equal(again.x[0, 3], b.x[0, 0])  # changed in place: joined anew
    assert a.cat(Batch(b.x, b.labels)) is not again
    assert a.with_samples(a.x * 0).labels is a.labels
    with pytest.raises(ValueError, match="do not match"):
        Batch(torch.zeros(1, 3, 2), torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="labelled batch with an unlabelled"):
        a.cat(Batch(b.x))


@pytest.mark.parametrize("data", ["ring", "grid", "digits"])
def test_labelled_draws_are_the_unlabelled_draws_and_labels_are_modes(data: str) -> None:
    dataset = dataset_from_config(ganscope.load_config(overrides=[f"data.name={data}"]))
    plain = dataset.sample(200, make_generator(0, "data"))
    samples, labels = dataset.sample_labelled(200, make_generator(0, "data"))
    assert torch.equal(plain, samples) and labels.shape == (200,) and labels.dtype == torch.long
    assert len(dataset.label_weights) == dataset.n_classes and math.isclose(float(dataset.label_weights.sum()), 1.0,
                                                                           rel_tol=1e-6)
    if data != "digits":  # points within 3 std of their own centre: the oracle reads the label
        assignment = dataset.oracle.assign(samples)
        assert torch.equal(assignment.mode[assignment.high_quality], labels[assignment.high_quality])


def test_stacked_labels_are_the_oracles_triples() -> None:
    data = dataset_from_config(ganscope.load_config(overrides=["data.name=stacked-digits"]))
    samples, labels = data.sample_labelled(50, make_generator(1, "data"))
    digits = data.split.train_labels
    assert data.n_classes == 1000 and labels.max() < 1000
    # the first channel of each sample is a training image of digit labels // 100
    firsts = samples[:, 0]
    for image, label in zip(firsts[:5], labels[:5], strict=True):
        matches = (data.split.train_images[:, 0] == image).flatten(1).all(dim=1)
        assert int(label) // 100 in set(digits[matches].tolist())


# ---- the conditioning pieces against hand computations ------------------------------------


def test_cgan_feeds_one_hot_labels_to_both_players() -> None:
    seen: list[torch.Tensor] = []
    inner_g = torch.nn.Identity()
    g = LabelledInput(inner_g, 3)
    z = torch.zeros(1, 2, 4)
    out = g(z, torch.tensor([[2, 0]]))
    assert torch.equal(out[0, :, 4:], torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    inner_d = torch.nn.Identity()
    inner_d.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    d = LabelChannels(inner_d, 3)
    images = torch.randn(1, 2, 1, 2, 2)
    d(images, torch.tensor([[1, 2]]))
    assert seen[0].shape == (1, 2, 4, 2, 2)  # 1 channel + 3 label maps
    assert torch.equal(seen[0][0, 0, 1:], torch.tensor([0.0, 1, 0]).view(3, 1, 1).expand(3, 2, 2))
    with pytest.raises(ValueError, match="needs the samples' labels"):
        d(images)


@pytest.mark.parametrize("overrides", [
    [],
    ["d_modifiers=[{name: pack, m: 2}]", "discriminator.spectral_norm=true", "discriminator.batch_norm=false"],
    ["discriminator.name=stylegan", "discriminator.width=8", "discriminator.max_width=16", "d_modifiers=[]"],
])
def test_cgan_d_reads_labels_as_indices_exactly_as_the_one_hot_maps(overrides: list[str]) -> None:
    """The input convolution's class responses (PopConv2d.one_hot_classes) against D on
    the concatenated one-hot maps: the same logits and the same gradients, through
    packing (pack positions), spectral norm and an equalised 1x1 from-RGB."""
    scheme = scheme_of(["data.name=digits", "generator.name=dcgan", "discriminator.name=dcgan",
                        "discriminator.width=8", "conditioning.name=cgan", "train.seeds=2", *overrides])
    d = scheme.discriminator
    reader = d.label_reader
    assert isinstance(d, LabelChannels) and reader[0] is not None
    x = torch.randn(2, 6, 1, 8, 8, requires_grad=True)
    labels = torch.randint(10, (2, 6))
    state = {k: v.clone() for k, v in d.state_dict().items()}  # spectral norm iterates as D runs
    fast = d(x, labels)
    (fast_grad_x, *fast_grads) = torch.autograd.grad(fast.square().sum(), [x, *d.parameters()])
    d.label_reader = (None,)  # the concatenation
    d.load_state_dict(state)
    slow = d(x, labels)
    (slow_grad_x, *slow_grads) = torch.autograd.grad(slow.square().sum(), [x, *d.parameters()])
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast_grad_x, slow_grad_x, rtol=1e-4, atol=1e-6)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # A label moves the logit of its own seed's sample (or pack) alone.
    d.label_reader = reader
    changed = labels.clone()
    changed[1, 0] = (changed[1, 0] + 1) % 10
    d.load_state_dict(state)
    moved = (d(x, changed) - fast).abs().flatten(2).amax(dim=2) > 1e-6
    assert moved[1, 0] and moved.sum() == 1


def test_conditional_batch_norm_is_batch_norm_then_the_class_gain_and_shift() -> None:
    scheme = scheme_of(["conditioning.name=projection", "conditioning.generator=batch-norm",
                        "generator.batch_norm=true", "train.seeds=2", "noise.z_dim=4"])
    g = scheme.generator
    assert isinstance(g, ClassNormGenerator) and len(g.norms) == 3  # the mlp's 3 hidden layers
    norm = g.norms[0]
    with torch.no_grad():
        norm.gain.normal_()
        norm.shift.normal_()
    x, labels = torch.randn(2, 6, 128), torch.randint(8, (2, 6))
    norm.labels = labels
    got = norm(x)
    bn = norm.norm(x)  # the plain population batch norm (training mode)
    expected = torch.stack([torch.stack([bn[s, n] * norm.gain[s, labels[s, n]] + norm.shift[s, labels[s, n]]
                                         for n in range(6)]) for s in range(2)])
    torch.testing.assert_close(got, expected)
    # G reads the noise alone: the label acts through the norms only, and changes the samples.
    z = torch.randn(2, 6, 4)
    assert not torch.allclose(g(z, labels), g(z, (labels + 1) % 8))
    assert all(n.labels is None for n in g.norms)  # the labels do not outlive the call


def test_projection_adds_the_class_embedding_dot_features() -> None:
    scheme = scheme_of(["conditioning.name=projection", "train.seeds=2"])
    d = scheme.discriminator
    x, labels = torch.randn(2, 5, 2), torch.randint(8, (2, 5))
    features = d.extensions(d.body(x))
    v = d.projection.weight  # (S, K, F)
    expected = d.head(features) + torch.stack(
        [torch.stack([v[s, labels[s, b]] @ features[s, b] for b in range(5)]) for s in range(2)]
    ).unsqueeze(-1)
    torch.testing.assert_close(d(x, labels), expected)
    assert not torch.allclose(d(x, labels), d(x, (labels + 1) % 8)), "the label changes D's output"


def test_projection_of_a_pack_uses_its_samples_mean_embedding() -> None:
    scheme = scheme_of(["conditioning.name=projection", "d_modifiers=[{name: pack, m: 2}]"])
    d = scheme.discriminator
    assert isinstance(d, Packed)
    x, labels = torch.randn(1, 4, 2), torch.tensor([[0, 3, 5, 5]])
    inner = d.inner
    packed = x.reshape(1, 2, 4)
    features = inner.extensions(inner.body(packed))
    v = inner.projection.weight[0]
    terms = torch.stack([(v[0] + v[3]) / 2 @ features[0, 0], v[5] @ features[0, 1]])
    torch.testing.assert_close(d(x, labels), inner.head(features) + terms.view(1, 2, 1))


def test_acgan_class_loss_is_cross_entropy_for_both_players() -> None:
    scheme = scheme_of(["conditioning.name=acgan", "train.seeds=2", "conditioning.class_weight=0.5"])
    d = scheme.discriminator
    assert isinstance(d, AuxiliaryClassifier)
    x, labels = torch.randn(2, 6, 2), torch.randint(8, (2, 6))
    real, fake = Batch(x[:, :3], labels[:, :3]), Batch(x[:, 3:], labels[:, 3:])
    assert d(x).shape == (2, 6, 1) and d.classify(x).shape == (2, 6, 8)
    loss = scheme.parts.regularizers["acgan_class"]
    assert loss.weight == 0.5 and "generator" in loss.players

    def ce(batch: Batch) -> torch.Tensor:
        logits = d.classify(batch.x)
        return torch.stack([F.cross_entropy(logits[s], batch.labels[s]) for s in range(2)])

    rng = scheme.parts.streams["penalty"]
    torch.testing.assert_close(loss.penalty(d, real, fake, rng), ce(real) + ce(fake))
    torch.testing.assert_close(loss.generator_penalty(d, fake, rng, scheme.generator), ce(fake))
    out = scheme.train_step()
    assert {"penalty_acgan_class", "g_penalty_acgan_class"} <= set(out)


@pytest.mark.parametrize(("d_options", "passes_per_step"), [([], 3), (["discriminator.batch_norm=false"], 2)])
def test_acgan_reads_realness_and_classes_from_one_pass_of_d(d_options: list[str], passes_per_step: int) -> None:
    """The objective's logits and the class loss's come from one pass of D per batch (a
    batch-norm D judges real and fake apart: 2 passes in D's step, 1 in G's; without batch
    norm both read one pass over real and fake joined), and the step is the step that
    runs D again for the class logits, to the bit."""
    overrides = ["data.name=digits", "generator.name=dcgan", "discriminator.name=dcgan", "generator.width=8",
                 "discriminator.width=8", "data.size=16", "conditioning.name=acgan", "train.seeds=2", *d_options]
    kept, again = scheme_of(overrides), scheme_of(overrides)
    again.discriminator._pass = again.discriminator.inner  # no kept passes: D runs for every question
    passes = []
    kept.discriminator.inner.register_forward_hook(lambda *_: passes.append(1))
    for _ in range(2):
        out_kept, out_again = kept.train_step(), again.train_step()
        for name in ("d_loss", "g_loss", "penalty_acgan_class", "g_penalty_acgan_class"):
            assert torch.equal(out_kept[name], out_again[name]), name
    assert len(passes) == 2 * passes_per_step
    assert all(torch.equal(a, b) for a, b in zip(kept.discriminator.parameters(), again.discriminator.parameters()))


def test_d_steps_fakes_carry_the_real_batchs_labels() -> None:
    scheme = scheme_of(["conditioning.name=cgan", "train.seeds=2", "train.batch_size=16"])
    asked: list[torch.Tensor] = []
    generator = scheme.generator
    generator.register_forward_pre_hook(lambda _m, args: asked.append(args[1].clone()))
    seen: list[Batch] = []
    original = scheme.critic_loss
    scheme.critic_loss = lambda real, fake, critic=None: (seen.append((real, fake)), original(real, fake))[1]
    scheme.d_step(diagnostics=False)
    real, fake = seen[0]
    assert torch.equal(asked[0], real.labels) and torch.equal(fake.labels, real.labels)
    scheme.generator_loss()
    assert asked[1].shape == (2, 16) and not torch.equal(asked[1], real.labels)


@pytest.mark.parametrize(
    ("conditioning", "scheme"),
    [*((c, "alternating") for c in CONDITIONINGS), ("cgan", "madgan"), ("acgan", "madgan"),
     ("projection generator=batch-norm", "alternating"), ("cgan generator=batch-norm", "madgan")],
)
def test_conditional_seed_in_a_population_equals_seed_alone(conditioning: str, scheme: str) -> None:
    name, *options = conditioning.split()
    norms = ["generator.batch_norm=true"] if options else []
    base = ["train.batch_size=16", f"conditioning.name={name}", *(f"conditioning.{o}" for o in options), *norms,
            "regularizers=[{name: gradient-penalty}]", "objective.name=wgan-gp", f"scheme.name={scheme}"]
    both = scheme_of([*base, "train.seeds=[1,3]"])
    alone = scheme_of([*base, "train.seeds=[3]"])
    for _ in range(10):
        out_both, out_alone = both.train_step(), alone.train_step()
        for key in out_alone:
            torch.testing.assert_close(out_both[key][1:], out_alone[key], rtol=1e-5, atol=1e-5)


def test_unrolled_trains_with_acgans_class_loss_under_the_surrogate_d() -> None:
    scheme = scheme_of(["conditioning.name=acgan", "scheme.name=unrolled", "scheme.unroll_steps=2",
                        "train.batch_size=16"])
    before = weights(scheme)
    out = scheme.train_step()
    assert torch.isfinite(out["g_penalty_acgan_class"]).all()
    assert any(not torch.equal(before[k], v) for k, v in weights(scheme).items() if k.startswith("generator"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["conditioning.name=cgan", "scheme.name=mrgan"], "works with the alternating, unrolled, madgan schemes"),
        (["conditioning.name=projection", "scheme.name=madgan"], "use conditioning.name=cgan or acgan"),
        (["conditioning.name=cgan", "scheme.name=madgan", "scheme.share_layers=true"], "share_layers=false"),
        (["conditioning.name=acgan", "d_modifiers=[{name: pack}]"], "drop one of the two"),
        (["conditioning.name=bogus"], "unknown conditioning 'bogus'"),
        (["conditioning.name=cgan", "conditioning.generator=batch-norm"],
         "generator mlp has none; set generator.batch_norm=true"),
    ],
)
def test_bad_conditioning_configs_say_why(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ganscope.load_config(overrides=overrides)


def test_conditioning_on_unlabelled_data_is_refused(tmp_path: Path) -> None:
    points = tmp_path / "points.csv"
    points.write_text("\n".join(f"{i % 3 + 0.01 * i},{i % 5}" for i in range(60)))
    cfg = ganscope.load_config(overrides=["conditioning.name=cgan", "data.name=file", f"data.path={points}",
                                          "data.n_modes=3"])
    with pytest.raises(ConfigError, match="needs labelled data"):
        Parts.from_config(cfg)


# ---- streams, resume, end to end ---------------------------------------------------------


def test_network_streams_are_attached_and_checkpointed(tmp_path: Path, tiny_overrides: list[str]) -> None:
    class Noisy(StreamUser):
        pass

    holder = torch.nn.Sequential(torch.nn.Identity(), Noisy())
    rng = PopulationRandom([0, 1], "network")
    attach_stream(holder, rng)
    assert holder[1].rng is rng
    run = ganscope.Run.create(ganscope.load_config(overrides=[*tiny_overrides, "train.steps=20"]), tmp_path / "run")
    assert {"labels", "network"} <= set(run.state_dict()["streams"])
    old = run.state_dict()
    for name in ("labels", "network"):  # a checkpoint from before these streams existed
        del old["streams"][name]
    run.load_state_dict(old)


@pytest.mark.parametrize("conditioning", ["projection", "acgan", "cgan generator=batch-norm"])
def test_conditional_resume_is_bit_exact(tmp_path: Path, tiny_overrides: list[str], conditioning: str) -> None:
    name, *options = conditioning.split()
    base = [*tiny_overrides, f"conditioning.name={name}", *(f"conditioning.{o}" for o in options),
            *(["generator.batch_norm=true"] if options else [])]
    straight = ganscope.Run.create(ganscope.load_config(overrides=[*base, "train.steps=40"]), tmp_path / "a")
    straight.fit(progress=False)
    first = ganscope.Run.create(ganscope.load_config(overrides=[*base, "train.steps=20"]), tmp_path / "b")
    first.fit(progress=False)
    resumed = ganscope.Run.open(tmp_path / "b", overrides=["train.steps=40"])
    resumed.fit(progress=False)
    for name, module in straight.scheme.modules.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, resumed.scheme.modules[name].state_dict()[key]), (name, key)


def test_conditional_ring_run_reports_label_fidelity_and_samples_a_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    run_dir = tmp_path / "cgan"
    assert main(["train", "-o", str(run_dir), "-q", "-s", "conditioning.name=cgan", "train.steps=300",
                 "train.eval_every=300", "train.seeds=2"]) == 0
    assert "label fidelity" in capsys.readouterr().out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["label_fidelity_mean"] > 0.9, summary["label_fidelity"]
    out = tmp_path / "three.npy"
    assert main(["sample", str(run_dir), "-n", "200", "--label", "3", "-o", str(out)]) == 0
    points = torch.from_numpy(np.load(out))
    centre = torch.tensor([math.cos(3 * math.pi / 4), math.sin(3 * math.pi / 4)])
    assert (points - centre).norm(dim=1).median() < 0.1, "label 3 asks for the ring's mode 3"
    capsys.readouterr()
    assert main(["eval", str(run_dir), "-n", "800", "-m", "frechet", "--per-class", "--json"]) == 0
    per_class = json.loads(capsys.readouterr().out)["class_metrics"]
    assert set(per_class) == {"0", "1"} and all(set(classes) == {str(y) for y in range(8)}
                                                 for classes in per_class.values())
    # within a class the samples sit in one mode of std 0.02: a class's FD is tiny, while
    # comparing a class with its neighbour mode costs the squared distance of the centres
    assert max(c["frechet"]["frechet"] for c in per_class["0"].values()) < 0.01
    assert main(["sample", str(run_dir), "--label", "8", "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert "not a class of ring" in err and "Traceback" not in err


def test_sample_label_on_an_unconditional_run_is_refused(
    tmp_path: Path, tiny_config: ganscope.Config, capsys: pytest.CaptureFixture[str]
) -> None:
    ganscope.Run.create(tiny_config, tmp_path / "run").fit(progress=False)
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "run"), "--label", "1", "-o", str(tmp_path / "x.npy")]) != 0
    assert "unconditional" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()
    assert main(["eval", str(tmp_path / "run"), "-m", "frechet", "--per-class"]) != 0
    assert "--per-class needs a conditional run" in capsys.readouterr().err


# ---- the monitor on conditional generators ----------------------------------------------


def conditional_events(samples: torch.Tensor, labels: torch.Tensor) -> list:
    """What the monitor says of one ring seed's (constructed) conditional samples, judged as
    a run's last evaluation."""
    from ganscope.metrics.modes import score_modes
    from ganscope.monitor import Monitor

    cfg = ganscope.load_config(overrides=["conditioning.name=cgan", "train.eval_samples=2000"])
    data = dataset_from_config(cfg)
    monitor = Monitor(cfg, data)
    score = score_modes(samples, data.oracle, labels=labels)
    stats = monitor.measure(samples[None], labels=labels[None])[0]
    records = [{"step": step, "seed": 0, "kind": "eval", **score.to_dict(), **stats} for step in (100, 200)]
    return monitor.observe(records)


def test_monitor_names_ignored_labels_and_a_class_collapsed_inside() -> None:
    data = dataset_from_config(ganscope.load_config())
    samples, labels = data.sample_labelled(2000, make_generator(5, "data"))
    assert conditional_events(samples, labels) == [], "real samples with their own labels raise nothing"

    shuffled = labels[torch.randperm(len(labels), generator=make_generator(6, "data"))]
    (event,) = [e for e in conditional_events(samples, shuffled) if e.kind == "label-ignored"]
    assert 0.08 < event.evidence["label_fidelity"] < 0.2 and "rule: label fidelity under 50%" in event.text
    assert "-s conditioning.name=projection" in event.remedy.how

    collapsed = samples.clone()
    collapsed[labels == 3] = samples[labels == 3][0]  # every sample asked for class 3 is one point
    events = {e.kind: e for e in conditional_events(collapsed, labels)}
    assert "label-ignored" not in events
    assert events["class-collapse"].text.startswith("1 class(es) collapsed inside: 3 (0.00x)")


def test_conditional_image_run_writes_a_class_by_seed_grid(tmp_path: Path) -> None:
    import numpy as np

    overrides = ["conditioning.name=projection", "data.name=digits", "generator.name=dcgan",
                 "discriminator.name=dcgan", "generator.width=8", "discriminator.width=8", "noise.z_dim=8",
                 "train.batch_size=16", "train.steps=20", "train.eval_every=20", "train.seeds=2",
                 "train.eval_samples=300"]
    run = ganscope.Run.create(ganscope.load_config(overrides=overrides), tmp_path / "run")
    summary = run.fit(progress=False)
    classes = np.load(tmp_path / "run" / "classes.npy")
    assert classes.shape == (2, 10, 8, 1, 8, 8)
    again = run.sample(80, key=run.step, labels=torch.arange(10).repeat_interleave(8).expand(2, -1))
    np.testing.assert_array_equal(classes, again.unflatten(1, (10, 8)).numpy())
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Samples per class" in page and "label fidelity" in summary["verdict"]
    assert "label-ignored" in summary["verdict"] or summary["label_fidelity_mean"] >= 0.5


def test_madgan_generators_make_their_share_of_the_real_labels() -> None:
    scheme = scheme_of(["conditioning.name=acgan", "scheme.name=madgan", "scheme.generators=4", "train.batch_size=16"])
    asked: list[list[torch.Tensor]] = []
    for i, g in enumerate(scheme.generator.heads):
        g.register_forward_pre_hook(lambda _m, args, i=i: asked.append((i, args[1].clone())))
    real = scheme.parts.real_batch()
    fake = scheme.fakes(real.labels)
    assert fake.x.shape[:3] == (1, 4, 4) and torch.equal(fake.labels.flatten(1), real.labels)
    for i, labels in asked:
        assert torch.equal(labels, real.labels[:, 4 * i: 4 * i + 4]), "G_i makes the i-th run of the labels"
    out = scheme.train_step()
    assert {"penalty_acgan_class", "g_penalty_acgan_class", "d_identify"} <= set(out)
    z, labels = torch.zeros(1, 8, scheme.parts.noise.z_dim), torch.arange(8).view(1, 8)
    assert scheme.generate(Batch(z, labels)).shape == (1, 8, 2)


def test_stacked_data_conditioned_on_one_channel_scores_intra_class_coverage() -> None:
    from ganscope.metrics.modes import score_modes

    data = dataset_from_config(ganscope.load_config(overrides=["data.name=stacked-digits", "data.label=channel-1"]))
    assert data.n_classes == 10 and int(data.mode_labels[123]) == 2
    samples, labels = data.sample_labelled(3000, make_generator(2, "data"))
    score = score_modes(samples, data.oracle, labels=labels, mode_labels=data.mode_labels)
    assert score.label_fidelity > 0.9, "real triples carry their middle digit"
    assert min(score.class_coverage) > 0.8, "300 real samples per class cover most of its 100 triples"
    assert "intra-class coverage" in score.summary() and score.intra_class_coverage > 0.8
    assert score.to_dict()["intra_class_coverage"] == score.intra_class_coverage, "what the bench reads"
    one_each = samples.clone()
    for y in range(10):  # a generator that makes one triple per class
        one_each[labels == y] = samples[labels == y][0]
    collapsed = score_modes(one_each, data.oracle, labels=labels, mode_labels=data.mode_labels)
    assert max(collapsed.class_coverage) <= 0.01 and collapsed.label_fidelity > 0.8


def test_point_file_with_a_label_column_trains_a_conditional_model(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    classes = torch.randint(3, (300,), generator=gen)
    points = centres[classes] + 0.1 * torch.randn(300, 2, generator=gen)
    path = tmp_path / "labelled.csv"
    path.write_text("\n".join(f"{x:.4f},{7 * int(c) + 1},{y:.4f}" for (x, y), c in zip(points.tolist(), classes)))
    cfg = ganscope.load_config(overrides=["data.name=file", f"data.path={path}", "data.label_column=1",
                                          "conditioning.name=cgan"])
    data = dataset_from_config(cfg)
    assert data.sample_shape == (2,) and data.n_classes == 3
    assert "3 classes of column 1 (1, 8, 15)" in data.oracle.description
    torch.testing.assert_close(data.oracle.centres.float(), centres, atol=0.05, rtol=0)
    samples, labels = data.sample_labelled(100, make_generator(0, "data"))
    assert torch.equal(data.oracle.assign(samples).mode, labels)
    scheme = scheme_of(["data.name=file", f"data.path={path}", "data.label_column=1", "conditioning.name=cgan"])
    assert torch.isfinite(scheme.train_step()["d_loss"]).all()
    for column, message in (("0", "non-integer values"), ("5", "must name one of them")):
        bad = ganscope.load_config(overrides=["data.name=file", f"data.path={path}", f"data.label_column={column}"])
        with pytest.raises(DataError, match=message):
            dataset_from_config(bad)
