"""The user's own images: a folder of PNG/JPEG files (`image-folder`) and a .npy/.npz array
(`images`): reading, layouts, ranges, resizing, labels, every bad input, both mode
oracles (a trained classifier with labels, pixel clusters without), the digit oracles'
unchanged cache keys, and training a DCGAN on an array from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganscope.cli import main
from ganscope.config import load_config, piece_params
from ganscope.data import DATASETS
from ganscope.data.image_files import ClusteredImages, LabelledImages
from ganscope.data.images import digits_split, mnist_split
from ganscope.data.oracle import ClassifierRecipe, ImageClassifier, cache_key
from ganscope.errors import DataError

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 40), (40, 60, 230)


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Classifiers train into a temporary cache, never the user's."""
    monkeypatch.setenv("GANSCOPE_CACHE", str(tmp_path_factory.getbasetemp() / "oracle-cache"))


def build(name: str, *options: str):
    cfg = load_config(overrides=[f"data.name={name}", *[f"data.{o}" for o in options]])
    return DATASETS.get(name)(piece_params(cfg, "data"))


def save(path: Path, pixels: np.ndarray | Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)).save(path)
    return path


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits as uint8 0..255 (pixel 16 -> 255) and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.minimum(digits.images * 16, 255).astype(np.uint8), digits.target


def disc(colour: tuple[int, int, int], size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A coloured disc of random radius near the centre of a black image (width, height)."""
    from PIL import ImageDraw

    image = Image.new("RGB", size)
    w, h = size
    r, cx, cy = min(w, h) * rng.uniform(0.2, 0.4), w / 2 + rng.uniform(-2, 2), h / 2 + rng.uniform(-2, 2)
    ImageDraw.Draw(image).ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    return image


def patterns(n_per: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Four kinds of 16x16 grey images (horizontal bar, vertical bar, square, diagonal)
    with pixel noise: (4 n_per, 16, 16) uint8 and each image's kind."""
    base = np.zeros((4, 16, 16))
    base[0, 6:10, :] = 200
    base[1, :, 6:10] = 200
    base[2, 4:12, 4:12] = 200
    base[3] = np.eye(16) * 200 + np.eye(16, k=1) * 200
    kinds = np.repeat(np.arange(4), n_per)
    noisy = base[kinds] + rng.uniform(0, 40, (len(kinds), 16, 16))
    return noisy.clip(0, 255).astype(np.uint8), kinds


def one_line_error(call, match: str) -> str:  # noqa: ANN001
    with pytest.raises(DataError, match=match) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- the digit oracles are untouched ----------------------------------------------------


def test_digit_oracle_cache_keys_and_network_are_unchanged() -> None:
    """The generalised classifier keeps the keys (and weight names) of the cached digit
    oracles: retraining mnist's costs over a minute."""
    recipe = ClassifierRecipe()
    assert cache_key(mnist_split(), recipe) == "29aa87cc1c5f3731795b6d9a2f3c91046f00af8b7c3b6b5a57175651c1dc367e"
    assert cache_key(digits_split(8), recipe) == "0ec73c1d6f357f7cbe9ef8189f0d25d13bba94c774c25aa50d3430390d5508d8"
    net = ImageClassifier.for_split(digits_split(8), recipe)
    assert (net.in_channels, net.n_classes) == (1, 10)
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == [
        ("body.0.weight", (32, 1, 3, 3)), ("body.0.bias", (32,)), ("body.3.weight", (64, 32, 3, 3)),
        ("body.3.bias", (64,)), ("body.7.weight", (256, 256)), ("body.7.bias", (256,)),
        ("head.1.weight", (10, 256)), ("head.1.bias", (10,)),
    ]


# -- folders ----------------------------------------------------------------------------


def test_class_folders_give_labels_and_pixels_come_back_exactly(tmp_path: Path) -> None:
    pixels, labels = sklearn_digits()
    chosen = np.concatenate([np.flatnonzero(labels == d)[:6] for d in range(3)])  # 6 each of 0, 1, 2
    for i in chosen:
        save(tmp_path / f"digit{labels[i]}" / f"{i:04d}.png", pixels[i])
    data = build("image-folder", f"path={tmp_path}", "size=8")
    assert isinstance(data, LabelledImages) and data.sample_shape == (1, 8, 8)
    assert data.source.class_names == ("digit0", "digit1", "digit2")
    assert data.source.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert data.points.dtype == torch.float32 and -1 <= float(data.points.min()) and float(data.points.max()) <= 1
    assert torch.equal(data.to_original_range(data.points).round().byte()[:, 0], torch.from_numpy(pixels[chosen]))
    # every 5th image of each class is held out to test the classifier; the generator trains on all
    assert len(data.split.test_labels) == 3 and data.split.test_labels.tolist() == [0, 1, 2]
    assert len(data.points) == 18
    pooled = build("image-folder", f"path={tmp_path}", "size=8", "classes=false")
    assert isinstance(pooled, ClusteredImages) and torch.equal(pooled.points, data.points)


def test_mixed_sizes_are_resized_and_centre_cropped(tmp_path: Path) -> None:
    wide = np.zeros((32, 96, 3), np.uint8)  # height 32, width 96: the crop keeps columns 32..63
    wide[:, :16], wide[:, 16:80], wide[:, 80:] = RED, GREEN, BLUE
    tall = np.zeros((60, 20, 3), np.uint8)  # the crop keeps rows 20..39
    tall[:10], tall[10:50], tall[50:] = RED, GREEN, BLUE
    save(tmp_path / "a_wide.png", wide)
    save(tmp_path / "b_tall.png", tall)
    save(tmp_path / "c_small_grey.png", np.full((5, 5), 77, np.uint8))
    save(tmp_path / "d_large.jpg", np.full((300, 200, 3), GREEN, np.uint8))
    save(tmp_path / "d_sixteen_bit.png", np.full((16, 16), 257 * 200, np.uint16))
    save(tmp_path / "d_palette.png", Image.fromarray(np.full((16, 16, 3), BLUE, np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE))
    for i in range(6):
        save(tmp_path / f"e{i}.png", np.full((16, 16, 3), (10 * i, 0, 0), np.uint8))
    data = build("image-folder", f"path={tmp_path}", "size=16")
    assert isinstance(data, ClusteredImages) and data.sample_shape == (3, 16, 16)
    restored = data.to_original_range(data.points).round().byte().permute(0, 2, 3, 1)
    assert (restored[0] == torch.tensor(GREEN, dtype=torch.uint8)).all()
    assert (restored[1] == torch.tensor(GREEN, dtype=torch.uint8)).all()
    assert (restored[2] == 77).all()  # grey, upsampled, its three channels equal
    assert (restored[3].int() - torch.tensor(GREEN)).abs().max() <= 3  # JPEG is lossy
    assert (restored[4] == torch.tensor(BLUE, dtype=torch.uint8)).all()  # palette (path order: d_large, d_palette)
    assert (restored[5] == 200).all()  # 16-bit 51400 is 8-bit 200


def test_channels_are_detected_or_forced(tmp_path: Path) -> None:
    for i in range(9):
        save(tmp_path / f"g{i}.png", np.full((8, 8), 20 * i, np.uint8))
    save(tmp_path / "rgb_but_grey.png", np.full((8, 8, 3), 50, np.uint8))
    assert build("image-folder", f"path={tmp_path}", "size=8").sample_shape == (1, 8, 8)
    forced = build("image-folder", f"path={tmp_path}", "size=8", "channels=3").points
    assert forced.shape == (10, 3, 8, 8) and torch.equal(forced[:, 0], forced[:, 2])
    save(tmp_path / "red.png", np.full((8, 8, 3), (255, 0, 0), np.uint8))
    assert build("image-folder", f"path={tmp_path}", "size=8").sample_shape == (3, 8, 8)
    grey = build("image-folder", f"path={tmp_path}", "size=8", "channels=1")
    assert grey.sample_shape == (1, 8, 8)
    red = 9  # path order: g0..g8, red, rgb_but_grey
    assert int(grey.to_original_range(grey.points[red]).round()[0, 0, 0]) == 76  # ITU-R 601-2 luma of pure red


def test_unreadable_files_are_skipped_with_one_count_or_stop_the_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(12):
        save(tmp_path / f"ok{i:02d}.png", np.full((8, 8), 10 * i, np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    good_jpeg = tmp_path / "whole.jpg"
    save(good_jpeg, np.full((64, 64, 3), 90, np.uint8))
    (tmp_path / "truncated.jpg").write_bytes(good_jpeg.read_bytes()[:200])
    good_jpeg.unlink()
    (tmp_path / "notes.txt").write_text("not an image file type: passed over, not counted")
    data = build("image-folder", f"path={tmp_path}", "size=8")
    assert len(data.points) == 12 and "2 unreadable files skipped" in data.oracle.description
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped 2 of 14 files" in err and "broken.png" in err
    one_line_error(lambda: build("image-folder", f"path={tmp_path}", "on_unreadable=stop"),
                   r"broken\.png: cannot identify image file.*data\.on_unreadable=skip")


def _folder_with(root: Path, files: dict[str, int]) -> Path:
    for name, count in files.items():
        for i in range(count):
            save(root / name.format(i=i), np.full((8, 8), 20 * i % 250, np.uint8))
    return root


@pytest.mark.parametrize(
    ("make", "options", "message"),
    [
        (lambda root: root / "missing", [], "does not exist; give data.path=FOLDER"),
        (lambda root: _folder_with(root, {"one{i}.png": 1}) / "one0.png", [], "is a file, not a folder"),
        (lambda root: root, [], "holds no .png, .jpg or .jpeg files"),
        (lambda root: (root / "x.txt").write_text("x") and root, [], "holds no .png"),
        (lambda root: _folder_with(root, {"a/{i}.png": 6, "b/{i}.png": 6, "loose{i}.png": 2}), [],
         r"holds 2 image\(s\) \(e.g. loose0.png\) beside its 2 class folders.*data.classes=false"),
        (lambda root: _folder_with(root, {"a/{i}.png": 6, "b/{i}.png": 4}), [],
         "class 'b' of folder .* has 4 image.*at least 5"),
        (lambda root: _folder_with(root, {"{i}.png": 9}), [], "holds 9 images; give at least 10"),
        (lambda root: (root / "x.png").write_bytes(b"junk") and root, [], "none of the 1 image files .* can be read"),
        (lambda root: _folder_with(root, {"a/{i}.png": 6, "b/{i}.png": 6}), ["n_modes=3"],
         "data.n_modes applies to unlabelled images; these have 2 classes.*data.classes=false"),
        (lambda root: _folder_with(root, {"{i}.png": 12}), ["hq_confidence=0.8"],
         "data.hq_confidence applies to labelled images"),
        (lambda root: _folder_with(root, {"{i}.png": 12}), ["n_modes=20"], "n_modes=20 exceeds the 12 distinct"),
    ],
)
def test_bad_folders_give_one_line(make, options: list[str], message: str, tmp_path: Path) -> None:  # noqa: ANN001
    path = make(tmp_path)
    one_line_error(lambda: build("image-folder", f"path={path}", "size=8", *options).oracle, message)


def test_labelled_rgb_folder_trains_a_three_channel_oracle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    for name, colour in (("blue", BLUE), ("green", GREEN), ("red", RED)):
        for i in range(15):
            save(tmp_path / name / f"{i:02d}.png", disc(colour, tuple(rng.integers(20, 40, 2)), rng))
    data = build("image-folder", f"path={tmp_path}", "size=16", "classifier_epochs=20")
    oracle = data.oracle
    assert oracle.classifier.net.in_channels == 3 and oracle.n_modes == 3
    assert torch.allclose(oracle.weights, torch.full((3,), 1 / 3, dtype=torch.float64))
    assert oracle.classifier.held_out_accuracy == 1.0
    assert oracle.description.startswith("3 classes (blue, green, red) of the 45 images of folder")
    assert "held-out accuracy 100.0% on 9" in oracle.description
    assert oracle.quality_rule == "classified with confidence >= 0.9"
    assignment = oracle.assign(data.points)
    assert torch.equal(assignment.mode, data.source.labels) and float(assignment.high_quality.double().mean()) > 0.8
    assert oracle.features(data.points[:4]).shape == (4, 256) and torch.equal(oracle.embed(data.points[:4]),
                                                                               oracle.features(data.points[:4]))
    assert main(["oracle", "image-folder", "--data-option", f"path={tmp_path}", "--data-option", "size=16",
                 "--data-option", "classifier_epochs=20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["from_cache"] and result["n_modes"] == 3 and result["held_out_accuracy"] == 1.0


# -- arrays -----------------------------------------------------------------------------


def test_array_layouts_read_alike_and_uint8_comes_back_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (12, 10, 10, 3), dtype=np.uint8)
    np.save(tmp_path / "last.npy", rgb)
    np.save(tmp_path / "first.npy", rgb.transpose(0, 3, 1, 2))
    last, first = build("images", f"path={tmp_path / 'last.npy'}"), build("images", f"path={tmp_path / 'first.npy'}")
    assert last.sample_shape == (3, 10, 10) and torch.equal(last.points, first.points)
    assert torch.equal(last.to_original_range(last.points).round().byte(), torch.from_numpy(rgb.transpose(0, 3, 1, 2)))
    grey = rgb[..., 0]
    for name, array in (("hw", grey), ("hw1", grey[..., None]), ("1hw", grey[:, None])):
        np.save(tmp_path / f"{name}.npy", array)
        data = build("images", f"path={tmp_path / name}.npy")
        assert data.sample_shape == (1, 10, 10) and torch.equal(data.points, last.points[:, :1])
    assert float(last.points.min()) == -1.0 or int(rgb.min()) > 0
    assert "uint8" in last.source.describe() and "pixels 0..255" in last.source.describe()


@pytest.mark.parametrize(
    ("scale", "described"),
    [
        (lambda x: x / 255.0, "pixels 0..1, detected"),
        (lambda x: (x / 127.5 - 1).astype(np.float32), "pixels -1..1, detected"),
        (lambda x: x.astype(np.float64), "pixels 0..255, detected"),
        (lambda x: x.astype(np.int64), "pixels 0..255, detected: int64"),
        (lambda x: x.astype(np.uint16) * 257, "pixels 0..65535, detected: uint16"),
    ],
)
def test_pixel_ranges_are_detected_and_described(scale, described: str, tmp_path: Path) -> None:  # noqa: ANN001
    pixels = np.random.default_rng(2).integers(0, 256, (10, 8, 8), dtype=np.uint8)
    pixels[0, 0, :2] = (0, 255)  # the full range, so each scale reaches both of its ends
    original = scale(pixels)
    np.save(tmp_path / "x.npy", original)
    data = build("images", f"path={tmp_path / 'x.npy'}")
    assert described in data.oracle.description
    assert torch.allclose(data.points[:, 0], torch.from_numpy(pixels / 127.5 - 1).float(), atol=1e-6)
    assert torch.allclose(data.to_original_range(data.points)[:, 0].double(), torch.from_numpy(original).double(),
                          rtol=1e-6, atol=1e-5 * float(np.abs(original).max()))


def test_pixel_range_settles_an_ambiguous_float_array(tmp_path: Path) -> None:
    bright = np.random.default_rng(3).uniform(0.0, 1.0, (10, 8, 8)).astype(np.float32)  # meant as [-1, 1]
    bright[0, 0, :2] = (0, 1)
    np.save(tmp_path / "x.npy", bright)
    assert torch.allclose(build("images", f"path={tmp_path / 'x.npy'}").points[:, 0], torch.from_numpy(bright) * 2 - 1)
    given = build("images", f"path={tmp_path / 'x.npy'}", "pixel_range=[-1, 1]")
    assert torch.allclose(given.points[:, 0], torch.from_numpy(bright), atol=1e-7)
    assert "data.pixel_range" in given.source.describe()
    one_line_error(lambda: build("images", f"path={tmp_path / 'x.npy'}", "pixel_range=[0, 0.5]"),
                   r"values from 0 to 1, outside data.pixel_range \[0.0, 0.5\]")


def test_non_square_arrays_need_a_size_and_are_centre_cropped(tmp_path: Path) -> None:
    images = np.zeros((10, 3, 12, 20), np.uint8)
    images[..., 4:16] = 128  # the centre 12x12 square
    images[0, 0, 0, 0] = 255
    np.save(tmp_path / "wide.npy", images)
    one_line_error(lambda: build("images", f"path={tmp_path / 'wide.npy'}"),
                   r"holds 12x20 images, not square; set data.size=N")
    same = build("images", f"path={tmp_path / 'wide.npy'}", "size=12")
    assert same.sample_shape == (3, 12, 12)
    assert torch.equal(same.to_original_range(same.points).round().byte(), torch.from_numpy(images[..., 4:16]))
    smaller = build("images", f"path={tmp_path / 'wide.npy'}", "size=8")
    assert smaller.sample_shape == (3, 8, 8)
    assert torch.allclose(smaller.points[1:], torch.full((9, 3, 8, 8), 128 / 127.5 - 1), atol=1e-6)


def test_labels_from_an_npz_key_or_a_second_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (20, 8, 8), dtype=np.uint8)
    names = np.array(["cat", "dog"] * 10)
    np.savez(tmp_path / "both.npz", images=images, kind=names)
    data = build("images", f"path={tmp_path / 'both.npz'}", "labels_key=kind")
    assert data.source.class_names == ("cat", "dog") and data.source.labels.tolist() == [0, 1] * 10
    np.save(tmp_path / "labels.npy", np.arange(20, dtype=np.float64)[:, None] % 2 + 3)
    apart = build("images", f"path={tmp_path / 'both.npz'}", "key=images", f"labels_path={tmp_path / 'labels.npy'}")
    assert apart.source.class_names == ("3", "4") and torch.equal(apart.source.labels, data.source.labels)
    assert torch.equal(apart.points, data.points)


def _save_array(root: Path, array: np.ndarray, **extra: np.ndarray) -> Path:
    if extra:
        np.savez(root / "x.npz", images=array, **extra)
        return root / "x.npz"
    np.save(root / "x.npy", array)
    return root / "x.npy"


_IMAGES = np.random.default_rng(5).integers(0, 256, (12, 8, 8), dtype=np.uint8)


@pytest.mark.parametrize(
    ("make", "options", "message"),
    [
        (lambda root: root / "none.npy", [], "images file .* does not exist"),
        (lambda root: root, [], "is a folder; .*data.name=image-folder"),
        (lambda root: (root / "x.csv").write_text("1,2") and root / "x.csv", [], "unsupported file type '.csv'"),
        (lambda root: _save_array(root, _IMAGES.reshape(12, 64)), [], r"shape \(12, 64\); give images \(N, H, W\)"),
        (lambda root: _save_array(root, _IMAGES[:, None, None]), [], r"shape \(12, 1, 1, 8, 8\)"),
        (lambda root: _save_array(root, np.zeros((12, 8, 8, 4), np.uint8)), [], "C = 1 or 3 channels"),
        (lambda root: _save_array(root, _IMAGES[:9]), [], "holds 9 images; give at least 10"),
        (lambda root: _save_array(root, np.zeros((12, 4, 4), np.uint8)), [], "4x4 images; set data.size=8"),
        (lambda root: _save_array(root, np.full((12, 8, 8), np.nan)), [], "NaN or infinite"),
        (lambda root: _save_array(root, np.full((12, 8, 8), 300.0)), [], r"in none of \[0, 1\], \[-1, 1\], \[0, 255\]"),
        (lambda root: _save_array(root, np.full((12, 8, 8), -5)), [], "integers from -5 to -5"),
        (lambda root: _save_array(root, np.full((12, 8, 8), "a")), [], "holds <U1 values; images must be numbers"),
        (lambda root: _save_array(root, _IMAGES, other=_IMAGES), [], r"holds arrays \['images', 'other'\]; .*data.key"),
        (lambda root: _save_array(root, _IMAGES, y=np.arange(11)), ["labels_key=y"], "holds 11 labels for 12 images"),
        (lambda root: _save_array(root, _IMAGES, y=np.zeros((12, 2))), ["labels_key=y"], r"labels .* shape \(12, 2\)"),
        (lambda root: _save_array(root, _IMAGES, y=np.arange(12) / 2), ["labels_key=y"], "fractional"),
        (lambda root: _save_array(root, _IMAGES, y=np.zeros(12)), ["labels_key=y"], r"hold one class \(0\)"),
        (lambda root: _save_array(root, _IMAGES, y=np.arange(12) % 2), ["labels_key=z"],
         r"holds arrays \['images', 'y'\]; choose the labels with data.labels_key"),
        (lambda root: _save_array(root, _IMAGES, y=np.arange(12) % 2), ["labels_key=y", "hq_confidence=0.3"],
         "hq_confidence=0.3 is not above 1/2"),
        (lambda root: (root / "x.npy").write_bytes(b"\x93NUMPY garbage") and root / "x.npy", [],
         "could not be read as a numeric array"),
    ],
)
def test_bad_arrays_give_one_line(make, options: list[str], message: str, tmp_path: Path) -> None:  # noqa: ANN001
    path = make(tmp_path)
    one_line_error(lambda: build("images", f"path={path}", *options), message)


# -- mode oracles -----------------------------------------------------------------------


def test_labelled_digits_array_trains_the_digits_oracle_split(tmp_path: Path) -> None:
    """The digits as an array with labels: the same split, hence the same classifier as
    the `digits` dataset's, with its held-out accuracy."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "digits.npz", images=digits.images, labels=digits.target)
    data = build("images", f"path={tmp_path / 'digits.npz'}", "labels_key=labels", "pixel_range=[0, 16]",
                 "classifier_epochs=4")
    reference = digits_split(8)
    assert torch.equal(data.split.train_images, reference.train_images)
    assert cache_key(data.split, data.recipe) == cache_key(reference, data.recipe)
    oracle = data.oracle
    assert oracle.n_modes == 10 and oracle.classifier.held_out_accuracy >= 0.85
    assert "pixels 0..16, given by data.pixel_range" in oracle.description
    assert "held-out accuracy" in oracle.description and "on 355" in oracle.description
    assignment = oracle.assign(reference.test_images)
    assert float((assignment.mode == reference.test_labels).double().mean()) == pytest.approx(
        oracle.classifier.held_out_accuracy)


def test_unlabelled_oracle_recovers_constructed_clusters(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    pixels, kinds = patterns(25, rng)
    for i, image in enumerate(pixels):
        save(tmp_path / f"{i:03d}.png", image)
    data = build("image-folder", f"path={tmp_path}", "size=16")
    oracle = data.oracle
    assert oracle.n_modes == 4
    assignment = oracle.assign(data.points)
    clusters = assignment.mode.reshape(4, 25)
    assert (clusters == clusters[:, :1]).all() and len(set(clusters[:, 0].tolist())) == 4  # each kind one cluster
    assert torch.allclose(oracle.weights, torch.full((4,), 0.25, dtype=torch.float64))
    assert float(assignment.high_quality.double().mean()) >= 0.989
    noise = torch.rand(50, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert not oracle.assign(noise).high_quality.any()
    assert oracle.embed(data.points).shape == (100, 50)
    assert oracle.description.startswith("4 k-means clusters (k by the best mean silhouette over 2..20) of PCA(50) "
                                         "pixel features")
    assert "the 100 images of folder" in oracle.description and "98.9% of the real images meet" in oracle.description
    assert "PCA(50)" in oracle.feature_space and "cluster centre" in oracle.quality_rule
    two = build("image-folder", f"path={tmp_path}", "size=16", "n_modes=2", "pca_dims=5", "hq_threshold=2.5").oracle
    assert two.n_modes == 2 and two.embed(data.points).shape == (100, 5)
    assert "2 k-means clusters (k = data.n_modes) of PCA(5)" in two.description
    assert "within 2.50 cluster std of a centre (data.hq_threshold, which" in two.description


# -- end to end -------------------------------------------------------------------------


def test_cli_trains_a_dcgan_on_an_image_array(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pixels, _ = patterns(10, np.random.default_rng(7))
    np.save(tmp_path / "x.npy", pixels)
    run_dir = tmp_path / "run"
    assert main(["train", "-s", "data.name=images", "-s", f"data.path={tmp_path / 'x.npy'}",
                 "-s", "generator.name=dcgan", "-s", "discriminator.name=dcgan", "-s", "generator.width=8",
                 "-s", "discriminator.width=8", "-s", "noise.z_dim=8", "-s", "train.steps=4",
                 "-s", "train.batch_size=8", "-s", "train.eval_every=2", "-s", "train.eval_samples=64",
                 "-o", str(run_dir)]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "k-means clusters" in summary["modes_found_by"] and f"{tmp_path / 'x.npy'}" in summary["modes_found_by"]
    samples = np.load(run_dir / "samples.npy")
    assert samples.shape == (1, 64, 1, 16, 16) and np.abs(samples).max() <= 1
    assert "modes covered" in capsys.readouterr().out
