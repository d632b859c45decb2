#!/usr/bin/env python3
"""End-to-end checks of ganscope on one NVIDIA GPU, in one script and under 8 minutes.

Every check drives the installed `ganscope` command (the `[project.scripts]` entry point)
in a subprocess, as a user would:

0. oracle: `ganscope oracle mnist` trains or loads the MNIST classifier the others score with;
1. train: a small DCGAN population on mnist with `-s train.device=cuda`, evaluated twice;
2. resume: the same config trained half-way and resumed (`ganscope resume -s
   train.steps=N`) equals the run of check 1 trained straight through: metrics.jsonl byte
   for byte, every tensor of generator/discriminator.safetensors bit for bit;
3. portability: a copy of check 1's run folder, in processes that see no GPU
   (CUDA_VISIBLE_DEVICES=""), is evaluated (`ganscope eval`), sampled (`ganscope sample`)
   and trained on a few steps (`ganscope resume -s train.device=cpu`);
4. bf16: the same population under bf16 autocast trains with finite losses;
5. labels and domains: the population made class-conditional (projection D) trains with
   finite losses and reports label fidelity, and a small CycleGAN between mnist and digits
   (28x28) trains and reports label preservation both ways;
6. speed: `benchmarks/speed.py --model dcgan --device cuda --populations 1 8` against the
   eager loop on the same GPU; target: a population of 8 at >= 3x the eager loop's
   seed-steps per second;
7. data-parallel (on a machine with 2 or more GPUs; gloo on the CPU in the dry run):
   `torchrun --nproc_per_node=2 -m ganscope train` with synchronised batch norm equals one
   process with the full batch (train losses within 1e-4, relative), and both runs'
   seed-steps per second.

Each check records pass or fail, its numbers, its seconds and the error text; the report
goes to `--out`/gpu_checks.json (default `$OUT`, else ./gpu_checks) with every command's
output under `--out`/logs, and the exit code is 1 when any check fails. Without CUDA the
script stops at once with one line. `--device cpu --quick` is the dry run of checks 0-5 and
7 on the CPU with tiny networks (the speed check needs the GPU and is skipped):

    python benchmarks/gpu_checks.py                      # on the GPU machine
    python benchmarks/gpu_checks.py --device cpu --quick # dry run anywhere
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
#: The speed check's target: a population of 8 against the eager loop on one GPU.
SPEED_TARGET = 3.0
#: Seconds one command may take before its check fails as hung.
COMMAND_TIMEOUT = 300
#: How far two data-parallel processes may stray from one process (relative, train losses):
#: the all-reduce sums two half-batch gradients where one process sums the whole batch.
DATA_PARALLEL_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Sizes:
    """How big the checks' runs are: the GPU sizes, or the dry run's tiny ones."""

    width: int
    z_dim: int
    batch: int
    steps: int  # check 1's steps; check 2 resumes from half of them
    eval_every: int
    eval_samples: int
    log_every: int
    extra_steps: int  # check 3's steps on the CPU
    speed_steps: int
    speed_repeats: int


FULL = Sizes(width=64, z_dim=100, batch=64, steps=60, eval_every=30, eval_samples=256, log_every=10,
             extra_steps=4, speed_steps=200, speed_repeats=3)
QUICK = Sizes(width=8, z_dim=16, batch=16, steps=6, eval_every=3, eval_samples=64, log_every=2,
              extra_steps=2, speed_steps=20, speed_repeats=1)


class CheckFailed(Exception):
    """A check's expectation did not hold; the message says which and with what numbers,
    and `numbers` holds what the check measured before it failed."""

    def __init__(self, message: str, numbers: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.numbers = numbers or {}


class Checks:
    """The checks of one invocation: where runs and logs go, and how to call ganscope."""

    def __init__(self, out: Path, device: str, sizes: Sizes, ganscope: str, work: Path) -> None:
        self.out, self.device, self.sizes, self.ganscope, self.work = out, device, sizes, ganscope, work
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.commands = 0
        self.straight = work / "train"  # check 1's run: checks 2 and 3 compare with or copy it

    def overrides(self, steps: int, *extra: str) -> list[str]:
        s = self.sizes
        return [
            "data.name=mnist", "generator.name=dcgan", "discriminator.name=dcgan", f"generator.width={s.width}",
            f"discriminator.width={s.width}", f"noise.z_dim={s.z_dim}", f"train.batch_size={s.batch}",
            "train.seeds=2", f"train.steps={steps}", f"train.eval_every={s.eval_every}",
            f"train.checkpoint_every={s.eval_every}", f"train.eval_samples={s.eval_samples}",
            f"train.log_every={s.log_every}", "train.lr_schedule=constant", f"train.device={self.device}", *extra,
        ]

    def run(self, args: list[str], cpu_only: bool = False, timeout: int = COMMAND_TIMEOUT) -> str:
        """Run a command, its output logged under logs/; its stdout, or `CheckFailed` with
        the last lines of its stderr when it exits non-zero or hangs."""
        self.commands += 1
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""} if cpu_only else None
        log = self.logs / f"{self.commands:02d}-{Path(args[0]).name}-{Path(args[1]).name}.txt"
        shown = " ".join(args) if not cpu_only else f'CUDA_VISIBLE_DEVICES="" {" ".join(args)}'
        try:
            done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            output = b"".join(x if isinstance(x, bytes) else x.encode() for x in (err.stdout, err.stderr) if x)
            log.write_text(f"$ {shown}\n(timed out after {timeout} s)\n{output.decode(errors='replace')}")
            raise CheckFailed(f"`{shown}` did not finish in {timeout} s") from None
        log.write_text(f"$ {shown}\n(exit {done.returncode})\n--- stdout\n{done.stdout}--- stderr\n{done.stderr}")
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise CheckFailed(f"`{shown}` exited {done.returncode}: {tail}")
        return done.stdout

    def train(self, run_dir: Path, steps: int, *extra: str) -> dict[str, Any]:
        self.run([self.ganscope, "train", "-q", "-o", str(run_dir), "-s", *self.overrides(steps, *extra)])
        return json.loads((run_dir / "summary.json").read_text())

    # ---- the checks ------------------------------------------------------------------------

    def oracle(self) -> dict[str, Any]:
        facts = json.loads(self.run([self.ganscope, "oracle", "mnist", "--json"]))
        return {k: facts[k] for k in ("held_out_accuracy", "from_cache", "training_seconds")}

    def train_population(self) -> dict[str, Any]:
        summary = self.train(self.straight, self.sizes.steps)
        records = [json.loads(line) for line in (self.straight / "metrics.jsonl").read_text().splitlines()]
        evals = sorted({r["step"] for r in records if r["kind"] == "eval"})
        expected = list(range(self.sizes.eval_every, self.sizes.steps + 1, self.sizes.eval_every))
        if evals != expected:
            raise CheckFailed(f"evaluations at steps {evals}, expected {expected}")
        losses = finite_losses(records)
        samples = np.load(self.straight / "samples.npy")
        if samples.shape[:1] + samples.shape[2:] != (2, 1, 28, 28) or not np.isfinite(samples).all():
            raise CheckFailed(f"samples.npy holds {samples.shape} (finite: {np.isfinite(samples).all()}), "
                              "expected (2, n, 1, 28, 28) finite images")
        return {"seed_steps_per_s": summary["seed_steps_per_s"], "wall_time_s": summary["wall_time_s"],
                "train_records": losses, "evaluations": evals, "verdict": summary["verdict"]}

    def resume(self) -> dict[str, Any]:
        needs_straight(self.straight)
        half = self.work / "resumed"
        self.train(half, self.sizes.steps // 2)
        self.run([self.ganscope, "resume", str(half), "-q", "-s", f"train.steps={self.sizes.steps}"])
        log_a, log_b = ((d / "metrics.jsonl").read_text().splitlines() for d in (self.straight, half))
        if log_a != log_b:
            first = next((i for i, (a, b) in enumerate(zip(log_a, log_b)) if a != b), min(len(log_a), len(log_b)))
            raise CheckFailed(f"metrics.jsonl differs from line {first + 1} ({len(log_a)} lines straight, "
                              f"{len(log_b)} resumed)")
        compared = 0
        for name in ("generator", "discriminator"):
            a, b = (load_file(str(d / f"{name}.safetensors")) for d in (self.straight, half))
            if a.keys() != b.keys():
                raise CheckFailed(f"{name}.safetensors holds other tensors after resume")
            different = {k: float((a[k].double() - b[k].double()).abs().max())
                         for k in a if not torch.equal(a[k], b[k])}
            if different:
                key, gap = max(different.items(), key=lambda kv: kv[1])
                raise CheckFailed(f"{len(different)} of {len(a)} {name} tensors differ (largest: {key}, {gap:.3g})")
            compared += len(a)
        return {"metrics_lines": len(log_a), "tensors_equal": compared}

    def portability(self) -> dict[str, Any]:
        """Eval, sample and resume a copy of check 1's run where no GPU is visible; each is
        tried even when one before it failed, so the report names every one that fails."""
        needs_straight(self.straight)
        copy = self.work / "portable"
        shutil.copytree(self.straight, copy)
        numbers, errors = {}, []
        for name, step in (("eval", self.cpu_eval), ("sample", self.cpu_sample), ("resume", self.cpu_resume)):
            try:
                numbers[name] = step(copy)
            except CheckFailed as err:
                errors.append(f"{name}: {err}")
        if errors:
            raise CheckFailed("; ".join(errors), numbers)
        return numbers

    def cpu_eval(self, run_dir: Path) -> str:
        out = self.run([self.ganscope, "eval", str(run_dir), "--json", "-n", "64"], cpu_only=True)
        return json.loads(out)["verdict"]

    def cpu_sample(self, run_dir: Path) -> list[int]:
        samples_file = self.work / "portable-samples.npy"
        self.run([self.ganscope, "sample", str(run_dir), "-n", "16", "-o", str(samples_file)], cpu_only=True)
        samples = np.load(samples_file)
        if samples.shape != (16, 1, 28, 28) or not np.isfinite(samples).all():
            raise CheckFailed(f"wrote {samples.shape} samples, expected 16 finite 28x28 images")
        return list(samples.shape)

    def cpu_resume(self, run_dir: Path) -> int:
        steps = self.sizes.steps + self.sizes.extra_steps
        self.run([self.ganscope, "resume", str(run_dir), "-q", "-s", "train.device=cpu", f"train.steps={steps}"],
                 cpu_only=True)
        reached = json.loads((run_dir / "summary.json").read_text())["step"]
        if reached != steps:
            raise CheckFailed(f"ended at step {reached}, expected {steps}")
        return reached

    def bf16(self) -> dict[str, Any]:
        run_dir = self.work / "bf16"
        summary = self.train(run_dir, self.sizes.steps // 2, "train.precision=bf16")
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return {"train_records": finite_losses(records), "seed_steps_per_s": summary["seed_steps_per_s"]}

    def labels_and_domains(self) -> dict[str, Any]:
        conditional = self.work / "conditional"
        summary = self.train(conditional, self.sizes.steps // 2, "conditioning.name=projection")
        records = [json.loads(line) for line in (conditional / "metrics.jsonl").read_text().splitlines()]
        if summary.get("label_fidelity_mean") is None:
            raise CheckFailed("the conditional run's summary has no label fidelity")
        cycle = self.work / "cyclegan"
        s = self.sizes
        self.run([self.ganscope, "train", "-q", "--profile", "cyclegan-digits", "-o", str(cycle), "-s",
                  "train.seeds=2", f"train.steps={s.steps // 2}", f"train.eval_every={s.eval_every}",
                  f"train.eval_samples={s.eval_samples}", f"train.log_every={s.log_every}",
                  f"train.device={self.device}", f"generator.width={max(4, s.width // 4)}",
                  f"discriminator.width={max(4, s.width // 4)}"])
        translated = json.loads((cycle / "summary.json").read_text())
        if len(translated.get("preserved_ba", [])) != 2:
            raise CheckFailed("the CycleGAN summary lacks label preservation B -> A for its 2 seeds")
        return {"conditional_records": finite_losses(records), "label_fidelity": summary["label_fidelity_mean"],
                "preserved_ab": translated["preserved_ab"], "preserved_ba": translated["preserved_ba"],
                "cycle_a": translated["cycle_a"]}

    def speed(self) -> dict[str, Any]:
        result = self.out / f"speed_dcgan_{self.device}.json"
        self.run([sys.executable, str(HERE / "speed.py"), "--model", "dcgan", "--device", self.device,
                  "--populations", "1", "8", "--steps", str(self.sizes.speed_steps),
                  "--repeats", str(self.sizes.speed_repeats), "--out", str(result)])
        rows = json.loads(result.read_text())["rows"]
        numbers = {f"seeds_{r['seeds']}": {k: r[k] for k in ("eager_seed_steps_per_s", "ganscope_seed_steps_per_s",
                                                               "ratio")} for r in rows}
        ratio = numbers["seeds_8"]["ratio"]
        if ratio < SPEED_TARGET:
            raise CheckFailed(f"a population of 8 runs at {ratio:.2f}x the eager loop, "
                              f"below the {SPEED_TARGET}x target", numbers)
        return numbers


    def data_parallel(self) -> dict[str, Any]:
        steps, synced = self.sizes.steps // 2, "train.distributed.sync_batch_norm=true"
        one, two = self.work / "parallel-1", self.work / "parallel-2"
        alone = self.train(one, steps, synced)
        self.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                  "ganscope", "train", "-q", "-o", str(two), "-s", *self.overrides(steps, synced)])
        split = json.loads((two / "summary.json").read_text())
        a, b = ([json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (one, two))
        a, b = ([r for r in records if r["kind"] == "train"] for records in (a, b))
        if [(r["step"], r["seed"]) for r in a] != [(r["step"], r["seed"]) for r in b]:
            raise CheckFailed("the two-process run logged other steps than the one-process run")
        gap = max(abs(x[k] - y[k]) / (1 + abs(x[k])) for x, y in zip(a, b) for k in x if isinstance(x[k], float))
        numbers = {"max_relative_difference": gap, "seed_steps_per_s_1": alone["seed_steps_per_s"],
                   "seed_steps_per_s_2": split["seed_steps_per_s"]}
        if gap > DATA_PARALLEL_TOLERANCE:
            raise CheckFailed(f"two processes differ from one by {gap:.2g} (relative), above "
                              f"{DATA_PARALLEL_TOLERANCE:g}", numbers)
        return numbers


def finite_losses(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The train records' losses, checked finite: how many records, and the last ones."""
    train = [r for r in records if r["kind"] == "train"]
    if not train:
        raise CheckFailed("metrics.jsonl holds no train records")
    bad = [(r["step"], r["seed"], k) for r in train for k, v in r.items()
           if k.endswith("loss") and not math.isfinite(v)]
    if bad:
        raise CheckFailed(f"{len(bad)} non-finite losses, first at step {bad[0][0]}, seed {bad[0][1]} ({bad[0][2]})")
    last = train[-len({r['seed'] for r in train}):]
    return {"count": len(train), "last": {r["seed"]: {k: v for k, v in r.items() if k.endswith("loss")} for r in last}}


def needs_straight(run_dir: Path) -> None:
    if not (run_dir / "summary.json").is_file():
        raise CheckFailed(f"needs the run of check 1 (train) in {run_dir}, which did not finish")


def record(name: str, check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one check; its result: pass or fail, seconds, numbers, error text. One line to stdout."""
    started = time.perf_counter()
    try:
        numbers, error = check(), None
    except CheckFailed as err:
        numbers, error = err.numbers, str(err)
    except Exception as err:  # a bug in a check or an unreadable file: still a failed check, not a dead script
        numbers, error = {}, f"{type(err).__name__}: {err}"
    seconds = round(time.perf_counter() - started, 1)
    result = {"name": name, "passed": error is None, "seconds": seconds, "numbers": numbers, "error": error}
    print(f"{'PASS' if error is None else 'FAIL'} {name} ({seconds} s){': ' + error if error else ''}", flush=True)
    return result


def entry_point() -> str | None:
    """The installed `ganscope` command, preferably the one beside this interpreter."""
    return shutil.which("ganscope", path=str(Path(sys.executable).parent)) or shutil.which("ganscope")


def environment(device: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                             "cuda_build": torch.version.cuda, "device": device, "cpu_threads": torch.get_num_threads()}
    if device == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_checks"),
                   help="folder for gpu_checks.json and logs/ (default $OUT, else ./gpu_checks)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="cpu: the dry run of checks 0-5 and 7 (no speed check)")
    p.add_argument("--quick", action="store_true", help="tiny networks and few steps (the dry run's sizes)")
    a = p.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_checks: PyTorch sees no CUDA device here (torch {torch.__version__}, CUDA build: "
              f"{torch.version.cuda or 'none'}); run it on a machine with an NVIDIA GPU and a CUDA build of torch, "
              "or dry-run checks 0-5 with --device cpu --quick", file=sys.stderr)
        return 2
    ganscope = entry_point()
    if ganscope is None:
        print("gpu_checks: the `ganscope` command is not installed in this environment; run `pip install -e .` "
              "in the repository first", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_checks-") as work:
        checks = Checks(a.out, a.device, QUICK if a.quick else FULL, ganscope, Path(work))
        plan = [("oracle", checks.oracle), ("train", checks.train_population), ("resume", checks.resume),
                ("portability", checks.portability), ("bf16", checks.bf16),
                ("labels-and-domains", checks.labels_and_domains)]
        skipped = [] if a.device == "cuda" else ["speed (needs the GPU)"]
        if not skipped:
            plan.append(("speed", checks.speed))
        if a.device == "cuda" and torch.cuda.device_count() < 2:
            skipped.append(f"data-parallel (needs 2 GPUs, this machine has {torch.cuda.device_count()})")
        else:
            plan.append(("data-parallel", checks.data_parallel))
        results = [record(name, check) for name, check in plan]
    report = {"environment": environment(a.device), "quick": a.quick, "sizes": asdict(checks.sizes),
              "seconds": round(time.perf_counter() - started, 1), "passed": all(r["passed"] for r in results),
              "checks": results, "skipped": skipped}
    (a.out / "gpu_checks.json").write_text(json.dumps(report, indent=2))
    failed = [r["name"] for r in results if not r["passed"]]
    print(f"{len(results) - len(failed)} of {len(results)} checks passed in {report['seconds']} s"
          f"{' (failed: ' + ', '.join(failed) + ')' if failed else ''}"
          f"{'; skipped: ' + ', '.join(skipped) if skipped else ''}; report: {a.out / 'gpu_checks.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
