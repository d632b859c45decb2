"""Validate the training monitor where the truth is known: how many events are right,
wrong and missed.

Part 1, constructed streams (`ganscope.monitor.streams`): for every condition, random
variants (modes, onset, ramp, spreads, rates) on the 2-D ring, each observed by a fresh
monitor with the default thresholds. Per stream:
  right  - the condition's own event was raised at or after its onset;
  missed - it was not;
  wrong  - some other event was raised (apart from those the condition implies: a
           hopping generator is also collapsed or dropping modes at each evaluation), or
           any event was raised before the onset.
Healthy streams can only be wrong (a false alarm). Also: every kind raised, the median
detection delay (decision step - onset) and the median |started_at - onset|.

Part 2, real runs on the ring (std 0.05, minimax, small MLPs, 8 seeds): train 1600 steps
until the seeds cover the ring, then continue to 4000 steps either unchanged (control) or
with D's learning rate cut to 1e-6 and G's raised to 5e-3, so G chases a frozen D's
favourite points: the max-min failure of SPEC section 1, where coverage falls. Per seed,
coverage fell when modes_covered drops below its value at the switch for two evaluations
in a row with at least 20% high-quality samples. A coverage event (collapse, dropping or
hopping) raised after the switch is right on a seed whose coverage fell and wrong on one
whose coverage did not; a seed whose coverage fell without one is missed. Loss events
have no ground truth in real runs and are only counted.

Run with ganscope importable, e.g. `OMP_NUM_THREADS=1 python benchmarks/monitor_validation.py`
(`--variants N`, `--skip-real`). Prints both tables and writes
benchmarks/results/monitor_validation.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

import ganscope
from ganscope.config import piece_params
from ganscope.data import DATASETS
from ganscope.monitor import Event, Monitor
from ganscope.monitor.streams import CONDITIONS, IMPLIED, Schedule, Stream, build_stream

RESULTS = Path(__file__).parent / "results" / "monitor_validation.json"
COVERAGE_EVENTS = ("collapse", "dropping", "hopping")
REAL = [
    "data.std=0.05", "objective.name=minimax", "noise.z_dim=16",
    "generator.hidden=64", "generator.depth=2", "discriminator.hidden=64", "discriminator.depth=2",
    "train.batch_size=128", "train.seeds=8", "train.eval_samples=1000", "train.eval_every=200",
    "train.log_every=20", "train.checkpoint_every=500",
]
SWITCH, END = 1600, 4000  # SWITCH on an evaluation step, so its evaluation survives the resume
SCENARIOS = {"control": (1e-3, 1e-3), "frozen D, fast G": (5e-3, 1e-6)}  # (G lr, D lr) after the switch


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# ---- part 1: constructed streams ------------------------------------------------------


def judge_stream(stream: Stream, events: list[Event]) -> dict[str, Any]:
    starts = [e for e in events if e.status == "started"]
    expected = None if stream.condition == "healthy" else stream.condition
    onset = stream.onset if stream.onset is not None else 0
    allowed = {expected, *IMPLIED.get(stream.condition, ())}
    own = [e for e in starts if e.kind == expected and e.step >= onset]
    wrong = [e.kind for e in starts if e.kind not in allowed or e.step < onset]
    return {
        "raised": [e.kind for e in starts],
        "right": bool(own),
        "wrong": wrong,
        "missed": expected is not None and not own,
        "delay": own[0].step - onset if own else None,
        "start_error": abs(own[0].started_at - onset) if own else None,
    }


def constructed(variants: int) -> dict[str, dict[str, Any]]:
    cfg = ganscope.load_config()
    data = DATASETS.get("ring")(piece_params(cfg, "data"))
    schedule = Schedule()
    table: dict[str, dict[str, Any]] = {}
    for c, condition in enumerate(CONDITIONS):
        judged = []
        for variant in range(variants):
            monitor = Monitor(cfg, data)
            stream = build_stream(condition, monitor, data, np.random.default_rng([c, variant]), schedule)
            judged.append(judge_stream(stream, monitor.observe(stream.records)))
        table[condition] = {
            "variants": variants,
            "right": sum(j["right"] for j in judged),
            "wrong": sum(bool(j["wrong"]) for j in judged),
            "missed": sum(j["missed"] for j in judged),
            "wrong_kinds": dict(Counter(k for j in judged for k in j["wrong"])),
            "raised": dict(Counter(k for j in judged for k in set(j["raised"]))),
            "median_delay_steps": _median([j["delay"] for j in judged if j["delay"] is not None]),
            "median_start_error_steps": _median([j["start_error"] for j in judged if j["start_error"] is not None]),
        }
    return table


# ---- part 2: real runs ----------------------------------------------------------------


def two_phase_run(folder: Path, g_lr: float, d_lr: float) -> list[dict[str, Any]]:
    """Train to SWITCH, then resume to END with the given learning rates; the metrics log."""
    ganscope.Run.create(ganscope.load_config(overrides=REAL + [f"train.steps={SWITCH}"]), folder).fit(progress=False)
    run = ganscope.Run.open(folder, [f"train.steps={END}"])
    for name, lr in (("generator", g_lr), ("discriminator", d_lr)):
        for group in run.scheme.optimizers[name].param_groups:
            group["lr"] = lr
    run.fit(progress=False)
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def coverage_fell(evals: list[dict[str, Any]]) -> int | None:
    """First step after the switch from which coverage stays below its value at the
    switch for two evaluations, with at least 20% high-quality samples; None if never."""
    before = next(r["modes_covered"] for r in evals if r["step"] == SWITCH)
    after = [r for r in evals if r["step"] > SWITCH]
    low = [r["modes_covered"] < before and r["hq_fraction"] >= 0.2 for r in after]
    return next((after[i]["step"] for i in range(len(after) - 1) if low[i] and low[i + 1]), None)


def judge_real(records: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    per_seed = []
    for seed in seeds:
        evals = [r for r in records if r["kind"] == "eval" and r["seed"] == seed]
        starts = [r for r in records if r["kind"] == "event" and r["seed"] == seed and r["status"] == "started"]
        fell = coverage_fell(evals)
        coverage = [r for r in starts if r["event"] in COVERAGE_EVENTS and r["step"] > SWITCH]
        per_seed.append({
            "seed": seed,
            "modes_at_switch": next(r["modes_covered"] for r in evals if r["step"] == SWITCH),
            "modes_at_end": evals[-1]["modes_covered"],
            "coverage_fell_at": fell,
            "coverage_events": [(r["event"], r["step"], r["started_at"]) for r in coverage],
            "loss_events": [(r["event"], r["step"]) for r in starts if r["event"] not in COVERAGE_EVENTS and r["step"] > SWITCH],
            "warm_up_events": [(r["event"], r["step"]) for r in starts if r["step"] <= SWITCH],
        })
    fell = [s for s in per_seed if s["coverage_fell_at"] is not None]
    return {
        "seeds_coverage_fell": len(fell),
        "right": sum(bool(s["coverage_events"]) for s in fell),
        "missed": sum(not s["coverage_events"] for s in fell),
        "wrong": sum(len(s["coverage_events"]) for s in per_seed if s["coverage_fell_at"] is None),
        "kinds": dict(Counter(e[0] for s in per_seed for e in s["coverage_events"])),
        "loss_events_unverified": dict(Counter(e[0] for s in per_seed for e in s["loss_events"])),
        "seeds": per_seed,
    }


def real_runs() -> dict[str, dict[str, Any]]:
    seeds = ganscope.load_config(overrides=REAL).seed_list()
    out = {}
    folder = Path(tempfile.mkdtemp(prefix="monitor-validation-"))
    try:
        for i, (name, (g_lr, d_lr)) in enumerate(SCENARIOS.items()):
            start = time.perf_counter()
            out[name] = judge_real(two_phase_run(folder / str(i), g_lr, d_lr), seeds)
            out[name]["wall_time_s"] = round(time.perf_counter() - start, 1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


# ---- report ---------------------------------------------------------------------------


def print_constructed(table: dict[str, dict[str, Any]]) -> None:
    print(f"{'true condition':<20}{'n':>4}{'right':>7}{'wrong':>7}{'missed':>8}{'delay':>7}{'|start err|':>12}  raised (streams)")
    for condition, row in table.items():
        raised = ", ".join(f"{k} {n}" for k, n in sorted(row["raised"].items())) or "-"
        right = "-" if condition == "healthy" else row["right"]
        missed = "-" if condition == "healthy" else row["missed"]
        delay = "-" if row["median_delay_steps"] is None else f"{row['median_delay_steps']:.0f}"
        error = "-" if row["median_start_error_steps"] is None else f"{row['median_start_error_steps']:.0f}"
        print(f"{condition:<20}{row['variants']:>4}{right:>7}{row['wrong']:>7}{missed:>8}{delay:>7}{error:>12}  {raised}")


def print_real(real: dict[str, dict[str, Any]]) -> None:
    print(f"\n{'real runs (8 seeds)':<20}{'fell':>6}{'right':>7}{'wrong':>7}{'missed':>8}  coverage events; loss events (unverified)")
    for name, row in real.items():
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(row["kinds"].items())) or "-"
        loss = ", ".join(f"{k} {n}" for k, n in sorted(row["loss_events_unverified"].items())) or "-"
        print(f"{name:<20}{row['seeds_coverage_fell']:>6}{row['right']:>7}{row['wrong']:>7}{row['missed']:>8}  {kinds}; {loss}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=20, help="random streams per condition")
    parser.add_argument("--skip-real", action="store_true", help="constructed streams only")
    args = parser.parse_args()
    start = time.perf_counter()
    results: dict[str, Any] = {"constructed": constructed(args.variants)}
    print_constructed(results["constructed"])
    if not args.skip_real:
        results["real"] = real_runs()
        print_real(results["real"])
    results["wall_time_s"] = round(time.perf_counter() - start, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {RESULTS} ({results['wall_time_s']} s)")


if __name__ == "__main__":
    main()
