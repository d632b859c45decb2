"""The training monitor: detectors on constructed streams whose condition is known, the
event life cycle, remedies, config errors, and the monitor inside real training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import ganscope
from ganscope.config import piece_params
from ganscope.data import DATASETS
from ganscope.errors import ConfigError
from ganscope.monitor import Event, Monitor
from ganscope.monitor.detectors import ChangeSetting, TryPiece
from ganscope.monitor.monitor import describe_events, suggest
from ganscope.monitor.streams import (
    ModeState,
    Schedule,
    Stream,
    build_stream,
    draw,
    healthy_losses,
    healthy_state,
    log_records,
)
from ganscope.registry import ALL_REGISTRIES
from ganscope.train.run import CHECKPOINT, METRICS, SUMMARY

SCHEDULE = Schedule(evaluations=12, samples=1000)
ONSET_EVAL = 5  # the sixth evaluation, step 3000, is the first that deviates


@pytest.fixture(scope="module")
def ring() -> tuple[ganscope.Config, ganscope.data.Dataset]:
    cfg = ganscope.load_config()
    return cfg, DATASETS.get("ring")(piece_params(cfg, "data"))


def started(events: list[Event]) -> dict[str, Event]:
    """The first started event of each kind."""
    out: dict[str, Event] = {}
    for e in events:
        if e.status == "started":
            out.setdefault(e.kind, e)
    return out


def exact_stream(ring, target: ModeState, seed: int = 0) -> tuple[list[dict], list[Event]]:
    """Healthy evaluations, then `target` from evaluation ONSET_EVAL on; healthy losses."""
    cfg, data = ring
    rng = np.random.default_rng(seed)
    w = data.oracle.weights.double().numpy()
    states = [healthy_state(w, rng) if i < ONSET_EVAL else target for i in range(SCHEDULE.evaluations)]
    monitor = Monitor(cfg, data)
    records = log_records(states, healthy_losses(SCHEDULE, rng), monitor, data, rng, SCHEDULE)
    return records, monitor.observe(records)


def random_stream(ring, condition: str, seed: int) -> tuple[Stream, list[Event]]:
    cfg, data = ring
    monitor = Monitor(cfg, data)
    stream = build_stream(condition, monitor, data, np.random.default_rng([seed, len(condition)]), SCHEDULE)
    return stream, monitor.observe(stream.records)


ONSET_STEP = SCHEDULE.eval_steps[ONSET_EVAL]


# ---- constructed sample streams ---------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_stream_raises_nothing(ring, seed) -> None:
    _, events = random_stream(ring, "healthy", seed)
    assert events == []


def test_collapse_is_raised_once_from_its_onset_and_is_not_dropping(ring) -> None:
    weights = np.full(8, 0.002)
    weights[[2, 5]] = [0.7, 0.3]
    spread = np.ones(8)
    spread[[2, 5]] = 0.15
    records, events = exact_stream(ring, ModeState(weights / weights.sum(), spread, 0.01))
    kinds = started(events)
    assert set(kinds) == {"collapse"}
    assert kinds["collapse"].step == kinds["collapse"].started_at == ONSET_STEP
    assert [e.kind for e in events] == ["collapse"]  # not re-raised while it persists
    assert kinds["collapse"].evidence["spread_ratio"] < 0.3
    assert kinds["collapse"].remedy is not None and "unrolled" in kinds["collapse"].remedy.names


def test_dropping_is_raised_from_its_onset_and_is_not_collapse(ring) -> None:
    weights = np.ones(8)
    weights[[1, 4, 6]] = 0
    records, events = exact_stream(ring, ModeState(weights / weights.sum(), np.ones(8), 0.01))
    kinds = started(events)
    assert set(kinds) == {"dropping"}
    assert kinds["dropping"].started_at == ONSET_STEP
    assert kinds["dropping"].evidence["modes_dropped"] == 3
    assert "1, 4, 6" in kinds["dropping"].text


@pytest.mark.parametrize("condition", ["collapse", "dropping"])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_collapse_and_dropping_are_told_apart(ring, condition, seed) -> None:
    stream, events = random_stream(ring, condition, seed)
    kinds = started(events)
    other = "dropping" if condition == "collapse" else "collapse"
    assert condition in kinds and other not in kinds
    assert kinds[condition].started_at >= stream.onset


@pytest.mark.parametrize("seed", [0, 1])
def test_hopping_stream_raises_hopping(ring, seed) -> None:
    stream, events = random_stream(ring, "hopping", seed)
    hop = started(events)["hopping"]
    assert hop.step > stream.onset and hop.evidence["hops"] >= 2


def test_condition_that_clears_is_recorded_as_ended(ring) -> None:
    cfg, data = ring
    rng = np.random.default_rng(3)
    w = data.oracle.weights.double().numpy()
    collapsed = ModeState(np.eye(8)[0] * 0.99 + 0.01 / 8, np.full(8, 0.1), 0.0)
    states = [collapsed if 4 <= i < 7 else healthy_state(w, rng) for i in range(SCHEDULE.evaluations)]
    monitor = Monitor(cfg, data)
    events = monitor.observe(log_records(states, healthy_losses(SCHEDULE, rng), monitor, data, rng, SCHEDULE))
    assert [(e.kind, e.status) for e in events] == [("collapse", "started"), ("collapse", "ended")]
    start, end = events
    # collapsed at steps 2500-3500; ends once absent for `end_after` (2) evaluations: 4000 and 4500
    assert (start.step, end.step, end.started_at) == (2500, 4500, 2500)
    assert "absent from step 4000" in end.text


# ---- constructed loss streams ----------------------------------------------------------


@pytest.mark.parametrize("condition", ["vanishing-gradient", "divergence", "loss-signature", "oscillation"])
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_streams_raise_their_event(ring, condition, seed) -> None:
    stream, events = random_stream(ring, condition, seed)
    kinds = started(events)
    assert condition in kinds, [e.line() for e in events]
    assert set(kinds) <= {condition}
    event = kinds[condition]
    assert event.step >= stream.onset
    assert abs(event.started_at - stream.onset) <= SCHEDULE.eval_every


def test_a_non_finite_loss_raises_divergence_at_once(ring) -> None:
    cfg, data = ring
    monitor = Monitor(cfg, data)
    records = [{"step": s, "seed": 0, "kind": "train", "d_loss": 1.3, "g_loss": 0.8} for s in (50, 100, 150)]
    assert monitor.observe(records) == []
    [event] = monitor.observe([{"step": 200, "seed": 0, "kind": "train", "d_loss": math.nan, "g_loss": 0.8}])
    assert (event.kind, event.step, event.started_at) == ("divergence", 200, 200)
    assert "lower D lr" in event.remedy.names


def test_state_rebuilt_from_the_log_gives_the_same_events(ring) -> None:
    """What resume relies on: a fresh monitor that reads the first half of the records
    continues exactly as the one that saw them live."""
    cfg, data = ring
    stream, live = random_stream(ring, "hopping", 0)
    half = len(stream.records) // 2
    rebuilt = Monitor(cfg, data)
    rebuilt.observe(stream.records[:half])
    later = rebuilt.observe(stream.records[half:])
    cut = stream.records[half]["step"]
    assert [e.to_record() for e in later] == [e.to_record() for e in live if e.step >= cut]


# ---- remedies and config ---------------------------------------------------------------


def test_remedies_name_only_registered_pieces_not_in_use() -> None:
    cfg = ganscope.load_config(overrides=["scheme.name=unrolled"])
    remedy = suggest(cfg, [
        TryPiece("schemes", "unrolled"),
        TryPiece("schemes", "no-such-scheme"),
        TryPiece("no-such-registry", "x"),
        TryPiece("d_modifiers", "pack"),
        TryPiece("objectives", "wgan-gp"),
        ChangeSetting("optimizer.generator.lr", "lower G lr", lambda lr: lr / 2),
        ChangeSetting("scheme.no_such_key", "nothing", lambda v: v),
    ])
    registered = {name for registry in ALL_REGISTRIES.values() for name in registry.names()}
    assert remedy.names == ["pack", "wgan-gp", "lower G lr"]
    assert set(remedy.names[:2]) <= registered
    assert remedy.how == "-s 'd_modifiers=[{name: pack}]'"
    assert suggest(cfg, [TryPiece("objectives", "wgan-gp")]).how == (
        "-s objective.name=wgan-gp -s 'regularizers=[{name: gradient-penalty}]'"
    )
    assert suggest(cfg, [TryPiece("schemes", "unrolled")]) is None


def test_unknown_stop_on_kind_is_one_line_listing_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        ganscope.load_config(overrides=["train.monitor.stop_on=[collapse, colapse]"])
    message = str(err.value)
    assert "\n" not in message and "'colapse'" in message and "dropping" in message and "vanishing-gradient" in message
    assert ganscope.load_config(overrides=["train.monitor.stop_on=collapse"]).train.monitor.stop_on == ["collapse"]


def test_detector_thresholds_are_validated() -> None:
    with pytest.raises(ConfigError, match="max_effective_fraction"):
        ganscope.load_config(overrides=["train.monitor.detectors.collapse.max_effective_fraction=3"])
    with pytest.raises(ConfigError, match="unknown event kind 'nope'"):
        ganscope.load_config(overrides=["train.monitor.detectors.nope.x=1"])
    cfg = ganscope.load_config(overrides=["train.monitor.detectors.hopping.window=8"])
    assert Monitor(cfg, DATASETS.get("ring")(piece_params(cfg, "data"))).detectors["hopping"].params.window == 8


# ---- real training ---------------------------------------------------------------------

# Thresholds no real run can stay clear of, so events are certain in a short run: any
# loss above its own median "explodes".
HAIR_TRIGGER = [
    "train.monitor.detectors.divergence.explode_factor=1.0000001",
    "train.monitor.detectors.divergence.min_magnitude=1e-9",
    "train.log_every=5",
]


def test_events_reach_the_log_summary_tensorboard_and_console(tmp_path, tiny_overrides, capfd) -> None:
    cfg = ganscope.load_config(overrides=tiny_overrides + HAIR_TRIGGER + ["train.steps=60", "train.seeds=2"])
    summary = ganscope.Run.create(cfg, tmp_path / "run").fit(progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / METRICS).read_text().splitlines()]
    events = [r for r in records if r["kind"] == "event"]
    assert events and all(e["step"] % 20 == 0 for e in events)
    assert {"event", "status", "started_at", "evidence", "text", "remedy"} <= set(events[0])
    assert all("duplicate_fraction" in r and "spread_ratio" in r for r in records if r["kind"] == "eval")
    assert summary["events"] == events
    assert json.loads((tmp_path / "run" / SUMMARY).read_text())["events"] == events
    assert "divergence (seed" in summary["verdict"]
    assert "divergence since step" in capfd.readouterr().err
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_resume_rebuilds_the_monitor_and_keeps_the_log_bit_exact(tmp_path, tiny_overrides) -> None:
    common = tiny_overrides + HAIR_TRIGGER + ["train.seeds=2"]
    ganscope.Run.create(ganscope.load_config(overrides=common + ["train.steps=100"]), tmp_path / "full").fit(progress=False)
    ganscope.Run.create(ganscope.load_config(overrides=common + ["train.steps=50"]), tmp_path / "half").fit(progress=False)
    ganscope.Run.open(tmp_path / "half", ["train.steps=100"]).fit(progress=False)
    full = (tmp_path / "full" / METRICS).read_text()
    assert '"kind": "event"' in full
    assert full == (tmp_path / "half" / METRICS).read_text()


def test_stop_on_stops_early_with_a_checkpoint_and_a_verdict(tmp_path, tiny_overrides) -> None:
    cfg = ganscope.load_config(
        overrides=tiny_overrides + HAIR_TRIGGER + ["train.steps=200", "train.monitor.stop_on=[divergence]"]
    )
    summary = ganscope.Run.create(cfg, tmp_path / "run").fit(progress=False)
    stop = summary["stopped_early"]
    assert stop["event"] == "divergence" and summary["step"] == stop["step"] < 200
    assert summary["verdict"].startswith(f"stopped early at step {stop['step']} on divergence")
    assert ganscope.Run.open(tmp_path / "run").step == summary["step"]
    assert (tmp_path / "run" / SUMMARY).is_file() and (tmp_path / "run" / CHECKPOINT).is_file()


# ---- the end state: what the verdict may say --------------------------------------------


def eval_records(ring, batches: list, seed: int = 0) -> tuple[Monitor, list[dict]]:
    """A monitor fed one eval record per sample set in `batches` (evaluations 500, 1000, ...)."""
    cfg, data = ring
    monitor = Monitor(cfg, data)
    records = [
        {"step": 500 * (i + 1), "seed": seed, "kind": "eval", **ganscope.score_modes(x, data.oracle).to_dict(),
         **monitor.measure(x[None])[0]}
        for i, x in enumerate(batches)
    ]
    monitor.observe(records)
    return monitor, records


def test_a_pile_off_the_modes_is_collapse_and_not_converging(ring) -> None:
    """All samples in one small blob between two ring modes: no sample is high quality, so
    the histogram detectors see nothing; collapse reads all samples' nearest modes and
    their overall spread."""
    gen = torch.Generator().manual_seed(0)
    between = torch.tensor([math.cos(math.pi / 8), math.sin(math.pi / 8)])
    pile = between + 0.02 * torch.randn(1000, 2, generator=gen)
    monitor, records = eval_records(ring, [pile, pile])
    assert records[-1]["hq_fraction"] == 0 and records[-1]["global_spread_ratio"] < 0.05
    assert {kind for _, kind in monitor.current} == {"collapse", "not-converging"}


def test_every_failed_end_state_is_named_and_every_healthy_one_is_not(ring) -> None:
    """Random end states: k of 8 modes with real spread, a share of uniform low-quality
    samples. A seed failed (some mode uncovered, or under 50% high quality) must leave a
    condition holding at the end; a healthy one none (the sample detectors only: losses
    are not part of these states)."""
    cfg, data = ring
    rng = np.random.default_rng(3)
    for _ in range(12):
        covered = rng.choice(8, size=int(rng.integers(1, 9)), replace=False)
        weights = np.zeros(8)
        weights[covered] = rng.dirichlet(np.full(len(covered), 20.0))
        state = ModeState(weights, rng.uniform(0.5, 1.2, 8), float(rng.choice([0.02, 0.3, 0.7])))
        samples = [draw(data, state, 1000, rng) for _ in range(2)]
        monitor, records = eval_records(ring, samples)
        score = records[-1]
        failed = score["modes_covered"] < 8 or score["hq_fraction"] < 0.5
        assert bool(monitor.current) == failed, (score["modes_covered"], score["hq_fraction"], monitor.current)


def test_the_last_evaluation_is_judged_even_when_it_is_the_first(ring) -> None:
    cfg, data = ring
    far = torch.full((1000, 2), 5.0) + torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))
    monitor, _ = eval_records(ring, [far])
    assert (0, "not-converging") not in monitor.current  # the first evaluation waits ...
    monitor.conclude()
    assert (0, "not-converging") in monitor.current  # ... unless it is the last


def test_event_texts_state_the_rule_and_the_verdict_keeps_ended_apart(ring) -> None:
    cfg, data = ring
    weights = np.ones(8)
    weights[[2, 6]] = 0
    rng = np.random.default_rng(0)
    dropped = ModeState(weights / weights.sum(), np.ones(8), 0.0)
    healthy = healthy_state(data.oracle.weights.double().numpy(), rng)
    batches = [draw(data, s, 1000, rng) for s in (healthy, dropped, dropped, healthy, healthy, healthy)]
    monitor = Monitor(cfg, data)
    records = []
    for i, x in enumerate(batches):
        r = {"step": 500 * (i + 1), "seed": 0, "kind": "eval", **ganscope.score_modes(x, data.oracle).to_dict(),
             **monitor.measure(x[None])[0]}
        records += [r, *(e.to_record() for e in monitor.observe([r]))]
    [start] = [r for r in records if r["kind"] == "event" and r["status"] == "started"]
    assert start["event"] == "dropping"
    assert start["text"].startswith("2 of 8 modes get no high-quality sample (modes 2, 6 hold 0, 0 of the")
    verdict = describe_events(records, monitor.current)
    assert verdict == "events: none at the end; ended: dropping (seed 0: steps 1000-2000, recovered)"
    assert describe_events([], set()) == "events: none"
