"""Feature-space metrics of two sample sets: real (N, D) and fake (M, D).

Each metric is a pure function `fn(real, fake, params, generator=None) -> dict[str, float]`
registered in METRICS. Inputs are any float tensors of samples x features (callers flatten
images); everything is computed in float64. The nearest-neighbour work is blockwise (see
`ganscope.metrics.neighbours`) so 10,000 x 10,000 samples never need a full distance matrix.
"""

from __future__ import annotations

import warnings
from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor

from ganscope.errors import DataError
from ganscope.metrics import METRICS
from ganscope.metrics.neighbours import (
    ball_counts,
    blockwise_min_distance,
    kth_neighbour_radii,
    nearest_neighbour_distances,
)
from ganscope.registry import Params


def _check_sets(
    metric: str, real: Tensor, fake: Tensor, min_real: int, min_fake: int, why: str
) -> tuple[Tensor, Tensor]:
    """Validate both sets and return them as float64; `why` explains the minimum sizes."""
    sets = {"real": torch.as_tensor(real), "fake": torch.as_tensor(fake)}
    for name, x in sets.items():
        if x.dim() != 2 or x.shape[1] == 0:
            raise DataError(
                f"{metric}: {name} must be a 2-D (samples, features) tensor with at least one "
                f"feature, got shape {tuple(x.shape)}; flatten samples with x.reshape(len(x), -1)"
            )
    if sets["real"].shape[1] != sets["fake"].shape[1]:
        raise DataError(
            f"{metric}: real has {sets['real'].shape[1]} features per sample but fake has "
            f"{sets['fake'].shape[1]}; compute both sets in the same feature space"
        )
    for (name, x), least in zip(sets.items(), (min_real, min_fake)):
        if len(x) < least:
            raise DataError(
                f"{metric}: {name} has {len(x)} samples but needs at least {least} ({why})"
            )
        if not torch.isfinite(x).all():
            raise DataError(
                f"{metric}: {name} contains NaN or infinite values; drop or fix those samples"
            )
    return sets["real"].to(torch.float64), sets["fake"].to(torch.float64)


def _resolve_seed(generator: torch.Generator | None, seed: int) -> int:
    """The seed param when no generator is given, else a seed drawn from the generator."""
    if generator is None:
        return seed
    return int(torch.randint(2**31 - 1, (1,), generator=generator).item())


def _fraction(mask: Tensor) -> float:
    return mask.to(torch.float64).mean().item()


# --- precision / recall / density / coverage -------------------------------------------


class PRDCParams(Params):
    pr_k: int = Field(3, ge=1, description="k of the k-NN balls for precision and recall")
    dc_k: int = Field(5, ge=1, description="k of the k-NN balls for density and coverage")


@METRICS.register(
    "prdc", "improved precision/recall (k=3) and density/coverage (k=5) of k-NN balls", PRDCParams
)
def prdc(
    real: Tensor, fake: Tensor, params: PRDCParams, generator: torch.Generator | None = None
) -> dict[str, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al.
    2020), sharing one neighbour computation.

    With r_k(x) the distance from x to its k-th nearest neighbour in its own set (own point
    excluded) and B(x, r) the closed ball:
      precision = 1/M sum_j [fake_j in some B(real_i, r_pr(real_i))]
      recall    = 1/N sum_i [real_i in some B(fake_j, r_pr(fake_j))]
      density   = 1/(k M) sum_j sum_i [fake_j in B(real_i, r_dc(real_i))]
      coverage  = 1/N sum_i [some fake_j in B(real_i, r_dc(real_i))]
    Defaults pr_k=3, dc_k=5. A set compared with itself gives precision = recall = coverage
    = 1 and density = (k+1)/k (each real ball holds its own point plus its k neighbours);
    independent samples of one distribution give density about 1.

    Blockwise: three passes over row blocks (real-real, fake-fake, real-fake) keep only the
    k smallest distances and ball counts, never an N x M matrix. `generator` is
    unused (the metric is deterministic).
    """
    k_max = max(params.pr_k, params.dc_k)
    real, fake = _check_sets(
        "prdc", real, fake, k_max + 1, params.pr_k + 1,
        f"real needs k={k_max} neighbours plus itself, fake k={params.pr_k}; "
        "pass more samples or lower pr_k/dc_k",
    )
    real_nn = nearest_neighbour_distances(real, k_max)
    fake_radii = kth_neighbour_radii(fake, params.pr_k)
    counts = ball_counts(
        real, real_nn[:, [params.pr_k - 1, params.dc_k - 1]], fake, fake_radii[:, None]
    )
    return {
        "precision": _fraction(counts.y_in_x_balls[:, 0] > 0),
        "recall": _fraction(counts.x_in_y_balls[:, 0] > 0),
        "density": counts.y_in_x_balls[:, 1].sum().item() / (params.dc_k * len(fake)),
        "coverage": _fraction(counts.x_balls_holding_y[:, 1] > 0),
    }


# --- NDB -------------------------------------------------------------------------------


class NDBParams(Params):
    bins: int = Field(100, ge=1, description="k-means bins K (clipped to at most N//2)")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of each bin's test")
    n_init: int = Field(3, ge=1, description="k-means restarts")
    seed: int = Field(0, description="k-means seed when no generator is given")


def _js_divergence(p: Tensor, q: Tensor) -> float:
    """Jensen-Shannon divergence in nats, with 0 log 0 = 0."""
    m = (p + q) / 2

    def kl_to_m(a: Tensor) -> Tensor:
        return torch.where(a > 0, a * torch.log(a / m), 0.0).sum()

    return (0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)).item()


def ndb_with_centres(real: Tensor, fake: Tensor, centres: Tensor, alpha: float) -> dict[str, float]:
    """NDB statistics for given bin centres: both sets are binned by nearest centre and each
    bin's proportions are compared with a pooled two-proportion z-test,
    z = (p_r - p_f) / sqrt(p (1 - p) (1/N + 1/M)), p = (n_r + n_f) / (N + M),
    the bin counting as different when its two-sided p-value is below alpha."""
    k = len(centres)
    real_counts, fake_counts = (
        torch.bincount(blockwise_min_distance(x, centres)[1], minlength=k).to(torch.float64)
        for x in (real, fake)
    )
    n, m = len(real), len(fake)
    p_real, p_fake = real_counts / n, fake_counts / m
    pooled = (real_counts + fake_counts) / (n + m)
    se = torch.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
    # se = 0 only when the bin is empty (or full) in both sets: identical proportions.
    z = torch.where(se > 0, (p_real - p_fake) / se, 0.0)
    p_values = 2 * torch.special.ndtr(-z.abs())
    different = int((p_values < alpha).sum().item())
    return {
        "ndb": float(different),
        "ndb_over_k": different / k,
        "js": _js_divergence(p_real, p_fake),
        "bins": float(k),
    }


@METRICS.register(
    "ndb", "number of statistically different k-means bins (NDB/K) and JS of bin proportions",
    NDBParams,
)
def ndb(
    real: Tensor, fake: Tensor, params: NDBParams, generator: torch.Generator | None = None
) -> dict[str, float]:
    """Number of statistically different bins (Richardson & Weiss 2018).

    K-means (sklearn, `n_init` restarts, seeded from `generator` or `seed`) partitions the
    real set into K bins (default 100); both sets are assigned to the nearest centre and
    each bin gets a pooled two-proportion z-test at alpha = 0.05 (see `ndb_with_centres`).
    Returns ndb, ndb_over_k, js (Jensen-Shannon divergence of the bin proportions, natural
    log) and bins (the K used: K is clipped to N//2 so bins average at least two real
    points, with a warning).

    Blockwise: assignment to the nearest of K centres walks over row blocks like the other
    metrics, so it stays bounded for any K and sample count.
    """
    real, fake = _check_sets(
        "ndb", real, fake, 2, 1, "k-means needs two real points per bin; pass more samples"
    )
    k = min(params.bins, len(real) // 2)
    if k < params.bins:
        warnings.warn(
            f"ndb: {params.bins} bins requested but real has only {len(real)} samples; "
            f"using {k} bins (at most N//2)",
            stacklevel=2,
        )
    from sklearn.cluster import KMeans  # scikit-learn is slow to import: only for NDB

    kmeans = KMeans(
        n_clusters=k, n_init=params.n_init, random_state=_resolve_seed(generator, params.seed)
    ).fit(real.cpu().numpy())
    centres = torch.as_tensor(kmeans.cluster_centers_, dtype=torch.float64, device=real.device)
    return ndb_with_centres(real, fake, centres, params.alpha)


# --- Frechet distance ------------------------------------------------------------------


def frechet_from_moments(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}), finite for singular covariances.

    Tr((S1 S2)^{1/2}) is the sum of square roots of the eigenvalues of S1 S2, which equal
    those of the symmetric PSD matrix sqrt(S1) S2 sqrt(S1) (AB and BA share eigenvalues).
    Both the square root (eigh) and those eigenvalues (eigvalsh) come from symmetric
    eigensolvers, which are real and stable for rank-deficient matrices, whereas
    scipy.linalg.sqrtm of the non-symmetric S1 S2 can return complex values or NaN when a
    covariance is singular (a collapsed generator). Eigenvalues are clamped at 0 to remove
    round-off negatives.
    """
    mu1, cov1, mu2, cov2 = (t.to(torch.float64) for t in (mu1, cov1, mu2, cov2))
    w, v = torch.linalg.eigh(cov1)
    sqrt1 = (v * w.clamp(min=0).sqrt()) @ v.T
    inner = sqrt1 @ cov2 @ sqrt1
    trace_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * trace_sqrt
    return max(distance.item(), 0.0)


def _moments(x: Tensor) -> tuple[Tensor, Tensor]:
    mu = x.mean(dim=0)
    centred = x - mu
    return mu, centred.T @ centred / (len(x) - 1)


@METRICS.register("frechet", "Frechet distance between Gaussians fitted to the two sets")
def frechet(
    real: Tensor, fake: Tensor, params: Params, generator: torch.Generator | None = None
) -> dict[str, float]:
    """Fréchet distance between Gaussians fitted to the sets (Dowson & Landau 1982; FID,
    Heusel et al. 2017): ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2}), with unbiased
    (N-1) covariances, computed in float64 by the eigenvalue route of `frechet_from_moments`
    so it stays finite when the generator collapses (all samples identical: S_f = 0).

    Not blockwise: it needs only means and D x D covariances, O((N + M) D^2) time and
    O(D^2) extra memory. No hyperparameters; `generator` is unused.
    """
    real, fake = _check_sets(
        "frechet", real, fake, 2, 2, "a covariance needs two samples; pass more samples"
    )
    return {"frechet": frechet_from_moments(*_moments(real), *_moments(fake))}


# --- birthday-paradox support ----------------------------------------------------------


class BirthdayParams(Params):
    batch_sizes: tuple[Annotated[int, Field(ge=2)], ...] = Field(
        (50, 100, 200, 400, 800), min_length=1, description="batch sizes s tried (capped by M)"
    )
    n_batches: int = Field(20, ge=1, description="random batches per size")
    threshold_quantile: float = Field(
        0.01, ge=0, le=1, description="quantile of the distinct real samples' nearest-neighbour "
        "distances below which (inclusive) two fake samples are near-duplicates"
    )
    seed: int = Field(0, description="batch sampling seed when no generator is given")


def near_duplicate_threshold(real: Tensor, quantile: float) -> float:
    """The `quantile` of nearest-neighbour distances among the distinct rows of `real`: two
    samples closer than this are near-duplicates (the birthday metric, the monitor).

    Distinct rows, because the threshold is a length scale of the data: a row that a data
    file repeats sits at distance 0 from its twin, and a quantile of such zeros would count
    only exact copies as near-duplicates.
    """
    distinct = torch.unique(real, dim=0)
    if len(distinct) < 2:
        raise DataError(
            f"near-duplicates: real has {len(distinct)} distinct sample(s); "
            "give at least two different real samples"
        )
    return torch.quantile(nearest_neighbour_distances(distinct, 1)[:, 0], quantile).item()


def _has_near_duplicate(batch: Tensor, threshold: float) -> bool:
    return nearest_neighbour_distances(batch, 1).min().item() <= threshold


@METRICS.register(
    "birthday", "birthday-paradox support size estimate and near-duplicate rates", BirthdayParams
)
def birthday(
    real: Tensor, fake: Tensor, params: BirthdayParams, generator: torch.Generator | None = None
) -> dict[str, float]:
    """Birthday-paradox support estimate (Arora & Zhang 2017).

    A distribution with support n yields a duplicate in a batch of s samples with
    probability about 1 - exp(-s^2 / 2n), about 1/2 when s ~ sqrt(n); so support ~ s^2 at
    the smallest s where duplicates appear with probability >= 1/2. Two fakes are
    near-duplicates when their distance is <= the `threshold_quantile` (default 0.01)
    quantile of the nearest-neighbour distances among the distinct real samples
    (`near_duplicate_threshold`). For each s in `batch_sizes`
    (default 50..800, capped by M), `n_batches` (default 20) batches are drawn without
    replacement. Returns support (s^2, or the largest s^2 as a lower bound when no size
    reaches 1/2, flagged by support_is_lower_bound), duplicate_rate_<s> per size,
    duplicate_fraction (share of all fakes with a near-duplicate among the other fakes)
    and threshold.

    Blockwise: the real and fake nearest-neighbour distances come from row-block passes
    (`nearest_neighbour_distances`), so the threshold and duplicate_fraction need no
    N x N matrix; a batch has a duplicate when its smallest 1-NN distance is within the
    threshold.
    """
    real, fake = _check_sets(
        "birthday", real, fake, 2, 2, "nearest-neighbour distances need two samples; pass more"
    )
    threshold = near_duplicate_threshold(real, params.threshold_quantile)
    gen = torch.Generator().manual_seed(_resolve_seed(generator, params.seed))
    sizes = sorted({min(s, len(fake)) for s in params.batch_sizes})
    result: dict[str, float] = {}
    support: int | None = None
    for s in sizes:
        rate = sum(
            _has_near_duplicate(fake[torch.randperm(len(fake), generator=gen)[:s]], threshold)
            for _ in range(params.n_batches)
        ) / params.n_batches
        result[f"duplicate_rate_{s}"] = rate
        if support is None and rate >= 0.5:
            support = s * s
    result["support"] = float(support if support is not None else sizes[-1] ** 2)
    result["support_is_lower_bound"] = float(support is None)
    fake_nn = nearest_neighbour_distances(fake, 1)[:, 0]
    result["duplicate_fraction"] = _fraction(fake_nn <= threshold)
    result["threshold"] = threshold
    return result
