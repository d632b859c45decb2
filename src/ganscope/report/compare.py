"""Several runs side by side: final scores, what differs in their configs, their samples
and their curves overlaid (mean over seeds, ± std shaded), one colour per run."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.colors import to_hex
import numpy as np
import yaml

from ganscope.report import figures
from ganscope.report.figures import Line, Mosaic, Panel, Plane
from ganscope.report.page import Picture, document, esc, figure, mean_std, table
from ganscope.report.runs import RunFolder, Series
from ganscope.report.single import seed_title
from ganscope.train.checkpoint import atomic_write_text

COMPARE = "compare.html"


def write_comparison(run_dirs: Sequence[Path], out: Path) -> Path:
    """Write the comparison page of `run_dirs` to `out`; returns `out`."""
    runs = [RunFolder.load(d) for d in run_dirs]
    names = run_names(runs)
    images = any(r.images for r in runs)
    samples = Picture(
        "samples.png", "Final samples, first seed of each run",
        "Generated images of each run, framed blue when the oracle counts them high quality, amber when not."
        if images else "Generated samples (orange) over each run's real density (blue), true modes marked.",
        figures.samples_figure([(Mosaic(r.data.oracle) if r.images else Plane.fit(r.real, r.data.oracle, [r.final[:1]]),
                                 r.final[0], f"{name}\n{seed_title(r.seeds[0], r.summary['scores'][0])}")
                                for r, name in zip(runs, names, strict=True)]),
    )
    curves = Picture(
        "curves.png", "Curves overlaid",
        "Mean over each run's seeds, ± one standard deviation shaded; colours as in the table.",
        figures.curves_figure(overlaid_panels(runs, names)),
    )
    atomic_write_text(Path(out), compare_page(runs, names, [samples, curves]))
    return Path(out)


def run_names(runs: Sequence[RunFolder]) -> list[str]:
    """Folder names, or the paths where two runs share a folder name."""
    counts = Counter(r.name for r in runs)
    return [r.name if counts[r.name] == 1 else str(r.path) for r in runs]


def _mean_line(label: str, series: Series, log: bool) -> Line:
    """The mean over seeds at each step with a ± std band; geometric (on the log of the
    values) for quantities drawn on a log scale, whose band must stay positive. Empty
    when the run lacks the quantity, so that every run keeps its colour."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for steps, values in series.values():
        for step, value in zip(steps, values, strict=True):
            if value > 0 or not log:
                by_step[step].append(value)
    steps = sorted(by_step)
    values = [np.log(by_step[s]) if log else np.asarray(by_step[s]) for s in steps]
    mean, std = np.array([v.mean() for v in values]), np.array([v.std() for v in values])
    low, high = mean - std, mean + std
    if log:
        mean, low, high = np.exp(mean), np.exp(low), np.exp(high)
    return Line(label, steps, mean.tolist(), (low.tolist(), high.tolist()))


def overlaid_panels(runs: Sequence[RunFolder], names: Sequence[str]) -> list[Panel]:
    """Every quantity any run logged, one line per run."""
    quantities = {(q.kind, q.key): q for r in runs for q in r.quantities()}
    return [
        Panel(q.title, [_mean_line(name, r.series(q.kind, q.key), q.log) for r, name in zip(runs, names, strict=True)],
              q.log)
        for q in quantities.values()
    ]


def _flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()}
    text = yaml.safe_dump(tree, default_flow_style=True, width=1_000)
    return {prefix.rstrip("."): text.strip().removesuffix("...").strip()}


def config_differences(runs: Sequence[RunFolder]) -> list[tuple[str, list[str]]]:
    """Dotted config keys whose values are not the same in every run."""
    flat = [_flatten(yaml.safe_load(r.config_text)) for r in runs]
    keys = dict.fromkeys(k for f in flat for k in f)
    return [(k, [f.get(k, "–") for f in flat]) for k in keys if len({f.get(k) for f in flat}) > 1]


def _swatch(i: int) -> str:
    palette = plt.get_cmap(figures.LINE_COLOURS)
    colour = to_hex(palette(i % palette.N))
    return f'<span class="swatch" style="background:{colour}"></span>'


def _differences_section(runs: Sequence[RunFolder], names: Sequence[str]) -> str:
    differences = config_differences(runs)
    if not differences:
        return "<p class=lead>The runs share one configuration.</p>"
    rows = [[f"<code>{esc(k)}</code>", *(f"<code>{esc(v)}</code>" for v in values)] for k, values in differences]
    return ("<p class=lead>Config keys whose values differ; – marks a key absent from that run's config "
            "(its default applies, or the chosen piece has no such parameter).</p>"
            + table(["config key", *(esc(n) for n in names)], rows))


def compare_page(runs: Sequence[RunFolder], names: Sequence[str], pictures: Sequence[Picture]) -> str:
    rows = []
    for i, (r, name) in enumerate(zip(runs, names, strict=True)):
        s = r.summary
        episodes = r.episodes
        ongoing = sum(e.ended is None for e in episodes)
        rows.append([
            _swatch(i) + esc(name), esc(r.cfg.data.name), esc(r.cfg.objective.name), esc(r.cfg.scheme.name),
            f"{s['step']:,}", str(len(r.seeds)),
            f"{mean_std(s['modes_covered_mean'], s['modes_covered_std'])} / {s['scores'][0]['n_modes']}",
            mean_std(s["hq_fraction_mean"], s["hq_fraction_std"], 100, unit=" %"),
            mean_std(s["reverse_kl_mean"], s["reverse_kl_std"], digits=3),
            f'{len(episodes)} <span class="muted">({ongoing} ongoing)</span>',
        ])
    scores = table(["run", "data", "objective", "scheme", "steps", "seeds", "modes covered", "high quality",
                    "reverse KL", "events"], rows, numeric=(4, 5, 6, 7, 8, 9))
    verdicts = "".join(f"<li>{_swatch(i)}<strong>{esc(n)}</strong>: {esc(r.summary['verdict'])}</li>"
                       for i, (r, n) in enumerate(zip(runs, names, strict=True)))
    body = "\n".join([
        '<h2 id="scores">Final scores</h2>',
        "<p class=lead>Mean ± std over each run's seeds, on the VEEGAN / PacGAN protocol.</p>", scores,
        '<h2 id="differences">What differs</h2>', _differences_section(runs, names),
        '<h2 id="samples">Samples</h2>', figure(pictures[0]),
        '<h2 id="curves">Curves</h2>', figure(pictures[1]),
        '<h2 id="verdicts">Verdicts</h2>', f"<ul>{verdicts}</ul>",
    ])
    nav = [("scores", "Scores"), ("differences", "What differs"), ("samples", "Samples"), ("curves", "Curves"),
           ("verdicts", "Verdicts")]
    return document(f"{len(runs)} runs compared", "ganscope comparison", " · ".join(names), nav, body)
