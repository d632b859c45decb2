"""The optimal-D demonstration: a trained D matches D* = p_data/(p_data+p_g) and the game
value -log 4 + 2 JSD (Goodfellow et al. 2014, Prop. 1 and Thm. 1), and the closed forms
it is judged against are themselves right."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from scipy.stats import multivariate_normal

from ganscope.cli import main
from ganscope.data.mixture import GaussianMixture
from ganscope.theory.optimal_d import (
    OptimalDSettings,
    default_mixtures,
    log_density,
    mixture_jsd,
    run_optimal_d,
)


def _shifted(mixture: GaussianMixture, shift: float) -> GaussianMixture:
    o = mixture.oracle
    return GaussianMixture("shifted", o.centres + shift, o.stds, o.weights)


def test_default_1d_reaches_d_star_and_the_game_value() -> None:
    r = run_optimal_d(OptimalDSettings(dim=1))
    assert r["mean_error"] < 0.02
    assert r["mean_error_unweighted"] < 0.05
    assert abs(r["game_value"] - (-math.log(4) + 2 * r["jsd"])) < 0.02
    assert r["optimal_game_value"] == pytest.approx(-math.log(4) + 2 * r["jsd"])
    assert "summary" in r and "D*" in r["summary"]


def test_2d_with_fewer_steps_beats_a_generous_bound_and_writes_its_files(tmp_path: Path) -> None:
    r = run_optimal_d(OptimalDSettings(dim=2, steps=600), out_dir=tmp_path)
    assert r["mean_error"] < 0.05
    assert abs(r["game_value_gap"]) < 0.05
    assert (tmp_path / "optimal_d.png").stat().st_size > 0
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["mean_error"] == pytest.approx(r["mean_error"])


@pytest.mark.parametrize("dim", [1, 2])
def test_jsd_is_zero_for_identical_and_log2_for_disjoint_mixtures(dim: int) -> None:
    p_data, p_g = default_mixtures(dim)
    assert mixture_jsd(p_g, p_g) == pytest.approx(0.0, abs=1e-12)
    # 99.9% of each component lies inside the grid, so at most 0.1% of log 2 is lost.
    assert mixture_jsd(p_data, _shifted(p_data, 50.0)) == pytest.approx(math.log(2), abs=1e-3)


def test_jsd_quadrature_agrees_with_monte_carlo() -> None:
    p, q = default_mixtures(1)
    gen = torch.Generator().manual_seed(0)
    x, y = p.sample(200_000, gen).double(), q.sample(200_000, gen).double()

    def half_kl(samples: torch.Tensor, own: GaussianMixture) -> float:
        log_own = log_density(own, samples)
        log_m = torch.logaddexp(log_density(p, samples), log_density(q, samples)) - math.log(2)
        return float(0.5 * (log_own - log_m).mean())

    assert mixture_jsd(p, q) == pytest.approx(half_kl(x, p) + half_kl(y, q), abs=5e-3)


def test_log_density_matches_scipy() -> None:
    mixture = default_mixtures(2)[1]
    o = mixture.oracle
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = sum(
        w * multivariate_normal(c.numpy(), s**2 * np.eye(2)).pdf(x.numpy())
        for c, s, w in zip(o.centres, o.stds.tolist(), o.weights.tolist(), strict=True)
    )
    np.testing.assert_allclose(log_density(mixture, x).exp().numpy(), expected, rtol=1e-10)


def test_settings_reject_unknown_keys_and_bad_dims() -> None:
    with pytest.raises(ValidationError):
        OptimalDSettings(width=3)
    with pytest.raises(ValidationError):
        OptimalDSettings(dim=3)


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["theory", "optimal-d", "--steps", "300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("mean_error", "mean_error_unweighted", "max_error", "game_value", "optimal_game_value", "jsd"):
        assert isinstance(out[key], float)
    assert out["mean_error"] < 0.1
