"""Datasets and their mode oracles, against hand-placed points."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganscope.config import load_config, piece_params
from ganscope.data import DATASETS
from ganscope.data.mixture import default_hq_threshold, grid_centres, ring_centres
from ganscope.errors import DataError


def build(name: str, *options: str):
    cfg = load_config(overrides=[f"data.name={name}", *[f"data.{o}" for o in options]])
    return DATASETS.get(name)(piece_params(cfg, "data"))


def test_ring_has_eight_distinct_centres_not_the_linspace_trap() -> None:
    centres = ring_centres(8, 1.0)
    assert len(torch.unique(centres.round(decimals=6), dim=0)) == 8
    trap = torch.linspace(0, 2 * math.pi, 8)
    trap_centres = torch.stack([trap.cos(), trap.sin()], 1)
    assert len(torch.unique(trap_centres.round(decimals=5), dim=0)) == 7
    assert torch.allclose(centres[2], torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-12)


def test_grid_centres_are_the_protocol_lattice() -> None:
    centres = grid_centres(5, 2.0)
    assert centres.shape == (25, 2)
    assert set(centres[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def test_hq_threshold_is_three_std_in_two_dimensions() -> None:
    assert default_hq_threshold(2) == pytest.approx(3.0, abs=1e-9)
    assert default_hq_threshold(10) > 3.0


def test_ring_oracle_on_hand_placed_points() -> None:
    ring = build("ring")
    angle = 2 * math.pi * 3 / 8
    points = torch.tensor(
        [
            [1.0, 0.0],  # exactly mode 0
            [1.029, 0.0],  # 2.9 std from mode 0: high quality
            [1.031, 0.0],  # 3.1 std: not high quality, still nearest to mode 0
            [math.cos(angle), math.sin(angle)],  # mode 3
            [0.0, 0.0],  # centre of the ring: far from every mode
        ]
    )
    a = ring.oracle.assign(points)
    assert a.mode[:4].tolist() == [0, 0, 0, 3]
    assert a.high_quality.tolist() == [True, True, False, True, False]


def test_mixture_uses_per_mode_std_for_nearest_mode() -> None:
    mix = build("mixture", "centres=[[0,0],[1,0]]", "std=[0.1,0.5]")
    # x = 0.4 is 4 std from mode 0 but only 1.2 std from mode 1 (scaled distance decides)
    a = mix.oracle.assign(torch.tensor([[0.4, 0.0]]))
    assert a.mode.tolist() == [1]
    assert a.high_quality.tolist() == [True]


def test_mixture_samples_follow_weights_and_any_dimension() -> None:
    mix = build("mixture", "centres=[[0,0,0],[5,5,5]]", "weights=[3,1]", "std=0.1")
    x = mix.sample(20000, torch.Generator().manual_seed(0))
    assert x.shape == (20000, 3)
    a = mix.oracle.assign(x)
    assert a.high_quality.float().mean() > 0.97
    share = (a.mode == 0).float().mean().item()
    assert share == pytest.approx(0.75, abs=0.02)


def test_real_samples_of_ring_and_grid_are_high_quality_and_cover_all_modes() -> None:
    for name, k in (("ring", 8), ("grid", 25)):
        data = build(name)
        x = data.sample(5000, torch.Generator().manual_seed(1))
        a = data.oracle.assign(x)
        assert a.high_quality.float().mean() > 0.98
        assert len(a.mode.unique()) == k


def test_mixture_rejects_mismatched_lengths() -> None:
    from ganscope.errors import ConfigError

    with pytest.raises(ConfigError, match="weights"):
        build("mixture", "centres=[[0,0],[1,1]]", "weights=[1]")


def test_file_dataset_finds_modes_by_clustering(tmp_path) -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    points = centres[rng.integers(0, 3, 900)] + 0.1 * rng.standard_normal((900, 2))
    path = tmp_path / "points.npy"
    np.save(path, points)
    data = build("file", f"path={path}")
    assert data.oracle.n_modes == 3
    assert "BIC" in data.oracle.description
    a = data.oracle.assign(torch.from_numpy(centres))
    assert sorted(a.mode.tolist()) == [0, 1, 2]
    assert a.high_quality.all()


def test_file_dataset_reads_csv_with_header_and_fixed_mode_count(tmp_path) -> None:
    path = tmp_path / "points.csv"
    rows = ["x,y"] + [f"{i % 2 * 10 + 0.01 * i},{0.02 * i}" for i in range(40)]
    path.write_text("\n".join(rows))
    data = build("file", f"path={path}", "n_modes=2")
    assert data.sample_shape == (2,)
    assert data.oracle.n_modes == 2
    assert "k-means" in data.oracle.description


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (np.array([[0.0, np.nan]] * 20), "NaN"),
        (np.zeros((3, 2)), "at least"),
        (np.array(["a", "b"] * 10), "numbers"),
    ],
)
def test_file_dataset_rejects_bad_arrays(tmp_path, content, message) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, content)
    with pytest.raises(DataError, match=message):
        build("file", f"path={path}")


def test_file_dataset_rejects_missing_and_non_numeric_csv(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        build("file", f"path={tmp_path / 'nope.npy'}")
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n3,oops\n")
    with pytest.raises(DataError, match="not numeric"):
        build("file", f"path={bad}")


def _three_blobs(path, n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    points = centres[rng.integers(0, 3, n)] + 0.1 * rng.standard_normal((n, 2))
    np.save(path, points)
    return points


def test_file_reference_is_every_point_as_given_when_n_is_not_smaller(tmp_path) -> None:
    points = _three_blobs(tmp_path / "points.npy")
    data = build("file", f"path={tmp_path / 'points.npy'}")
    for n in (300, 1000):
        reference = data.reference(n, torch.Generator().manual_seed(0))
        assert reference.dtype == torch.float64  # the file's own precision, not float32
        np.testing.assert_array_equal(reference.numpy(), points)
    assert data.sample(50, torch.Generator().manual_seed(0)).dtype == torch.float32


def test_file_reference_subsamples_without_replacement_deterministically(tmp_path) -> None:
    points = _three_blobs(tmp_path / "points.npy")
    data = build("file", f"path={tmp_path / 'points.npy'}")
    subsample = data.reference(200, torch.Generator().manual_seed(4))
    assert subsample.shape == (200, 2)
    assert len(torch.unique(subsample, dim=0)) == 200  # no row twice
    rows = {tuple(p) for p in points.tolist()}
    assert all(tuple(p) in rows for p in subsample.tolist())
    assert torch.equal(subsample, data.reference(200, torch.Generator().manual_seed(4)))
    assert not torch.equal(subsample, data.reference(200, torch.Generator().manual_seed(5)))
    # Training batches still draw with replacement: 1000 rows from 300 repeat some.
    batch = data.sample(1000, torch.Generator().manual_seed(0))
    assert len(torch.unique(batch, dim=0)) < 300


def test_infinite_dataset_reference_is_fresh_draws() -> None:
    ring = build("ring")
    reference = ring.reference(700, torch.Generator().manual_seed(2))
    assert torch.equal(reference, ring.sample(700, torch.Generator().manual_seed(2)))
    assert len(torch.unique(reference, dim=0)) == 700
