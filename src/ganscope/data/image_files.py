"""The user's own images as datasets: a folder of PNG/JPEG files (`image-folder`) or an
array in a .npy/.npz file (`images`).

Inside, pixels are float32 in [-1, 1] (a tanh generator's range), images (N, C, side,
side) with C 1 (grayscale) or 3 (RGB); `to_original_range` maps them back to the
source's range for saving (0-255 for files and 8-bit arrays). Training draws the images
with replacement, the metrics' reference without (`FiniteDataset`).

**Folder** (`image-folder`). Every .png, .jpg and .jpeg file under `data.path` (any case,
any depth; hidden files and folders and other file types are passed over), in the order
of their paths, read with Pillow: 16-bit images scaled to 8 bits, alpha dropped,
converted to grayscale (Pillow's "L", ITU-R 601-2 luma) or RGB, then resized so that the
shorter side is `data.size` and centre-cropped to a square (`ImageOps.fit`, Lanczos), so
files of any size and aspect ratio become one shape. `data.channels` is 1 or 3, or unset:
1 when no image has colour (grayscale files, or R = G = B in every pixel), else 3. When
the folder's sub-folders hold images and there are at least two of them, each is a class
(sorted by name; `data.classes=false` pools them instead), and images loose beside them
are an error. A file Pillow cannot read is skipped, with one line that counts them all
(`data.on_unreadable=skip`, the default), or stops the build with its name (`stop`).

**Array** (`images`). (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3 (the layout is
read from where a 1 or 3 stands beside a square). The pixel range is 0-255 for uint8
arrays; other integers 0-255 when they fit, else 0-65535; floats [0, 1] or [-1, 1] when
they lie within them (within 1e-3; [-1, 1] when any value is negative), else [0, 255].
A [-1, 1] array that never goes below 0 therefore reads as [0, 1]:
`data.pixel_range=[-1, 1]` settles it, and the modes' description always says which
range was used and whether it was detected. `data.size` resizes (antialiased bilinear)
and centre-crops to size x size, as the folder does; without it the array's own side is
kept, and non-square images are an error that says to set it. Labels, optional, are an
array in the same .npz (`data.labels_key`) or a .npy/.npz file (`data.labels_path`): one
per image, integers or strings, each distinct value a class.

**Modes, with labels** (class folders or a labels array): ganscope's CNN classifier
(`ganscope.data.oracle`, cached under a hash of the images and the recipe) trained on a
fixed split, every 5th image of each class held out in file order (`held_out_mask`, as
for mnist); its held-out accuracy is in the description. A sample's mode is its
predicted class; it is high quality when the classifier is at least `data.hq_confidence`
(0.9) sure. Unlike mnist's, the generator trains on every image: the held-out images
test the classifier, not the generator, and a user's images are too few to withhold.
Each class needs at least 5 images (so that one is held out).

**Modes, without labels**: clusters of the images in PCA(`data.pca_dims`, 50) of their
pixels, by k-means with k = `data.n_modes`, or else the k in 2..`data.max_modes` (20)
with the best mean silhouette (Rousseeuw 1987; on at most 2,000 images). A sample's mode
is its nearest cluster centre in that space, in units of the cluster's rms spread per
dimension (`MixtureOracle`, as `file` does for points), and `embed` is that PCA space. A
sample is high quality within `data.hq_threshold` such units of the centre; by default
the distance that 98.9% of the real images meet (the probability mass of 3 std in 2-D,
the ring and grid protocols' rule), measured on them, because pixel clusters are not
spherical Gaussians and a chi quantile would call a tenth of the real images low
quality. Limits: pixel clusters group images that look alike pixel by pixel (layout,
colour, brightness), not by what they show, so an object moved by a few pixels lands
in another cluster or none; the silhouette prefers a few well-separated groups and
never answers "one mode". Where labels exist they give modes by content.
"""

from __future__ import annotations

import functools
import math
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from ganscope.data.base import DATASETS, FiniteDataset, ModeAssignment, ModeOracle
from ganscope.data.files import MIN_POINTS
from ganscope.data.images import HELD_OUT_EVERY, DigitDataset, DigitParams, DigitSplit, held_out_mask, to_original_range
from ganscope.data.mixture import _HQ_MASS_2D, MixtureOracle
from ganscope.data.oracle import ClassOracle
from ganscope.errors import DataError

if TYPE_CHECKING:
    from sklearn.cluster import KMeans

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Sides the datasets produce: DCGAN's smallest, and a CPU-sized largest (the oracle
#: classifier's hidden layer grows with the side squared).
MIN_SIDE, MAX_SIDE = 8, 128
#: Float values may stray this far outside a detected range (rounding by whoever saved them).
RANGE_TOLERANCE = 1e-3
#: The silhouette is computed on at most this many images (it costs N^2 distances).
SILHOUETTE_SAMPLE = 2000
#: Images resized per call when an array is resized: bounds the float copies in memory.
RESIZE_CHUNK = 1024
_SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N")
#: Parameters that only one kind of mode oracle reads.
CLASSIFIER_KEYS = ("hq_confidence", "classifier_epochs", "classifier_seed")
CLUSTER_KEYS = ("n_modes", "max_modes", "pca_dims", "hq_threshold", "cluster_seed")


class ImageOracleParams(DigitParams):
    """How the modes are found: the classifier's settings (`DigitParams`) for labelled
    images, these for unlabelled ones (see the module docstring)."""

    n_modes: PositiveInt | None = None
    max_modes: int = Field(20, ge=2)
    pca_dims: PositiveInt = 50
    hq_threshold: PositiveFloat | None = None
    cluster_seed: NonNegativeInt = 0


class ImageFolderParams(ImageOracleParams):
    path: Path
    size: int = Field(32, ge=MIN_SIDE, le=MAX_SIDE)
    channels: Literal[1, 3] | None = None
    classes: bool = True
    on_unreadable: Literal["skip", "stop"] = "skip"


class ImageArrayParams(ImageOracleParams):
    path: Path
    key: str | None = None
    labels_key: str | None = None
    labels_path: Path | None = None
    size: int | None = Field(None, ge=MIN_SIDE, le=MAX_SIDE)
    pixel_range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_label_source(self) -> Self:
        if self.labels_key is not None and self.labels_path is not None:
            raise ValueError("give labels_key (an array in the same .npz) or labels_path (a file), not both")
        if self.pixel_range is not None and self.pixel_range[0] >= self.pixel_range[1]:
            raise ValueError(f"pixel_range {list(self.pixel_range)} must be [low, high] with low < high")
        return self


@dataclass(frozen=True)
class PixelRange:
    """The source's pixel range [low, high], mapped to [-1, 1] inside, and how it was found."""

    low: float
    high: float
    how: str

    def to_unit(self, array: np.ndarray) -> torch.Tensor:
        """Pixels in [low, high] as float32 in [-1, 1] (clipped)."""
        scale = np.float32(2 / (self.high - self.low))
        scaled = (np.asarray(array, dtype=np.float32) - np.float32(self.low)) * scale - 1
        return torch.from_numpy(np.clip(scaled, -1, 1, out=scaled))

    def restore(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] back to [low, high] (clamped)."""
        return self.low + to_original_range(images, self.high - self.low)

    def describe(self) -> str:
        return f"pixels {self.low:g}..{self.high:g}, {self.how}"


@dataclass(frozen=True)
class ImageSet:
    """Images read from the user's folder or file, with their labels if they have any."""

    images: torch.Tensor  # (N, C, side, side) float32 in [-1, 1]
    labels: torch.Tensor | None  # (N,) int64, classes 0..K-1
    class_names: tuple[str, ...]
    pixel_range: PixelRange
    origin: str  # e.g. "folder photos/" or "x.npz[images]"

    def describe(self) -> str:
        n, channels, side = len(self.images), self.images.shape[1], self.images.shape[-1]
        colour = "RGB" if channels == 3 else "grayscale"
        return f"the {n:,} images of {self.origin} ({side}x{side} {colour}, {self.pixel_range.describe()})"


class UserImages(FiniteDataset):
    """The user's images as a finite dataset; the subclasses own the mode oracle."""

    def __init__(self, name: str, images: ImageSet, params: ImageOracleParams) -> None:
        FiniteDataset.__init__(self, images.images, images.labels)
        self.name = name
        self.source = images
        self.params = params

    def to_original_range(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] in the source's pixel range, e.g. to save generated images from
        8-bit files: `data.to_original_range(x).round().byte()`."""
        return self.source.pixel_range.restore(images)


class ClusteredImages(UserImages):
    """Unlabelled images: modes are clusters in PCA pixel space (`cluster_oracle`)."""

    @functools.cached_property
    def oracle(self) -> ClusterOracle:
        return cluster_oracle(self.points, self.params, self.source.describe())


class LabelledImages(UserImages, DigitDataset):
    """Labelled images: modes are classes read by ganscope's classifier, trained (or
    loaded from the cache) on first use, on the split of `labelled_split`. As a
    `DigitDataset` it also answers `ganscope oracle`."""

    def __init__(self, name: str, images: ImageSet, params: ImageOracleParams) -> None:
        UserImages.__init__(self, name, images, params)
        DigitDataset.__init__(self, name, labelled_split(name, images), params)

    @functools.cached_property
    def oracle(self) -> ClassOracle:
        assert self.source.labels is not None
        names = self.source.class_names
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        return ClassOracle(
            self.classifier, self.sample_shape, torch.bincount(self.source.labels, minlength=len(names)),
            self.hq_confidence,
            description=f"{len(names)} classes ({shown}) of {self.source.describe()}, "
                        f"read by the {self.classifier.describe()}",
        )


def labelled_split(name: str, images: ImageSet) -> DigitSplit:
    """Every `HELD_OUT_EVERY`-th image of each class (in file order) held out to test the
    classifier (`held_out_mask`), the others to train it."""
    assert images.labels is not None
    test = torch.from_numpy(held_out_mask(images.labels.numpy()))
    pixel_span = images.pixel_range.high - images.pixel_range.low
    return DigitSplit(name, images.images[~test], images.labels[~test], images.images[test], images.labels[test],
                      pixel_span)


class PixelPCA:
    """Principal components of the real images' pixels: `project` maps images to them."""

    def __init__(self, images: torch.Tensor, dims: int, seed: int) -> None:
        from sklearn.decomposition import PCA  # scikit-learn is slow to import: only here

        flat = images.reshape(len(images), -1).numpy()
        self.dims = min(dims, len(flat) - 1, flat.shape[1])
        pca = PCA(self.dims, random_state=seed).fit(flat)
        self.mean = torch.from_numpy(pca.mean_).double()
        self.components = torch.from_numpy(pca.components_).double()  # (dims, pixels)
        self.explained = float(pca.explained_variance_ratio_.sum())

    def project(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, ...) as their coordinates (N, dims) on the components, float64."""
        return (images.reshape(len(images), -1).double() - self.mean) @ self.components.T


class ClusterOracle(ModeOracle):
    """Mode = nearest cluster of the real images in PCA pixel space; see the module
    docstring. `embed` is the PCA projection, `mixture` scores the projected samples."""

    def __init__(self, pca: PixelPCA, mixture: MixtureOracle, description: str) -> None:
        self.pca = pca
        self.mixture = mixture
        self.description = description
        self.feature_space = f"PCA({pca.dims}) of the pixels (not Inception features)"
        self.quality_rule = f"within {mixture.hq_threshold:.2f} cluster std of a cluster centre in that PCA space"

    @property
    def weights(self) -> torch.Tensor:
        return self.mixture.weights

    def assign(self, samples: torch.Tensor) -> ModeAssignment:
        return self.mixture.assign(self.embed(samples))

    def embed(self, samples: torch.Tensor) -> torch.Tensor:
        return self.pca.project(samples)


def cluster_oracle(images: torch.Tensor, p: ImageOracleParams, what: str) -> ClusterOracle:
    """Cluster the real images (module docstring) and calibrate the high-quality distance."""
    pca = PixelPCA(images, p.pca_dims, p.cluster_seed)
    features = pca.project(images).numpy()
    distinct = len(np.unique(images.reshape(len(images), -1).numpy(), axis=0))
    if p.n_modes is not None:
        if p.n_modes > distinct:
            raise DataError(f"data.n_modes={p.n_modes} exceeds the {distinct} distinct images; give at most that")
        km, how = fit_kmeans(features, [p.n_modes], p.cluster_seed), "k = data.n_modes"
    else:
        top = min(p.max_modes, distinct - 1)
        if top < 2:
            raise DataError(f"the images hold {distinct} distinct picture(s); clustering needs at least 3 "
                            "(or set data.n_modes)")
        km = fit_kmeans(features, range(2, top + 1), p.cluster_seed)
        how = f"k by the best mean silhouette over 2..{top}"
    k = km.n_clusters
    centres = torch.from_numpy(km.cluster_centers_).double()
    members = torch.from_numpy(km.labels_)
    counts = torch.bincount(members, minlength=k).double()
    squared = ((torch.from_numpy(features) - centres[members]) ** 2).mean(dim=1)
    spread = (torch.zeros(k, dtype=torch.float64).index_add_(0, members, squared) / counts.clamp_min(1)).sqrt()
    spread = spread.clamp_min(1e-6 * max(float(features.std()), 1e-12))
    scaled = (torch.cdist(torch.from_numpy(features), centres) / spread).min(dim=1).values
    if p.hq_threshold is None:
        # the least distance that HQ_MASS of the real images lie strictly within (the oracle's rule is `<`)
        threshold = math.nextafter(float(torch.quantile(scaled, _HQ_MASS_2D, interpolation="higher")), math.inf)
        rule = f"the distance {100 * _HQ_MASS_2D:.1f}% of the real images meet"
    else:
        threshold = p.hq_threshold
        share = float((scaled < threshold).double().mean())
        rule = f"data.hq_threshold, which {100 * share:.1f}% of the real images meet"
    description = (
        f"{k} k-means clusters ({how}) of PCA({pca.dims}) pixel features ({100 * pca.explained:.1f}% of the "
        f"pixel variance) of {what}; high quality within {threshold:.2f} cluster std of a centre ({rule})"
    )
    return ClusterOracle(pca, MixtureOracle(centres, spread, counts, threshold, description=description), description)


def fit_kmeans(features: np.ndarray, ks: Sequence[int], seed: int) -> KMeans:
    """k-means (10 starts) for each k of `ks`; the fit with the highest mean silhouette
    (the first on ties) when there are several."""
    from sklearn.cluster import KMeans  # scikit-learn is slow to import: only here
    from sklearn.metrics import silhouette_score

    fits = [KMeans(k, n_init=10, random_state=seed).fit(features) for k in ks]
    if len(fits) == 1:
        return fits[0]
    sample = min(len(features), SILHOUETTE_SAMPLE)
    scores = [silhouette_score(features, fit.labels_, sample_size=sample, random_state=seed) for fit in fits]
    return fits[int(np.argmax(scores))]


# -- the folder ------------------------------------------------------------------------


def folder_files(root: Path, use_classes: bool) -> tuple[list[Path], list[int] | None, tuple[str, ...]]:
    """The folder's image files in path order, and their classes when its sub-folders are
    classes (see the module docstring)."""
    if not root.exists():
        raise DataError(f"image folder {root} does not exist; give data.path=FOLDER holding .png or .jpg files")
    if not root.is_dir():
        raise DataError(f"data.path {root} is a file, not a folder; for an array of images use data.name=images")
    files = sorted(
        (path for path in root.rglob("*")
         if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
         and not any(part.startswith(".") for part in path.relative_to(root).parts)),
        key=lambda path: path.relative_to(root).as_posix(),
    )
    if not files:
        raise DataError(f"{root} holds no .png, .jpg or .jpeg files (in it or its sub-folders); put your images there")
    tops = [path.relative_to(root).parts for path in files]
    classes = tuple(sorted({parts[0] for parts in tops if len(parts) > 1}))
    if not use_classes or len(classes) < 2:
        return files, None, ()
    loose = [path.name for path, parts in zip(files, tops) if len(parts) == 1]
    if loose:
        raise DataError(f"{root} holds {len(loose)} image(s) (e.g. {loose[0]}) beside its {len(classes)} class "
                        "folders; move them into a class folder, or set data.classes=false to pool every image")
    return files, [classes.index(parts[0]) for parts in tops], classes


def read_image(path: Path, size: int, mode: Literal["L", "RGB"]) -> np.ndarray:
    """One file as uint8 (size, size, bands): 8 bits, `mode`, resized and centre-cropped."""
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        opened.draft(mode, (size, size))  # JPEG: decode at the smallest scale still >= size
        image = opened.convert("RGBA") if opened.mode == "P" else opened
        image.load()
        if image.mode in _SIXTEEN_BIT:
            image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8))
        fitted = ImageOps.fit(image.convert(mode), (size, size), Image.Resampling.LANCZOS)
    return np.asarray(fitted).reshape(size, size, -1)


def read_folder(p: ImageFolderParams) -> ImageSet:
    """The folder's images (module docstring), unreadable files skipped or refused."""
    from PIL import Image

    unreadable_errors = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
    files, labels, classes = folder_files(p.path, p.classes)
    mode: Literal["L", "RGB"] = "L" if p.channels == 1 else "RGB"
    pixels, kept, skipped = [], [], []
    for i, path in enumerate(files):
        try:
            pixels.append(read_image(path, p.size, mode))
            kept.append(i)
        except unreadable_errors as err:
            reason = f"{path.relative_to(p.path)}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            if p.on_unreadable == "stop":
                raise DataError(f"{p.path}/{reason}; fix or remove the file, or set data.on_unreadable=skip") from None
            skipped.append(reason)
    if not pixels:
        raise DataError(f"none of the {len(files)} image files in {p.path} can be read (first: {skipped[0]})")
    if skipped:
        print(f"image-folder: skipped {len(skipped)} of {len(files)} files Pillow cannot read (first: {skipped[0]}); "
              "data.on_unreadable=stop stops on them instead", file=sys.stderr)
    array = np.stack(pixels).transpose(0, 3, 1, 2)  # (N, bands, size, size)
    if p.channels is None and (array[:, :1] == array).all():
        array = array[:, :1]  # no image has colour
    origin = f"folder {p.path}" + (f" ({len(skipped)} unreadable files skipped)" if skipped else "")
    kept_labels = None if labels is None else torch.tensor([labels[i] for i in kept])
    eight_bit = PixelRange(0, 255, "8-bit files")
    return ImageSet(eight_bit.to_unit(array), kept_labels, classes, eight_bit, origin)


# -- the array -------------------------------------------------------------------------


def read_array(path: Path, key: str | None, what: str, besides: str | None = None) -> np.ndarray:
    """The array `key` of a .npy or .npz file (`what` names it in errors); in a .npz
    without `key`, its only array other than `besides` (the labels' key), which must be there."""
    if path.is_dir():
        raise DataError(f"{what} file {path} is a folder; give a .npy or .npz file (for a folder of image files "
                        "use data.name=image-folder)")
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist; give the path of a .npy or .npz file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise DataError(f"{path}: unsupported file type {suffix!r} for {what}; save them with numpy.save (.npy) "
                        "or numpy.savez (.npz)")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.keys())
            if besides is not None and besides not in names:
                raise DataError(f"{path} holds arrays {names}; choose the labels with data.labels_key=NAME")
            others = [name for name in names if name != besides]
            chosen = key or (others[0] if len(others) == 1 else None)
            if chosen not in names:
                option = "data.labels_key" if what == "labels" else "data.key"
                raise DataError(f"{path} holds arrays {names}; choose the {what} with {option}=NAME")
            return archive[chosen]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} could not be read as a numeric array ({str(err).splitlines()[0]}); "
                        "save it with numpy.save") from None


def channels_first(array: np.ndarray, origin: str) -> np.ndarray:
    """(N, H, W), (N, H, W, C) or (N, C, H, W), C 1 or 3, as (N, C, H, W)."""
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4:
        first = array.shape[1] in (1, 3) and (array.shape[2] == array.shape[3] or array.shape[3] not in (1, 3))
        last = array.shape[3] in (1, 3) and (array.shape[1] == array.shape[2] or array.shape[1] not in (1, 3))
        if first != last:
            return array if first else array.transpose(0, 3, 1, 2)
    raise DataError(f"{origin} holds an array of shape {array.shape}; give images (N, H, W), (N, H, W, C) or "
                    "(N, C, H, W) with C = 1 or 3 channels")


def detect_range(array: np.ndarray, given: tuple[float, float] | None, origin: str) -> PixelRange:
    """The array's pixel range: `given`, else by its dtype and values (module docstring)."""
    low, high = float(array.min()), float(array.max())
    if given is not None:
        slack = RANGE_TOLERANCE * (given[1] - given[0])
        if low < given[0] - slack or high > given[1] + slack:
            raise DataError(f"{origin} holds values from {low:g} to {high:g}, outside data.pixel_range "
                            f"{list(given)}; widen it or leave it unset to detect the range")
        return PixelRange(given[0], given[1], "given by data.pixel_range")
    if array.dtype == np.uint8:
        return PixelRange(0, 255, "uint8")
    if array.dtype.kind in "iu":
        if low >= 0 and high <= 65535:
            bits = 8 if high <= 255 else 16
            return PixelRange(0, 2**bits - 1, f"detected: {array.dtype} values {low:g}..{high:g}")
        raise DataError(f"{origin} holds integers from {low:g} to {high:g}; give pixels 0..255 (or 0..65535), "
                        "or set data.pixel_range=[LOW, HIGH]")
    found = f"detected: {array.dtype} values {low:.3g}..{high:.3g}"
    for candidate in ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)):
        slack = RANGE_TOLERANCE * (candidate[1] - candidate[0])
        if low >= candidate[0] - slack and high <= candidate[1] + slack:
            return PixelRange(*candidate, found)
    raise DataError(f"{origin} holds floats from {low:g} to {high:g}, in none of [0, 1], [-1, 1], [0, 255]; "
                    "rescale them or set data.pixel_range=[LOW, HIGH]")


def fit_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images (N, C, H, W) centre-cropped to a square and resized to size x size
    (antialiased bilinear, clamped to [-1, 1]): `ImageOps.fit` for arrays."""
    height, width = images.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = images[..., top : top + side, left : left + side]
    if side == size:
        return square.contiguous()
    resize = functools.partial(F.interpolate, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return torch.cat([resize(chunk) for chunk in square.split(RESIZE_CHUNK)]).clamp(-1, 1)


def read_labels(p: ImageArrayParams, n: int) -> tuple[torch.Tensor | None, tuple[str, ...]]:
    """The images' labels as classes 0..K-1 (sorted distinct values) and the values' names."""
    if p.labels_key is None and p.labels_path is None:
        return None, ()
    path = p.labels_path or p.path
    array = read_array(path, p.labels_key, "labels")
    where = f"{path}[{p.labels_key}]" if p.labels_key else str(path)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(f"labels {where} have shape {array.shape}; give one label per image, shape ({n},)")
    if len(array) != n:
        raise DataError(f"{where} holds {len(array)} labels for {n} images; give one label per image")
    if array.dtype.kind not in "biufU":
        raise DataError(f"labels {where} hold {array.dtype} values; give integers or strings")
    if array.dtype.kind == "f":
        if not (np.isfinite(array).all() and (array == np.round(array)).all()):
            raise DataError(f"labels {where} are fractional or not finite; give integers or strings")
        array = array.astype(np.int64)
    values, classes = np.unique(array, return_inverse=True)
    return torch.from_numpy(classes.reshape(-1).astype(np.int64)), tuple(str(v) for v in values.tolist())


def read_array_images(p: ImageArrayParams) -> ImageSet:
    """The array's images (module docstring) and its labels, if any."""
    array = read_array(p.path, p.key, "images", besides=p.labels_key)
    origin = f"{p.path}[{p.key}]" if p.key else str(p.path)
    if array.dtype.kind not in "fiu":
        raise DataError(f"{origin} holds {array.dtype} values; images must be numbers")
    images = channels_first(array, origin)
    if array.dtype.kind == "f" and not np.isfinite(images).all():
        raise DataError(f"{origin} contains NaN or infinite values; remove or repair those images first")
    height, width = images.shape[-2:]
    if p.size is None and height != width:
        raise DataError(f"{origin} holds {height}x{width} images, not square; set data.size=N to resize and "
                        "centre-crop them to NxN")
    if p.size is None and height < MIN_SIDE:
        raise DataError(f"{origin} holds {height}x{width} images; set data.size={MIN_SIDE} (or more) to resize them")
    pixel_range = detect_range(images, p.pixel_range, origin)
    unit = pixel_range.to_unit(images)
    labels, names = read_labels(p, len(images))
    return ImageSet(unit if p.size is None else fit_square(unit, p.size), labels, names, pixel_range, origin)


# -- the datasets ----------------------------------------------------------------------


def user_images(name: str, images: ImageSet, p: ImageOracleParams, to_cluster: str) -> UserImages:
    """The dataset of `images`: labelled with a classifier oracle, else clustered; a
    parameter that only the other oracle reads is refused (`to_cluster` says how to
    cluster labelled images instead)."""
    if len(images.images) < MIN_POINTS:
        raise DataError(f"{images.origin} holds {len(images.images)} images; give at least {MIN_POINTS}")
    if images.labels is None:
        _refuse(p, CLASSIFIER_KEYS, "applies to labelled images; these have no labels, so their modes are clusters")
        return ClusteredImages(name, images, p)
    k = len(images.class_names)
    _refuse(p, CLUSTER_KEYS,
            f"applies to unlabelled images; these have {k} classes, which are the modes ({to_cluster})")
    if k < 2:
        raise DataError(f"the labels of {images.origin} hold one class ({images.class_names[0]}); give at least two, "
                        "or drop the labels to find modes by clustering")
    counts = torch.bincount(images.labels, minlength=k)
    small = int(counts.argmin())
    if counts[small] < HELD_OUT_EVERY:
        raise DataError(f"class {images.class_names[small]!r} of {images.origin} has {int(counts[small])} image(s); "
                        f"the oracle holds out every {HELD_OUT_EVERY}th image of each class to test its classifier, "
                        f"so give each class at least {HELD_OUT_EVERY}")
    if p.hq_confidence <= 1 / k:
        raise DataError(f"data.hq_confidence={p.hq_confidence:g} is not above 1/{k}, which every prediction over "
                        f"{k} classes reaches; raise it")
    return LabelledImages(name, images, p)


def _refuse(p: ImageOracleParams, keys: tuple[str, ...], why: str) -> None:
    """One line naming the first of `keys` set to other than its default."""
    given = [key for key in keys if getattr(p, key) != type(p).model_fields[key].default]
    if given:
        raise DataError(f"data.{given[0]} {why}; remove it")


@DATASETS.register("image-folder", "your own PNG/JPEG files, resized and centre-cropped to data.size (32); "
                   "modes: class sub-folders (a trained classifier), else pixel clusters", ImageFolderParams)
def build_image_folder(p: ImageFolderParams) -> UserImages:
    return user_images("image-folder", read_folder(p), p, "set data.classes=false to cluster them instead")


@DATASETS.register("images", "your own images from a .npy/.npz array, (N,H,W), (N,H,W,C) or (N,C,H,W); modes: "
                   "labels (a trained classifier), else pixel clusters", ImageArrayParams)
def build_images(p: ImageArrayParams) -> UserImages:
    return user_images("images", read_array_images(p), p, "drop the labels to cluster them instead")
