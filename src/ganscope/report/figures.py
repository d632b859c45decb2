"""The report's pictures, each returned as PNG (or GIF) bytes so a page can inline them.

What the source material looks at to tell collapse from dropping (docs/FAILURE_MODES.md):
samples over the real density with the true modes marked, how they move from one
evaluation to the next, a t-SNE map of real and generated samples side by side, the
histogram of samples per mode against the true weights (for 1000 modes, the modes ranked
by their counts), and the loss dynamics with the monitor's events on them; for images
also each generated image beside its nearest real one, the memorisation check.

Samples are drawn through a view: a `Plane` shows points (2-D data as they are, more
dimensions by principal components), a `Mosaic` shows images as grids of pictures; every
sample figure takes either, so points and images share the layout, the event frames and
the animation.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, ParamSpec, Protocol, TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Colormap, ListedColormap, PowerNorm  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
import torch  # noqa: E402

from ganscope.data import ModeOracle  # noqa: E402

DPI = 100
FAKE = "#e8590c"
MODE = "#c92a2a"
MAX_PANELS = 8
"""Seeds shown with a panel each; a population is summarised by its first seeds."""
MAX_EVOLUTION_SEEDS = 4
MAX_EVOLUTION_COLUMNS = 8
"""Evaluations in the evolution strip, spread evenly over training."""
MAX_EVOLUTION_COLUMNS_WITH_EVENTS = 16
"""How far evaluations where events started may widen the strip."""
MAX_GIF_FRAMES = 60
TSNE_POINTS = 600
"""Real points and generated points (all shown seeds together) in the t-SNE map; t-SNE
costs about a second per 600 points on one core."""
MAX_TSNE_SEEDS = 3
MAX_BAR_MODES = 50
"""Modes up to which the histogram draws a bar per mode; beyond (Stacked MNIST's 1000
digit triples) it draws the modes ranked by their counts."""

Scale = Literal["panel", "cell", "frame"]
"""Where a view draws samples: a final-samples panel, an evolution cell, an animation frame."""
POINT_SIZES: dict[Scale, float] = {"panel": 3, "cell": 1.5, "frame": 2.5}
GRID_SIDES: dict[Scale, int] = {"panel": 8, "cell": 4, "frame": 6}
"""Images per row and column of a `Mosaic` grid."""
QUALITY_FRAMES = (np.array([0.11, 0.49, 0.84]), np.array([0.94, 0.55, 0.0]))
"""Frame colours of high-quality images (blue) and the others (amber)."""

P = ParamSpec("P")
R = TypeVar("R")

STYLE = {
    "font.size": 9, "axes.titlesize": 9, "axes.spines.top": False, "axes.spines.right": False,
    "axes.edgecolor": "#868e96", "legend.frameon": False,
}
"""The report's look, applied per figure so that importing ganscope leaves the user's
matplotlib settings alone."""


def styled(draw: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with plt.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return buffer.getvalue()


def _grid(n: int, cols: int, size: tuple[float, float]) -> tuple[plt.Figure, np.ndarray]:
    """`n` panels in rows of `cols`, spare axes hidden."""
    cols = min(n, cols)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat[:n]


def evenly_indices(n: int, k: int) -> np.ndarray:
    """At most `k` of the indices 0..n-1 spread evenly, always keeping the first and the last."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


def _evenly(items: Sequence, k: int) -> list:
    """At most `k` items spread evenly, always keeping the first and the last."""
    return [items[i] for i in evenly_indices(len(items), k)]


LINE_COLOURS = "tab10"
"""Curves' colours, one per seed or per run, in order (pages match them with swatches)."""
EVENT_COLOURS = ("#7048e8", "#0c8599", "#a61e4d", "#5c940d", "#862e9c", "#495057")
"""Event kinds' colours, apart from the first seeds' (tab10: blue, orange, green, red)."""
GENERATOR_COLOURS = ("#e8590c", "#7048e8", "#2f9e44", "#d6336c", "#0c8599", "#f59f00", "#862e9c", "#5c940d")
"""Colours of a multi-generator scheme's generators, none of them the real density's
blue or the true modes' red; a cyclic map beyond."""


def event_colours(kinds: Iterable[str]) -> dict[str, str]:
    """A colour per event kind, by sorted name, so every picture of a run agrees."""
    return {k: EVENT_COLOURS[i % len(EVENT_COLOURS)] for i, k in enumerate(sorted(set(kinds)))}


def mode_colours(n_modes: int) -> Colormap:
    """Distinct colours for up to 20 modes (no grey, which means "not covered"), a
    cyclic map beyond."""
    if n_modes <= 9:
        return ListedColormap([c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7][:n_modes])
    if n_modes <= 20:
        return ListedColormap(plt.get_cmap("tab20").colors[:n_modes])
    return plt.get_cmap("hsv", n_modes + 1)


# ---- samples in the plane ---------------------------------------------------------------


@dataclass(frozen=True)
class Generators:
    """Which of a scheme's `count` generators made each sample (MAD-GAN's k generators),
    so that each generator's share of the modes shows in its own colour."""

    of_sample: np.ndarray  # (n,) generator index of each sample
    count: int

    def palette(self) -> Colormap:
        if self.count <= len(GENERATOR_COLOURS):
            return ListedColormap(GENERATOR_COLOURS[: self.count])
        return plt.get_cmap("hsv", self.count + 1)

    def colours(self) -> np.ndarray:
        """(n, 4) RGBA colour of each sample."""
        return self.palette()(self.of_sample)

    def legend(self) -> list[plt.Line2D]:
        """"G1" .. "Gk", numbered from one as in the paper."""
        palette = self.palette()
        return [plt.Line2D([], [], ls="", marker="o", ms=4, c=palette(i), label=f"G{i + 1}") for i in range(self.count)]


@dataclass
class Plane:
    """The 2-D view shared by every sample picture of a run: the data's own plane, or
    the real data's first two principal components, with fixed limits so that pictures
    of different seeds and evaluations compare at a glance."""

    real: np.ndarray  # (N, 2) projected real points
    centres: np.ndarray | None  # (K, 2) projected mode centres
    radii: np.ndarray | None  # (K,) high-quality radius of each mode, 2-D data only
    lo: np.ndarray
    hi: np.ndarray
    axis_names: tuple[str, str]
    pca: PCA | None = None
    density: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.density = self._density()

    @classmethod
    def fit(cls, real: np.ndarray, oracle: ModeOracle, generated: Sequence[np.ndarray]) -> Plane:
        """`generated` widens the limits (up to 3 times the real data's extent) so that
        samples far from the data stay in the picture."""
        flat = real.reshape(len(real), -1)
        dim = flat.shape[1]
        pca = PCA(2, random_state=0).fit(flat) if dim > 2 else None
        centres = getattr(oracle, "centres", None)  # oracles of known centres (mixtures, clustered files)
        centres_2d = None if centres is None else _to_plane(np.asarray(centres, dtype=np.float64), pca)
        stds, threshold = getattr(oracle, "stds", None), getattr(oracle, "hq_threshold", None)
        radii = None if pca is not None or stds is None or threshold is None else np.asarray(stds) * threshold
        real_2d = _to_plane(flat, pca)
        lo, hi = real_2d.min(axis=0), real_2d.max(axis=0)
        centre, half = (lo + hi) / 2, 0.6 * (hi - lo).max() + 1e-6
        if generated:
            fake_2d = np.concatenate([_to_plane(g.reshape(-1, dim), pca) for g in generated])
            f_lo, f_hi = np.percentile(fake_2d, [2, 98], axis=0)
            half = min(3 * half, max(half, 1.05 * np.abs(np.stack([f_lo, f_hi]) - centre).max()))
        names = ("PC 1", "PC 2") if pca is not None else ("x1", "x2") if dim == 2 else ("x", "")
        return cls(real_2d, centres_2d, radii, centre - half, centre + half, names, pca)

    def project(self, samples: np.ndarray) -> np.ndarray:
        return _to_plane(samples.reshape(len(samples), -1), self.pca)

    def _density(self, bins: int = 180) -> np.ndarray:
        """A smoothed histogram of the real data: the background of every panel."""
        counts, _, _ = np.histogram2d(
            self.real[:, 0], self.real[:, 1], bins=bins, range=[[self.lo[0], self.hi[0]], [self.lo[1], self.hi[1]]]
        )
        smooth = gaussian_filter(counts.T, sigma=1.2)
        return smooth / max(smooth.max(), 1e-12)

    def draw(
        self, ax: plt.Axes, fake: np.ndarray, title: str, scale: Scale = "panel", generators: Generators | None = None
    ) -> plt.Artist:
        """Real density, true modes (with their high-quality radius in 2-D) and the
        generated points, coloured by generator when `generators` says which made each;
        returns the points' artist so an animation can move them."""
        ax.imshow(self.density, origin="lower", extent=(self.lo[0], self.hi[0], self.lo[1], self.hi[1]),
                  cmap="Blues", norm=PowerNorm(0.4, vmin=0, vmax=1), interpolation="bilinear", aspect="equal")
        colour = FAKE if generators is None else generators.colours()
        points = ax.scatter(*self.project(fake).T, s=POINT_SIZES[scale], c=colour, alpha=0.55, linewidths=0,
                            rasterized=True)
        if self.centres is not None:
            ax.scatter(*self.centres.T, marker="+", s=40, c=MODE, linewidths=1.2, zorder=3)
        if self.radii is not None:
            for (x, y), r in zip(self.centres, self.radii, strict=True):
                ax.add_patch(plt.Circle((x, y), r, fill=False, ec=MODE, lw=0.6, alpha=0.7))
        ax.set_xlim(self.lo[0], self.hi[0])
        ax.set_ylim(self.lo[1], self.hi[1])
        ax.set_title(title)
        ax.tick_params(labelsize=7, length=2)
        if scale == "panel":
            ax.set_xlabel(self.axis_names[0], fontsize=8)
            ax.set_ylabel(self.axis_names[1], fontsize=8)
        return points

    def update(self, artist: plt.Artist, fake: np.ndarray, scale: Scale) -> None:
        """Move the points `draw` returned to `fake` (their size and colours stay)."""
        artist.set_offsets(self.project(fake))

    def legend(self, fig: plt.Figure, generators: Generators | None = None) -> None:
        handles = [
            plt.Rectangle((0, 0), 1, 1, fc=plt.get_cmap("Blues")(0.6), label="real density"),
            *([plt.Line2D([], [], ls="", marker="o", ms=4, c=FAKE, label="generated")] if generators is None
              else generators.legend()),
        ]
        if self.centres is not None:
            label = "true mode (circle: high-quality radius)" if self.radii is not None else "true mode"
            handles.append(plt.Line2D([], [], ls="", marker="+", ms=7, c=MODE, label=label))
        _top_legend(fig, handles)


def _to_plane(flat: np.ndarray, pca: PCA | None) -> np.ndarray:
    """Points in the picture's plane: principal components, the data's own two
    coordinates, or one coordinate on a line."""
    if pca is not None:
        return pca.transform(flat)
    return flat if flat.shape[1] == 2 else np.column_stack([flat[:, 0], np.zeros(len(flat))])


def _bare(ax: plt.Axes) -> plt.Axes:
    """No ticks: small multiples share the limits of the full-size picture."""
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _top_legend(fig: plt.Figure, handles: Sequence[plt.Artist]) -> None:
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), bbox_to_anchor=(0.5, 1.0), fontsize=8)


# ---- images -----------------------------------------------------------------------------


def to_rgb(images: np.ndarray) -> np.ndarray:
    """Images (n, C, H, W) with pixels in [-1, 1] (a tanh generator's range; beyond it
    clipped) as RGB (n, H, W', 3) in [0, 1]: three channels as red, green and blue (Stacked
    MNIST's three digits), any other count as grey pictures of the channels side by side
    (W' = C * W)."""
    unit = (np.clip(images, -1, 1) + 1) / 2
    n, channels, height, width = unit.shape
    if channels == 3:
        return unit.transpose(0, 2, 3, 1)
    grey = unit.transpose(0, 2, 1, 3).reshape(n, height, channels * width)
    return np.repeat(grey[..., None], 3, axis=-1)


def image_grid(images: np.ndarray, cols: int, frames: np.ndarray | None = None, border: int = 1) -> np.ndarray:
    """Images (n, C, H, W) in [-1, 1] tiled row by row, `cols` to a row, into one RGB
    picture in [0, 1] of shape (rows * (H + 2 border), cols * (W' + 2 border), 3) (W' as
    in `to_rgb`). Each image sits inside a frame `border` pixels wide in its RGB colour
    `frames[i]` (white when None); cells past the last image stay white."""
    tiles = to_rgb(images)
    n, height, width, _ = tiles.shape
    rows = max(1, -(-n // cols))
    cell_h, cell_w = height + 2 * border, width + 2 * border
    grid = np.ones((rows * cell_h, cols * cell_w, 3))
    for i, tile in enumerate(tiles):
        top, left = (i // cols) * cell_h, (i % cols) * cell_w
        if frames is not None:
            grid[top:top + cell_h, left:left + cell_w] = frames[i]
        grid[top + border:top + border + height, left + border:left + border + width] = tile
    return grid


@dataclass(frozen=True)
class Mosaic:
    """The view of image samples: each panel a grid of images spread evenly over those
    given (8 x 8 in a final-samples panel, 4 x 4 in an evolution cell, 6 x 6 in an
    animation frame), each framed in blue when the oracle counts it high quality and in
    amber when not, so a panel shows both what the samples look like and how many of
    them the mode count accepts. Which generator made an image is not marked: the frame
    colour is the quality."""

    oracle: ModeOracle

    def tiles(self, images: np.ndarray, scale: Scale) -> np.ndarray:
        side = GRID_SIDES[scale]
        shown = images[evenly_indices(len(images), side * side)]
        high_quality = self.oracle.assign(torch.from_numpy(np.ascontiguousarray(shown))).high_quality.numpy()
        frames = np.where(high_quality[:, None], QUALITY_FRAMES[0], QUALITY_FRAMES[1])
        return image_grid(shown, side, frames)

    def draw(
        self, ax: plt.Axes, images: np.ndarray, title: str, scale: Scale = "panel",
        generators: Generators | None = None,
    ) -> plt.Artist:
        """The grid of `images`, returned as the artist an animation updates."""
        artist = ax.imshow(self.tiles(images, scale), interpolation="antialiased", vmin=0, vmax=1)
        _bare(ax).set_title(title)
        return artist

    def update(self, artist: plt.Artist, images: np.ndarray, scale: Scale) -> None:
        artist.set_data(self.tiles(images, scale))

    def legend(self, fig: plt.Figure, generators: Generators | None = None) -> None:
        rule = self.oracle.quality_rule
        _top_legend(fig, [plt.Rectangle((0, 0), 1, 1, fc=QUALITY_FRAMES[0], label=f"frame: high quality ({rule})"),
                          plt.Rectangle((0, 0), 1, 1, fc=QUALITY_FRAMES[1], label="frame: not high quality")])


class View(Protocol):
    """How sample figures draw samples: `Plane` (points) or `Mosaic` (images)."""

    def draw(self, ax: plt.Axes, samples: np.ndarray, title: str, scale: Scale = "panel",
             generators: Generators | None = None) -> plt.Artist: ...

    def update(self, artist: plt.Artist, samples: np.ndarray, scale: Scale) -> None:
        """Show `samples` in place of those `draw` drew (one animation frame)."""

    def legend(self, fig: plt.Figure, generators: Generators | None = None) -> None: ...


@styled
def samples_figure(panels: Sequence[tuple[View, np.ndarray, str]], generators: Generators | None = None) -> bytes:
    """One panel per (view, samples, title): the final samples of each seed, or of each
    run; `generators` (one layout for every panel) colours points by generator."""
    fig, axes = _grid(len(panels), 4, (3.3, 3.3))
    for ax, (view, fake, title) in zip(axes, panels, strict=True):
        view.draw(ax, fake, title, "panel", generators)
    panels[0][0].legend(fig, generators)
    fig.tight_layout()
    return _png(fig)


def strip_steps(
    steps: Sequence[int],
    marked: Iterable[int],
    columns: int = MAX_EVOLUTION_COLUMNS,
    widest: int = MAX_EVOLUTION_COLUMNS_WITH_EVENTS,
) -> list[int]:
    """The evaluations the evolution strip shows, ascending: every `marked` one (where an
    event started: even spacing alone would skip the very picture of it) and others spread
    evenly, in `columns` panels; marked steps widen the strip up to `widest` panels
    (keeping room for two others, the run's start and end), and beyond that are
    themselves spread evenly."""
    wanted = set(marked)
    kept = _evenly([s for s in steps if s in wanted], widest)
    panels = min(len(steps), max(columns, min(widest, len(kept) + 2)))
    others = [s for s in steps if s not in set(kept)]
    return sorted({*kept, *_evenly(others, panels - len(kept))})


def event_cells(markers: Iterable[Marker], steps: Sequence[int]) -> dict[tuple[int, int], list[str]]:
    """The event kinds that started at each (evaluation step, seed): where the monitor
    raised each event and, when it is an evaluation, the first step of its evidence."""
    evaluations = set(steps)
    cells: dict[tuple[int, int], list[str]] = {}
    for m in markers:
        for step in {m.raised, m.start} & evaluations:
            if m.kind not in (kinds := cells.setdefault((step, m.seed), [])):
                kinds.append(m.kind)
    return cells


def _mark_cell(ax: plt.Axes, kinds: Sequence[str], colours: Mapping[str, str]) -> None:
    """Frame a panel in its first event's colour and name every event that started there."""
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(colours[kinds[0]])
        spine.set_linewidth(2.2)
    for i, kind in enumerate(kinds):
        ax.text(0.04, 0.96 - 0.14 * i, kind, transform=ax.transAxes, va="top", ha="left", fontsize=7, color="white",
                bbox={"boxstyle": "round,pad=0.2", "fc": colours[kind], "ec": "none"})


@styled
def evolution_figure(
    view: View,
    frames: Sequence[tuple[int, np.ndarray]],
    seeds: Sequence[int],
    events: Mapping[tuple[int, int], Sequence[str]],
    colours: Mapping[str, str],
    generators: Generators | None = None,
) -> bytes:
    """Rows of seeds, columns of the given evaluations: where each seed's samples were
    when. `events` names the kinds that started at (step, seed), drawn as a frame and a
    label in the kind's colour (`colours`, as in the curves)."""
    rows = min(len(seeds), MAX_EVOLUTION_SEEDS)
    fig, axes = plt.subplots(rows, len(frames), figsize=(1.9 * len(frames), 1.9 * rows + 0.3), squeeze=False)
    for col, (step, samples) in enumerate(frames):
        for row in range(rows):
            ax = axes[row, col]
            view.draw(_bare(ax), samples[row], f"step {step}" if row == 0 else "", "cell", generators)
            if (step, seeds[row]) in events:
                _mark_cell(ax, events[step, seeds[row]], colours)
            if col == 0:
                ax.set_ylabel(f"seed {seeds[row]}")
    view.legend(fig, generators)
    fig.tight_layout(pad=0.4)
    return _png(fig)


@styled
def animation_gif(
    view: View, frames: Sequence[tuple[int, np.ndarray]], seeds: Sequence[int], generators: Generators | None = None
) -> bytes:
    """The evaluations as an animated GIF, one panel per seed. The still parts are drawn
    once and each frame only blits the moving part (the points, or the image grids) onto
    them (a few ms a frame)."""
    shown = _evenly(frames, MAX_GIF_FRAMES)
    n = min(len(seeds), MAX_EVOLUTION_SEEDS)
    fig, axes = plt.subplots(1, n, figsize=(2.8 * n, 3.1), squeeze=False, dpi=80)
    points = [view.draw(_bare(ax), shown[0][1][i], f"seed {seeds[i]}", "frame", generators)
              for i, ax in enumerate(axes.flat)]
    heading = fig.suptitle(" ")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    for artist in (*points, heading):
        artist.set_visible(False)
    fig.canvas.draw()
    still = fig.canvas.copy_from_bbox(fig.bbox)
    images = []
    for step, samples in shown:
        fig.canvas.restore_region(still)
        for ax, artist, xy in zip(axes.flat, points, samples, strict=False):
            view.update(artist, xy, "frame")
            artist.set_visible(True)
            ax.draw_artist(artist)
        heading.set_text(f"step {step}")
        heading.set_visible(True)
        fig.draw_artist(heading)
        rgb = Image.frombuffer("RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba()).convert("RGB")
        images.append(rgb.quantize(colors=128, method=Image.Quantize.MEDIANCUT))
    plt.close(fig)
    buffer = io.BytesIO()
    durations = [450] * (len(images) - 1) + [2000]  # rest on the final state before looping
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    return buffer.getvalue()


# ---- modes ------------------------------------------------------------------------------


@styled
def mode_histogram_figure(counts: Sequence[Sequence[int]], weights: np.ndarray, titles: Sequence[str]) -> bytes:
    """Each seed's share of high-quality samples per mode against the true weights: a
    collapsed seed is one tall bar, a dropping seed has empty modes among even bars."""
    n = min(len(counts), MAX_PANELS)
    fig, axes = _grid(n, 4, (3.3, 2.3))
    k = len(weights)
    colours = mode_colours(k)(np.arange(k))
    top = max(weights.max(), *(np.max(c) / max(np.sum(c), 1) for c in counts[:n])) * 1.1
    for ax, c, title in zip(axes, counts, titles, strict=False):
        share = np.asarray(c, dtype=float) / max(np.sum(c), 1)
        ax.bar(np.arange(k), share, color=colours, width=0.8)
        ax.step(np.arange(k + 1) - 0.5, np.append(weights, weights[-1]), where="post", c="#212529", lw=1.2)
        missing = np.flatnonzero(share == 0)
        ax.scatter(missing, np.zeros_like(missing), marker="x", c="#868e96", s=14, zorder=3)
        ax.set_ylim(0, top)
        ax.set_xticks(np.arange(k) if k <= 12 else np.arange(0, k, max(1, k // 8)))
        ax.set_title(title)
        ax.set_xlabel("mode")
    axes[0].set_ylabel("share of HQ samples")
    fig.legend(handles=[plt.Line2D([], [], c="#212529", label="true weight"),
                        plt.Line2D([], [], ls="", marker="x", c="#868e96", label="mode not covered")],
               loc="lower center", ncol=2, bbox_to_anchor=(0.5, 1.0), fontsize=8)
    fig.tight_layout()
    return _png(fig)


@styled
def mode_rank_figure(counts: Sequence[tuple[Sequence[int], Sequence[int]]], weights: np.ndarray,
                     titles: Sequence[str]) -> bytes:
    """For more modes than bars can show (Stacked MNIST's 1000 digit triples): each seed's
    modes ranked by how many samples they got, most first, for every sample (by its nearest
    mode) and for the high-quality ones, against the counts the true weights expect,
    ranked alike (for uniform weights a flat line at n / K). `counts` holds per seed
    (every sample's counts, high-quality counts), each of K modes.

    A generator matching the data follows the dashed line; where a curve meets zero is
    the number of modes that got a sample; a collapsed seed is a spike on the left. Ranks
    are on a log scale (the few modes of a collapsed seed stay visible beside the 1000);
    the y axis is linear up to 1 and logarithmic beyond, so empty modes show as zero.
    """
    n = min(len(counts), MAX_PANELS)
    fig, axes = _grid(n, 4, (3.3, 2.5))
    k = len(weights)
    ranks = np.arange(1, k + 1)
    expected_share = np.sort(weights)[::-1]
    for ax, (every, high_quality), title in zip(axes, counts, titles, strict=False):
        ax.plot(ranks, expected_share * np.sum(every), c="#212529", ls="--", lw=1)
        ax.step(ranks, np.sort(every)[::-1], where="mid", c=FAKE, lw=1.1)
        ax.step(ranks, np.sort(high_quality)[::-1], where="mid", c=QUALITY_FRAMES[0], lw=1.1)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(bottom=0)
        ax.set_xlim(1, k)
        ax.set_title(title)
        ax.set_xlabel("mode rank (most samples first)")
        ax.grid(alpha=0.25)
    axes[0].set_ylabel("samples")
    _top_legend(fig, [plt.Line2D([], [], c=FAKE, label="all samples (nearest mode)"),
                      plt.Line2D([], [], c=QUALITY_FRAMES[0], label="high-quality samples"),
                      plt.Line2D([], [], c="#212529", ls="--", label="expected under the true weights")])
    fig.tight_layout()
    return _png(fig)


@styled
def tsne_figure(
    real: np.ndarray,
    real_modes: np.ndarray,
    fakes: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    n_modes: int,
) -> bytes:
    """One t-SNE map of real and generated samples together, drawn side by side.

    `fakes` holds (title, samples, nearest mode, high-quality flag) per seed; samples are
    any vectors (points, or an image oracle's classifier features). A joint embedding puts
    every panel in the same coordinates, so a cluster present in the real panel and absent
    from a seed's is a dropped mode; points are coloured by their nearest true mode (grey:
    low quality) and each mode's cluster is labelled. `real_modes` and the fakes' modes
    may be groups of modes instead (`n_modes` of them), when there are too many to colour.
    """
    flat = [real.reshape(len(real), -1)] + [f[1].reshape(len(f[1]), -1) for f in fakes]
    joint = np.concatenate(flat)
    perplexity = min(30.0, (len(joint) - 1) / 3)
    embedded = TSNE(2, perplexity=perplexity, init="pca", max_iter=400, random_state=0, n_jobs=1).fit_transform(joint)
    parts = np.split(embedded, np.cumsum([len(f) for f in flat])[:-1])
    colours = mode_colours(n_modes)
    fig, axes = plt.subplots(1, len(parts), figsize=(3.4 * len(parts), 3.6), sharex=True, sharey=True, squeeze=False)
    panels = [("real data", real_modes, np.ones(len(real_modes), bool))] + [(t, m, hq) for t, _, m, hq in fakes]
    labels = [(k, np.median(parts[0][real_modes == k], axis=0)) for k in range(n_modes) if np.any(real_modes == k)]
    for ax, xy, (title, modes, hq) in zip(axes.flat, parts, panels, strict=True):
        ax.scatter(*xy[~hq].T, s=4, c="#ced4da", linewidths=0, rasterized=True)
        ax.scatter(*xy[hq].T, s=5, c=colours(modes[hq] % colours.N), linewidths=0, rasterized=True)
        for k, (x, y) in labels:
            ax.text(x, y, str(k), fontsize=7, ha="center", va="center",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "#adb5bd", "alpha": 0.85})
        _bare(ax).set_title(title)
    fig.tight_layout()
    return _png(fig)


# ---- memorisation ----------------------------------------------------------------------


@styled
def nearest_figure(rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    """One panel per (title, generated images (k, C, H, W), their nearest real images,
    distances (k,)): the generated images in the top row, each one's nearest real image
    below it, the distance beneath."""
    k = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.75 * k + 0.9, 1.95 * len(rows)), squeeze=False)
    for ax, (title, fakes, reals, distances) in zip(axes.flat, rows, strict=True):
        grid = image_grid(np.concatenate([fakes, reals]), len(fakes))
        ax.imshow(grid, interpolation="antialiased", vmin=0, vmax=1)
        cell_w, cell_h = grid.shape[1] / len(fakes), grid.shape[0] / 2
        for j, distance in enumerate(distances):
            ax.text((j + 0.5) * cell_w, 2 * cell_h, f"{distance:.2f}", ha="center", va="top", fontsize=8)
        _bare(ax).set_title(title, loc="left", fontsize=8.5)
        ax.set_yticks([cell_h / 2, 1.5 * cell_h], ["generated", "nearest real"], fontsize=7.5)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.tight_layout(h_pad=0.8)
    return _png(fig)


# ---- curves -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    label: str
    steps: Sequence[float]
    values: Sequence[float]
    band: tuple[Sequence[float], Sequence[float]] | None = None  # low and high edge (the spread over seeds)


@dataclass(frozen=True)
class Panel:
    title: str
    lines: list[Line]
    log: bool = False


@dataclass(frozen=True)
class Marker:
    """A monitor event on the time axis: from the step its evidence started to the step
    it ended (or the end of training); `raised` is the step the monitor decided."""

    kind: str
    seed: int
    start: int
    end: int | None
    raised: int


@styled
def curves_figure(panels: Sequence[Panel], markers: Sequence[Marker] = ()) -> bytes:
    """Panels of curves sharing the step axis; events as shaded spans with a dashed
    line where each started, coloured by kind, so the numbers that raised them show."""
    fig, axes = _grid(len(panels), 4, (3.4, 2.5))
    palette = plt.get_cmap(LINE_COLOURS)
    kind_colour = event_colours(m.kind for m in markers)
    kinds = list(kind_colour)
    last = max((max(line.steps) for p in panels for line in p.lines if len(line.steps)), default=1)
    for ax, panel in zip(axes, panels, strict=True):
        for i, line in enumerate(panel.lines):
            colour = palette(i % palette.N)
            ax.plot(line.steps, line.values, lw=1.1, c=colour, label=line.label,
                    marker="o" if len(line.steps) <= 30 else None, ms=2.5)
            if line.band is not None:
                ax.fill_between(line.steps, *line.band, color=colour, alpha=0.15, lw=0)
        for m in markers:
            ax.axvspan(m.start, m.end if m.end is not None else last, color=kind_colour[m.kind], alpha=0.04, lw=0)
            ax.axvline(m.start, color=kind_colour[m.kind], ls="--", lw=0.9)
        if panel.log:
            ax.set_yscale("log")
        ax.set_title(panel.title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.25)
    fullest = max(range(len(panels)), key=lambda i: len(panels[i].lines))  # a run may lack a quantity
    handles, labels = axes[fullest].get_legend_handles_labels()
    handles += [plt.Line2D([], [], c=kind_colour[k], ls="--", label=f"event: {k}") for k in kinds]
    labels += [f"event: {k}" for k in kinds]
    if len(handles) <= 16:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(handles), 8), bbox_to_anchor=(0.5, 1.0),
                   fontsize=8)
    fig.tight_layout()
    return _png(fig)
