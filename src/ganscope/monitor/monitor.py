"""The training monitor: events from the stream of metrics records, per seed.

Why it reads records: the trainer logs a train record per seed every `train.log_every`
steps and an eval record every `train.eval_every`; the monitor is fed exactly those
records, so a resumed run rebuilds its state by reading its own metrics log again (the
records that survive a resume are those an uninterrupted run would have written), and a
finished run's log can be re-judged offline with other thresholds. The only thing the
records lack is the samples' diversity, so `Monitor.measure` adds it to the eval records
before they are logged: the share of samples with a near-duplicate and the within-mode
spread, both against the real data's own.

At every evaluation each detector judges the seed's history; a condition raises one
event when it starts (with the step its evidence started) and an `ended` record when it
clears, not one per evaluation while it lasts.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import yaml

from ganscope.config import PIECE_LIST_REGISTRIES, PIECE_REGISTRIES, Config, load_config, piece_params
from ganscope.data import Dataset, Reading
from ganscope.metrics.features import near_duplicate_threshold
from ganscope.metrics.neighbours import nearest_neighbour_distances
from ganscope.monitor.detectors import (
    DETECTORS,
    ChangeSetting,
    Detector,
    Evaluation,
    History,
    Suggestion,
)
from ganscope.errors import ConfigError
from ganscope.registry import ALL_REGISTRIES
from ganscope.seeding import make_generator

MIN_MODE_SAMPLES = 10
"""High-quality samples a mode needs (in both sets) for its within-mode spread to count."""

MAX_DUPLICATE_SAMPLES = 5000
"""Samples used for the near-duplicate share: nearest neighbours cost O(n^2), and 5000
already resolves shares of a percent."""


# ---- diversity of a sample set against the real data --------------------------------


def mode_spreads(flat: torch.Tensor, mode: torch.Tensor, keep: torch.Tensor, n_modes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per mode: the RMS distance of its kept samples to their own mean, and their count.

    Distances to the samples' own mean, not to the mode's centre, so a generator that
    puts every sample on one off-centre point has spread 0: this is diversity, not quality.
    """
    x, m = flat[keep].double(), mode[keep]
    counts = torch.bincount(m, minlength=n_modes).double()
    sums = torch.zeros(n_modes, x.shape[1], dtype=torch.float64).index_add_(0, m, x)
    squares = torch.zeros(n_modes, dtype=torch.float64).index_add_(0, m, x.square().sum(dim=1))
    safe = counts.clamp(min=1)
    variance = squares / safe - (sums / safe[:, None]).square().sum(dim=1)
    return variance.clamp(min=0).sqrt().numpy(), counts.numpy()


class Reference(NamedTuple):
    """What samples are judged against: the real reference set's statistics."""

    duplicate_threshold: float
    compared: int  # samples the threshold holds for: as many as the real set has
    mode_spread: np.ndarray
    mode_count: np.ndarray
    global_spread: float
    class_spread: np.ndarray  # labelled data: per class, all real samples read as it; else empty
    class_count: np.ndarray


def global_spread(flat: torch.Tensor) -> float:
    """RMS distance of the rows of `flat` to their mean."""
    x = flat.double()
    return float((x - x.mean(dim=0)).square().sum(dim=1).mean().sqrt())


class Diversity:
    """Diversity statistics of generated samples, each judged against real samples.

    - `duplicate_fraction`: share of samples whose nearest other sample lies within the
      `quantile` (default 1%) quantile of the real set's nearest-neighbour distances, as
      the `birthday` metric defines near-duplicates; real data scores about `quantile`.
      Both sets have the same size, since neighbour distances shrink with the sample
      count: a data file with fewer points than the samples is compared with as many
      samples as it has points.
    - `spread_ratio`: within-mode spread of the high-quality samples over the real data's,
      mass-weighted over the modes both sets populate; about 1 for real data whatever
      the number of modes covered.
    - `global_spread_ratio`: the RMS distance of all samples, high quality or not, to
      their mean, over the real data's: near 0 when everything sits in one place, on a
      mode or off the modes, where the two statistics above see nothing.

    The real reference is drawn once per sample count from a fixed stream, so the
    statistics are deterministic (as bit-exact resume requires).
    """

    def __init__(self, data: Dataset, quantile: float, seed: int) -> None:
        self.data = data
        self.quantile = quantile
        self.seed = seed
        self._reference: dict[int, Reference] = {}

    def _spreads(self, reading: Reading) -> tuple[np.ndarray, np.ndarray]:
        assignment = reading.assignment
        return mode_spreads(reading.features, assignment.mode, assignment.high_quality, self.data.oracle.n_modes)

    def reference(self, n: int) -> Reference:
        """The statistics of the real reference set for n samples (`Dataset.reference`: the
        real points without repeats, fewer than n when a data file holds fewer)."""
        if n not in self._reference:
            real = self.data.oracle.read(self.data.reference(n, make_generator(self.seed, "eval", 0, n)))
            flat = real.features[:MAX_DUPLICATE_SAMPLES]
            threshold = near_duplicate_threshold(flat, self.quantile)
            self._reference[n] = Reference(threshold, len(flat), *self._spreads(real), global_spread(real.features),
                                           *self._class_spreads(real))
        return self._reference[n]

    def _class_spreads(self, reading: Reading, labels: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per class: the spread of the samples of class `labels` (default: the class the
        oracle reads them as) and their count; empty for unlabelled data."""
        mode_labels = self.data.mode_labels
        if mode_labels is None:
            return np.zeros(0), np.zeros(0)
        labels = mode_labels[reading.assignment.mode] if labels is None else labels
        everyone = torch.ones_like(labels, dtype=torch.bool)
        return mode_spreads(reading.features, labels, everyone, int(mode_labels.max()) + 1)

    def measure(
        self, samples: torch.Tensor, reading: Reading | None = None, labels: torch.Tensor | None = None
    ) -> dict[str, Any]:
        """The three statistics of one seed's samples (n, *sample_shape); NaN when
        unmeasurable. `reading` is the oracle's of these samples, when it has one. With the
        `labels` (n,) a conditional generator was asked for, also `class_spread_ratio`: per
        class, the spread of all samples asked for it over that of all real samples the
        oracle reads as the class, None where either has fewer than `MIN_MODE_SAMPLES`."""
        n = len(samples)
        if n < 2:
            return {"duplicate_fraction": math.nan, "spread_ratio": math.nan, "global_spread_ratio": math.nan}
        threshold, compared, real_spread, real_count, real_global, real_class_spread, real_class_count = (
            self.reference(n)
        )
        reading = reading or self.data.oracle.read(samples)
        flat = reading.features[:compared]
        duplicates = (nearest_neighbour_distances(flat, 1)[:, 0] <= threshold).double().mean().item()
        spread, count = self._spreads(reading)
        usable = (count >= MIN_MODE_SAMPLES) & (real_count >= MIN_MODE_SAMPLES) & (real_spread > 0)
        ratio = (
            float((count[usable] * spread[usable] / real_spread[usable]).sum() / count[usable].sum())
            if usable.any() else math.nan
        )
        overall = global_spread(reading.features) / real_global if real_global > 0 else math.nan
        out: dict[str, Any] = {"duplicate_fraction": duplicates, "spread_ratio": ratio, "global_spread_ratio": overall}
        if labels is not None:
            spread, count = self._class_spreads(reading, labels)
            measurable = (count >= MIN_MODE_SAMPLES) & (real_class_count >= MIN_MODE_SAMPLES) & (real_class_spread > 0)
            out["class_spread_ratio"] = [
                float(spread[y] / real_class_spread[y]) if measurable[y] else None for y in range(len(measurable))
            ]
        return out


# ---- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Remedy:
    """Registered pieces (and settings) to try, and how to try the first one."""

    names: list[str]
    how: str


@dataclass(frozen=True)
class Event:
    """A condition starting (or ending) for one seed.

    `step` is when the monitor decided; `started_at` the first step of the evidence (the
    first evaluation or train record of the trailing window that shows it)."""

    kind: str
    seed: int
    step: int
    started_at: int
    evidence: dict[str, float]
    text: str
    remedy: Remedy | None
    status: Literal["started", "ended"] = "started"

    def to_record(self) -> dict[str, Any]:
        """The metrics-log record: kind "event", the condition under "event"."""
        return {
            "step": self.step, "seed": self.seed, "kind": "event", "event": self.kind,
            "status": self.status, "started_at": self.started_at, "evidence": self.evidence,
            "text": self.text, "remedy": None if self.remedy is None else asdict(self.remedy),
        }

    def ended(self, step: int, since: int) -> Event:
        """The record that this condition stopped holding at step `since`."""
        return Event(self.kind, self.seed, step, self.started_at, {"absent_from": float(since)},
                     f"absent from step {since}", None, "ended")

    def line(self) -> str:
        """One console line."""
        head = f"step {self.step}, seed {self.seed}: {self.kind}"
        if self.status == "ended":
            return f"{head} (since step {self.started_at}) ended: {self.text}"
        remedy = f"; remedy: {', '.join(self.remedy.names)} (try {self.remedy.how})" if self.remedy else ""
        return f"{head} since step {self.started_at}: {self.text}{remedy}"


def describe_events(records: Sequence[dict[str, Any]], current: set[tuple[int, str]]) -> str:
    """The run's events for the verdict: those that hold at the end first, then those that
    ended, with their spans. `current` holds the (seed, kind) pairs whose condition held
    at the last judgement (`Monitor.current`), which an event log alone cannot tell: an
    event is logged as ended only after `end_after` clear evaluations."""
    spans: dict[tuple[int, str], list[tuple[int, int | None]]] = {}
    for r in records:
        if r["kind"] != "event":
            continue
        key = (r["seed"], r["event"])
        if r["status"] == "started":
            spans.setdefault(key, []).append((r["started_at"], None))
        elif spans.get(key) and spans[key][-1][1] is None:
            spans[key][-1] = (spans[key][-1][0], int(r["evidence"].get("absent_from", r["step"])))
    now: dict[str, list[tuple[int, int | None]]] = {}
    past: dict[str, list[tuple[int, int, int | None]]] = {}
    for (seed, kind), s in spans.items():
        for start, end in s[:-1] if (seed, kind) in current else s:
            past.setdefault(kind, []).append((seed, start, end))
    for seed, kind in sorted(current):
        # A condition found only by the final judgement (`Monitor.conclude`) has no record.
        now.setdefault(kind, []).append((seed, spans[(seed, kind)][-1][0] if (seed, kind) in spans else None))
    if not now and not past:
        return "events: none"
    parts = [f"{kind} ({_seeds(sorted(seed for seed, _ in found))}, {_since(found)})" for kind, found in now.items()]
    text = "events: " + ("; ".join(parts) if parts else "none at the end")
    if past:
        ended = []
        for kind, found in past.items():
            by_span: dict[str, list[int]] = {}
            for seed, start, end in found:
                by_span.setdefault(_span(start, end), []).append(seed)
            ended.append(f"{kind} (" + "; ".join(f"{_seeds(sorted(set(seeds)))}: {span}"
                                                  for span, seeds in by_span.items()) + ")")
        text += "; ended: " + "; ".join(ended)
    return text


def _since(found: list[tuple[int, int | None]]) -> str:
    starts = [start for _, start in found if start is not None]
    return f"since step {min(starts)}" if starts else "at the last evaluation"


def _span(start: int, end: int | None) -> str:
    """A past condition's steps: until it cleared, or until the last evaluation, where it
    no longer held (an event ends only after `end_after` clear evaluations)."""
    return f"steps {start}-{end}, recovered" if end is not None else f"from step {start}, absent at the last evaluation"


def _seeds(seeds: Sequence[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"


# ---- remedies -------------------------------------------------------------------------


def _setting(cfg: Config, key: str) -> Any:
    """The current value of a dotted config key, reading a piece's validated params."""
    section, *rest = key.split(".")
    node: Any = piece_params(cfg, section) if section in PIECE_REGISTRIES else getattr(cfg, section, None)
    for part in rest:
        node = getattr(node, part, None)
    return node


def _valid(cfg: Config, how: str) -> bool:
    """Whether the config that the `-s` overrides `how` make from `cfg` loads."""
    overrides = [part for part in shlex.split(how) if part != "-s"]
    try:
        load_config(cfg.to_dict(), overrides)
    except ConfigError:
        return False
    return True


def _override(cfg: Config, suggestion: Suggestion) -> str | None:
    """The `-s` override(s) that apply a suggestion to `cfg`, or None where it cannot
    apply (a piece not registered or already in use, a setting the config lacks)."""
    if isinstance(suggestion, ChangeSetting):
        current = _setting(cfg, suggestion.key)
        if current is None or (value := suggestion.new_value(current)) == current:
            return None
        return f"-s {suggestion.key}={value:g}" if isinstance(value, float) else f"-s {suggestion.key}={value}"
    registry = ALL_REGISTRIES.get(suggestion.registry)
    if registry is None or suggestion.name not in registry:
        return None
    for section, name in PIECE_REGISTRIES.items():
        if name == suggestion.registry:
            if getattr(cfg, section).name == suggestion.name:
                return None
            needs = getattr(registry.get(suggestion.name), "required_regularizers", ())
            extra = [_list_override(cfg, "regularizers", r) for r in needs]
            return " ".join([f"-s {section}.name={suggestion.name}", *[e for e in extra if e]])
    for section, name in PIECE_LIST_REGISTRIES.items():
        if name == suggestion.registry:
            return _list_override(cfg, section, suggestion.name)
    return None


def _list_override(cfg: Config, section: str, name: str) -> str | None:
    """`-s 'section=[...]'` keeping the pieces already listed and adding `name`."""
    pieces = [p.model_dump() for p in getattr(cfg, section)]
    if any(p["name"] == name for p in pieces):
        return None
    flow = yaml.safe_dump(pieces + [{"name": name}], default_flow_style=True, width=10**6).strip()
    return f"-s '{section}={flow}'"


def suggest(cfg: Config, suggestions: Iterable[Suggestion]) -> Remedy | None:
    """The applicable suggestions, as registered now and valid with the rest of the config
    (no scheme change for a CycleGAN run); None when none applies."""
    applicable = [(s, how) for s in suggestions if (how := _override(cfg, s)) is not None and _valid(cfg, how)]
    if not applicable:
        return None
    return Remedy([s.name for s, _ in applicable], applicable[0][1])


# ---- the monitor ----------------------------------------------------------------------


def _finite(record: dict[str, Any]) -> bool:
    return all(
        math.isfinite(v) for k, v in record.items() if k not in ("step", "seed") and isinstance(v, float)
    )


class Monitor:
    """Watches every seed of a run: feed it the run's records in log order.

    `cfg.train.monitor` picks the detectors' thresholds and the kinds that stop training;
    a disabled monitor measures nothing and raises nothing.
    """

    def __init__(self, cfg: Config, data: Dataset) -> None:
        mcfg = cfg.train.monitor
        self.cfg = cfg
        self.stop_on = set(mcfg.stop_on)
        self.detectors: dict[str, Detector] = {
            entry.name: entry.obj(entry.params.model_validate(mcfg.detectors.get(entry.name, {})))
            for entry in DETECTORS
        } if mcfg.enabled else {}
        self.diversity = Diversity(data, mcfg.duplicate_quantile, cfg.seed) if mcfg.enabled else None
        weights = data.oracle.weights.double().numpy()
        oracle = data.oracle
        self.histories = {seed: History(weights, oracle.quality_rule, oracle.covered_by, oracle.feature_space)
                          for seed in cfg.seed_list()}
        self.end_after = mcfg.end_after
        self.active: dict[tuple[int, str], Event] = {}
        #: Evaluations in a row an active condition has been absent, and the first of them.
        self.absent: dict[tuple[int, str], tuple[int, int]] = {}
        #: (seed, kind) whose condition held when last judged: what is true at the end.
        self.current: set[tuple[int, str]] = set()

    def measure(
        self, samples: torch.Tensor, readings: Sequence[Reading] | None = None, labels: torch.Tensor | None = None
    ) -> list[dict[str, Any]]:
        """Diversity statistics per seed of (S, n, *sample_shape) samples, to add to the
        eval records before they are logged and observed; `readings` are the oracle's of
        each seed's samples, when it has them; `labels` (S, n) what a conditional G was
        asked for."""
        if self.diversity is None:
            return [{} for _ in samples]
        readings = readings or [None] * len(samples)
        per_seed_labels = [None] * len(samples) if labels is None else list(labels)
        return [self.diversity.measure(s, r, y) for s, r, y in zip(samples, readings, per_seed_labels, strict=True)]

    def observe(self, records: Iterable[dict[str, Any]]) -> list[Event]:
        """Take records in log order; return the events (started and ended) they cause.
        Records of other kinds (events themselves) are skipped."""
        events: list[Event] = []
        for record in records:
            history = self.histories.get(record["seed"])
            if history is None or not self.detectors:
                continue
            if record["kind"] == "train":
                history.add_train(record)
                if not _finite(record):
                    events += self._judge(record["seed"], record["step"], urgent_only=True)
            elif record["kind"] == "eval":
                history.add_eval(Evaluation.from_record(record))
                events += self._judge(record["seed"], record["step"], urgent_only=False)
        return events

    def _judge(self, seed: int, step: int, urgent_only: bool) -> list[Event]:
        events = []
        for kind, detector in self.detectors.items():
            if urgent_only and not detector.urgent:
                continue
            finding = detector.check(self.histories[seed])
            key = (seed, kind)
            (self.current.add if finding is not None else self.current.discard)(key)
            if finding is not None:
                self.absent.pop(key, None)
                if key not in self.active:
                    event = Event(kind, seed, step, finding.started_at, finding.evidence, finding.text,
                                  suggest(self.cfg, detector.remedies))
                    self.active[key] = event
                    events.append(event)
            elif key in self.active:
                count, since = self.absent.get(key, (0, step))
                self.absent[key] = (count + 1, since)
                if count + 1 >= self.end_after:
                    del self.absent[key]
                    events.append(self.active.pop(key).ended(step, since))
        return events

    def conclude(self) -> None:
        """Judge every seed's latest evaluation as the run's last, so the verdict speaks of
        the final state even where a rule waits for training to get going (a run with a
        single evaluation). Only `current` changes: nothing is logged, so a run resumed
        past this point writes the log an uninterrupted run writes."""
        for seed, history in self.histories.items():
            if history.latest is None:
                continue
            history.final = True
            self.current |= {(seed, kind) for kind, d in self.detectors.items() if d.check(history) is not None}

    def stop_reason(self, events: Iterable[Event]) -> Event | None:
        """The first newly started event of a kind the user asked to stop on."""
        return next((e for e in events if e.status == "started" and e.kind in self.stop_on), None)
