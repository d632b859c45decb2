"""Time the feature-space metrics on 10,000 x 10,000 samples in 64-D.

Prints one JSON line: wall-clock seconds per metric, CPU seconds per metric (user + system
over all threads; on a machine shared with other jobs wall time inflates but CPU time does
not, so CPU / threads estimates the wall time of an idle machine), torch threads and the
process's peak resident memory (getrusage maxrss, which Linux reports in KiB). Run with ganscope importable,
e.g. `PYTHONPATH=src python benchmarks/metrics_speed.py`.
"""

from __future__ import annotations

import json
import resource
import time

import torch

from ganscope.metrics import METRICS
from ganscope.metrics.features import birthday, frechet, ndb, prdc  # noqa: F401  (registers)

N, M, D = 10_000, 10_000, 64


def main() -> None:
    torch.manual_seed(0)
    real = torch.randn(N, D)
    fake = 1.1 * torch.randn(M, D) + 0.1
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    for name in ("prdc", "frechet", "ndb", "birthday"):
        entry = METRICS.entry(name)
        start, cpu_start = time.perf_counter(), time.process_time()
        entry.obj(real, fake, entry.params())
        seconds[name] = round(time.perf_counter() - start, 3)
        cpu_seconds[name] = round(time.process_time() - cpu_start, 3)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "n_real": N,
                "n_fake": M,
                "dim": D,
                "torch_threads": torch.get_num_threads(),
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "peak_rss_mib": round(peak_mib, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
