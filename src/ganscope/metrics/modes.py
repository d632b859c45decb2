"""Mode-histogram scores of a sample set against a dataset's mode oracle, as the
VEEGAN/PacGAN protocol defines them (docs/PROTOCOLS.md): high quality, modes covered,
reverse KL of the high-quality histogram to the true mode weights, per-mode counts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ganscope.data import ModeAssignment, ModeOracle, Reading


@dataclass(frozen=True)
class ModeScore:
    n_samples: int
    n_modes: int
    modes_covered: int
    hq_fraction: float
    reverse_kl: float  # NaN when no sample is high quality
    counts: list[int]  # high-quality samples per mode
    #: Every sample per nearest mode, high quality or not: where the generator puts its
    #: mass even before it is sharp, so a pile of samples off the modes still shows.
    nearest_counts: list[int]
    #: The data protocol's own numbers (`ModeOracle.protocol_score`), e.g. Stacked MNIST's
    #: distinct triples and KL over every sample; None when it defines none.
    protocol: dict[str, object] | None = None
    protocol_summary: str | None = None
    #: For a conditional generator: the share of samples the oracle reads as the label
    #: they were generated for (every sample counted, high quality or not); else None.
    label_fidelity: float | None = None
    #: Label fidelity of each class's samples (None for a class no sample was asked for).
    class_fidelity: list[float | None] | None = None
    #: Per class: the share of its modes that the samples asked for it cover (counted as
    #: `modes_covered` counts); 1 mode per class unless a label spans several modes.
    class_coverage: list[float | None] | None = None

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["reverse_kl"] = None if math.isnan(self.reverse_kl) else self.reverse_kl
        del d["protocol_summary"]
        if self.intra_class_coverage is not None:
            d["intra_class_coverage"] = self.intra_class_coverage
        for optional in ("protocol", "label_fidelity", "class_fidelity", "class_coverage"):
            if d[optional] is None:
                del d[optional]
        return d

    @property
    def intra_class_coverage(self) -> float | None:
        """Mean over classes of `class_coverage`, where a label spans several modes (one
        digit of a stacked triple); None otherwise."""
        if self.class_coverage is None or self.n_modes == len(self.class_coverage):
            return None
        values = [c for c in self.class_coverage if c is not None]
        return sum(values) / len(values) if values else None

    def summary(self) -> str:
        rkl = "n/a (no high-quality samples)" if math.isnan(self.reverse_kl) else f"{self.reverse_kl:.3f}"
        text = (
            f"{self.modes_covered}/{self.n_modes} modes covered, "
            f"{100 * self.hq_fraction:.1f}% high quality, reverse KL {rkl}"
        )
        if self.label_fidelity is not None:
            text += f", label fidelity {100 * self.label_fidelity:.1f}%"
        if self.intra_class_coverage is not None:
            text += f", intra-class coverage {100 * self.intra_class_coverage:.1f}%"
        return f"{text}; {self.protocol_summary}" if self.protocol_summary else text


def reverse_kl(counts: torch.Tensor, weights: torch.Tensor) -> float:
    """KL(p_hat || p_data) with p_hat = counts / sum(counts), 0 log 0 = 0."""
    total = counts.sum()
    if total == 0:
        return math.nan
    p_hat = counts.double() / total
    mask = p_hat > 0
    return float((p_hat[mask] * (p_hat[mask] / weights.double()[mask]).log()).sum())


def score_modes(
    samples: torch.Tensor,
    oracle: ModeOracle,
    reading: Reading | None = None,
    labels: torch.Tensor | None = None,
    mode_labels: torch.Tensor | None = None,
) -> ModeScore:
    """Score one sample set (N, *sample_shape); `reading` is the oracle's, when it has
    read these samples already; `labels` (N,) the classes a conditional generator was asked
    for and `mode_labels` (K_modes,) each mode's class (`Dataset.mode_labels`; default: a
    label is its mode)."""
    if samples.shape[0] == 0:
        raise ValueError("no samples to score")
    assignment = reading.assignment if reading is not None else oracle.assign(samples)
    counts = torch.bincount(assignment.mode[assignment.high_quality], minlength=oracle.n_modes)
    nearest = torch.bincount(assignment.mode, minlength=oracle.n_modes)
    protocol = oracle.protocol_score(nearest)
    return ModeScore(
        n_samples=int(samples.shape[0]),
        n_modes=oracle.n_modes,
        modes_covered=int((counts > 0).sum()),
        hq_fraction=float(assignment.high_quality.double().mean()),
        reverse_kl=reverse_kl(counts, oracle.weights),
        counts=counts.tolist(),
        nearest_counts=nearest.tolist(),
        protocol=None if protocol is None else protocol.to_dict(),
        protocol_summary=None if protocol is None else protocol.summary(),
        **({} if labels is None else conditional_scores(assignment, labels, mode_labels, oracle)),
    )


def conditional_scores(
    assignment: ModeAssignment, labels: torch.Tensor, mode_labels: torch.Tensor | None, oracle: ModeOracle
) -> dict[str, Any]:
    """Label fidelity overall and per class, and per class the share of its modes covered
    by the samples asked for it (None for a class no sample was asked for)."""
    mode_labels = torch.arange(oracle.n_modes) if mode_labels is None else mode_labels
    n_classes = int(mode_labels.max()) + 1
    read = mode_labels[assignment.mode]
    asked = torch.bincount(labels, minlength=n_classes)
    hits = torch.bincount(labels[read == labels], minlength=n_classes)
    everyone = torch.ones_like(labels, dtype=torch.bool)
    covering = assignment.high_quality if oracle.covered_by == "high-quality" else everyone
    covered = torch.zeros(n_classes, oracle.n_modes, dtype=torch.bool)
    keep = covering & (read == labels)
    covered[labels[keep], assignment.mode[keep]] = True
    modes_per_class = torch.bincount(mode_labels, minlength=n_classes)
    return {
        "label_fidelity": float((read == labels).double().mean()),
        "class_fidelity": [None if int(a) == 0 else float(h) / int(a) for a, h in zip(asked, hits, strict=True)],
        "class_coverage": [None if int(a) == 0 else int(c) / int(m)
                           for a, c, m in zip(asked, covered.sum(dim=1), modes_per_class, strict=True)],
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation, ignoring NaN (std 0 for one value)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan
    mean = sum(finite) / len(finite)
    if len(finite) == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)
    return mean, math.sqrt(var)


def population_summary(scores: list[ModeScore]) -> dict[str, list[float] | float]:
    """Per-seed values and their mean and std for each headline number."""
    out: dict[str, list[float] | float] = {}
    keys = ["modes_covered", "hq_fraction", "reverse_kl"]
    for optional in ("label_fidelity", "intra_class_coverage"):
        if all(getattr(s, optional) is not None for s in scores):
            keys.append(optional)
    columns = {key: [float(getattr(s, key)) for s in scores] for key in keys}
    if all(s.protocol is not None for s in scores):
        for key in PROTOCOL_NUMBERS:
            if all(isinstance(s.protocol.get(key), (int, float)) for s in scores):  # type: ignore[union-attr]
                columns[f"protocol_{key}"] = [float(s.protocol[key]) for s in scores]  # type: ignore[index]
    for key, values in columns.items():
        mean, std = mean_std(values)
        out[key] = values
        out[f"{key}_mean"], out[f"{key}_std"] = mean, std
    return out


#: The protocol numbers (`ModeScore.protocol`) summarised over a population, as `protocol_<key>`.
PROTOCOL_NUMBERS = ("modes", "kl")
