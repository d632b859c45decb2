"""The run's metrics log (JSON lines) and its TensorBoard mirror."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ganscope.train.checkpoint import atomic_write_text


def jsonable(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None, recursively (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class MetricsLog:
    """Append-only JSON lines: one record per (step, seed, kind)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        lines = "".join(
            json.dumps(jsonable(r)) + "\n" for r in records
        )
        with self.path.open("a") as handle:
            handle.write(lines)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def keep_only(self, keep: Callable[[dict[str, Any]], bool]) -> None:
        """Drop records (e.g. those written after the checkpoint a run resumes from)."""
        kept = [r for r in self.read() if keep(r)]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))


class TensorBoard:
    """Scalars per seed under `seed_<s>/<name>`; opened lazily (TensorBoard is slow to import)."""

    def __init__(self, folder: Path, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder), purge_step=purge_step)

    def scalars(self, records: Iterable[dict[str, Any]]) -> None:
        for r in records:
            for key, value in r.items():
                if key in ("step", "seed", "kind") or not isinstance(value, (int, float)):
                    continue
                if isinstance(value, float) and not math.isfinite(value):
                    continue
                self.writer.add_scalar(f"seed_{r['seed']}/{key}", value, r["step"])

    def text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)

    def close(self) -> None:
        self.writer.close()
