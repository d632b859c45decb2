"""Training on images end to end: DCGAN on digit images through the CLI and the API,
devices, the Stacked MNIST protocol numbers in every verdict, the monitor reading the
oracle's histogram and features, and the sizes of what a run keeps on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganscope
from ganscope.cli import main
from ganscope.config import piece_params
from ganscope.data import DATASETS, evaluation_size
from ganscope.devices import resolve_device
from ganscope.errors import ConfigError
from ganscope.monitor import Monitor
from ganscope.monitor.detectors import Dropping, DroppingParams, Evaluation, History
from ganscope.seeding import PopulationRandom
from ganscope.train.run import SUMMARY, Run
from ganscope.train.snapshots import final_indices, snapshot_indices

TINY_DCGAN = [
    "data.name=digits", "generator.name=dcgan", "discriminator.name=dcgan", "noise.z_dim=16",
    "generator.width=8", "discriminator.width=8", "train.batch_size=16", "train.steps=20",
    "train.eval_every=10", "train.eval_samples=300", "train.log_every=5", "train.seeds=2", "train.report=false",
]


@pytest.fixture(scope="module", autouse=True)
def oracle_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The digits oracle (default recipe, a few seconds) trained once into a temporary cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANSCOPE_CACHE", str(tmp_path_factory.mktemp("oracle-cache")))
        yield


def data(name: str, *options: str) -> ganscope.data.Dataset:
    cfg = ganscope.load_config(overrides=[f"data.name={name}", *[f"data.{o}" for o in options]])
    return DATASETS.get(name)(piece_params(cfg, "data"))


def test_dcgan_trains_on_digits_from_the_cli_and_scores_with_the_classifier(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "-q", "-o", str(run_dir), "-s", *TINY_DCGAN]) == 0
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert "CNN classifier trained by ganscope" in summary["verdict"]
    assert [s["n_samples"] for s in summary["scores"]] == [300, 300]
    assert np.load(run_dir / "samples.npy").shape == (2, 300, 1, 8, 8)
    capsys.readouterr()

    png = tmp_path / "grid.png"
    assert main(["sample", str(run_dir), "-n", "12", "--all-seeds", "-o", str(png)]) == 0
    with Image.open(png) as image:  # 2 rows of 12 8x8 images, 1-pixel borders
        assert image.size == (12 * 9 + 1, 2 * 9 + 1) and image.mode == "L"
    samples = tmp_path / "s.npy"
    assert main(["sample", str(run_dir), "-n", "200", "-o", str(samples)]) == 0
    capsys.readouterr()
    assert main(["score", "--data", "digits", str(samples), "--metric", "frechet"]) == 0
    out = capsys.readouterr().out
    assert "feature-space metrics in the oracle classifier's penultimate features (an FD here is not an FID)" in out


def test_png_samples_of_point_data_are_refused_in_one_line(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "ring"
    assert main(["train", "-q", "-o", str(run_dir), "-s", "train.steps=2", "train.eval_every=2",
                 "train.eval_samples=50"]) == 0
    capsys.readouterr()
    assert main(["sample", str(run_dir), "-o", str(tmp_path / "x.png")]) != 0
    err = capsys.readouterr().err.strip()
    assert err == "ganscope: ring samples are points, not images; write them with -o FILE.npy"
    assert not (tmp_path / "x.png").exists()


def test_stacked_runs_report_the_protocol_numbers_per_seed_and_over_the_population(tmp_path: Path) -> None:
    cfg = ganscope.load_config(overrides=[*TINY_DCGAN, "data.name=stacked-digits", "train.steps=4",
                                          "train.eval_every=4"])
    summary = Run.create(cfg, tmp_path / "run").fit(progress=False)
    for score in summary["scores"]:
        assert set(score["protocol"]) == {"n_samples", "modes", "kl", "oracle_held_out_accuracy"}
        assert score["protocol"]["modes"] == sum(c > 0 for c in score["nearest_counts"])
    assert summary["protocol_modes_mean"] == np.mean([s["protocol"]["modes"] for s in summary["scores"]])
    assert "protocol over all samples:" in summary["verdict"]


def test_stacked_data_evaluates_the_protocols_26000_samples_unless_told(tmp_path: Path) -> None:
    stacked, ring = data("stacked-digits"), data("ring")
    assert evaluation_size(ganscope.load_config(), stacked) == 26_000
    assert evaluation_size(ganscope.load_config(), ring) == 2500
    assert evaluation_size(ganscope.load_config(overrides=["train.eval_samples=700"]), stacked) == 700


def test_a_run_keeps_bounded_samples_of_images_but_every_point() -> None:
    assert len(final_indices(2500, 2)) == 2500
    assert len(final_indices(26_000, 3 * 28 * 28)) == (1 << 22) // (3 * 28 * 28)
    kept = snapshot_indices(26_000, 3 * 28 * 28)
    assert len(kept) == (1 << 16) // (3 * 28 * 28) and kept[0] == 0 and kept[-1] > 25_000  # spread over all


# ---- devices -----------------------------------------------------------------------------


def test_devices_resolve_and_a_missing_gpu_is_one_line() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match=r"^train.device=cuda:1 but PyTorch sees no CUDA device here .*"
                                          r"use the device cpu or auto \(-s train.device=..., or --device for eval and sample\)$"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "tpu"])
def test_unknown_devices_are_refused_when_the_config_loads(bad: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown device '{bad}'; use auto, cpu, cuda or cuda:N"):
        ganscope.load_config(overrides=[f"train.device={bad}"])


def test_a_run_is_evaluated_and_sampled_where_asked_leaving_its_config_alone(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "-q", "-o", str(run_dir), "-s", *TINY_DCGAN, "train.steps=2", "train.eval_every=2"]) == 0
    config = (run_dir / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--device", "cpu", "-n", "50"]) == 0
    assert main(["sample", str(run_dir), "--device", "cpu", "-n", "5", "-o", str(tmp_path / "s.npy")]) == 0
    assert (run_dir / "config.yaml").read_text() == config
    if not torch.cuda.is_available():
        capsys.readouterr()
        assert main(["eval", str(run_dir), "--device", "cuda"]) == 2
        assert "PyTorch sees no CUDA device here" in capsys.readouterr().err


def test_draws_are_the_same_numbers_whatever_the_device_they_are_sent_to() -> None:
    on_cpu = PopulationRandom([3, 4], "noise").randn(5, 2)
    sent = PopulationRandom([3, 4], "noise", device=torch.device("cpu")).randn(5, 2)
    assert torch.equal(on_cpu, sent) and sent.device == torch.device("cpu")


# ---- the monitor on images ---------------------------------------------------------------


def evaluation(counts: np.ndarray) -> Evaluation:
    return Evaluation(step=1000, counts=counts.astype(float), hq_fraction=0.9, duplicate_fraction=0.01,
                      spread_ratio=1.0, nearest_counts=counts.astype(float), global_spread_ratio=1.0)


def test_dropping_judges_only_modes_whose_absence_is_not_chance() -> None:
    uniform = np.full(1000, 1e-3)
    detector = Dropping(DroppingParams())
    rng = np.random.default_rng(0)
    perfect_small = rng.multinomial(2500, uniform)  # ~80 modes get no sample by chance (e^-2.5)
    assert (perfect_small == 0).sum() > 40
    history = History(uniform)
    history.add_eval(evaluation(perfect_small))
    assert detector.check(history) is None
    dropped = rng.multinomial(26_000, uniform)
    dropped[:3] = 0
    history = History(uniform)
    history.add_eval(evaluation(dropped))
    finding = detector.check(history)
    assert finding is not None and finding.evidence["modes_dropped"] == 3


@pytest.mark.parametrize("name", ["digits", "stacked-digits"])
def test_diversity_in_classifier_features_is_about_one_on_real_images_and_flags_repeats(name: str) -> None:
    images = data(name)
    cfg = ganscope.load_config(overrides=[f"data.name={name}", "train.eval_samples=1000"])
    diversity = Monitor(cfg, images).diversity
    real = images.reference(1000, torch.Generator().manual_seed(1))  # no repeats, other draws than the monitor's
    real_stats = diversity.measure(real)
    assert real_stats["duplicate_fraction"] < 0.05 and 0.9 < real_stats["global_spread_ratio"] < 1.1
    if name == "digits":  # 1000 stacked samples hold too few per triple to measure a spread (NaN)
        assert 0.85 < real_stats["spread_ratio"] < 1.15
    five = diversity.measure(real[torch.arange(1000) % 5])  # five images over and over: all near-duplicates
    assert five["duplicate_fraction"] == 1.0 and five["global_spread_ratio"] > 0.5  # ...though far apart
    one = diversity.measure(real[torch.zeros(1000, dtype=torch.long)])
    assert one["duplicate_fraction"] == 1.0 and one["global_spread_ratio"] < 1e-6


@pytest.mark.parametrize("condition", ["healthy", "collapse", "dropping"])
def test_constructed_digit_image_streams_raise_their_own_event_and_nothing_else(condition: str) -> None:
    """Real training images standing for a generator's samples (streams.draw_images): the
    monitor reading the classifier names the condition at or after its onset, and a
    healthy stream raises nothing."""
    from ganscope.monitor.streams import Schedule, build_stream

    digits = data("digits")
    cfg = ganscope.load_config(overrides=["data.name=digits"])
    monitor = Monitor(cfg, digits)
    stream = build_stream(condition, monitor, digits, np.random.default_rng([1, 2]), Schedule(samples=1000))
    started = [(e.kind, e.step) for e in monitor.observe(stream.records) if e.status == "started"]
    if condition == "healthy":
        assert started == []
    else:
        assert [kind for kind, _ in started] == [condition] and started[0][1] >= stream.onset
