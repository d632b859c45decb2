"""The user's own point cloud (.npy, .npz or .csv) as a dataset.

Training batches are drawn with replacement from the file's rows; metrics use the rows
themselves (`FiniteDataset.reference`). When the user gives no mode centres, modes are
found by clustering the real data, so coverage, high quality and reverse KL are defined
for data without labels.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from pydantic import PositiveFloat, PositiveInt

from ganscope.data.base import DATASETS, FiniteDataset
from ganscope.data.mixture import MixtureOracle
from ganscope.errors import DataError
from ganscope.registry import Params

MIN_POINTS = 10


class FileParams(Params):
    path: Path
    key: str | None = None
    n_modes: PositiveInt | None = None
    max_modes: PositiveInt = 30
    centres: list[list[float]] | None = None
    std: PositiveFloat | None = None
    hq_threshold: PositiveFloat | None = None
    cluster_seed: int = 0
    #: A column of integer class labels (e.g. -1 for the last): the points are the other
    #: columns, and the modes are the classes (for conditional models).
    label_column: int | None = None


def load_points(path: Path, key: str | None = None) -> np.ndarray:
    """Read a 2-D float array (points x features) and reject what cannot be trained on."""
    if path.is_dir():
        raise DataError(f"data file {path} is a folder; give the path of a .npy, .npz or .csv file in it")
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; give the path of a .npy, .npz or .csv file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.keys())
                chosen = key or (names[0] if len(names) == 1 else None)
                if chosen not in names:
                    raise DataError(
                        f"{path} holds arrays {names}; choose one with data.key=NAME"
                    )
                array = archive[chosen]
        elif suffix == ".csv":
            array = _read_csv(path)
        else:
            raise DataError(f"{path}: unsupported file type {suffix!r}; use .npy, .npz or .csv")
    except (ValueError, OSError) as err:
        raise DataError(f"{path} could not be read as a numeric array ({err}); save it with numpy.save") from None
    if array.dtype.kind not in "fiu":
        raise DataError(f"{path} holds {array.dtype} values; ganscope needs numbers")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise DataError(f"{path} holds an array of shape {array.shape}; give points x features (2-D)")
    if len(array) < MIN_POINTS:
        raise DataError(f"{path} holds {len(array)} points; give at least {MIN_POINTS}")
    if not np.isfinite(array).all():
        raise DataError(f"{path} contains NaN or infinite values; remove those rows first")
    return array.astype(np.float64)


def _read_csv(path: Path) -> np.ndarray:
    with path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if rows and not _is_numeric(rows[0]):
        rows = rows[1:]  # a header line
    bad = next((i for i, row in enumerate(rows) if not _is_numeric(row)), None)
    if bad is not None:
        raise DataError(f"{path}: row {bad + 1} is not numeric: {rows[bad][:5]}")
    if len({len(r) for r in rows}) > 1:
        raise DataError(f"{path}: rows have different numbers of columns")
    return np.array(rows, dtype=np.float64)


def _is_numeric(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


def cluster_modes(points: np.ndarray, p: FileParams) -> MixtureOracle:
    """Find modes: k-means when the number is given, else a spherical Gaussian mixture
    with the number of components chosen by BIC (spherical, because the oracle scores
    distance in units of one std per mode)."""
    from sklearn.cluster import KMeans  # scikit-learn is slow to import: only for files
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    if p.n_modes is not None:
        if p.n_modes > len(points):
            raise DataError(f"data.n_modes={p.n_modes} exceeds the {len(points)} points in the file")
        km = KMeans(p.n_modes, n_init=10, random_state=p.cluster_seed).fit(points)
        labels, centres = km.labels_, km.cluster_centers_
        how = f"k-means with k={p.n_modes} on the real data"
        spread = np.array([
            np.sqrt(((points[labels == j] - centres[j]) ** 2).mean()) if (labels == j).any() else 0.0
            for j in range(p.n_modes)
        ])
        weights = np.bincount(labels, minlength=p.n_modes).astype(np.float64)
    else:
        best = None
        for k in range(1, min(p.max_modes, len(points) // 2) + 1):
            gm = SkGaussianMixture(k, covariance_type="spherical", random_state=p.cluster_seed).fit(points)
            bic = gm.bic(points)
            if best is None or bic < best[0]:
                best = (bic, gm)
        assert best is not None
        gm = best[1]
        centres, spread, weights = gm.means_, np.sqrt(gm.covariances_), gm.weights_
        how = f"spherical Gaussian mixture, {gm.n_components} components chosen by BIC (1..{p.max_modes})"
    spread = np.maximum(spread, 1e-6 * max(float(points.std()), 1e-12))
    return MixtureOracle(
        torch.from_numpy(centres),
        torch.from_numpy(spread),
        torch.from_numpy(weights),
        p.hq_threshold,
        description=how,
    )


class PointFile(FiniteDataset):
    """The rows of a file with the oracle of their modes (and their labels, if any)."""

    def __init__(self, points: np.ndarray, oracle: MixtureOracle, labels: torch.Tensor | None = None) -> None:
        super().__init__(torch.from_numpy(points), labels)
        self.name = "file"
        self._oracle = oracle

    @property
    def oracle(self) -> MixtureOracle:
        return self._oracle


@DATASETS.register("file", "your own points from a .npy/.npz/.csv file; modes by clustering, or the classes "
                   "of a label column", FileParams)
def build_file(p: FileParams) -> PointFile:
    points = load_points(p.path, p.key)
    if p.label_column is not None:
        if p.centres is not None or p.n_modes is not None:
            raise DataError("with data.label_column the modes are the classes; drop data.centres and data.n_modes")
        points, labels, values = split_label_column(points, p.label_column, p.path)
        return PointFile(points, class_modes(points, labels, values, p), labels)
    if p.centres is not None:
        centres = torch.tensor(p.centres, dtype=torch.float64)
        if centres.ndim != 2 or centres.shape[1] != points.shape[1]:
            raise DataError(f"data.centres must be a list of {points.shape[1]}-D points")
        std = p.std if p.std is not None else float(points.std(axis=0).mean()) / 10
        oracle = MixtureOracle(
            centres,
            torch.full((len(centres),), std, dtype=torch.float64),
            _weights_by_nearest(points, centres),
            p.hq_threshold,
            description="centres given in the config",
        )
    else:
        oracle = cluster_modes(points, p)
    return PointFile(points, oracle)


def split_label_column(points: np.ndarray, column: int, path: Path) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    """The points without the label column, their classes 0..K-1 (sorted distinct values)
    and those values."""
    width = points.shape[1]
    if not -width <= column < width or width < 2:
        raise DataError(f"{path} has {width} column(s); data.label_column={column} must name one of them "
                        "and leave at least one for the points")
    raw = points[:, column]
    if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
        raise DataError(f"column {column} of {path} holds non-integer values; give integer class labels there")
    values, labels = np.unique(raw.astype(np.int64), return_inverse=True)
    if len(values) < 2:
        raise DataError(f"column {column} of {path} holds one class only; a conditional model needs at least two")
    return np.ascontiguousarray(np.delete(points, column % width, axis=1)), torch.from_numpy(labels), values


def class_modes(points: np.ndarray, labels: torch.Tensor, values: np.ndarray, p: FileParams) -> MixtureOracle:
    """One mode per class: its mean, its RMS spread per dimension and its share of the rows."""
    classes = labels.numpy()
    centres = np.stack([points[classes == k].mean(axis=0) for k in range(len(values))])
    spread = np.array([np.sqrt(((points[classes == k] - centres[k]) ** 2).mean()) for k in range(len(values))])
    spread = np.maximum(spread, 1e-6 * max(float(points.std()), 1e-12))
    shown = ", ".join(str(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
    return MixtureOracle(
        torch.from_numpy(centres), torch.from_numpy(spread), torch.bincount(labels).double(), p.hq_threshold,
        description=f"the {len(values)} classes of column {p.label_column} ({shown}): their means and spreads",
    )


def _weights_by_nearest(points: np.ndarray, centres: torch.Tensor) -> torch.Tensor:
    nearest = torch.cdist(torch.from_numpy(points), centres).argmin(dim=1)
    return torch.bincount(nearest, minlength=len(centres)).double().clamp_min(1e-12)
