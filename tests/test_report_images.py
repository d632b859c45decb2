"""The report of an image run: grids of pictures instead of scatter plots, the modes and
t-SNE pictures in the oracle's terms, the memorisation check, and the page in a browser."""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganscope
from ganscope.report import REPORT, figures, single
from ganscope.report.runs import RunFolder
from tests.test_report import chromium, data_uris_only, render_in_chromium  # noqa: F401 (chromium is a fixture)

PICTURES = ("samples.png", "evolution.png", "training.gif", "nearest.png", "modes.png", "tsne.png", "curves.png")

# A DCGAN on the 8x8 digits: two seeds, evaluations at steps 20 and 40, 300 samples each.
IMAGE_RUN = [
    "data.name=digits", "generator.name=dcgan", "discriminator.name=dcgan", "noise.z_dim=16",
    "generator.width=16", "discriminator.width=16", "train.batch_size=32", "train.steps=40",
    "train.eval_every=20", "train.eval_samples=300", "train.log_every=10", "train.checkpoint_every=40",
    "train.seeds=2", "train.lr_schedule=constant",
]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("images") / "digits-dcgan"
    ganscope.Run.create(ganscope.load_config(overrides=IMAGE_RUN), run_dir).fit(progress=False)
    return run_dir


def test_every_picture_is_written_and_readable(image_run: Path) -> None:
    for name in PICTURES:
        with Image.open(image_run / name) as picture:
            picture.verify()  # a complete, undamaged PNG or GIF
        with Image.open(image_run / name) as picture:
            assert picture.format == ("GIF" if name.endswith(".gif") else "PNG"), name
            assert picture.width >= 300 and picture.height >= 150, (name, picture.size)
    with Image.open(image_run / "training.gif") as gif:
        assert gif.n_frames == 2  # one frame per evaluation
    with Image.open(image_run / "samples.png") as samples:
        assert samples.width > 2.5 * 300  # the real grid and one grid per seed, side by side


def test_page_lists_the_pictures_with_what_they_measure(image_run: Path) -> None:
    page = (image_run / REPORT).read_text()
    data_uris_only(page)
    assert page.count("<img") == len(PICTURES)
    captions = {re.sub(r"<.*?>", "", html.unescape(title)): html.unescape(text) for title, text in
                re.findall(r"<figcaption><strong>(.*?)\.</strong> (.*?)</figcaption>", page)}
    assert set(captions) == {"Final samples", "Samples at evaluations", "Training, animated",
                             "Nearest real images (memorisation check)", "Samples per mode against the true weights",
                             "t-SNE map of real and generated samples", "Training curves"}
    assert "real data (digits" in captions["Final samples"]
    assert "8 x 8 images" in captions["Final samples"] and "4 x 4 images" in captions["Samples at evaluations"]
    assert "classified with confidence >= 0.9" in captions["Final samples"]
    features = "the oracle classifier's penultimate features (an FD here is not an FID), 256 numbers per image"
    assert features in captions["t-SNE map of real and generated samples"]  # not pixels
    nearest = captions["Nearest real images (memorisation check)"]
    assert features in nearest and "all 1,442 training images" in nearest and "near 0" in nearest
    assert "principal components" not in page  # no scatter plot of pixels


def test_image_grid_puts_each_image_in_its_cell() -> None:
    images = np.full((5, 1, 2, 3), -1.0)  # five 2x3 grey images, black ...
    for i in range(5):
        images[i, 0, 1, 2] = 1.0 - 0.5 * i  # ... but the bottom-right pixel, 1, 0.5, 0, -0.5, -1
    frames = np.array([[1.0, 0.0, 0.0]] * 5)
    grid = figures.image_grid(images, cols=2, frames=frames, border=1)
    assert grid.shape == (3 * 4, 2 * 5, 3)  # 3 rows of (2 + 2) pixels, 2 columns of (3 + 2)
    for i in range(5):
        top, left = (i // 2) * 4, (i % 2) * 5
        cell = grid[top:top + 4, left:left + 5]
        np.testing.assert_array_equal(cell[0], [[1.0, 0.0, 0.0]] * 5)  # the frame's top edge
        np.testing.assert_array_equal(cell[1:3, 1:4, 0], [[0, 0, 0], [0, 0, 1.0 - 0.25 * i]])  # [-1, 1] -> [0, 1]
    np.testing.assert_array_equal(grid[8:12, 5:10], 1.0)  # the sixth cell is empty: white


def test_channels_are_rgb_when_three_else_side_by_side() -> None:
    three = np.zeros((1, 3, 2, 2))
    three[0, 0] = 1.0  # red channel at full
    np.testing.assert_array_equal(figures.to_rgb(three)[0, 0, 0], [1.0, 0.5, 0.5])
    two = np.stack([np.full((2, 2), -1.0), np.full((2, 2), 1.0)])[None]  # (1, 2, 2, 2)
    rgb = figures.to_rgb(two)
    assert rgb.shape == (1, 2, 4, 3)
    np.testing.assert_array_equal(rgb[0, :, :, 0], [[0, 0, 1, 1], [0, 0, 1, 1]])


def test_closest_pairs_finds_a_copied_real_sample_at_distance_zero() -> None:
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(50, 16, generator=gen, dtype=torch.float64)
    fake = torch.randn(20, 16, generator=gen, dtype=torch.float64) + 5.0  # far from every real row ...
    fake[13] = real[7]  # ... but one exact copy
    fake[4] = real[30] + 0.01  # and one near copy
    pairs = single.closest_pairs(fake, real, 3)
    assert pairs.fake[:2].tolist() == [13, 4] and pairs.real[:2].tolist() == [7, 30]
    assert pairs.distance[0] == 0.0
    assert pairs.distance[1] == pytest.approx(0.01 * math.sqrt(16), rel=1e-9)
    assert pairs.distance[2] > 1.0


def test_a_training_image_passed_as_a_sample_is_found_in_classifier_features(image_run: Path) -> None:
    run = RunFolder.load(image_run)
    oracle = run.data.oracle
    reference = run.reference
    assert len(reference) == 1442  # every training image of the 8x8 digits
    fake = np.concatenate([run.final[0, :30], reference[[11]], run.final[0, 30:60]])
    pairs = single.closest_pairs(oracle.embed(torch.from_numpy(fake)), oracle.embed(torch.from_numpy(reference)), 2)
    assert (pairs.fake[0], pairs.real[0]) == (30, 11)
    assert pairs.distance[0] == pytest.approx(0.0, abs=1e-6) and pairs.distance[1] > 0.1


def test_many_modes_are_ranked_with_the_protocols_numbers(image_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = [500] + [250] * 2 + [0] * 997  # 1000 modes, three hit
    title = single._all_samples_score({"nearest_counts": counts}, np.full(1000, 1e-3))
    kl = 0.5 * math.log(0.5 * 1000) + 2 * 0.25 * math.log(0.25 * 1000)
    assert title == f"all 1,000 samples: 3/1000 modes, KL {kl:.2f}"
    assert (single._colour_group(10), single._colour_group(1000)) == (1, 100)  # triples coloured by their first digit
    monkeypatch.setattr(figures, "MAX_BAR_MODES", 5)  # the digits' 10 modes take the many-modes branch
    run = RunFolder.load(image_run)
    picture = single._modes_picture(run, ["a", "b"])
    assert picture.title == "Samples per mode, modes ranked"
    assert "KL(sample histogram || true weights)" in picture.caption
    assert picture.content.startswith(b"\x89PNG")


def test_image_report_renders_in_headless_chromium(
    chromium: str, image_run: Path, tmp_path: Path  # noqa: F811 (the imported fixture)
) -> None:
    probe = render_in_chromium(chromium, image_run / REPORT, tmp_path)
    assert len(probe["widths"]) == len(PICTURES) and all(w > 0 for w in probe["widths"]), probe["widths"]
    assert probe["errors"] == []
    assert {"Seeds", "Events", "Samples", "Modes", "Curves"} <= set(probe["sections"])
