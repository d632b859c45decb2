"""The report of one run: `report.html` in the run folder, rewritten at the end of every
training, plus its pictures as files beside it (for slides and papers)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ganscope.report import figures
from ganscope.report.figures import Generators, Line, Marker, Panel, Plane
from ganscope.report.page import Picture, bar, card, document, esc, figure, mean_std, number, table
from ganscope.report.runs import Episode, RunFolder, Series
from ganscope.train.checkpoint import atomic_write_text
from ganscope.train.snapshots import snapshot_indices

REPORT = "report.html"


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Draw the run's pictures into its folder and write the page (default
    `RUN_DIR/report.html`); returns the page's path."""
    run = RunFolder.load(run_dir)
    pictures = run_pictures(run)
    for picture in pictures.values():
        run.write(picture.name, picture.content)
    out = Path(out) if out is not None else run.path / REPORT
    atomic_write_text(out, run_page(run, pictures, out))
    return out


# ---- pictures ---------------------------------------------------------------------------


def seed_title(seed: int, score: dict[str, Any]) -> str:
    return f"seed {seed}: {score['modes_covered']}/{score['n_modes']} modes, {100 * score['hq_fraction']:.1f}% HQ"


def run_pictures(run: RunFolder) -> dict[str, Picture]:
    """Every picture of the run, keyed by file name."""
    frames = run.snapshots()
    plane = Plane.fit(run.real, run.data.oracle, [run.final, *(s for _, s in frames)])
    shown = min(len(run.seeds), figures.MAX_PANELS)

    def of_seeds(limit: int) -> str:
        return f" (the first {limit} of {len(run.seeds)} seeds)" if limit < len(run.seeds) else ""

    titles = [seed_title(seed, score) for seed, score in zip(run.seeds, run.summary["scores"], strict=True)]
    where = (f"the real data's first two principal components (the data have {run.real[0].size} dimensions)"
             if plane.pca is not None else "the data's own plane")
    final_generators = _sample_generators(run, run.final.shape[1])
    pictures = [
        Picture("samples.png", "Final samples",
                f"Generated samples ({_colouring(final_generators)}) over the real density (blue) in {where}, "
                f"true modes marked{of_seeds(shown)}. Collapse shows as samples piled on few modes; dropping as "
                "blue modes with no sample.",
                figures.samples_figure([(plane, run.final[i], titles[i]) for i in range(shown)], final_generators)),
    ]
    if frames:
        generators = _snapshot_generators(run, frames)
        pictures += [
            _evolution_picture(run, plane, frames, of_seeds(figures.MAX_EVOLUTION_SEEDS), generators),
            Picture("training.gif", "Training, animated",
                    f"All {len(frames)} evaluations in order (up to {figures.MAX_GIF_FRAMES} frames), "
                    f"one panel per seed{of_seeds(figures.MAX_EVOLUTION_SEEDS)}, pausing on the final one.",
                    figures.animation_gif(plane, frames, run.seeds, generators)),
        ]
    weights = run.data.oracle.weights.numpy()
    pictures.append(Picture(
        "modes.png", "Samples per mode against the true weights",
        f"Share of each seed's high-quality samples that falls on each mode (bars) and the true weight "
        f"(line){of_seeds(shown)}. Reverse KL measures the gap between the two; an x marks a mode that got no sample.",
        figures.mode_histogram_figure([s["counts"] for s in run.summary["scores"]], weights, titles),
    ))
    if run.real[0].size > 2:
        pictures.append(_tsne_picture(run))
    pictures.append(Picture(
        "curves.png", "Training curves",
        "Losses and gradient norms (every log step) and the evaluation scores, one line per seed. "
        "Monitor events are dashed lines where their evidence started, shaded until they ended.",
        figures.curves_figure(seed_panels(run), markers(run.episodes)),
    ))
    return {p.name: p for p in pictures}


def _sample_generators(run: RunFolder, drawn: int, kept: np.ndarray | None = None) -> Generators | None:
    """Which generator made each of an evaluation's `drawn` samples, or of those at the
    indices `kept` (the ones a file holds); None when the scheme has one generator."""
    of_sample = run.generator_of_samples(drawn)
    if of_sample is None:
        return None
    return Generators(of_sample if kept is None else of_sample[kept], int(of_sample.max()) + 1)


def _snapshot_generators(run: RunFolder, frames: Sequence[tuple[int, np.ndarray]]) -> Generators | None:
    """The generators of the snapshots' samples (`snapshot_indices` of the
    `train.eval_samples` drawn). None where a snapshot holds another count (a run resumed
    with another `train.eval_samples`): better uncoloured than wrong."""
    drawn = run.cfg.train.eval_samples
    kept = snapshot_indices(drawn)
    return _sample_generators(run, drawn, kept) if all(s.shape[1] == len(kept) for _, s in frames) else None


def _colouring(generators: Generators | None) -> str:
    """How the samples are coloured, for a caption; says when a file holds samples of
    only some generators."""
    if generators is None:
        return "in orange"
    made = np.unique(generators.of_sample)
    if len(made) == generators.count:
        return f"coloured by the generator that made them, G1 to G{generators.count}"
    return (f"coloured by generator; these files hold samples of {', '.join(f'G{i + 1}' for i in made)} only, "
            f"of {generators.count} generators")


def _evolution_picture(
    run: RunFolder, plane: Plane, frames: Sequence[tuple[int, np.ndarray]], which_seeds: str,
    generators: Generators | None,
) -> Picture:
    """The strip of evaluations, with every evaluation where an event of a shown seed
    started among its columns."""
    all_markers = markers(run.episodes)
    shown_seeds = set(run.seeds[: figures.MAX_EVOLUTION_SEEDS])
    steps = [step for step, _ in frames]
    cells = figures.event_cells([m for m in all_markers if m.seed in shown_seeds], steps)
    chosen = set(figures.strip_steps(steps, {step for step, _ in cells}))
    missing = sorted({step for step, _ in cells} - chosen)
    events_note = ""
    if cells:
        events_note = (" A framed, labelled panel is an evaluation where that seed's event was raised or its "
                       "evidence began; ")
        events_note += (f"{len(missing)} such evaluations do not fit (steps {', '.join(map(str, missing))})."
                        if missing else "every such evaluation is shown.")
    return Picture(
        "evolution.png", "Samples at evaluations",
        f"Each row is a seed{which_seeds}, each column an evaluation ({len(chosen)} of {len(steps)}); samples "
        f"{_colouring(generators)}. A collapsed seed keeps one pile; a seed hopping from mode to mode (G chasing "
        f"D's weak spot) moves its pile from column to column.{events_note}",
        figures.evolution_figure(plane, [f for f in frames if f[0] in chosen], run.seeds, cells,
                                 figures.event_colours(m.kind for m in all_markers), generators),
    )


def _tsne_picture(run: RunFolder) -> Picture:
    oracle = run.data.oracle
    seeds = run.seeds[: figures.MAX_TSNE_SEEDS]
    per_seed = max(200, figures.TSNE_POINTS // len(seeds))
    real = run.real[: figures.TSNE_POINTS]
    fakes = []
    for i, seed in enumerate(seeds):
        samples = run.final[i, :per_seed]
        assigned = oracle.assign(torch.from_numpy(samples))
        covered = run.summary["scores"][i]["modes_covered"]
        fakes.append((f"seed {seed}: {covered}/{oracle.n_modes} modes", samples,
                      assigned.mode.numpy(), assigned.high_quality.numpy()))
    return Picture(
        "tsne.png", "t-SNE map of real and generated samples",
        f"One t-SNE embedding of {len(real)} real and {per_seed} generated samples per seed, drawn side by side. "
        f"Colour: nearest true mode ({oracle.description}); grey: low quality; labels mark the real clusters. "
        "A labelled cluster missing from a seed's panel is a dropped mode.",
        figures.tsne_figure(real, oracle.assign(torch.from_numpy(real)).mode.numpy(), fakes, oracle.n_modes),
    )


def seed_panels(run: RunFolder) -> list[Panel]:
    """One panel per logged quantity, one line per seed."""
    return [Panel(q.title, _lines(run.series(q.kind, q.key)), q.log) for q in run.quantities()]


def _lines(series: Series) -> list[Line]:
    return [Line(f"seed {seed}", steps, values) for seed, (steps, values) in sorted(series.items())]


def markers(episodes: Sequence[Episode]) -> list[Marker]:
    """Each event from the first step of its evidence to its end (or never)."""
    return [Marker(e.kind, e.seed, e.started["started_at"], e.end, e.started["step"]) for e in episodes]


# ---- the page ---------------------------------------------------------------------------


def run_page(run: RunFolder, pictures: dict[str, Picture], out: Path) -> str:
    summary, cfg = run.summary, run.cfg
    episodes = run.episodes
    current = [e for e in episodes if e.ended is None]
    n_modes = summary["scores"][0]["n_modes"]
    all_covered = all(s["modes_covered"] == s["n_modes"] for s in summary["scores"])
    speed = summary.get("seed_steps_per_s")
    cards = "".join([
        card("modes covered", f"{mean_std(summary['modes_covered_mean'], summary['modes_covered_std'])} / {n_modes}",
             "mean ± std over seeds"),
        card("high quality", mean_std(summary["hq_fraction_mean"], summary["hq_fraction_std"], 100, unit=" %"),
             "samples within the mode's radius"),
        card("reverse KL", mean_std(summary["reverse_kl_mean"], summary["reverse_kl_std"], digits=3),
             "of the mode histogram; 0 is ideal"),
        card("events", str(len(episodes)), _events_count(episodes) if episodes else
             ("the monitor saw nothing wrong" if cfg.train.monitor.enabled else "monitor disabled")),
        card("training", f"{summary['step']:,} steps", f"{summary['wall_time_s']:.0f} s"
             + (f", {speed:,.0f} seed-steps/s" if speed else "")),
    ])
    verdict_class = "verdict" if all_covered and not current else "verdict warn"
    sections = [
        f'<div class="{verdict_class}"><div class="label">verdict</div><p>{esc(summary["verdict"])}</p>'
        f"{_verdict_events(episodes)}</div>",
        f'<div class="cards">{cards}</div>',
        f"<p class=lead>Modes: {esc(summary['modes_found_by'])}. Scores follow the VEEGAN / PacGAN protocol "
        f"on {summary['scores'][0]['n_samples']:,} samples per seed.</p>",
        '<h2 id="seeds">Seeds</h2>', _seed_table(run),
        '<h2 id="events">Events</h2>', _events_section(run),
        '<h2 id="samples">Samples</h2>',
        *(figure(pictures[n]) for n in ("samples.png", "evolution.png", "training.gif") if n in pictures),
        *(() if "evolution.png" in pictures else
          ("<p class=lead>This run folder predates per-evaluation snapshots, so only the final samples show.</p>",)),
        '<h2 id="modes">Modes</h2>', *(figure(pictures[n]) for n in ("modes.png", "tsne.png") if n in pictures),
        '<h2 id="curves">Curves</h2>', figure(pictures["curves.png"]),
        '<h2 id="config">Configuration</h2>',
        f"<p class=lead>The resolved configuration (<code>config.yaml</code>); repeat the run with "
        f"<code>ganscope train {esc(run.path / 'config.yaml')} -o NEW_RUN_DIR</code>.</p>",
        f"<pre>{esc(_compact_yaml(run.config_text))}</pre>",
        '<h2 id="files">Run folder</h2>', _files(run, out),
    ]
    meta = (f"{cfg.data.name} · {cfg.objective.name} · {cfg.scheme.name} · {summary['step']:,} steps · "
            f"{len(run.seeds)} seed{'s' if len(run.seeds) > 1 else ''}")
    nav = [("seeds", "Seeds"), ("events", "Events"), ("samples", "Samples"), ("modes", "Modes"),
           ("curves", "Curves"), ("config", "Configuration"), ("files", "Files")]
    return document(run.name, "ganscope run report", meta, nav, "\n".join(sections))


def _span(episode: Episode) -> str:
    """From the first step of the event's evidence to the step it ended."""
    end = "ongoing at the end" if episode.end is None else str(episode.end)
    return f"steps {episode.started['started_at']} – {end}"


def _tag(kind: str, ended: bool) -> str:
    return f'<span class="tag{" ended" if ended else ""}">{esc(kind)}</span>'


def _events_count(episodes: Sequence[Episode]) -> str:
    """'2 ongoing at the end (collapse), 1 ended (divergence)'."""
    parts = []
    for label, group in (("ongoing at the end", [e for e in episodes if e.ended is None]),
                         ("ended", [e for e in episodes if e.ended is not None])):
        if group:
            parts.append(f"{len(group)} {label} ({', '.join(sorted({e.kind for e in group}))})")
    return ", ".join(parts)


def _verdict_events(episodes: Sequence[Episode]) -> str:
    """The monitor's events under the verdict, those still holding at the end apart from
    those that ended during training, each kind with its seeds and spans."""
    lines = []
    for label, ended in (("Current at the end", False), ("Ended during training", True)):
        group = [e for e in episodes if (e.ended is not None) == ended]
        by_kind = {kind: [e for e in group if e.kind == kind] for kind in sorted({e.kind for e in group})}
        items = "; ".join(_tag(kind, ended) + " " + ", ".join(f"seed {e.seed} ({esc(_span(e))})" for e in those)
                          for kind, those in by_kind.items())
        if items:
            lines.append(f'<p class="events"><span class="muted">{label}:</span> {items}</p>')
    return "".join(lines)


def _seed_table(run: RunFolder) -> str:
    last_eval = {r["seed"]: r for r in run.records if r["kind"] == "eval"}
    episodes = run.episodes
    rows = []
    for seed, s in zip(run.seeds, run.summary["scores"], strict=True):
        duplicates = last_eval.get(seed, {}).get("duplicate_fraction")
        own = [e for e in episodes if e.seed == seed]
        ongoing = {e.kind for e in own if e.ended is None}
        rows.append([
            esc(seed),
            f"{s['modes_covered']} / {s['n_modes']}{bar(s['modes_covered'] / s['n_modes'])}",
            f"{100 * s['hq_fraction']:.1f} %{bar(s['hq_fraction'])}",
            number(s["reverse_kl"]),
            "n/a" if duplicates is None else f"{100 * duplicates:.1f} %",
            "".join(_tag(k, k not in ongoing) for k in sorted({e.kind for e in own}))
            or '<span class="muted">none</span>',
        ])
    return table(["seed", "modes covered", "high quality", "reverse KL", "near-duplicates",
                  "events (grey: ended)"], rows, numeric=(1, 2, 3, 4))


def _events_section(run: RunFolder) -> str:
    episodes = run.episodes
    if not run.cfg.train.monitor.enabled:
        return "<p class=lead>The training monitor was disabled for this run.</p>"
    if not episodes:
        return "<p class=lead>The monitor raised no event at any evaluation.</p>"
    rows = []
    for e in episodes:
        evidence = ", ".join(f"{k} {_short(v)}" for k, v in (e.started.get("evidence") or {}).items())
        remedy = e.started.get("remedy")
        rows.append([
            esc(e.started["step"]), esc(e.seed), _tag(e.kind, e.ended is not None),
            esc(_span(e)) + ("" if e.ended is None else f'<br><span class="muted">ended, seen at step {esc(e.ended["step"])}</span>'),
            esc(e.started["text"]) + (f'<br><span class="muted">{esc(evidence)}</span>' if evidence else ""),
            "" if not remedy else f"{esc(', '.join(remedy['names']))}<br>{_options(remedy['how'])}",
        ])
    return ("<p class=lead>Every condition the monitor raised, one row each in the order raised: its span runs "
            "from the first step of its evidence to the step the monitor saw it end (grey), or it was ongoing "
            "at the end.</p>"
            + table(["raised at", "seed", "event", "span", "what the monitor saw", "remedy to try"], rows,
                    numeric=(0, 1)))


def _options(command: str) -> str:
    """`-s key=value ...` as one unbreakable code span per option, ready to copy."""
    return " ".join(f'<code class="option">{esc(o)}</code>' for o in re.split(r" (?=-s )", command))


def _compact_yaml(text: str) -> str:
    """The config with lists of numbers on one line each (mixture centres, betas)."""
    return yaml.safe_dump(yaml.safe_load(text), sort_keys=False, default_flow_style=None, width=100)


def _short(value: object) -> str:
    return "n/a" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def _relative(path: Path, page: Path) -> str:
    return os.path.relpath(path.resolve(), page.resolve().parent)


def _files(run: RunFolder, out: Path) -> str:
    described = [
        ("config.yaml", "resolved configuration"), ("metrics.jsonl", "every logged record, one JSON per line"),
        ("summary.json", "verdict and final scores"), ("samples.npy", "final samples, seeds x n x ..."),
        ("snapshots", "samples of every evaluation"), ("checkpoint.pt", "resumable state"),
        ("generator.safetensors", "generator weights"), ("tensorboard", "TensorBoard scalars and events"),
    ]
    items = "".join(
        f'<li><a href="{esc(_relative(run.path / name, out))}">{esc(name)}</a> '
        f'<span class="muted">{esc(what)}</span></li>'
        for name, what in described if (run.path / name).exists()
    )
    return f"<p class=lead><code>{esc(run.path.resolve())}</code></p><ul>{items}</ul>"
