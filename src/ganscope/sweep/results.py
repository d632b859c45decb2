"""A sweep's results: every trial ranked by the sweep's metric, as JSON, a Markdown table
and an HTML page comparing the best trials' runs.

Rendered from the trials' `trial.json` files alone, after every trial and again at the
end, so that an interrupted sweep still has its table. A trial is ranked by the mean of
the metric over its seeds, ties broken by its worst seed; only trials that trained to
their end are ranked (a trial an early-stopping scheduler ended was measured earlier in
its training, and a failed one not at all). Trials on different protocols are ranked
apart: their metrics do not share a scale.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganscope.metrics.modes import mean_std
from ganscope.seed_ranges import span
from ganscope.sweep.trials import Trial
from ganscope.sweep.spec import COMPARISONS, Sweep, parse_condition, yaml_value
from ganscope.sweep.worker import read_entry
from ganscope.train.checkpoint import atomic_write_text
from ganscope.train.log import jsonable

SWEEP_JSON = "sweep.json"
SWEEP_MARKDOWN = "sweep.md"
SWEEP_COMPARE = "compare.html"

Entry = dict[str, Any]

#: Scores shown as percentages.
_PERCENT = ("hq_fraction", "label_fidelity", "intra_class_coverage")


def metric_values(entry: Entry, metric: str) -> list[float | None]:
    """`metric` of each seed of a trial (None where the seed has no finite value: reverse
    KL without high-quality samples, or a score the data does not have)."""
    values: list[float | None] = []
    for score in entry.get("scores") or []:
        if metric.startswith("protocol_"):
            value = (score.get("protocol") or {}).get(metric.removeprefix("protocol_"))
        else:
            value = score.get(metric)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        values.append(float(value) if ok else None)
    return values


def seeds_on_target(sweep: Sweep, entry: Entry) -> list[bool]:
    """Per seed of a trial, whether it meets every condition of the sweep's target (a seed
    without a value for a metric does not)."""
    met = [True] * len(entry.get("scores") or [])
    for metric, condition in sweep.spec.target.items():
        op, number = parse_condition(f"target.{metric}", condition)
        for i, value in enumerate(metric_values(entry, metric)):
            met[i] = met[i] and value is not None and COMPARISONS[op](value, number)
    return met


def target_cell(sweep: Sweep, entry: Entry) -> str:
    met = seeds_on_target(sweep, entry)
    return f"{sum(met)} of {len(met)}" if met else "—"


def target_text(sweep: Sweep) -> str:
    return ", ".join(f"{m} {c.strip()}" for m, c in sweep.spec.target.items())


@dataclass(frozen=True)
class Standing:
    """A trial's metric over its seeds: mean and sample std of the finite values, and the
    worst seed (a seed without a value is the worst)."""

    mean: float | None
    std: float | None
    worst: float | None
    worst_seed: int | None
    finite: int
    seeds: int

    @property
    def complete(self) -> bool:
        return self.seeds > 0 and self.finite == self.seeds


def standing(entry: Entry, metric: str, mode: str) -> Standing:
    values = metric_values(entry, metric)
    seeds = entry.get("seeds") or list(range(len(values)))
    finite = [v for v in values if v is not None]
    if not finite:
        return Standing(None, None, None, None, 0, len(values))
    mean, std = mean_std(finite)
    missing = next((s for s, v in zip(seeds, values) if v is None), None)
    if missing is not None:
        return Standing(mean, std, None, missing, len(finite), len(values))
    worst = min(finite) if mode == "max" else max(finite)
    return Standing(mean, std, worst, seeds[values.index(worst)], len(finite), len(values))


def ranked(entries: list[Entry], metric: str, mode: str) -> list[Entry]:
    """The finished trials, best first: complete ones by mean, then worst seed; trials
    with seeds lacking the metric after them."""
    sign = -1.0 if mode == "max" else 1.0

    def key(value: float | None) -> float:
        return math.inf if value is None else sign * value

    def order(entry: Entry) -> tuple[bool, float, float]:
        s = standing(entry, metric, mode)
        return not s.complete, key(s.mean), key(s.worst)

    return sorted((e for e in entries if e["status"] == "ok"), key=order)


def pending_entry(trial: Trial) -> Entry:
    return {"key": trial.key, "name": trial.name, "values": trial.values, "protocol": trial.protocol,
            "overrides": list(trial.overrides), "status": "pending", "steps": trial.steps, "run_dir": None}


def collect(trials: list[Trial], out: Path) -> list[Entry]:
    """Every trial's recorded outcome, or a pending entry, in the order of the plan."""
    return [read_entry(t, out) or pending_entry(t) for t in trials]


def by_protocol(entries: list[Entry]) -> dict[str | None, list[Entry]]:
    groups: dict[str | None, list[Entry]] = {}
    for e in entries:
        groups.setdefault(e["protocol"], []).append(e)
    return groups


def best(sweep: Sweep, entries: list[Entry], top: int | None = None) -> dict[str | None, list[Entry]]:
    """The `top` best trials of each protocol."""
    k = top or sweep.spec.top
    return {p: ranked(group, sweep.metric, sweep.mode)[:k] for p, group in by_protocol(entries).items()}


# ---- the table ---------------------------------------------------------------------------------


def _number(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric in _PERCENT:
        return f"{100 * value:.1f}%"
    return f"{value:.3f}" if metric.endswith("kl") else f"{value:.2f}"


def metric_cell(entry: Entry, metric: str, mode: str) -> str:
    s = standing(entry, metric, mode)
    if s.mean is None:
        return "n/a"
    text = f"{_number(metric, s.mean)} ± {_number(metric, s.std)}".replace("% ±", " ±")
    return text if s.complete else f"{text} ({s.finite} of {s.seeds} seeds)"


def worst_cell(entry: Entry, metric: str, mode: str) -> str:
    s = standing(entry, metric, mode)
    if s.worst_seed is None:
        return "n/a"
    return f"{_number(metric, s.worst)} (seed {s.worst_seed})"


def scores_cell(entry: Entry) -> str:
    """Modes / HQ % / reverse KL, means over the seeds: the protocol's headline numbers."""
    cells = []
    for key, digits, scale in (("modes_covered", 1, 1), ("hq_fraction", 1, 100), ("reverse_kl", 3, 1)):
        finite = [v for v in metric_values(entry, key) if v is not None]
        cells.append(f"{scale * sum(finite) / len(finite):.{digits}f}" if finite else "n/a")
    return " / ".join(cells)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _status(entry: Entry) -> str:
    status = entry["status"]
    if status == "failed":
        error = entry.get("error") or "unknown error"
        return f"**failed**: {error[:160]}{'…' if len(error) > 160 else ''}"
    if status == "stopped":
        return f"stopped early at step {entry['step']:,}"
    if status == "pending":
        return "not run yet"
    wall = "" if not entry.get("resumed_from_step") else f", resumed at step {entry['resumed_from_step']:,}"
    return f"trained {entry['step']:,} steps{wall}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _trial_link(entry: Entry) -> str:
    run_dir = entry.get("run_dir")
    if entry["status"] == "ok" and run_dir:
        return f"[{entry['name']}]({run_dir}/report.html)"
    return entry["name"]


def _table(sweep: Sweep, entries: list[Entry]) -> list[str]:
    """Every trial of one protocol: ranked ones first, then stopped, failed and pending."""
    order = ranked(entries, sweep.metric, sweep.mode)
    rest = [e for e in entries if e["status"] != "ok"]
    rest.sort(key=lambda e: ("stopped", "failed", "pending").index(e["status"]))
    axes = list(sweep.axes)
    target = ["seeds on target"] if sweep.spec.target else []
    header = ["rank", "trial", *(f"`{a}`" for a in axes), f"{sweep.metric} ({sweep.mode})", "worst seed",
              *target, "modes / HQ % / rKL", "wall time", "status"]
    lines = [_row(header), _row(["---"] * len(header))]
    for i, entry in enumerate([*order, *rest]):
        rank = str(i + 1) if entry["status"] == "ok" else "—"
        first = i == 0 and entry["status"] == "ok"
        values = [f"`{yaml_value(entry['values'][a])}`" if a in entry["values"] else "—" for a in axes]
        metric = metric_cell(entry, sweep.metric, sweep.mode) if entry["status"] != "pending" else "—"
        lines.append(_row([
            f"**{rank}**" if first else rank, f"**{_trial_link(entry)}**" if first else _trial_link(entry), *values,
            f"**{metric}**" if first else metric,
            worst_cell(entry, sweep.metric, sweep.mode) if entry["status"] != "pending" else "—",
            *([target_cell(sweep, entry)] if target else []),
            scores_cell(entry) if entry.get("scores") else "—",
            duration(entry.get("wall_time_s")), _status(entry),
        ]))
    return lines


def _base(sweep: Sweep) -> str:
    base = sweep.spec.base
    parts = [f"config `{base.config}`"] * bool(base.config) + [f"profile `{base.profile}`"] * bool(base.profile)
    parts = parts or ["ganscope's defaults"]
    if base.set:
        parts.append("overrides " + ", ".join(f"`{o}`" for o in base.set))
    if sweep.spec.protocol:
        parts.append(f"protocol {', '.join(p for p in sweep.protocols() if p)} (docs/PROTOCOLS.md: its data and "
                     "samples per seed)")
    return "; ".join(parts)


def best_lines(sweep: Sweep, chosen: list[Entry]) -> list[str]:
    """The best trials, each with its scores, axis values and the command that trains it alone."""
    lines = []
    for i, e in enumerate(chosen, start=1):
        values = ", ".join(f"`{k}={yaml_value(v)}`" for k, v in e["values"].items()) or "the base config"
        lines += [
            f"{i}. **{e['name']}**: {sweep.metric} {metric_cell(e, sweep.metric, sweep.mode)}, worst seed "
            f"{worst_cell(e, sweep.metric, sweep.mode)}; "
            f"{f'seeds on target {target_cell(sweep, e)}; ' if sweep.spec.target else ''}"
            f"modes / HQ % / rKL {scores_cell(e)}; {values}",
            f"   - alone: `{_trial_command(sweep, e)}`",
            f"   - run folder: `{e['run_dir']}`",
        ]
    return lines or ["No trial has trained to its end yet."]


def _trial_command(sweep: Sweep, entry: Entry) -> str:
    trial = Trial(entry["key"], entry["name"], entry["values"], entry["protocol"], tuple(entry["overrides"]), {})
    return trial.command(sweep)


def render_markdown(sweep: Sweep, entries: list[Entry]) -> str:
    counts = {s: sum(e["status"] == s for e in entries) for s in ("ok", "failed", "stopped", "pending")}
    seeds = sweep.seeds()
    seed_text = (f"seeds {span(range(seeds[0], seeds[-1] + 1))}" if seeds == list(range(seeds[0], seeds[-1] + 1))
                 else f"seeds {', '.join(map(str, seeds))}")
    better = "higher" if sweep.mode == "max" else "lower"
    wall = sum(e.get("wall_time_s") or 0.0 for e in entries)
    lines = [
        f"# Sweep {sweep.name}",
        "",
        f"Written by `ganscope sweep` from {SWEEP_JSON}. {len(entries)} trials: {counts['ok']} trained, "
        f"{counts['failed']} failed, {counts['stopped']} stopped early, {counts['pending']} not run yet. "
        f"Each trial is one population run of {len(seeds)} {'seed' if len(seeds) == 1 else 'seeds'} ({seed_text}; "
        f"{sweep.seed_note()}).",
        "",
        f"Ranked by **{sweep.metric}** ({better} is better): mean ± sample std over each trial's seeds, ties "
        f"broken by the worst seed (the {'lowest' if sweep.mode == 'max' else 'highest'} value). Modes / HQ % / "
        "rKL: the means of modes covered, high-quality share and reverse KL. Wall time: each trial's training in "
        "its last session.",
        "",
        f"Base: {_base(sweep)}. Axes: {', '.join(f'`{a}`' for a in sweep.axes) or 'none'}"
        f"{f' ({sweep.spec.samples} random draws, sampling seed {sweep.spec.sampling_seed})' if sweep.spec.samples else ''}."
        f" Trials' wall time together: {duration(wall)}.",
    ]
    if sweep.spec.target:
        lines += ["", f"Target, on every seed: {target_text(sweep)}. *Seeds on target* counts the seeds of a trial "
                      "that meet all of it."]
    groups = by_protocol(entries)
    for protocol, group in groups.items():
        heading = f"protocol {protocol}" if protocol else "trials"
        chosen = ranked(group, sweep.metric, sweep.mode)[:sweep.spec.top]
        lines += ["", f"## Best configurations{f' ({heading})' if protocol else ''}", "", *best_lines(sweep, chosen),
                  "", f"## All {heading}" if protocol else "## All trials", "", *_table(sweep, group)]
    return "\n".join(lines) + "\n"


def save(sweep: Sweep, entries: list[Entry], out: Path) -> tuple[Path, Path]:
    """sweep.json and, rendered from the same entries, sweep.md; atomically."""
    best_names = {str(p): [e["name"] for e in chosen] for p, chosen in best(sweep, entries).items()}
    document = {
        "format": 1, "name": sweep.name, "metric": sweep.metric, "mode": sweep.mode, "seeds": sweep.seeds(),
        "sweep": sweep.spec.model_dump(mode="json", exclude_none=True), "best": best_names,
        "trials": [{**e, "seeds_on_target": seeds_on_target(sweep, e)} if sweep.spec.target and e.get("scores")
                   else e for e in entries],
    }
    atomic_write_text(out / SWEEP_JSON, json.dumps(jsonable(document), indent=2) + "\n")
    atomic_write_text(out / SWEEP_MARKDOWN, render_markdown(sweep, entries))
    return out / SWEEP_JSON, out / SWEEP_MARKDOWN


def write_compare(sweep: Sweep, entries: list[Entry], out: Path) -> Path | None:
    """The comparison page (`ganscope report` of several runs) of the best trials of each
    protocol; None when no trial has trained to its end. A page that cannot be drawn is a
    warning: the results are already saved."""
    from ganscope.report import write_comparison

    runs = [out / e["run_dir"] for chosen in best(sweep, entries).values() for e in chosen]
    if not runs:
        return None
    try:
        return write_comparison(runs, out / SWEEP_COMPARE)
    except Exception as err:  # noqa: BLE001
        print(f"ganscope: the comparison page of the best trials was not written ({type(err).__name__}: {err}); "
              f"the results are in {out / SWEEP_JSON}", file=sys.stderr)
        return None
