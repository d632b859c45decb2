"""The local backend: trials in a pool of worker processes on this machine, no dependency
beyond the standard library.

Processes, not threads, because each trial is a whole training run holding the GIL
between its torch calls; `spawn`, not `fork`, because forking a process that has
initialised torch's thread pools can hang the child. Each worker uses its share of the
CPUs as torch threads. At most `workers` trials are handed out at a time, so the trials in
flight are exactly those training: when a worker dies (killed, out of memory) those
trials are recorded as failed and a fresh pool trains the rest. Ctrl-C reaches the workers,
which save a checkpoint and stop within a step, as `ganscope train` does; `workers: 0`
trains in this process instead (a debugger sees the trial).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ganscope.sweep.trials import Trial
from ganscope.sweep.worker import SweepInterrupted, failed_entry, run_trial, write_entry

Entry = dict[str, Any]


class WorkerDied(RuntimeError):
    """The process training a trial ended without a result."""


def _init_worker(threads: int) -> None:
    """Ctrl-C outside training is left to the sweep; inside, the run saves and stops."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _work(trial: Trial, out: Path, progress: bool) -> tuple[str, Any]:
    """A trial in a worker, its outcome as plain data (exceptions do not cross processes
    intact): ("done", entry), ("interrupted", signal) or ("busy", message)."""
    from ganscope.train import Interrupted, RunInUse

    try:
        return "done", run_trial(trial, out, progress)
    except Interrupted as err:
        return "interrupted", err.signum
    except RunInUse as err:
        return "busy", str(err)


def run_local(trials: list[Trial], out: Path, announce: Callable[[Trial], None], record: Callable[[Entry], None],
              workers: int = 1, threads: int | None = None, progress: bool = True) -> None:
    """Train `trials`, `workers` at a time (0: in this process); `announce` is called as a
    trial starts and `record` with each outcome."""
    if workers == 0:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        for trial in trials:
            announce(trial)
            record(run_trial(trial, out, progress))  # Interrupted goes to the caller as it is
        return
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads,))

    pending = list(trials)
    in_flight: dict[Future[tuple[str, Any]], tuple[Trial, float]] = {}
    stopped: int | None = None  # the signal that interrupted the sweep
    pool = new_pool()
    try:
        while in_flight or (pending and stopped is None):
            while pending and stopped is None and len(in_flight) < workers:
                trial = pending.pop(0)
                announce(trial)
                in_flight[pool.submit(_work, trial, out, progress and workers == 1)] = (trial, time.perf_counter())
            try:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                if stopped is not None:  # a second Ctrl-C: stop waiting for the workers to save
                    raise SweepInterrupted(out, signal.SIGINT) from None
                stopped = signal.SIGINT
                for child in multiprocessing.active_children():  # a SIGINT sent to this process alone
                    os.kill(child.pid, signal.SIGINT)  # type: ignore[arg-type]
                continue
            broken = False
            for future in done:
                trial, started = in_flight.pop(future)
                try:
                    kind, value = future.result()
                except BrokenProcessPool:
                    broken = True
                    entry = failed_entry(trial, WorkerDied("the worker process training it died (killed, or out of "
                                                           "memory?)"), time.perf_counter() - started, 0)
                    write_entry(out, entry)
                    record(entry)
                    continue
                if kind == "done":
                    record(value)
                elif kind == "interrupted":
                    stopped = stopped or value
                else:
                    print(f"{trial.name}: {value}; left for a later run", file=sys.stderr)
            if broken:
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
    finally:
        pool.shutdown(wait=stopped is None, cancel_futures=True)
    if stopped is not None:
        raise SweepInterrupted(out, stopped)
