"""Protocol scores on constructed sample sets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ganscope.cli import main
from ganscope.data.mixture import ring_centres
from ganscope.metrics.modes import mean_std, reverse_kl, score_modes
from tests.test_data import build


def test_all_modes_equally_gives_eight_of_eight_and_zero_reverse_kl() -> None:
    ring = build("ring")
    samples = ring_centres(8, 1.0).repeat(100, 1)
    score = score_modes(samples, ring.oracle)
    assert score.modes_covered == 8
    assert score.hq_fraction == 1.0
    assert score.reverse_kl == pytest.approx(0.0, abs=1e-12)
    assert score.counts == [100] * 8


def test_one_mode_gives_one_of_eight_and_log_eight() -> None:
    ring = build("ring")
    samples = ring_centres(8, 1.0)[[5]].repeat(2500, 1)
    score = score_modes(samples, ring.oracle)
    assert score.modes_covered == 1
    assert score.reverse_kl == pytest.approx(math.log(8), abs=1e-12)


def test_low_quality_samples_do_not_cover_modes() -> None:
    ring = build("ring")
    samples = torch.cat([ring_centres(8, 1.0)[:2], torch.zeros(98, 2, dtype=torch.float64)])
    score = score_modes(samples, ring.oracle)
    assert score.modes_covered == 2
    assert score.hq_fraction == pytest.approx(0.02)
    assert score.reverse_kl == pytest.approx(math.log(4))


def test_reverse_kl_hand_computed_and_undefined_without_samples() -> None:
    weights = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    counts = torch.tensor([1, 3, 0])
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.25)
    assert reverse_kl(counts, weights) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(reverse_kl(torch.zeros(3, dtype=torch.long), weights))


def test_mean_std_ignores_nan() -> None:
    assert mean_std([1.0, 3.0, math.nan]) == pytest.approx((2.0, math.sqrt(2.0)))
    assert mean_std([4.0]) == (4.0, 0.0)


def test_score_cli_json(tmp_path, capsys) -> None:
    path = tmp_path / "samples.npy"
    np.save(path, ring_centres(8, 1.0)[[5]].repeat(2500, 1).numpy())
    assert main(["score", "--data", "ring", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["modes_covered"] == 1
    assert out["reverse_kl"] == pytest.approx(math.log(8))


def test_score_cli_against_grid_with_option_and_bad_inputs(tmp_path, capsys) -> None:
    good = tmp_path / "grid.npy"
    np.save(good, np.array([[4.0, 4.0], [4.35, 4.0]]))  # 0 and 3.5 std from (4, 4)
    assert main(["score", "--data", "grid", "--data-option", "std=0.1", str(good), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["modes_covered"] == 1 and out["hq_fraction"] == pytest.approx(0.5)

    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([[np.nan, 0.0]]))
    assert main(["score", "--data", "ring", str(nan)]) == 2
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((10, 3)))
    assert main(["score", "--data", "ring", str(wrong)]) == 2
    assert main(["score", "--data", "nosuchdata", str(good)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert "NaN" in err[0] and "(2,)" in err[1] and "valid: " in err[2]


def test_score_with_feature_metrics(tmp_path, capsys) -> None:
    ring = build("ring")
    good = tmp_path / "good.npy"
    np.save(good, ring.sample(600, torch.Generator().manual_seed(3)).numpy())
    collapsed = tmp_path / "collapsed.npy"
    np.save(collapsed, ring_centres(8, 1.0)[[2]].repeat(600, 1).numpy())
    results = {}
    for path in (good, collapsed):
        assert main(["score", "--data", "ring", str(path), "--json", "-m", "prdc", "-m", "frechet"]) == 0
        results[path.stem] = json.loads(capsys.readouterr().out)["metrics"]
    assert results["good"]["prdc"]["recall"] > 0.8
    assert results["collapsed"]["prdc"]["recall"] < 0.2
    assert results["collapsed"]["frechet"]["frechet"] > results["good"]["frechet"]["frechet"]
    assert main(["score", "--data", "ring", str(good), "-m", "nosuch"]) == 2
    assert "unknown metric 'nosuch'" in capsys.readouterr().err
