"""The run's metrics log (JSON lines) and its TensorBoard mirror."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ganscope.errors import CheckpointError
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
        """Every record. A last line without its newline is what a process killed while
        appending leaves: it is dropped when it is not a whole record (resume rewrites the
        log to its checkpoint anyway); a damaged line anywhere else is an error."""
        if not self.path.is_file():
            return []
        lines = self.path.read_bytes().split(b"\n")
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as err:  # JSONDecodeError, or bytes that are not UTF-8
                if number == len(lines):
                    break
                problem = f"column {err.colno}: {err.msg}" if isinstance(err, json.JSONDecodeError) else "not UTF-8"
                raise CheckpointError(
                    f"{self.path} line {number} is not a JSON record ({problem}); repair or delete that line"
                ) from None
            if not isinstance(record, dict):
                raise CheckpointError(f"{self.path} line {number} is not a JSON object; repair or delete that line")
            records.append(record)
        return records

    def rewrite(self, select: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        """Keep only the records `select` returns (e.g. those written before the checkpoint a
        run resumes from), atomically; a missing log stays missing."""
        if self.path.is_file():
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in select(self.read())))


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
