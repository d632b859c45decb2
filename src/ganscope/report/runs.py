"""A finished run folder, read once for the report: config, summary, metrics, samples.

The report works from the files alone (no checkpoint, no networks), so it can be written
for any finished run, by any later version, without training code.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ganscope.config import Config, load_config, piece_params
from ganscope.data import Dataset, dataset_from_config
from ganscope.errors import GanscopeError
from ganscope.schemes import SCHEMES
from ganscope.schemes.base import CLASS_SAMPLES, MIXING_FILE, TRUNCATION_FILE
from ganscope.schemes.cyclegan import TRANSLATIONS
from ganscope.seeding import make_generator
from ganscope.train.checkpoint import atomic_write
from ganscope.train.log import MetricsLog
from ganscope.train.snapshots import load_snapshot, snapshot_steps

REAL_POINTS = 20_000
"""Real samples behind the density picture: enough for a smooth 2-D histogram."""
REAL_VALUES = 1 << 22
"""...and at most this many numbers (16 MB): 20,000 samples of up to 209 numbers, 5,349
MNIST images, 1,783 Stacked MNIST images, more than the t-SNE map and the grids show."""
REFERENCE_SAMPLES = 5_000
"""Real samples the memorisation check searches (`Dataset.reference`): every training
image of the digits (1,442) and MNIST (4,000) sets; of stacked sets, this many distinct
digit triples."""

Series = dict[int, tuple[list[int], list[float]]]
"""Per seed: steps and values of one logged quantity."""

EVAL_QUANTITIES = {
    "modes_covered": "modes covered",
    "hq_fraction": "high-quality share",
    "reverse_kl": "reverse KL",
    "duplicate_fraction": "near-duplicate share",
    "spread_ratio": "within-mode spread / real",
}


@dataclass(frozen=True)
class Quantity:
    """One curve of the report: a key of the `train` or `eval` records."""

    kind: str
    key: str
    title: str
    log: bool


@dataclass(frozen=True)
class Episode:
    """One monitor event from its `started` record to its `ended` record (None: it still
    held at the end of the run)."""

    started: dict[str, Any]
    ended: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        return self.started["event"]

    @property
    def seed(self) -> int:
        return self.started["seed"]

    @property
    def end(self) -> int | None:
        """The first step without the condition: the evaluation its `ended` record names
        (`absent_from`), or, in logs that predate it, the step the monitor decided."""
        if self.ended is None:
            return None
        return int((self.ended.get("evidence") or {}).get("absent_from", self.ended["step"]))


@dataclass
class RunFolder:
    """Everything the report reads from one run folder."""

    path: Path
    cfg: Config
    config_text: str
    summary: dict[str, Any]
    records: list[dict[str, Any]]

    @classmethod
    def load(cls, run_dir: Path) -> RunFolder:
        run_dir = Path(run_dir)
        if not (run_dir / "summary.json").is_file():
            raise GanscopeError(f"{run_dir} has no summary.json; finish or resume the run first")
        config_text = (run_dir / "config.yaml").read_text()
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
        except json.JSONDecodeError as err:
            raise GanscopeError(
                f"{run_dir / 'summary.json'} is damaged ({err.msg} at line {err.lineno}); "
                f"rewrite it with `ganscope resume {run_dir}`"
            ) from None
        return cls(
            path=run_dir,
            cfg=load_config(yaml.safe_load(config_text)),
            config_text=config_text,
            summary=summary,
            records=MetricsLog(run_dir / "metrics.jsonl").read(),
        )

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def seeds(self) -> list[int]:
        return self.summary["seeds"]

    @cached_property
    def data(self) -> Dataset:
        return dataset_from_config(self.cfg)

    @property
    def sample_size(self) -> int:
        """Numbers in one sample: 2 for planar points, C * H * W for images."""
        return math.prod(self.data.sample_shape)

    @property
    def images(self) -> bool:
        """Whether the samples are images (C, H, W), drawn as pictures, not as points."""
        return len(self.data.sample_shape) == 3

    @cached_property
    def real(self) -> np.ndarray:
        """Real samples from the run's own `report` stream, so pictures are reproducible."""
        n = min(REAL_POINTS, REAL_VALUES // self.sample_size)
        return self.data.sample(n, make_generator(self.cfg.seed, "report")).numpy()

    @cached_property
    def reference(self) -> np.ndarray:
        """The real set a generated sample's nearest real one is sought in: the data's
        metric reference (no sample twice) of at most `REFERENCE_SAMPLES`, drawn from the
        `report` stream's second branch."""
        return self.data.reference(REFERENCE_SAMPLES, make_generator(self.cfg.seed, "report", 1)).numpy()

    @cached_property
    def final(self) -> np.ndarray:
        """The final samples (S, n, ...) that the summary scores."""
        return np.load(self.path / "samples.npy", allow_pickle=False)

    @cached_property
    def translations(self) -> np.ndarray | None:
        """A translator's report rows (S, 3, m, C, H, W): A images, A -> B, back to A."""
        path = self.path / TRANSLATIONS
        return np.load(path, allow_pickle=False) if path.exists() else None

    @cached_property
    def style_mixing(self) -> np.ndarray | None:
        """A style-based G's mixing grid (S, m+1, m+1, C, H, W), if the run wrote one."""
        path = self.path / MIXING_FILE
        return np.load(path, allow_pickle=False) if path.exists() else None

    @cached_property
    def truncation_sweep(self) -> np.ndarray | None:
        """A style-based G's truncation sweep (S, P, n, C, H, W), if the run wrote one."""
        path = self.path / TRUNCATION_FILE
        return np.load(path, allow_pickle=False) if path.exists() else None

    @cached_property
    def classes(self) -> np.ndarray | None:
        """A conditional image run's samples per class (S, K, m, C, H, W), if it wrote them."""
        path = self.path / CLASS_SAMPLES
        return np.load(path, allow_pickle=False) if path.exists() else None

    @cached_property
    def eval_steps(self) -> list[int]:
        return sorted({r["step"] for r in self.records if r["kind"] == "eval"})

    def snapshots(self) -> list[tuple[int, np.ndarray]]:
        """Samples of each evaluation the metrics log holds (a resume may have left
        snapshots of evaluations that the log, and so the run, no longer has)."""
        logged = set(self.eval_steps)
        return [(step, load_snapshot(self.path, step)) for step in snapshot_steps(self.path) if step in logged]

    def series(self, kind: str, key: str) -> Series:
        """One logged quantity per seed; missing and non-finite values are skipped."""
        out: Series = defaultdict(lambda: ([], []))
        for r in self.records:
            value = r.get(key)
            if r["kind"] == kind and isinstance(value, (int, float)) and math.isfinite(value):
                out[r["seed"]][0].append(r["step"])
                out[r["seed"]][1].append(float(value))
        return dict(out)

    def numeric_keys(self, kind: str) -> list[str]:
        """Scalar keys of one kind of record, in logging order (schemes log their own losses)."""
        keys: dict[str, None] = {}
        for r in self.records:
            if r["kind"] == kind:
                keys.update((k, None) for k, v in r.items() if k not in ("step", "seed") and _is_number(v))
        return list(keys)

    def quantities(self) -> list[Quantity]:
        """What the curves show: every scalar the scheme logs (losses first, gradient
        norms on a log scale), then the evaluation scores the log holds."""
        train = self.numeric_keys("train")
        ordered = [k for k in train if not k.endswith("grad_norm")] + [k for k in train if k.endswith("grad_norm")]
        logged = set(self.numeric_keys("eval"))
        return [Quantity("train", k, _title(k), k.endswith("grad_norm")) for k in ordered] + [
            Quantity("eval", k, title, False) for k, title in EVAL_QUANTITIES.items() if k in logged
        ]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Monitor events in the order they happened."""
        return sorted((r for r in self.records if r["kind"] == "event"), key=lambda r: (r["step"], r["seed"]))

    @property
    def episodes(self) -> list[Episode]:
        """Each started event with the record that ended it, in the order they started.
        The monitor holds at most one event of a kind per seed at a time, so an `ended`
        record ends the open event of its seed and kind."""
        episodes: list[Episode] = []
        open_at: dict[tuple[str, int], int] = {}
        for r in self.events:
            key = (r["event"], r["seed"])
            if r["status"] == "started":
                open_at[key] = len(episodes)
                episodes.append(Episode(r))
            elif key in open_at:
                i = open_at.pop(key)
                episodes[i] = Episode(episodes[i].started, r)
        return episodes

    def generator_of_samples(self, drawn: int) -> np.ndarray | None:
        """Which generator made each of the `drawn` samples of one evaluation, from the
        scheme's own layout (`generator_of_samples`); None for a scheme of one generator."""
        layout = getattr(SCHEMES.get(self.cfg.scheme.name), "generator_of_samples", None)
        return None if layout is None else layout(piece_params(self.cfg, "scheme"), drawn).numpy()

    def write(self, name: str, content: bytes) -> None:
        """Keep a picture in the run folder beside the page that inlines it."""
        atomic_write(self.path / name, lambda tmp: tmp.write_bytes(content))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _title(key: str) -> str:
    """'g_grad_norm' -> 'G grad norm': the networks' one-letter names in capitals."""
    return " ".join(w.upper() if len(w) == 1 else w for w in key.split("_"))
