"""The report of one run: `report.html` in the run folder, rewritten at the end of every
training, plus its pictures as files beside it (for slides and papers)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from ganscope.report import figures
from ganscope.report.figures import Line, Marker, Panel, Plane
from ganscope.report.page import Picture, bar, card, document, esc, figure, mean_std, number, table
from ganscope.report.runs import RunFolder, Series
from ganscope.train.checkpoint import atomic_write_text

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
    pictures = [
        Picture("samples.png", "Final samples",
                f"Generated samples (orange) over the real density (blue) in {where}, true modes "
                f"marked{of_seeds(shown)}. Collapse shows as orange piled on few modes; dropping as blue modes "
                "with no orange.",
                figures.samples_figure([(plane, run.final[i], titles[i]) for i in range(shown)])),
    ]
    if frames:
        pictures += [
            Picture("evolution.png", "Samples at each evaluation",
                    f"Each row is a seed{of_seeds(figures.MAX_EVOLUTION_SEEDS)}, each column an evaluation: "
                    "a collapsed seed keeps one pile; a seed hopping from mode to mode (G chasing D's weak "
                    "spot) moves its pile from column to column.",
                    figures.evolution_figure(plane, frames, run.seeds)),
            Picture("training.gif", "Training, animated",
                    f"All {len(frames)} evaluations in order (up to {figures.MAX_GIF_FRAMES} frames), "
                    f"one panel per seed{of_seeds(figures.MAX_EVOLUTION_SEEDS)}, pausing on the final one.",
                    figures.animation_gif(plane, frames, run.seeds)),
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
        figures.curves_figure(seed_panels(run), markers(run.events)),
    ))
    return {p.name: p for p in pictures}


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


def markers(events: Sequence[dict[str, Any]]) -> list[Marker]:
    """Each started event, ending where its `ended` record says (or never)."""
    ends = {(e["event"], e["seed"], e["started_at"]): e["step"] for e in events if e["status"] == "ended"}
    return [Marker(e["event"], e["seed"], e["started_at"], ends.get((e["event"], e["seed"], e["started_at"])))
            for e in events if e["status"] == "started"]


# ---- the page ---------------------------------------------------------------------------


def run_page(run: RunFolder, pictures: dict[str, Picture], out: Path) -> str:
    summary, cfg = run.summary, run.cfg
    started = [e for e in run.events if e["status"] == "started"]
    n_modes = summary["scores"][0]["n_modes"]
    all_covered = all(s["modes_covered"] == s["n_modes"] for s in summary["scores"])
    kinds = sorted({e["event"] for e in started})
    speed = summary.get("seed_steps_per_s")
    cards = "".join([
        card("modes covered", f"{mean_std(summary['modes_covered_mean'], summary['modes_covered_std'])} / {n_modes}",
             "mean ± std over seeds"),
        card("high quality", mean_std(summary["hq_fraction_mean"], summary["hq_fraction_std"], 100, unit=" %"),
             "samples within the mode's radius"),
        card("reverse KL", mean_std(summary["reverse_kl_mean"], summary["reverse_kl_std"], digits=3),
             "of the mode histogram; 0 is ideal"),
        card("events", str(len(started)), ", ".join(kinds) if kinds else
             ("the monitor saw nothing wrong" if cfg.train.monitor.enabled else "monitor disabled")),
        card("training", f"{summary['step']:,} steps", f"{summary['wall_time_s']:.0f} s"
             + (f", {speed:,.0f} seed-steps/s" if speed else "")),
    ])
    verdict_class = "verdict" if all_covered and not started else "verdict warn"
    sections = [
        f'<div class="{verdict_class}"><div class="label">verdict</div><p>{esc(summary["verdict"])}</p></div>',
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


def _seed_table(run: RunFolder) -> str:
    last_eval = {r["seed"]: r for r in run.records if r["kind"] == "eval"}
    started = [e for e in run.events if e["status"] == "started"]
    rows = []
    for seed, s in zip(run.seeds, run.summary["scores"], strict=True):
        duplicates = last_eval.get(seed, {}).get("duplicate_fraction")
        kinds = sorted({e["event"] for e in started if e["seed"] == seed})
        rows.append([
            esc(seed),
            f"{s['modes_covered']} / {s['n_modes']}{bar(s['modes_covered'] / s['n_modes'])}",
            f"{100 * s['hq_fraction']:.1f} %{bar(s['hq_fraction'])}",
            number(s["reverse_kl"]),
            "n/a" if duplicates is None else f"{100 * duplicates:.1f} %",
            "".join(f'<span class="tag">{esc(k)}</span>' for k in kinds) or '<span class="muted">none</span>',
        ])
    return table(["seed", "modes covered", "high quality", "reverse KL", "near-duplicates", "events"], rows,
                 numeric=(1, 2, 3, 4))


def _events_section(run: RunFolder) -> str:
    events = run.events
    if not run.cfg.train.monitor.enabled:
        return "<p class=lead>The training monitor was disabled for this run.</p>"
    if not events:
        return "<p class=lead>The monitor raised no event at any evaluation.</p>"
    rows = []
    for e in events:
        evidence = ", ".join(f"{k} {_short(v)}" for k, v in (e.get("evidence") or {}).items())
        remedy = e.get("remedy")
        rows.append([
            esc(e["step"]), esc(e["seed"]),
            f'<span class="tag{" ended" if e["status"] == "ended" else ""}">{esc(e["event"])}</span>'
            + (" ended" if e["status"] == "ended" else ""),
            esc(e["started_at"]),
            esc(e["text"]) + (f'<br><span class="muted">{esc(evidence)}</span>' if evidence else ""),
            "" if not remedy else f"{esc(', '.join(remedy['names']))}<br>{_options(remedy['how'])}",
        ])
    return ("<p class=lead>Every condition the monitor raised (and when it cleared), in the order decided; "
            "<em>evidence from</em> is the first step that showed it.</p>"
            + table(["step", "seed", "event", "evidence from", "what the monitor saw", "remedy to try"], rows,
                    numeric=(0, 1, 3)))


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
