"""Training: population independence, bit-exact resume, signals, learning progress."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ganscope
from ganscope.batch import Batch
from ganscope.cli import main
from ganscope.errors import CheckpointError, GanscopeError
from ganscope.metrics.modes import score_modes
from ganscope.train.run import CHECKPOINT, METRICS


def losses_of(cfg: ganscope.Config, steps: int) -> list[dict[str, list[float]]]:
    run = ganscope.Run(cfg, Path("unused"))
    return [{k: v.tolist() for k, v in run.scheme.train_step().items()} for _ in range(steps)]


def test_seed_inside_population_matches_seed_alone(tiny_overrides) -> None:
    together = losses_of(ganscope.load_config(overrides=tiny_overrides + ["train.seeds=[1,3,4]"]), 10)
    alone = losses_of(ganscope.load_config(overrides=tiny_overrides + ["train.seeds=[3]"]), 10)
    for step_together, step_alone in zip(together, alone, strict=True):
        for key in ("d_loss", "g_loss"):
            assert step_together[key][1] == pytest.approx(step_alone[key][0], abs=1e-5)
    different = losses_of(ganscope.load_config(overrides=tiny_overrides + ["train.seeds=[4]"]), 1)
    assert different[0]["d_loss"][0] != pytest.approx(alone[0]["d_loss"][0], abs=1e-5)


def test_population_with_batch_norm_matches_too(tiny_overrides) -> None:
    extra = ["generator.batch_norm=true", "discriminator.batch_norm=true"]
    together = losses_of(ganscope.load_config(overrides=tiny_overrides + extra + ["train.seeds=[0,1]"]), 5)
    alone = losses_of(ganscope.load_config(overrides=tiny_overrides + extra + ["train.seeds=[1]"]), 5)
    assert [s["g_loss"][1] for s in together] == pytest.approx([s["g_loss"][0] for s in alone], abs=1e-5)


def test_bf16_trains_with_batch_norm(tiny_overrides) -> None:
    extra = ["generator.batch_norm=true", "discriminator.batch_norm=true", "train.precision=bf16", "train.seeds=2"]
    run = ganscope.Run(ganscope.load_config(overrides=tiny_overrides + extra), Path("unused"))
    for _ in range(5):
        out = run.scheme.train_step(diagnostics=True)
        for key in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm"):
            assert torch.isfinite(out[key]).all(), key
    stats = {k: v for k, v in run.scheme.modules["generator"].state_dict().items() if k.endswith("running_mean")}
    assert stats and all(v.dtype == torch.float32 and v.abs().sum() > 0 for v in stats.values())
    run.scheme.train(False)  # evaluation normalises with the running statistics
    assert torch.isfinite(run.scheme.generate(Batch(run.parts.noise_batch(32)))).all()


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / CHECKPOINT, weights_only=True)
    return {f"{m}.{k}": v for m, sd in state["modules"].items() for k, v in sd.items()}


def test_resume_continues_bit_for_bit(tmp_path, tiny_overrides) -> None:
    # 45 is not a multiple of eval_every: the short run's final-only evaluation must not
    # survive into the resumed log.
    full = ganscope.load_config(overrides=tiny_overrides + ["train.steps=90", "train.seeds=2"])
    ganscope.Run.create(full, tmp_path / "full").fit(progress=False)

    half = ganscope.load_config(overrides=tiny_overrides + ["train.steps=45", "train.seeds=2"])
    ganscope.Run.create(half, tmp_path / "half").fit(progress=False)
    resumed = ganscope.Run.open(tmp_path / "half", ["train.steps=90"])
    assert resumed.step == 45
    resumed.fit(progress=False)

    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "half")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (tmp_path / "full" / METRICS).read_text() == (tmp_path / "half" / METRICS).read_text()


def test_existing_run_folder_is_never_overwritten(tmp_path, tiny_config) -> None:
    ganscope.Run.create(tiny_config, tmp_path / "run").fit(progress=False)
    before = (tmp_path / "run" / CHECKPOINT).read_bytes()
    with pytest.raises(GanscopeError, match="already holds a run"):
        ganscope.Run.create(tiny_config, tmp_path / "run")
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == before


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, tiny_config) -> None:
    ganscope.Run.create(tiny_config, tmp_path / "run").fit(progress=False)
    (tmp_path / "run" / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        ganscope.Run.open(tmp_path / "run")
    with pytest.raises(CheckpointError, match="not a ganscope run folder"):
        ganscope.Run.open(tmp_path / "nothing")


def test_resume_may_only_change_training_keys(tmp_path, tiny_config) -> None:
    ganscope.Run.create(tiny_config, tmp_path / "run").fit(progress=False)
    with pytest.raises(GanscopeError, match="only train"):
        ganscope.Run.open(tmp_path / "run", ["generator.hidden=64"])


def test_a_run_without_the_report_says_so_and_the_report_command_writes_it(tmp_path, tiny_overrides, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "-q", "-o", str(run), "-s", *tiny_overrides, "train.steps=20", "train.report=false"]) == 0
    said = capsys.readouterr().out
    assert f"report: not written (train.report=false); `ganscope report {run}` writes it" in said
    assert (run / "summary.json").is_file() and (run / "samples.npy").is_file()
    assert not any((run / name).exists() for name in ("report.html", "samples.png", "curves.png"))
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").stat().st_size > 10_000 and (run / "curves.png").is_file()


def test_training_raises_coverage_on_three_mode_mixture(tmp_path, tiny_overrides) -> None:
    cfg = ganscope.load_config(
        overrides=tiny_overrides
        + ["data.name=mixture", "data.centres=[[-2,0],[0,2],[2,0]]", "data.std=0.2", "train.steps=600", "train.seeds=2"]
    )
    run = ganscope.Run.create(cfg, tmp_path / "run")
    before = [score_modes(s, run.parts.data.oracle) for s in run.sample(1000)]
    summary = run.fit(progress=False)
    for start, end in zip(before, summary["scores"], strict=True):
        assert start.hq_fraction < 0.05  # a random generator hits the modes by chance only
        assert end["hq_fraction"] > start.hq_fraction + 0.2
        assert end["modes_covered"] >= 2
    assert summary["hq_fraction_mean"] > 0.3


def test_run_folder_contents(tmp_path, tiny_overrides) -> None:
    cfg = ganscope.load_config(overrides=[*tiny_overrides, "train.steps=40", "train.report=true"])
    ganscope.Run.create(cfg, tmp_path / "run").fit(progress=False)
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.yaml", "metrics.jsonl", "checkpoint.pt", "summary.json", "samples.png", "curves.png",
            "report.html", "generator.safetensors", "tensorboard"} <= names
    assert any((tmp_path / "run" / "tensorboard").iterdir())
    from ganscope.train.checkpoint import FILE_MODE, LOCK

    assert not [n for n in names if n.startswith(".") and n != LOCK]  # no temporary files left behind

    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert set(modes.values()) == {FILE_MODE}  # the umask's mode, not mkstemp's private 0600


def test_sigint_saves_a_checkpoint_and_resume_finishes(tmp_path, tiny_overrides) -> None:
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "ganscope.cli", "train", "-q", "-o", str(run_dir), "-s", "train.steps=100000"]
    args += [a for o in tiny_overrides for a in ("-s", o)]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 60
    def logged() -> bool:  # a first train record: training is past its first log step
        return (run_dir / METRICS).is_file() and bool((run_dir / METRICS).read_text().strip())

    while not logged() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT
    assert "interrupted at step" in err and "Traceback" not in err
    stopped = torch.load(run_dir / CHECKPOINT, weights_only=True)["step"]
    assert stopped >= 10
    resumed = ganscope.Run.open(run_dir, [f"train.steps={stopped + 10}"])
    assert resumed.fit(progress=False)["step"] == stopped + 10
