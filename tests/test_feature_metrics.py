"""Feature-space metrics against slow, obviously-correct references (full numpy distance
matrices and loops) and on edge cases: a set with itself, a collapsed generator, known
Gaussians, too few samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import cdist, jensenshannon
from sklearn.cluster import KMeans

from ganscope.errors import DataError
from ganscope.metrics import METRICS
from ganscope.metrics.features import (
    BirthdayParams,
    NDBParams,
    PRDCParams,
    birthday,
    frechet,
    frechet_from_moments,
    ndb,
    ndb_with_centres,
    near_duplicate_threshold,
    prdc,
)
from ganscope.metrics.neighbours import (
    ball_counts,
    blockwise_min_distance,
    kth_neighbour_radii,
)
from ganscope.registry import Params


def _sets(n: int = 60, m: int = 70, d: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen), 1.2 * torch.randn(m, d, generator=gen) + 0.3


def _ref_radii(x: np.ndarray, k: int) -> np.ndarray:
    dist = cdist(x, x)
    np.fill_diagonal(dist, np.inf)
    return np.sort(dist, axis=1)[:, k - 1]


def _ref_prdc(real: np.ndarray, fake: np.ndarray, pr_k: int, dc_k: int) -> dict[str, float]:
    r_pr, r_dc, f_pr = _ref_radii(real, pr_k), _ref_radii(real, dc_k), _ref_radii(fake, pr_k)
    d = cdist(fake, real)  # d[j, i] = |fake_j - real_i|
    n, m = len(real), len(fake)
    precision = np.mean([any(d[j, i] <= r_pr[i] for i in range(n)) for j in range(m)])
    recall = np.mean([any(d[j, i] <= f_pr[j] for j in range(m)) for i in range(n)])
    density = sum(d[j, i] <= r_dc[i] for j in range(m) for i in range(n)) / (dc_k * m)
    coverage = np.mean([d[:, i].min() <= r_dc[i] for i in range(n)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


# --- neighbour helpers -------------------------------------------------------------------


def test_helpers_match_full_matrices() -> None:
    real, fake = _sets()
    r, f = real.double().numpy(), fake.double().numpy()
    np.testing.assert_allclose(kth_neighbour_radii(real, 2).numpy(), _ref_radii(r, 2), atol=1e-12)
    dist, index = blockwise_min_distance(fake, real)
    np.testing.assert_allclose(dist.numpy(), cdist(f, r).min(axis=1), atol=1e-12)
    np.testing.assert_array_equal(index.numpy(), cdist(f, r).argmin(axis=1))
    real_radii = torch.rand(len(real), 2, dtype=torch.float64) * 2
    fake_radii = torch.rand(len(fake), 1, dtype=torch.float64) * 2
    counts = ball_counts(real, real_radii, fake, fake_radii)
    d = cdist(r, f)  # d[i, j] = |real_i - fake_j|
    for c in range(2):
        inside = d <= real_radii[:, c].numpy()[:, None]
        np.testing.assert_array_equal(counts.y_in_x_balls[:, c].numpy(), inside.sum(axis=0))
        np.testing.assert_array_equal(counts.x_balls_holding_y[:, c].numpy(), inside.sum(axis=1))
    inside = d <= fake_radii[:, 0].numpy()[None, :]
    np.testing.assert_array_equal(counts.x_in_y_balls[:, 0].numpy(), inside.sum(axis=1))


def test_duplicates_count_as_neighbours_at_distance_zero() -> None:
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    assert kth_neighbour_radii(x, 1).tolist() == [0.0, 0.0, 5.0]


# --- prdc -----------------------------------------------------------------------------


@pytest.mark.parametrize("pr_k,dc_k", [(3, 5), (1, 2)])
def test_prdc_matches_reference(pr_k: int, dc_k: int) -> None:
    real, fake = _sets()
    got = prdc(real, fake, PRDCParams(pr_k=pr_k, dc_k=dc_k))
    want = _ref_prdc(real.double().numpy(), fake.double().numpy(), pr_k, dc_k)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-6), key


def test_prdc_set_with_itself() -> None:
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(1))
    got = prdc(x, x, PRDCParams())
    assert got["precision"] == got["recall"] == got["coverage"] == 1.0
    # Every real ball holds its own point and its k neighbours: density = (k + 1) / k exactly.
    assert got["density"] == pytest.approx(6 / 5, abs=1e-12)


def test_prdc_same_distribution_density_near_one() -> None:
    gen = torch.Generator().manual_seed(2)
    real, fake = torch.randn(500, 8, generator=gen), torch.randn(500, 8, generator=gen)
    assert prdc(real, fake, PRDCParams())["density"] == pytest.approx(1.0, abs=0.15)


def test_prdc_collapsed_fake_has_no_recall() -> None:
    real = torch.randn(300, 4, generator=torch.Generator().manual_seed(3))
    fake = torch.zeros(200, 4)
    got = prdc(real, fake, PRDCParams())
    assert got["recall"] == 0.0
    assert got["coverage"] < 0.05


# --- frechet --------------------------------------------------------------------------


def test_frechet_matches_sqrtm_reference() -> None:
    real, fake = _sets(d=4)
    r, f = real.double().numpy(), fake.double().numpy()
    s1, s2 = np.cov(r, rowvar=False), np.cov(f, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    want = np.sum((r.mean(0) - f.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet(real, fake, Params())["frechet"] == pytest.approx(want, abs=1e-6)


def test_frechet_from_moments_closed_form_diagonal() -> None:
    a, b = torch.tensor([1.0, 4.0, 0.0, 2.0]), torch.tensor([9.0, 1.0, 3.0, 0.0])
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0, 3.0]), torch.tensor([1.0, 1.0, 0.0, 3.0])
    want = ((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum()
    got = frechet_from_moments(mu1, torch.diag(a), mu2, torch.diag(b))
    assert got == pytest.approx(want.item(), abs=1e-10)
    # A zero covariance (collapsed generator): ||mu diff||^2 + Tr(S2).
    zero = frechet_from_moments(mu1, torch.zeros(4, 4), mu2, torch.diag(b))
    assert zero == pytest.approx((((mu1 - mu2) ** 2).sum() + b.sum()).item(), abs=1e-10)


def test_frechet_of_sampled_gaussians_near_closed_form() -> None:
    gen = torch.Generator().manual_seed(4)
    a, b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([2.0, 1.0, 0.25])
    mu = torch.tensor([0.5, -1.0, 0.0])
    real = torch.randn(40000, 3, generator=gen, dtype=torch.float64) * a.sqrt()
    fake = torch.randn(40000, 3, generator=gen, dtype=torch.float64) * b.sqrt() + mu
    want = (mu**2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum()
    assert frechet(real, fake, Params())["frechet"] == pytest.approx(want.item(), abs=0.05)


def test_frechet_finite_for_collapsed_and_rank_deficient_fakes() -> None:
    real = torch.randn(200, 16, generator=torch.Generator().manual_seed(5))
    collapsed = frechet(real, torch.ones(100, 16), Params())["frechet"]
    mu, cov = real.double().mean(0), torch.cov(real.double().T)
    assert collapsed == pytest.approx(((mu - 1) ** 2).sum().item() + cov.trace().item(), rel=1e-9)
    few = frechet(real, real[:3], Params())["frechet"]  # rank-2 covariance in 16-D
    assert math.isfinite(few) and few >= 0
    assert frechet(real, real, Params())["frechet"] == pytest.approx(0.0, abs=1e-8)


# --- ndb ------------------------------------------------------------------------------


def _ref_ndb(
    real: np.ndarray, fake: np.ndarray, centres: np.ndarray, alpha: float
) -> dict[str, float]:
    k = len(centres)
    real_bins, fake_bins = cdist(real, centres).argmin(1), cdist(fake, centres).argmin(1)
    n, m = len(real), len(fake)
    p = np.array([np.sum(real_bins == b) for b in range(k)]) / n
    q = np.array([np.sum(fake_bins == b) for b in range(k)]) / m
    different = 0
    for b in range(k):
        pooled = (p[b] * n + q[b] * m) / (n + m)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
        if se > 0 and math.erfc(abs(p[b] - q[b]) / se / math.sqrt(2)) < alpha:
            different += 1
    js = jensenshannon(p, q) ** 2  # scipy returns the square root, in nats by default
    return {"ndb": different, "ndb_over_k": different / k, "js": js, "bins": k}


def _clusters(centres: np.ndarray, per: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    noise = 0.1 * rng.standard_normal((len(centres) * per, 2))
    return torch.tensor(np.repeat(centres, per, axis=0) + noise)


def test_ndb_bin_test_matches_reference_with_fixed_centres() -> None:
    real, fake = _sets(200, 150, 2)
    centres = real[:12].double()
    got = ndb_with_centres(real.double(), fake.double(), centres, 0.05)
    want = _ref_ndb(real.double().numpy(), fake.double().numpy(), centres.numpy(), 0.05)
    assert want["ndb"] > 0
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-6), key


def test_ndb_uses_seeded_kmeans_centres() -> None:
    real, fake = _sets(200, 150, 2)
    params = NDBParams(bins=10, seed=7)
    centres = KMeans(n_clusters=10, n_init=params.n_init, random_state=7).fit(real.double().numpy())
    want = _ref_ndb(real.double().numpy(), fake.double().numpy(), centres.cluster_centers_, 0.05)
    got = ndb(real, fake, params)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-6), key


def test_ndb_of_set_with_itself_is_zero() -> None:
    real, _ = _sets(300, 1, 2)
    got = ndb(real, real, NDBParams(bins=20))
    assert got["ndb"] == 0 and got["js"] == pytest.approx(0.0, abs=1e-12)


def test_ndb_detects_missing_half_of_the_clusters() -> None:
    centres = np.array([[10.0 * i, 10.0 * (i % 2)] for i in range(10)])
    real, fake = _clusters(centres, 50, 0), _clusters(centres[:5], 100, 1)
    got = ndb(real, fake, NDBParams(bins=10))
    # One bin per cluster: p = 0.1 on ten bins, q = 0.2 on five of them.
    want_js = jensenshannon([0.1] * 10, [0.2] * 5 + [0.0] * 5) ** 2
    assert got["ndb"] == 10 and got["js"] == pytest.approx(want_js, abs=1e-9)


def test_ndb_clips_bins_with_warning() -> None:
    real, fake = _sets(30, 30, 2)
    with pytest.warns(UserWarning, match="using 15 bins"):
        assert ndb(real, fake, NDBParams())["bins"] == 15


# --- birthday -------------------------------------------------------------------------


def _ref_birthday(
    real: np.ndarray, fake: np.ndarray, params: BirthdayParams, gen: torch.Generator
) -> dict[str, float]:
    threshold = np.quantile(_ref_radii(real, 1), params.threshold_quantile)
    result: dict[str, float] = {}
    support = None
    for s in sorted({min(s, len(fake)) for s in params.batch_sizes}):
        hits = 0
        for _ in range(params.n_batches):  # the same batches as the metric draws
            batch = fake[torch.randperm(len(fake), generator=gen)[:s].numpy()]
            hits += any(
                np.linalg.norm(batch[a] - batch[b]) <= threshold
                for a in range(s)
                for b in range(a + 1, s)
            )
        result[f"duplicate_rate_{s}"] = hits / params.n_batches
        if support is None and hits / params.n_batches >= 0.5:
            support = s * s
    result["support"] = support if support is not None else s * s
    result["support_is_lower_bound"] = float(support is None)
    result["duplicate_fraction"] = np.mean(_ref_radii(fake, 1) <= threshold)
    result["threshold"] = threshold
    return result


def test_birthday_matches_reference() -> None:
    real = torch.randn(300, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    picks = torch.randint(150, (200,), generator=torch.Generator().manual_seed(7))
    fake = real[picks]  # 200 draws from 150 distinct points: duplicates at s ~ 12
    params = BirthdayParams(batch_sizes=(5, 10, 20, 40), n_batches=30, seed=3)
    got = birthday(real, fake, params)
    want = _ref_birthday(real.numpy(), fake.numpy(), params, torch.Generator().manual_seed(3))
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-6), key
    assert 100 <= got["support"] <= 1600 and got["support_is_lower_bound"] == 0


def test_birthday_collapsed_fake_is_all_duplicates() -> None:
    real = torch.randn(300, 4, generator=torch.Generator().manual_seed(8))
    got = birthday(real, torch.ones(250, 4), BirthdayParams(n_batches=3))
    assert got["duplicate_fraction"] == 1.0
    assert got["support"] == 50**2 and got["support_is_lower_bound"] == 0
    assert "duplicate_rate_250" in got and "duplicate_rate_400" not in got


def test_near_duplicate_threshold_ignores_rows_the_real_set_repeats() -> None:
    real = torch.randn(200, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    once = near_duplicate_threshold(real, 0.01)
    assert once == pytest.approx(np.quantile(_ref_radii(real.numpy(), 1), 0.01), abs=1e-12)
    # Every row two or three times: raw nearest-neighbour distances are all 0, not the scale.
    assert near_duplicate_threshold(torch.cat([real, real[:50], real]), 0.01) == once
    with pytest.raises(DataError, match="1 distinct sample"):
        near_duplicate_threshold(torch.ones(20, 3), 0.01)


def test_birthday_distinct_fake_gives_lower_bound() -> None:
    real, fake = _sets(300, 120, 3)
    got = birthday(real, fake, BirthdayParams(batch_sizes=(10, 50), n_batches=5))
    assert got["support_is_lower_bound"] == 1 and got["support"] == 50**2


# --- errors and registration ----------------------------------------------------------


@pytest.mark.parametrize(
    "real,fake,match",
    [
        (torch.randn(5, 3), torch.randn(10, 3), "real has 5 samples"),
        (torch.randn(10, 3), torch.randn(3, 3), "fake has 3 samples"),
        (torch.randn(0, 3), torch.randn(10, 3), "real has 0 samples"),
        (torch.randn(10, 3), torch.randn(10, 4), "same feature space"),
        (torch.randn(10), torch.randn(10, 3), "2-D"),
        (torch.full((10, 3), math.nan), torch.randn(10, 3), "NaN"),
    ],
)
def test_prdc_rejects_bad_sets(real: torch.Tensor, fake: torch.Tensor, match: str) -> None:
    with pytest.raises(DataError, match=match):
        prdc(real, fake, PRDCParams())


@pytest.mark.parametrize("name", ["frechet", "ndb", "birthday"])
def test_other_metrics_reject_too_few_samples(name: str) -> None:
    entry = METRICS.entry(name)
    with pytest.raises(DataError, match="real has 1 samples"):
        entry.obj(torch.randn(1, 3), torch.randn(10, 3), entry.params())


def test_metrics_are_registered_with_their_params() -> None:
    assert METRICS.entry("prdc").params is PRDCParams
    assert METRICS.entry("ndb").params is NDBParams
    assert METRICS.entry("birthday").params is BirthdayParams
    assert METRICS.get("frechet") is frechet
