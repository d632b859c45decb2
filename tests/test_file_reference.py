"""Metrics and the monitor against a user's data file use its points as they are.

Resampling the file with replacement gave the metrics exact duplicates the data does not
hold: a near-duplicate threshold of 0 and a point set that did not match itself. Here a
file scored against itself must match perfectly on every metric, through the Python API
and the command line, and every near-duplicate threshold must be positive.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import ganscope
from ganscope.cli import main
from ganscope.data import Dataset, dataset_from_config
from ganscope.metrics.suite import feature_metrics, reference_samples
from ganscope.monitor.monitor import Diversity
from ganscope.train.run import METRICS

FILE_POINTS = 900
QUANTILE = 0.01
CENTRES = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])


def three_blobs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return CENTRES[rng.integers(0, 3, n)] + 0.1 * rng.standard_normal((n, 2))


def file_dataset(path: Path) -> Dataset:
    overrides = ["data.name=file", f"data.path={path}", "data.n_modes=3"]
    return dataset_from_config(ganscope.load_config(overrides=overrides))


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "blobs.npy"
    np.save(path, three_blobs(FILE_POINTS, seed=0))
    return path


def check_prdc(values: dict[str, float], n: int) -> None:
    assert values["precision"] == values["recall"] == values["coverage"] == 1.0
    # Each real ball holds its own point and its k = 5 neighbours: (k + 1) / k exactly.
    assert values["density"] == pytest.approx(6 / 5, abs=1e-12)


def check_ndb(values: dict[str, float], n: int) -> None:
    assert values["ndb"] == 0 and values["js"] == 0


def check_frechet(values: dict[str, float], n: int) -> None:
    assert values["frechet"] == pytest.approx(0.0, abs=1e-12)


def check_birthday(values: dict[str, float], n: int) -> None:
    assert values["threshold"] > 0
    # The threshold is the 1% quantile of these very nearest-neighbour distances.
    assert QUANTILE <= values["duplicate_fraction"] <= QUANTILE + 2 / n
    # Distinct points of a continuous distribution: far more support than points, and
    # measured (the old threshold of 0 only ever gave the lower bound 800^2).
    assert n < values["support"] < 800**2 and values["support_is_lower_bound"] == 0


SELF_MATCH: dict[str, Callable[[dict[str, float], int], None]] = {
    "prdc": check_prdc, "ndb": check_ndb, "frechet": check_frechet, "birthday": check_birthday,
}


@pytest.mark.parametrize("metric", SELF_MATCH)
def test_file_against_itself_through_the_api(blobs: Path, metric: str) -> None:
    points = torch.from_numpy(np.load(blobs))
    real = reference_samples(file_dataset(blobs), len(points))
    SELF_MATCH[metric](feature_metrics([metric], real, points)[metric], len(points))


@pytest.mark.parametrize("metric", SELF_MATCH)
def test_file_against_itself_through_score(blobs: Path, metric: str, capsys) -> None:
    args = ["score", "--data", str(blobs), str(blobs), "--data-option", "n_modes=3", "-m", metric, "--json"]
    assert main(args) == 0
    SELF_MATCH[metric](json.loads(capsys.readouterr().out)["metrics"][metric], FILE_POINTS)


def test_birthday_on_a_file_tells_diverse_from_collapsed(blobs: Path) -> None:
    points = torch.from_numpy(np.load(blobs))
    real = reference_samples(file_dataset(blobs), len(points))
    few = points[torch.randint(30, (len(points),), generator=torch.Generator().manual_seed(0))]
    collapsed = feature_metrics(["birthday"], real, few)["birthday"]
    assert collapsed["duplicate_fraction"] == 1.0 and collapsed["support"] == 50**2
    diverse = feature_metrics(["birthday"], real, points)["birthday"]
    assert diverse["support"] > 10 * collapsed["support"]


def test_more_generated_samples_than_file_points_are_cut_to_as_many(blobs: Path) -> None:
    points = torch.from_numpy(np.load(blobs))
    real = reference_samples(file_dataset(blobs), 3 * FILE_POINTS)
    assert len(real) == FILE_POINTS
    far = torch.full((2 * FILE_POINTS, 2), 50.0, dtype=torch.float64)
    check_prdc(feature_metrics(["prdc"], real, torch.cat([points, far]))["prdc"], FILE_POINTS)


def test_monitor_threshold_on_a_file_is_positive_and_real_data_scores_the_quantile(blobs: Path) -> None:
    diversity = Diversity(file_dataset(blobs), QUANTILE, seed=0)
    for n, compared in ((400, 400), (2500, FILE_POINTS)):
        reference = diversity.reference(n)
        assert reference.duplicate_threshold > 0 and reference.compared == compared
        assert reference.mode_count.sum() <= compared
    points = torch.from_numpy(np.load(blobs))
    assert QUANTILE <= diversity.measure(points)["duplicate_fraction"] <= QUANTILE + 2 / FILE_POINTS


def test_monitor_compares_as_many_samples_as_a_small_file_holds(tmp_path: Path) -> None:
    # 2,500 healthy samples against a 100-point file: their nearest neighbours are 25x
    # denser than the file's, so against all of them a fifth would look like duplicates.
    path = tmp_path / "small.npy"
    np.save(path, three_blobs(100, seed=1))
    diversity = Diversity(file_dataset(path), QUANTILE, seed=0)
    for seed in range(5):
        healthy = torch.from_numpy(three_blobs(2500, seed=10 + seed)).float()
        assert diversity.measure(healthy)["duplicate_fraction"] < 0.1


def test_rows_the_file_repeats_are_kept_and_do_not_zero_the_threshold(blobs: Path, tmp_path: Path) -> None:
    """Decision: a row given twice is data (it weighs twice, in training and in the
    metrics), so the reference keeps it and the file still matches itself exactly; the
    near-duplicate threshold is a length scale, taken over the distinct rows."""
    points = np.load(blobs)
    repeated = np.concatenate([points, points[:300]])
    path = tmp_path / "repeated.npy"
    np.save(path, repeated)
    data = file_dataset(path)
    real = reference_samples(data, len(repeated))
    np.testing.assert_array_equal(real.numpy(), repeated)
    metrics = feature_metrics(["prdc", "ndb", "frechet", "birthday"], real, torch.from_numpy(repeated))
    assert metrics["prdc"]["precision"] == metrics["prdc"]["recall"] == metrics["prdc"]["coverage"] == 1.0
    assert metrics["ndb"]["ndb"] == 0 and metrics["frechet"]["frechet"] == pytest.approx(0.0, abs=1e-12)
    unrepeated = Diversity(file_dataset(blobs), QUANTILE, seed=0).reference(5000)[0]
    assert metrics["birthday"]["threshold"] == Diversity(data, QUANTILE, seed=0).reference(5000)[0] == unrepeated > 0
    # The repeated rows are exact duplicates, and are counted as such.
    assert metrics["birthday"]["duplicate_fraction"] >= 600 / len(repeated)


def test_training_from_a_file_logs_measured_diversity(blobs: Path, tmp_path: Path, tiny_overrides) -> None:
    overrides = tiny_overrides + [
        "data.name=file", f"data.path={blobs}", "data.n_modes=3", "train.steps=40", "train.eval_samples=1500",
    ]
    summary = ganscope.Run.create(ganscope.load_config(overrides=overrides), tmp_path / "run").fit(progress=False)
    assert summary["step"] == 40
    records = [json.loads(line) for line in (tmp_path / "run" / METRICS).read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert evals and all(math.isfinite(r["duplicate_fraction"]) for r in evals)
