"""Detectors: one small registered judge per failure mode of GAN training.

A detector reads one seed's `History` (its latest evaluations with their sample
statistics, and the train records logged between them) and returns a `Finding` when its
condition holds: the step at which the evidence started, the numbers, and one line of
text. The `Monitor` turns a finding into an event once, when it starts, and records when
it ends. Every threshold is a field of the detector's Params with its reason beside it;
override one with `-s train.monitor.detectors.<detector>.<field>=<value>`.

The sample detectors tell mode collapse from mode dropping (docs/FAILURE_MODES.md) by the
samples' diversity, measured against the real data's own (`Diversity`): collapse
concentrates the samples on few modes *and* loses that diversity (near-duplicates,
shrunken modes, everything in one small region); dropping is every other state that
leaves a mode uncovered. Dropping reads collapse's rule with its own copy of the
thresholds (same defaults), so the two exclude each other and an uncovered mode always
has one name; not-converging speaks for samples that are not near the modes at all. So
a seed that ends with an uncovered mode or few high-quality samples always has a
condition that holds at the end (`Monitor.current`), which is what the verdict reports.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
from pydantic import Field, PositiveInt

from ganscope.registry import Params, new_registry

DETECTORS = new_registry("detector", "detectors")

HISTORY_EVALS = 50
"""Evaluations each seed's history keeps (and the train records logged since the oldest):
more than any default window needs, and the horizon of every look-back for `started_at`."""

LOSS_SCALE_FLOOR = 0.1
"""Losses are judged relative to their magnitude, but never to less than this, so noise
around zero (a Wasserstein critic, a hinge loss at equilibrium) is not a big change."""

T = TypeVar("T")


# ---- what detectors read ------------------------------------------------------------


def _number(value: Any) -> float:
    """A logged value as a float; a missing or null value (NaN logged as null) is NaN."""
    return math.nan if value is None else float(value)


def _numbers(values: Sequence[Any] | None) -> np.ndarray:
    """A logged list as floats (nulls as NaN); a missing list is empty."""
    return np.asarray([_number(v) for v in values or []], dtype=np.float64)


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of one seed: its mode histogram and its diversity statistics."""

    step: int
    counts: np.ndarray  # high-quality samples per mode
    hq_fraction: float
    duplicate_fraction: float  # share of samples with a near-duplicate; NaN if unmeasured
    spread_ratio: float  # within-mode spread over the real data's; NaN if unmeasured
    nearest_counts: np.ndarray  # all samples per nearest mode, high quality or not
    global_spread_ratio: float  # all samples' spread about their mean over the real data's; NaN if unmeasured
    #: A conditional generator's: share of samples read as their asked class (NaN if
    #: unconditional), that share per class, and per class the spread of the samples asked
    #: for it over the real class's (empty arrays if unconditional; NaN where unmeasured).
    label_fidelity: float = math.nan
    class_fidelity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    class_spread_ratio: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Evaluation:
        counts = np.asarray(record["counts"], dtype=np.float64)
        return cls(
            step=int(record["step"]),
            counts=counts,
            hq_fraction=_number(record["hq_fraction"]),
            duplicate_fraction=_number(record.get("duplicate_fraction")),
            spread_ratio=_number(record.get("spread_ratio")),
            # Logs written before these were recorded: the high-quality histogram is the
            # closest stand-in, and an unmeasured spread never counts as lost.
            nearest_counts=np.asarray(record.get("nearest_counts", counts), dtype=np.float64),
            global_spread_ratio=_number(record.get("global_spread_ratio")),
            label_fidelity=_number(record.get("label_fidelity")),
            class_fidelity=_numbers(record.get("class_fidelity")),
            class_spread_ratio=_numbers(record.get("class_spread_ratio")),
        )

    @property
    def hq_total(self) -> float:
        return float(self.counts.sum())

    @property
    def shares(self) -> np.ndarray:
        """Share of the high-quality samples on each mode (all zero when there are none)."""
        total = self.hq_total
        return self.counts / total if total > 0 else self.counts


@dataclass
class History:
    """What the monitor remembers of one seed: recent evaluations and train records."""

    weights: np.ndarray  # the true mode weights
    #: What makes a sample high quality (`ModeOracle.quality_rule`), for event texts.
    quality_rule: str = "within the protocol's distance of a mode"
    #: Which samples cover a mode (`ModeOracle.covered_by`): "high-quality" or "all".
    covered_by: str = "high-quality"
    #: Where distances between samples are measured (`ModeOracle.feature_space`).
    feature_space: str = "the samples' own coordinates"
    evals: deque[Evaluation] = field(default_factory=lambda: deque(maxlen=HISTORY_EVALS))
    train: list[dict[str, Any]] = field(default_factory=list)
    #: Largest finite value each train key has reached over the whole run, never trimmed:
    #: "G's gradient norm collapsed" is relative to its own peak.
    peaks: dict[str, float] = field(default_factory=dict)
    #: Set when training has ended: the latest evaluation is the last, and rules that wait
    #: for training to get going no longer wait.
    final: bool = False

    @property
    def latest(self) -> Evaluation | None:
        return self.evals[-1] if self.evals else None

    def add_train(self, record: dict[str, Any]) -> None:
        self.train.append(record)
        for key, value in record.items():
            if key not in ("step", "seed", "kind") and isinstance(value, (int, float)) and math.isfinite(value):
                self.peaks[key] = max(self.peaks.get(key, -math.inf), float(value))

    def add_eval(self, evaluation: Evaluation) -> None:
        self.evals.append(evaluation)
        oldest = self.evals[0].step
        self.train = [r for r in self.train if r["step"] > oldest]

    def records(self, evals_back: int | None = None) -> list[dict[str, Any]]:
        """Train records logged within the last `evals_back` evaluation intervals (all kept
        records when None or when fewer evaluations are kept)."""
        if evals_back is None or len(self.evals) <= evals_back:
            return self.train
        since = self.evals[-evals_back - 1].step
        return [r for r in self.train if r["step"] > since]


def values(records: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """One train key over `records`, NaN where missing or non-finite."""
    return np.array([_number(r.get(key)) for r in records], dtype=np.float64)


def steps(records: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.array([r["step"] for r in records], dtype=np.int64)


def effective_modes(p: np.ndarray) -> float:
    """exp(entropy) of a distribution: the number of equally likely modes it is worth
    (0 log 0 = 0; 0 for an empty histogram)."""
    total = p.sum()
    if total <= 0:
        return 0.0
    q = p[p > 0] / total
    return float(np.exp(-(q * np.log(q)).sum()))


def trailing_start(items: Sequence[T], holds: Callable[[T], bool], step: Callable[[T], int]) -> int:
    """Step of the first item of the run of trailing items for which `holds` is true:
    when the current evidence started. The caller has seen the last item hold."""
    start = len(items) - 1
    while start > 0 and holds(items[start - 1]):
        start -= 1
    return step(items[start])


def loss_scale(x: np.ndarray, percentile: float = 50) -> float:
    """A loss's magnitude over a window: a percentile of |x|, at least LOSS_SCALE_FLOOR."""
    return max(float(np.nanpercentile(np.abs(x), percentile)), LOSS_SCALE_FLOOR)


def fitted_change(t: np.ndarray, x: np.ndarray) -> float:
    """Change of the least-squares line through (t, x) from the first t to the last:
    a trend measure that noise around it barely moves."""
    if len(t) < 2 or t[-1] == t[0]:
        return 0.0
    slope = np.polyfit(t.astype(np.float64), x, 1)[0]
    return float(slope * (t[-1] - t[0]))


# ---- what detectors say -------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A detector's positive verdict: when the evidence started, its numbers, one line."""

    started_at: int
    evidence: dict[str, float]
    text: str


@dataclass(frozen=True)
class TryPiece:
    """A remedy that is a registered piece: `registry` is its `ALL_REGISTRIES` key."""

    registry: str
    name: str


@dataclass(frozen=True)
class ChangeSetting:
    """A remedy that changes a setting: the dotted config key, a name for it, and the
    value to try given the current one."""

    key: str
    name: str
    new_value: Callable[[Any], Any]


Suggestion = TryPiece | ChangeSetting


def _halve(value: float) -> float:
    return value / 2


class Detector(ABC):
    """Judges one seed's history; built from its registered Params."""

    #: Remedies to suggest when it fires, most promising first; the monitor keeps those
    #: that are registered (and not already in use) when it raises the event.
    remedies: ClassVar[tuple[Suggestion, ...]] = ()
    #: Also judged on every non-finite loss, at once: training stops there, before the
    #: next evaluation. Others are judged at evaluations only.
    urgent: ClassVar[bool] = False

    def __init__(self, params: Params) -> None:
        self.params = params

    @abstractmethod
    def check(self, history: History) -> Finding | None:
        """The finding if the condition holds now, else None."""


# ---- mode histogram detectors --------------------------------------------------------


class HistogramParams(Params):
    min_hq_fraction: float = Field(
        0.2, ge=0, le=1,
        description="judge the high-quality histogram only when at least this share of samples is high "
        "quality: below it the histogram says more about sample quality than about modes "
        "(not-converging speaks for those evaluations)",
    )


def _judged(ev: Evaluation, p: HistogramParams) -> bool:
    return ev.hq_total > 0 and ev.hq_fraction >= p.min_hq_fraction


class DiversityParams(Params):
    lost_spread_ratio: float = Field(
        0.35, gt=0,
        description="diversity within the covered modes is lost when their spread (RMS distance "
        "to their own mean, mass-weighted) is at most this multiple of the real data's; GANs "
        "that cover the ring well keep about 0.4-1x, samples piled onto points give about 0",
    )
    lost_duplicate_fraction: float = Field(
        0.5, gt=0, le=1,
        description="... or when at least this share of samples has a near-duplicate (closer "
        "than the real data's 1% nearest-neighbour quantile: real data scores 0.01, and "
        "concentration alone about K x 0.01 with all mass on one of K modes)",
    )
    lost_global_spread_ratio: float = Field(
        0.35, gt=0,
        description="... or when all samples, high quality or not, lie within this multiple of the "
        "real data's overall spread (RMS distance to the mean): a generator that piles its samples "
        "in one place, on a mode or off the modes; covering two adjacent ring modes gives ~0.4",
    )


def _diversity_lost(ev: Evaluation, p: DiversityParams) -> list[str]:
    """The rules by which diversity is lost at `ev`, as text with the measured values
    (empty when it is not: NaN, unmeasured, never counts as lost)."""
    rules = []
    if ev.spread_ratio <= p.lost_spread_ratio:
        rules.append(f"within-mode spread {ev.spread_ratio:.2f}x real (rule: <= {p.lost_spread_ratio:g}x)")
    if ev.duplicate_fraction >= p.lost_duplicate_fraction:
        rules.append(f"{100 * ev.duplicate_fraction:.0f}% of samples have a near-duplicate "
                     f"(rule: >= {100 * p.lost_duplicate_fraction:.0f}%)")
    if ev.global_spread_ratio <= p.lost_global_spread_ratio:
        rules.append(f"all samples within {ev.global_spread_ratio:.2f}x the real overall spread "
                     f"(rule: <= {p.lost_global_spread_ratio:g}x)")
    return rules


class CollapseParams(DiversityParams):
    max_effective_fraction: float = Field(
        0.5, gt=0, le=1,
        description="mass is concentrated on few modes when the effective number of modes, "
        "exp(entropy), of all samples' nearest modes is at most this fraction of the true "
        "weights' (4 of 8 on the ring)",
    )


def _concentration(ev: Evaluation, weights: np.ndarray) -> float:
    """Effective modes of all samples' nearest-mode histogram over the true weights'."""
    return effective_modes(ev.nearest_counts) / effective_modes(weights)


def _collapsed(ev: Evaluation, weights: np.ndarray, p: CollapseParams) -> bool:
    return _concentration(ev, weights) <= p.max_effective_fraction and bool(_diversity_lost(ev, p))


@DETECTORS.register(
    "collapse", "samples pile onto few modes (or one place off the modes) and lose their diversity",
    CollapseParams,
)
class Collapse(Detector):
    """Mode collapse (docs/FAILURE_MODES.md): the generator puts its samples in one or a few
    places with little variety. Read from all samples, not only the high-quality ones, so
    a generator that piles everything in one place off the modes is collapsed too: mass
    concentrated on few modes' neighbourhoods *and* diversity lost (near-duplicates,
    shrunken modes, or all samples in a small region). Concentration alone with real
    diversity is dropping. `started_at` is the first evaluation of the trailing run that
    shows either half."""

    params: CollapseParams
    remedies = (
        TryPiece("schemes", "unrolled"),
        TryPiece("d_modifiers", "pack"),
        TryPiece("d_modifiers", "minibatch"),
        TryPiece("schemes", "madgan"),
    )

    def check(self, history: History) -> Finding | None:
        ev, w, p = history.latest, history.weights, self.params
        if ev is None or not _collapsed(ev, w, p):
            return None
        started = trailing_start(
            history.evals,
            lambda e: _concentration(e, w) <= p.max_effective_fraction or bool(_diversity_lost(e, p)),
            lambda e: e.step,
        )
        shares = ev.nearest_counts / max(ev.nearest_counts.sum(), 1)
        order = np.argsort(shares)[::-1]
        n_top = int(np.searchsorted(np.cumsum(shares[order]), 0.9) + 1)
        evidence = {
            "effective_modes": effective_modes(ev.nearest_counts),
            "true_effective_modes": effective_modes(w),
            "top_mode_share": float(shares[order[0]]),
            "modes_holding_90pct": float(n_top),
            "hq_fraction": ev.hq_fraction,
            **_diversity_numbers(ev),
        }
        near = ", ".join(str(m) for m in order[:n_top][:5]) + (", ..." if n_top > 5 else "")
        text = (
            f"90% of samples lie nearest to {n_top} mode(s) ({near}): {evidence['effective_modes']:.1f} effective "
            f"of {evidence['true_effective_modes']:.1f} (rule: <= {100 * p.max_effective_fraction:.0f}%), "
            f"{100 * ev.hq_fraction:.0f}% high quality; diversity lost: {'; '.join(_diversity_lost(ev, p))}"
        )
        return Finding(started, evidence, text)


def _diversity_numbers(ev: Evaluation) -> dict[str, float]:
    return {"spread_ratio": ev.spread_ratio, "duplicate_fraction": ev.duplicate_fraction,
            "global_spread_ratio": ev.global_spread_ratio}


class DroppingParams(HistogramParams, CollapseParams):
    max_mode_share: float = Field(
        0.0, ge=0, lt=1,
        description="a mode counts as dropped when it gets at most this fraction of its fair share "
        "of the high-quality samples (true weight x their number). 0: no high-quality sample at all, "
        "the protocol's 'not covered'. A mode that is covered but starved shows in reverse KL; a 10% "
        "rule alarmed on 6 of 9 healthy held-out seeds (README, monitor validation)",
    )
    min_dropped: PositiveInt = Field(1, description="dropped modes needed to raise the event")
    min_fair_share: float = Field(
        5.0, ge=0,
        description="a mode is judged only when its fair share of the high-quality samples is at least "
        "this: a mode that expects λ samples gets none by chance with probability e^-λ (0.7% at 5), so on "
        "1000 modes with 2,500 samples (λ 2.5) a perfect generator would 'drop' about 80. Draw more samples "
        "(train.eval_samples) to judge rarer modes",
    )


@DETECTORS.register(
    "dropping", "some modes get no high-quality sample (not covered), and it is not collapse",
    DroppingParams,
)
class Dropping(Detector):
    """Mode dropping (docs/FAILURE_MODES.md): some modes of the real data get (almost) no
    samples. Every such state that is not collapse is dropping, so an uncovered mode at a
    judged evaluation always has a name. The collapse rule is read with this detector's
    own copy of collapse's thresholds (same defaults): change both to move the boundary. `started_at` is the first evaluation of the trailing
    run with dropped modes."""

    params: DroppingParams
    remedies = (
        TryPiece("schemes", "mrgan"),
        TryPiece("d_modifiers", "pack"),
        TryPiece("schemes", "madgan"),
    )

    @staticmethod
    def _coverage(ev: Evaluation, history: History) -> np.ndarray:
        """Samples per mode as the data's protocol counts coverage (`ModeOracle.covered_by`):
        high-quality samples on the 2-D protocols, every sample's mode on Stacked MNIST."""
        return ev.counts if history.covered_by == "high-quality" else ev.nearest_counts

    def _dropped(self, ev: Evaluation, history: History) -> np.ndarray:
        counts = self._coverage(ev, history)
        fair = history.weights * counts.sum()
        return (counts <= self.params.max_mode_share * fair) & (fair >= self.params.min_fair_share)

    def _holds(self, ev: Evaluation, history: History) -> bool:
        # The high-quality histogram is judged only with enough high-quality samples; a
        # protocol that counts every sample needs none to be sharp.
        judged = _judged(ev, self.params) if history.covered_by == "high-quality" else ev.nearest_counts.sum() > 0
        return judged and int(self._dropped(ev, history).sum()) >= self.params.min_dropped

    def check(self, history: History) -> Finding | None:
        ev, w, p = history.latest, history.weights, self.params
        if ev is None or not self._holds(ev, history) or _collapsed(ev, w, p):
            return None
        started = trailing_start(history.evals, lambda e: self._holds(e, history), lambda e: e.step)
        counts = self._coverage(ev, history)
        dropped = np.flatnonzero(self._dropped(ev, history))
        kept = np.ones(len(w), dtype=bool)
        kept[dropped] = False
        evidence = {
            "modes_dropped": float(len(dropped)),
            "n_modes": float(len(w)),
            "modes_uncovered": float((counts == 0).sum()),
            "evenness": effective_modes(counts[kept]) / effective_modes(w[kept]) if kept.any() else 0.0,
            **_diversity_numbers(ev),
        }
        shown, more = dropped[:10], ", ..." if len(dropped) > 10 else ""
        fair = np.round(w[shown] * counts.sum()).astype(int)
        fair_text = f"{fair[0]}" if (fair == fair[0]).all() else ", ".join(map(str, fair)) + more
        which = "high-quality sample" if history.covered_by == "high-quality" else "sample at all"
        rule = (f"no {which}" if p.max_mode_share == 0 else
                f"at most {100 * p.max_mode_share:g}% of their fair share of the {which.replace(' at all', '')}s")
        text = (
            f"{len(dropped)} of {len(w)} modes get {rule} (modes {', '.join(map(str, shown))}{more} hold "
            f"{', '.join(str(int(counts[m])) for m in shown)}{more} of the {int(counts.sum())}; fair share "
            f"{fair_text}), while {int((counts > 0).sum())} are covered"
        )
        return Finding(started, evidence, text)


class NotConvergingParams(Params):
    min_hq_fraction: float = Field(
        0.5, gt=0, le=1,
        description="a seed is not converging while fewer than this share of its samples are high "
        "quality (within the protocol's 3 std of a mode); converged GANs on the protocols reach 80-99%",
    )
    grace_evals: int = Field(
        1, ge=0,
        description="the first evaluations (this many) are not judged: every generator starts far from "
        "the modes. Counted in evaluations, not as a share of train.steps, so that a judgement never "
        "depends on how long the run is planned to be (resume with more steps stays bit-exact); the "
        "last evaluation of a run is always judged",
    )


@DETECTORS.register(
    "not-converging", "too few samples are near any mode (high quality), after the first evaluation",
    NotConvergingParams,
)
class NotConverging(Detector):
    """A generator that never produces high-quality samples, or loses them: few samples
    within the protocol's distance of any mode (docs/PROTOCOLS.md, "high quality"). Distinct
    from collapse (where samples go) and dropping (which modes get them): it says the
    samples are not where the data is, whatever their spread. `started_at` is the first
    evaluation of the trailing run below the threshold."""

    params: NotConvergingParams
    remedies = (
        ChangeSetting("train.lr_schedule", "decay the learning rate", lambda _: "cosine"),
        ChangeSetting("optimizer.discriminator.lr", "lower D lr", _halve),
    )

    def _low(self, ev: Evaluation) -> bool:
        return not ev.hq_fraction >= self.params.min_hq_fraction  # NaN counts as low

    def check(self, history: History) -> Finding | None:
        ev, p = _judged_now(history, self.params.grace_evals), self.params
        if ev is None or not self._low(ev):
            return None
        started = trailing_start(history.evals, self._low, lambda e: e.step)
        finite = [e.hq_fraction for e in history.evals if math.isfinite(e.hq_fraction)]
        best = max(finite, default=math.nan)
        evidence = {"hq_fraction": ev.hq_fraction, "best_hq_fraction": best,
                    "modes_covered": float((ev.counts > 0).sum())}
        text = (
            f"only {100 * ev.hq_fraction:.1f}% of samples are high quality, {history.quality_rule} "
            f"(rule: under {100 * p.min_hq_fraction:.0f}% after the first {p.grace_evals} evaluation(s)); "
            f"best so far {100 * best:.1f}%"
        )
        return Finding(started, evidence, text)


class HoppingParams(HistogramParams):
    min_hq_fraction: float = Field(
        0.05, ge=0, le=1,
        description="judge an evaluation's dominant mode only when at least this share of samples "
        "is high quality; lower than for collapse, since a hopping generator is often caught "
        "between modes",
    )
    window: int = Field(
        6, ge=3, description="latest evaluations looked at (6 sees two hops of a generator that "
        "moves every second evaluation)",
    )
    min_dominant_share: float = Field(
        0.5, gt=0, le=1,
        description="a mode dominates an evaluation when it holds at least this share of the "
        "high-quality samples",
    )
    min_hops: PositiveInt = Field(
        2, description="changes of the dominant mode from one evaluation that has one to the "
        "next, within the window, that count as hopping (one change is a move, two a swing)",
    )


@DETECTORS.register(
    "hopping", "the dominant mode changes from one evaluation to the next (mode hopping)", HoppingParams
)
class Hopping(Detector):
    """Mode hopping (docs/FAILURE_MODES.md, section 1): a generator effectively optimised against the
    current D alone jumps to the mode D rates highest, D follows, and G hops on. Seen at
    evaluations as a dominant mode that keeps changing. `started_at` is the first
    evaluation, within the window, of the mode the first counted hop left."""

    params: HoppingParams
    remedies = (
        TryPiece("schemes", "unrolled"),
        ChangeSetting("optimizer.generator.lr", "lower G lr", _halve),
    )

    def _dominant(self, ev: Evaluation) -> int | None:
        if not _judged(ev, self.params) or ev.shares.max() < self.params.min_dominant_share:
            return None
        return int(ev.shares.argmax())

    def check(self, history: History) -> Finding | None:
        window = list(history.evals)[-self.params.window :]
        dominated = [(e, m) for e in window if (m := self._dominant(e)) is not None]
        hops = [i for i in range(1, len(dominated)) if dominated[i][1] != dominated[i - 1][1]]
        if len(hops) < self.params.min_hops:
            return None
        first = hops[0] - 1
        while first > 0 and dominated[first - 1][1] == dominated[first][1]:
            first -= 1
        path = " -> ".join(str(m) for _, m in dominated)
        evidence = {"hops": float(len(hops)), "evaluations": float(len(window)),
                    "dominant_share": float(window[-1].shares.max())}
        text = (f"the dominant mode (holding >= {100 * self.params.min_dominant_share:.0f}% of high-quality samples) "
                f"changed {len(hops)} times in the last {len(window)} evaluations ({path}; rule: >= "
                f"{self.params.min_hops} changes)")
        return Finding(dominated[first][0].step, evidence, text)


# ---- loss detectors -------------------------------------------------------------------


class OscillationParams(Params):
    window: PositiveInt = Field(2, description="evaluation intervals of train records looked at")
    min_jump: float = Field(
        0.25, gt=0,
        description="a change between consecutive records is a jump when it is at least this "
        "fraction of the loss's 90th-percentile magnitude in the window (healthy window averages "
        "move a few percent; the high percentile keeps a loss that fell to zero on its old scale)",
    )
    min_jumps: int = Field(4, ge=2, description="jumps in the window needed to judge (two up, two down)")
    min_reversal_rate: float = Field(
        0.5, gt=0, le=1,
        description="share of successive jumps in opposite directions at or above which the loss "
        "oscillates; a trend, a step or an explosion jumps one way and gives about 0",
    )


@DETECTORS.register(
    "oscillation", "D's or G's loss jumps up and down between evaluations", OscillationParams
)
class Oscillation(Detector):
    """Instability (docs/FAILURE_MODES.md): the losses oscillate as one player wins, then the
    other. Judged on large jumps only, so noise, a trend, a step (D suddenly winning) or
    an explosion are not oscillations. `started_at` is the record after the first jump."""

    params: OscillationParams
    remedies = (
        ChangeSetting("optimizer.generator.lr", "lower G lr", _halve),
        ChangeSetting("optimizer.discriminator.lr", "lower D lr", _halve),
        TryPiece("schemes", "unrolled"),
    )

    def check(self, history: History) -> Finding | None:
        p, records = self.params, history.records(self.params.window)
        for key in ("d_loss", "g_loss"):
            x = values(records, key)
            finite = np.isfinite(x)
            x, t = x[finite], steps(records)[finite]
            if len(x) < 3:
                continue
            change, scale = np.diff(x), loss_scale(x, 90)
            jumps = np.flatnonzero(np.abs(change) >= p.min_jump * scale)
            if len(jumps) < p.min_jumps:
                continue
            signs = np.sign(change[jumps])
            reversals = float((signs[1:] != signs[:-1]).mean())
            if reversals >= p.min_reversal_rate:
                size = float(np.median(np.abs(change[jumps]))) / scale
                evidence = {"jumps": float(len(jumps)), "reversal_rate": reversals, "jump_size": size}
                text = (f"{key} jumps by {100 * size:.0f}% of its size {len(jumps)} times in {len(x)} records, "
                        f"reversing {100 * reversals:.0f}% of the time (rule: >= {p.min_jumps} jumps of >= "
                        f"{100 * p.min_jump:.0f}%, reversing >= {100 * p.min_reversal_rate:.0f}%)")
                return Finding(int(t[jumps[0] + 1]), evidence, text)
        return None


class VanishingParams(Params):
    max_d_loss: float = Field(
        0.05, gt=0,
        description="D wins outright when its loss lies in [0, max_d_loss]: the cross-entropy, "
        "least-squares and hinge D losses are non-negative and 0 for a perfect D "
        "(log 4 = 1.39 at the cross-entropy equilibrium)",
    )
    max_grad_ratio: float = Field(
        0.1, gt=0, lt=1,
        description="G's gradient norm has collapsed at or below this fraction of its own peak",
    )
    min_records: PositiveInt = Field(3, description="latest train records that must all show both")


@DETECTORS.register(
    "vanishing-gradient", "D's loss near zero and G's gradient norm collapsed (saturation)", VanishingParams
)
class VanishingGradient(Detector):
    """Vanishing gradients (docs/FAILURE_MODES.md; Goodfellow et al. 2014, Section 3): D rejects
    every fake with confidence, log(1 - D(G(z))) saturates and G stops learning.
    `started_at` is the first record of the trailing run with D's loss near zero."""

    params: VanishingParams
    remedies = (
        TryPiece("objectives", "nonsaturating"),
        TryPiece("objectives", "wgan-gp"),
        TryPiece("regularizers", "dragan"),
    )

    def check(self, history: History) -> Finding | None:
        p, records = self.params, history.train
        peak = history.peaks.get("g_grad_norm", math.nan)
        if len(records) < p.min_records or not peak > 0:
            return None

        def d_wins(r: dict[str, Any]) -> bool:
            return 0 <= _number(r.get("d_loss")) <= p.max_d_loss

        def saturated(r: dict[str, Any]) -> bool:
            return d_wins(r) and _number(r.get("g_grad_norm")) <= p.max_grad_ratio * peak

        if not all(saturated(r) for r in records[-p.min_records :]):
            return None
        last = records[-1]
        evidence = {"d_loss": _number(last["d_loss"]), "g_grad_norm": _number(last["g_grad_norm"]),
                    "g_grad_norm_peak": peak}
        text = (f"D's loss is {evidence['d_loss']:.3g} and G's gradient norm {evidence['g_grad_norm']:.3g}, "
                f"{100 * evidence['g_grad_norm'] / peak:.1f}% of its peak {peak:.3g} (rule: D's loss <= "
                f"{p.max_d_loss:g} and G's gradient <= {100 * p.max_grad_ratio:.0f}% of its peak in the last "
                f"{p.min_records} records)")
        started = trailing_start(records, d_wins, lambda r: int(r["step"]))
        return Finding(started, evidence, text)


class DivergenceParams(Params):
    explode_factor: float = Field(
        10.0, gt=1,
        description="a loss explodes when its magnitude reaches this multiple of its median "
        "magnitude over the history",
    )
    min_magnitude: float = Field(
        1.0, gt=0,
        description="... and is at least this large: a loss growing from 0.01 to 0.2 is not divergence",
    )


@DETECTORS.register("divergence", "a loss became NaN or infinite, or exploded", DivergenceParams)
class Divergence(Detector):
    """Divergence: a non-finite or exploding loss in the latest train record.
    `started_at` is the first record of the trailing run of exploding or non-finite ones."""

    params: DivergenceParams
    remedies = (
        ChangeSetting("optimizer.discriminator.lr", "lower D lr", _halve),
        ChangeSetting("optimizer.generator.lr", "lower G lr", _halve),
        TryPiece("regularizers", "gradient-penalty"),
    )
    urgent = True

    def check(self, history: History) -> Finding | None:
        records = history.train
        if not records:
            return None
        keys = ("d_loss", "g_loss")
        series = {k: values(records, k) for k in keys}
        limits = {}
        for key, x in series.items():
            magnitude = np.abs(x[np.isfinite(x)])
            median = float(np.median(magnitude)) if len(magnitude) else 0.0
            limits[key] = max(self.params.explode_factor * median, self.params.min_magnitude)

        def bad(i: int) -> bool:
            return any(not np.isfinite(series[k][i]) or abs(series[k][i]) >= limits[k] for k in keys)

        if not bad(len(records) - 1):
            return None
        started = trailing_start(range(len(records)), bad, lambda i: int(records[i]["step"]))
        last = {k: float(series[k][-1]) for k in keys}
        evidence = {**last, **{f"{k}_limit": limits[k] for k in keys}}
        shown = ", ".join(f"{k} {v:.3g}" for k, v in last.items())
        text = (f"losses out of bounds ({shown}; rule: not finite, or |loss| >= {self.params.explode_factor:g}x "
                f"its median magnitude and >= {self.params.min_magnitude:g}: limits {limits['d_loss']:.3g}, "
                f"{limits['g_loss']:.3g})")
        return Finding(started, evidence, text)


class SignatureParams(Params):
    window: PositiveInt = Field(10, description="evaluation intervals of train records searched")
    min_records: int = Field(8, ge=3, description="fewest train records the falling stretch spans")
    min_g_drop: float = Field(
        0.2, gt=0,
        description="G's loss must fall (fitted line, start to end of the stretch) by at least this "
        "fraction of its median magnitude",
    )
    min_falling_share: float = Field(
        0.7, gt=0, le=1,
        description="share of consecutive G-loss changes that must be decreases, in each half of "
        "the stretch: 'steadily' (noise alone gives about 1/2)",
    )
    max_d_change: float = Field(
        0.05, gt=0,
        description="D's loss barely moves: its fitted change over the stretch is at most this "
        "fraction of its median magnitude",
    )


@DETECTORS.register(
    "loss-signature", "G's loss falls steadily while D's barely moves (the source's collapse warning)",
    SignatureParams,
)
class LossSignature(Detector):
    """The collapse warning the source material reads off the loss curves: G's loss keeps
    falling while D's barely moves, as G finds one output D cannot yet reject and pours
    everything into it. `started_at` is the highest point of G's loss among the starts of
    such stretches: where the fall began."""

    params: SignatureParams
    remedies = (
        ChangeSetting("scheme.n_critic", "more D steps per G step (n_critic)", lambda n: max(5, 2 * n)),
        TryPiece("schemes", "unrolled"),
    )

    def _stretch(self, t: np.ndarray, g: np.ndarray, d: np.ndarray) -> dict[str, float] | None:
        """The evidence if G falls steadily over the stretch, in both halves (so a flat start
        does not ride on a later fall), while D's loss holds."""
        p = self.params
        g_change = fitted_change(t, g) / loss_scale(g)
        half = len(g) // 2
        falling = min(float((np.diff(part) < 0).mean()) for part in (g[: half + 1], g[half:]))
        d_change = abs(fitted_change(t, d)) / loss_scale(d)
        if -g_change >= p.min_g_drop and falling >= p.min_falling_share and d_change <= p.max_d_change:
            return {"g_change": g_change, "g_falling_share": falling, "d_change": d_change, "records": float(len(t))}
        return None

    def check(self, history: History) -> Finding | None:
        records = history.records(self.params.window)
        g, d, t = values(records, "g_loss"), values(records, "d_loss"), steps(records)
        finite = np.isfinite(g) & np.isfinite(d)
        g, d, t = g[finite], d[finite], t[finite]
        found = {
            i: evidence for i in range(len(t) - self.params.min_records + 1)
            if (evidence := self._stretch(t[i:], g[i:], d[i:])) is not None
        }
        if not found:
            return None
        start = max(found, key=lambda i: g[i])
        evidence = found[start]
        p = self.params
        text = (f"G's loss fell {100 * -evidence['g_change']:.0f}% over {len(t) - start} log intervals "
                f"({100 * evidence['g_falling_share']:.0f}% of them down) while D's moved "
                f"{100 * evidence['d_change']:.1f}% (rule: a fall >= {100 * p.min_g_drop:.0f}%, >= "
                f"{100 * p.min_falling_share:.0f}% of steps down, D within {100 * p.max_d_change:.0f}%)")
        return Finding(int(t[start]), evidence, text)


# ---- conditional generators -------------------------------------------------------------


class ConditionalParams(Params):
    grace_evals: int = Field(
        1, ge=0,
        description="the first evaluations (this many) are not judged: a conditional G learns to follow "
        "its labels as it learns the data; the last evaluation of a run is always judged",
    )


def _named_classes(values: np.ndarray, holds: Callable[[float], bool], fmt: Callable[[float], str]) -> str:
    """`class (value)` for the (at most 5) classes whose value `holds`, lowest value first."""
    chosen = [int(y) for y in np.argsort(values) if math.isfinite(values[y]) and holds(float(values[y]))]
    shown = ", ".join(f"{y} ({fmt(float(values[y]))})" for y in chosen[:5])
    return shown + (f" and {len(chosen) - 5} more" if len(chosen) > 5 else "")


def _judged_now(history: History, grace_evals: int) -> Evaluation | None:
    """The latest evaluation, unless it is one of the first `grace_evals` and training goes on."""
    ev = history.latest
    if ev is None or (len(history.evals) <= grace_evals and not history.final):
        return None
    return ev


class LabelIgnoredParams(ConditionalParams):
    min_label_fidelity: float = Field(
        0.5, gt=0, le=1,
        description="a conditional G ignores its labels when fewer than this share of its samples are "
        "read by the oracle as the class they were asked for (ignoring the labels gives the sum of the "
        "squared class shares: 1/8 on the ring, about 1/10 on digits)",
    )


@DETECTORS.register(
    "label-ignored", "a conditional G makes other classes than it is asked for (label fidelity low)",
    LabelIgnoredParams,
)
class LabelIgnored(Detector):
    """A class-conditional generator that does not follow its labels, the conditional
    failure that an unconditional score cannot see (the samples may cover every mode):
    label fidelity, the share of samples the oracle reads as their asked class, below the
    threshold. The classes followed least are named with their own fidelity."""

    params: LabelIgnoredParams
    remedies = (
        TryPiece("conditionings", "projection"),
        TryPiece("conditionings", "acgan"),
    )

    def _low(self, ev: Evaluation) -> bool:
        return ev.label_fidelity < self.params.min_label_fidelity

    def check(self, history: History) -> Finding | None:
        ev, p = _judged_now(history, self.params.grace_evals), self.params
        if ev is None or not self._low(ev):
            return None
        started = trailing_start(history.evals, self._low, lambda e: e.step)
        chance = float(history.weights @ history.weights)  # P(asked class = read class) for independent draws
        worst = _named_classes(ev.class_fidelity, lambda f: f < p.min_label_fidelity, lambda f: f"{100 * f:.0f}%")
        text = (
            f"only {100 * ev.label_fidelity:.1f}% of samples are read as the class they were asked for "
            f"(rule: label fidelity under {100 * p.min_label_fidelity:.0f}% after the first {p.grace_evals} "
            f"evaluation(s); ignoring the labels gives about {100 * chance:.0f}%); classes followed least: {worst}"
        )
        evidence = {"label_fidelity": ev.label_fidelity, "chance_fidelity": chance}
        return Finding(started, evidence, text)


class ClassCollapseParams(ConditionalParams):
    max_class_spread_ratio: float = Field(
        0.35, gt=0,
        description="a class has collapsed inside when the samples asked for it spread (RMS distance to "
        "their own mean, in the oracle's feature space) at most this multiple of the real class's "
        "spread: the collapse detector's within-mode rule, applied to what one label produces",
    )


@DETECTORS.register(
    "class-collapse", "the samples a conditional G makes for one class lose their diversity (intra-class "
    "collapse)", ClassCollapseParams,
)
class ClassCollapse(Detector):
    """Intra-class mode collapse: a conditional G that answers a label with (nearly) one
    sample. Per class, the spread of the samples asked for it over the real class's
    spread; every class at or under the threshold is named with its ratio. Classes with
    too few samples to measure are not judged."""

    params: ClassCollapseParams
    remedies = (
        TryPiece("d_modifiers", "minibatch-stddev"),
        TryPiece("d_modifiers", "pack"),
        TryPiece("d_modifiers", "minibatch"),
    )

    def _collapsed(self, ev: Evaluation) -> np.ndarray:
        ratios = ev.class_spread_ratio
        return np.isfinite(ratios) & (ratios <= self.params.max_class_spread_ratio)

    def check(self, history: History) -> Finding | None:
        ev, p = _judged_now(history, self.params.grace_evals), self.params
        if ev is None or not self._collapsed(ev).any():
            return None
        started = trailing_start(history.evals, lambda e: bool(self._collapsed(e).any()), lambda e: e.step)
        collapsed = self._collapsed(ev)
        named = _named_classes(ev.class_spread_ratio, lambda r: r <= p.max_class_spread_ratio, lambda r: f"{r:.2f}x")
        text = (
            f"{int(collapsed.sum())} class(es) collapsed inside: {named} of the real class's spread "
            f"(rule: the samples asked for a class spread <= {p.max_class_spread_ratio:g}x the real class's, "
            f"in {history.feature_space})"
        )
        evidence = {"collapsed_classes": float(collapsed.sum()),
                    "min_class_spread_ratio": float(np.nanmin(ev.class_spread_ratio))}
        return Finding(started, evidence, text)
