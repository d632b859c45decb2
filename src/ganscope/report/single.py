"""The report of one run: `report.html` in the run folder, rewritten at the end of every
training, plus its pictures as files beside it (for slides and papers)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ganscope.data import FiniteDataset, evaluation_size
from ganscope.metrics.modes import reverse_kl
from ganscope.report import figures
from ganscope.report.figures import Generators, Line, Marker, Mosaic, Panel, Plane
from ganscope.report.page import Picture, bar, card, document, esc, figure, mean_std, number, table
from ganscope.report.runs import Episode, RunFolder, Series
from ganscope.train.checkpoint import atomic_write_text
from ganscope.train.snapshots import final_indices, snapshot_indices

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
    view = sample_view(run, frames)
    titles = [seed_title(seed, score) for seed, score in zip(run.seeds, run.summary["scores"], strict=True)]
    drawn = evaluation_size(run.cfg, run.data)
    pictures = [_samples_picture(run, view, titles,
                                 _sample_generators(run, drawn, final_indices(drawn, run.sample_size)))]
    if frames:
        generators = _snapshot_generators(run, frames)
        pictures += [
            _evolution_picture(run, view, frames, generators),
            Picture("training.gif", "Training, animated",
                    f"All {len(frames)} evaluations in order (up to {figures.MAX_GIF_FRAMES} frames), "
                    f"one panel per seed{_of_seeds(run, figures.MAX_EVOLUTION_SEEDS)}, pausing on the final one"
                    + (f"; each panel shows {_what_cells_show(run, 'frame', generators)}" if run.images else "")
                    + ".",
                    figures.animation_gif(view, frames, run.seeds, generators)),
        ]
    pictures.append(_modes_picture(run, titles))
    if run.sample_size > 2:
        pictures.append(_tsne_picture(run))
    if run.images:
        pictures.append(_nearest_picture(run))
    if run.classes is not None:
        pictures.append(_classes_picture(run))
    if run.style_mixing is not None and run.truncation_sweep is not None:
        pictures += _style_pictures(run)
    if run.translations is not None:
        pictures.append(_translations_picture(run))
    pictures.append(Picture(
        "curves.png", "Training curves",
        "Losses and gradient norms (every log step) and the evaluation scores, one line per seed. "
        "Monitor events are dashed lines where their evidence started, shaded until they ended.",
        figures.curves_figure(seed_panels(run), markers(run.episodes)),
    ))
    return {p.name: p for p in pictures}


def sample_view(run: RunFolder, frames: Sequence[tuple[int, np.ndarray]]) -> figures.View:
    """How the run's samples are drawn: images as grids of pictures; points in a plane
    whose limits hold the final and every snapshot's samples."""
    if run.images:
        return Mosaic(run.data.oracle)
    return Plane.fit(run.real, run.data.oracle, [run.final, *(s for _, s in frames)])


def _of_seeds(run: RunFolder, limit: int) -> str:
    return f" (the first {limit} of {len(run.seeds)} seeds)" if limit < len(run.seeds) else ""


def _what_cells_show(run: RunFolder, scale: figures.Scale, generators: Generators | None) -> str:
    """What one panel of a sample picture holds, for its caption."""
    if not run.images:
        return f"samples {_colouring(generators)}"
    side = figures.GRID_SIDES[scale]
    return (f"a grid of up to {side} x {side} images spread evenly over the samples, each framed in blue when the "
            f"oracle counts it high quality ({run.data.oracle.quality_rule}) and in amber when not")


def _samples_picture(run: RunFolder, view: figures.View, titles: Sequence[str],
                     generators: Generators | None) -> Picture:
    shown = min(len(run.seeds), figures.MAX_PANELS)
    panels = [(view, run.final[i], titles[i]) for i in range(shown)]
    if isinstance(view, Plane):
        where = (f"the real data's first two principal components (the data have {run.sample_size} dimensions)"
                 if view.pca is not None else "the data's own plane")
        return Picture(
            "samples.png", "Final samples",
            f"Generated samples ({_colouring(generators)}) over the real density (blue) in {where}, "
            f"true modes marked{_of_seeds(run, shown)}. Collapse shows as samples piled on few modes; dropping as "
            "blue modes with no sample.",
            figures.samples_figure(panels, generators),
        )
    channels = run.data.sample_shape[0]
    colours = ("; the 3 channels as red, green and blue" if channels == 3 else
               f"; the {channels} channels side by side" if channels > 1 else "")
    return Picture(
        "samples.png", "Final samples",
        f"First panel: real data ({run.data.name}, drawn as training draws its batches; its frames show how "
        f"often real data meet the rule); then the final samples of each seed{_of_seeds(run, shown)}. Each panel "
        f"shows {_what_cells_show(run, 'panel', None)}; pixels from -1 (black) to 1 (white){colours}. Titles give "
        f"the modes covered and the high-quality share over all {run.summary['scores'][0]['n_samples']:,} "
        "samples scored. Collapse shows as one picture repeated; dropping as classes that none of a seed's "
        "samples show.",
        figures.samples_figure([(view, run.real, "real data"), *panels], generators),
    )


def _modes_picture(run: RunFolder, titles: Sequence[str]) -> Picture:
    """A bar per mode against its true weight; for more modes than bars can show, the
    modes ranked by their counts against the expected counts."""
    weights = run.data.oracle.weights.numpy()
    scores = run.summary["scores"]
    which = _of_seeds(run, figures.MAX_PANELS)
    if len(weights) <= figures.MAX_BAR_MODES:
        return Picture(
            "modes.png", "Samples per mode against the true weights",
            f"Share of each seed's high-quality samples that falls on each mode (bars) and the true weight "
            f"(line){which}. Reverse KL measures the gap between the two; an x marks a mode that got no sample.",
            figures.mode_histogram_figure([s["counts"] for s in scores], weights, titles),
        )
    ranked_titles = [f"{title}\n{_all_samples_score(s, weights)}" for title, s in zip(titles, scores, strict=True)]
    return Picture(
        "modes.png", "Samples per mode, modes ranked",
        f"Each seed's {len(weights)} modes ranked by their sample count, most first{which}: every sample counted "
        f"at its predicted mode (orange) and the high-quality samples only (blue), against the counts the true "
        f"weights expect (dashed). Title, first line: modes covered by high-quality samples and the high-quality "
        "share; second line: modes that got any sample and KL(sample histogram || true weights) over all samples "
        "(for stacked digits, the Stacked MNIST protocol's two numbers). A curve that meets zero early is "
        "dropping; a spike on the left is collapse.",
        figures.mode_rank_figure([(s["nearest_counts"], s["counts"]) for s in scores], weights, ranked_titles),
    )


def _all_samples_score(score: dict[str, Any], weights: np.ndarray) -> str:
    """Modes hit by any sample and the KL of every sample's mode histogram to the weights."""
    counts = torch.tensor(score["nearest_counts"])
    kl = reverse_kl(counts, torch.from_numpy(weights))
    return f"all {int(counts.sum()):,} samples: {int((counts > 0).sum())}/{len(weights)} modes, KL {kl:.2f}"


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
    drawn = evaluation_size(run.cfg, run.data)
    kept = snapshot_indices(drawn, run.sample_size)
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


_HOPPING_POINTS = ("A collapsed seed keeps one pile; a seed hopping from mode to mode (G chasing D's weak spot) "
                   "moves its pile from column to column.")
_HOPPING_IMAGES = ("A collapsed seed fills its cells with one picture; a seed hopping from mode to mode (G chasing "
                   "D's weak spot) shows another class in each column.")


def _evolution_picture(
    run: RunFolder, view: figures.View, frames: Sequence[tuple[int, np.ndarray]], generators: Generators | None,
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
        f"Each row is a seed{_of_seeds(run, figures.MAX_EVOLUTION_SEEDS)}, each column an evaluation "
        f"({len(chosen)} of {len(steps)}); each cell shows {_what_cells_show(run, 'cell', generators)}. "
        + (_HOPPING_IMAGES if run.images else _HOPPING_POINTS) + events_note,
        figures.evolution_figure(view, [f for f in frames if f[0] in chosen], run.seeds, cells,
                                 figures.event_colours(m.kind for m in all_markers), generators),
    )


def _tsne_picture(run: RunFolder) -> Picture:
    """Real and generated samples in one t-SNE map, in the oracle's feature space (points
    are their own features; images the classifier's hidden layer)."""
    oracle = run.data.oracle
    seeds = run.seeds[: figures.MAX_TSNE_SEEDS]
    per_seed = max(200, figures.TSNE_POINTS // len(seeds))
    real = torch.from_numpy(run.real[: figures.TSNE_POINTS])
    group = _colour_group(oracle.n_modes)
    fakes = []
    for i, seed in enumerate(seeds):
        samples = torch.from_numpy(run.final[i, :per_seed])
        assigned = oracle.assign(samples)
        covered = run.summary["scores"][i]["modes_covered"]
        fakes.append((f"seed {seed}: {covered}/{oracle.n_modes} modes", oracle.embed(samples).numpy(),
                      assigned.mode.numpy() // group, assigned.high_quality.numpy()))
    real_features = oracle.embed(real).numpy()
    space = f" in the oracle's feature space ({oracle.feature_space}, {real_features.shape[1]} numbers per image)"
    colour = ("nearest true mode" if group == 1 else
              f"the predicted mode's number divided by {group}, rounded down, which for digit triples is the "
              "first channel's digit")
    return Picture(
        "tsne.png", "t-SNE map of real and generated samples",
        f"One t-SNE embedding{space if run.images else ''} of {len(real)} real and {per_seed} generated samples "
        f"per seed, drawn side by "
        f"side. Colour: {colour}; grey: low quality; labels mark the real clusters. Modes: {oracle.description}. "
        "A labelled cluster missing from a seed's panel is a dropped mode.",
        figures.tsne_figure(real_features, oracle.assign(real).mode.numpy() // group, fakes,
                            -(-oracle.n_modes // group)),
    )


def _colour_group(n_modes: int) -> int:
    """Modes per colour of the t-SNE map: 1 (a colour per mode) up to `MAX_BAR_MODES`
    modes; beyond, modes grouped by the leading digit of their number (1000 digit triples:
    by their first digit, 10 colours)."""
    return 1 if n_modes <= figures.MAX_BAR_MODES else 10 ** (len(str(n_modes - 1)) - 1)


NEAREST_SEARCHED = 1000
"""Final samples per seed searched for their nearest real image."""
NEAREST_SHOWN = 8
"""...and how many of them, the closest, the picture shows."""
MAX_NEAREST_SEEDS = 4
_NEAREST_BLOCK = 1024
"""Rows per block of `nearest_rows`: 1024 x 5,000 distances are 40 MB in float64."""


@dataclass(frozen=True)
class NearestPairs:
    """A seed's generated samples closest to a real one, closest first: their indices in
    the generated set, the index of each one's nearest real sample and their distances;
    and the median distance of every generated sample to its nearest real one."""

    fake: np.ndarray
    real: np.ndarray
    distance: np.ndarray
    median: float


def nearest_rows(x: torch.Tensor, y: torch.Tensor, exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance from each row of x (N, D) to its nearest row of y (M, D), and that row's
    index; with `exclude_self` (x is y) a row's nearest other row.

    Float64 distances in the matrix-product form, in blocks of rows: on 5,000 x 5,000
    Stacked-digit features (768 numbers) about 17 times faster than the exact difference
    form of `ganscope.metrics.neighbours` (2 s against 34 s here), and off only by float64
    rounding, far below the distances a picture prints.
    """
    x, y = x.double(), y.double()
    distance, index = torch.empty(len(x), dtype=torch.float64), torch.empty(len(x), dtype=torch.long)
    for start in range(0, len(x), _NEAREST_BLOCK):
        block = torch.cdist(x[start:start + _NEAREST_BLOCK], y, compute_mode="use_mm_for_euclid_dist")
        if exclude_self:
            rows = torch.arange(len(block))
            block[rows, rows + start] = torch.inf
        distance[start:start + len(block)], index[start:start + len(block)] = block.min(dim=1)
    return distance, index


def closest_pairs(fake: torch.Tensor, real: torch.Tensor, k: int) -> NearestPairs:
    """The `k` rows of `fake` (N, D) nearest to any row of `real` (M, D) (`nearest_rows`),
    their distances then computed exactly, as differences, so an exact copy shows 0."""
    distance, nearest = nearest_rows(fake, real)
    order = torch.argsort(distance, stable=True)[:k]
    exact = (fake[order].double() - real[nearest[order]].double()).norm(dim=1)
    resorted = torch.argsort(exact, stable=True)
    return NearestPairs(order[resorted].numpy(), nearest[order][resorted].numpy(), exact[resorted].numpy(),
                        float(distance.median()))


def _classes_picture(run: RunFolder) -> Picture:
    """A conditional run's class-by-seed grid: what each seed makes for each label."""
    from ganscope.imaging import png_bytes, tile

    classes = run.classes
    assert classes is not None
    n_seeds, n_classes, per_class = classes.shape[:3]
    rows = classes.transpose(1, 0, 2, *range(3, classes.ndim)).reshape(-1, *classes.shape[3:])
    fidelity = [s.get("label_fidelity") for s in run.summary["scores"]]
    shown = ", ".join(f"seed {seed} {100 * f:.0f}%" for seed, f in zip(run.seeds, fidelity, strict=True)
                      if f is not None)
    return Picture(
        "classes.png", "Samples per class",
        f"Row y: the samples each seed makes when asked for class y, {per_class} per seed, seeds "
        f"{', '.join(str(s) for s in run.seeds)} from left to right ({n_classes} classes). A row that shows other "
        f"classes means G ignores that label; a row of near-identical images, that it collapsed inside the class. "
        f"Label fidelity over all final samples: {shown}.",
        png_bytes(tile(rows, cols=n_seeds * per_class)),
    )


def _style_pictures(run: RunFolder) -> list[Picture]:
    """A style-based G's style-mixing grid and truncation sweep, a block per seed."""
    from ganscope.imaging import png_bytes, tile
    from ganscope.schemes.base import TRUNCATION_PSIS

    mixing, sweep = run.style_mixing, run.truncation_sweep
    assert mixing is not None and sweep is not None
    side = mixing.shape[1]
    seeds = ", ".join(str(s) for s in run.seeds)
    psis = ", ".join(f"{psi:g}" for psi in TRUNCATION_PSIS)
    return [
        Picture(
            "mixing.png", "Style mixing",
            f"One block per seed ({seeds}, top to bottom). Top row: {side - 1} samples B; left column: {side - 1} "
            "samples A; each cell takes the coarse half of its layers' styles from the B above it and the rest from "
            "the A beside it (Karras et al. 2019, Fig. 3). Cells that copy B's digit and A's stroke show the layers "
            "split the work; cells that all look alike show styles that do little.",
            png_bytes(tile(mixing.reshape(-1, *mixing.shape[3:]), cols=side)),
        ),
        Picture(
            "truncation.png", "Truncation",
            f"One block per seed ({seeds}): rows are truncation psi {psis}, columns the same {sweep.shape[2]} "
            "latents; psi 0 gives every latent the average style. Variety that vanishes already at mild psi "
            "means the samples sit close to the average style: a sign of collapse.",
            png_bytes(tile(sweep.reshape(-1, *sweep.shape[3:]), cols=sweep.shape[2])),
        ),
    ]


def _translations_picture(run: RunFolder) -> Picture:
    """A translator's rows per seed: real A images, their translations to B, and back."""
    from ganscope.imaging import png_bytes, tile

    rows = run.translations
    assert rows is not None
    per_row = rows.shape[2]
    preserved = run.summary.get("preserved_ab")
    shown = "" if preserved is None else " Label preservation A->B over all final translations: " + ", ".join(
        f"seed {seed} {100 * p:.0f}%" for seed, p in zip(run.seeds, preserved, strict=True)) + "."
    return Picture(
        "translations.png", "Translations",
        f"Three rows per seed (seeds {', '.join(str(s) for s in run.seeds)} from top to bottom): {per_row} real "
        f"images of domain A, their translations to B, and those translated back to A (the cycle). Translations "
        f"that all look alike are translation collapse; a last row unlike the first, a cycle that does not close."
        + shown,
        png_bytes(tile(rows.reshape(-1, *rows.shape[3:]), cols=per_row)),
    )


def _nearest_picture(run: RunFolder) -> Picture:
    """The memorisation check: each seed's generated images closest to a real one."""
    oracle = run.data.oracle
    reference = run.reference
    real_features = oracle.embed(torch.from_numpy(reference))
    typical = float(nearest_rows(real_features, real_features, exclude_self=True)[0].median())
    rows = []
    for i, seed in enumerate(run.seeds[:MAX_NEAREST_SEEDS]):
        fake = run.final[i, figures.evenly_indices(run.final.shape[1], NEAREST_SEARCHED)]
        pairs = closest_pairs(oracle.embed(torch.from_numpy(fake)), real_features, NEAREST_SHOWN)
        rows.append((f"seed {seed}: closest {pairs.distance[0]:.2f}, median {pairs.median:.2f}",
                     fake[pairs.fake], reference[pairs.real], pairs.distance))
    whole = isinstance(run.data, FiniteDataset) and len(reference) == len(run.data.points)
    searched_in = (f"all {len(reference):,} training images" if whole else
                   f"{len(reference):,} real images drawn without repeats (not every real image: a copy of "
                   "one outside them goes unseen)")
    searched = min(NEAREST_SEARCHED, run.final.shape[1])
    return Picture(
        "nearest.png", "Nearest real images (memorisation check)",
        f"For each seed{_of_seeds(run, MAX_NEAREST_SEEDS)}, the {NEAREST_SHOWN} of {searched:,} final samples "
        f"(spread evenly over them) closest to a real image, each above its nearest real image, the distance "
        f"beneath. Distance: Euclidean, in the oracle's feature space ({oracle.feature_space}, "
        f"{real_features.shape[1]} numbers per image), to the nearest of {searched_in}. Titles: the closest distance "
        f"and the median over all {searched:,} samples searched. A generator that copies training images shows "
        f"distances near 0; for scale, the median distance from one of these real images to its nearest other "
        f"one is {typical:.2f}.",
        figures.nearest_figure(rows),
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
             f"rule: {run.data.oracle.quality_rule}"),
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
        *(figure(pictures[n]) for n in ("samples.png", "classes.png", "mixing.png", "truncation.png", "translations.png", "evolution.png",
                                        "training.gif", "nearest.png") if n in pictures),
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
