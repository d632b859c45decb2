"""Faults during training: NaN and infinity (stop, roll back), `kill -9` at random and at
the worst moments, a torn metrics log, two processes in one folder, a checkpoint from
another config, what resume says, and a progress line that fits.

Runs here skip the HTML report (patched out): it is rebuilt from the run folder's files
at every finish, holds no training state, and costs seconds per run on a busy machine.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import ganscope
import ganscope.report
from ganscope.cli import main
from ganscope.errors import CheckpointError
from ganscope.metrics.modes import ModeScore
from ganscope.train import Diverged, Run, RunInUse
from ganscope.train.checkpoint import LOCK, folder_lock
from ganscope.train.log import MetricsLog
from ganscope.train.run import CHECKPOINT, CONFIG, METRICS, SAMPLES, SUMMARY, progress_line


@pytest.fixture(autouse=True)
def no_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ganscope.report, "write_report", lambda run_dir, out=None: run_dir)


def fault_config(tiny_overrides: list[str], *extra: str) -> ganscope.Config:
    return ganscope.load_config(overrides=[*tiny_overrides, "train.steps=60", "train.seeds=2", *extra])


def poison(run: Run, at_step: int, times: int = 1) -> Run:
    """NaN into seed 1's first generator weight right after the update of step `at_step`,
    the first `times` times training passes that step (a rollback passes it again)."""
    train_step, left = run.scheme.train_step, [times]

    def poisoned(diagnostics: bool = False) -> dict[str, torch.Tensor]:
        out = train_step(diagnostics)
        if run.step + 1 == at_step and left[0] > 0:
            left[0] -= 1
            with torch.no_grad():
                next(run.scheme.modules["generator"].parameters())[1].fill_(float("nan"))
        return out

    run.scheme.train_step = poisoned  # type: ignore[method-assign]
    return run


def records(run_dir: Path) -> list[dict]:
    return MetricsLog(run_dir / METRICS).read()


def checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / CHECKPOINT, weights_only=True)


def all_finite(state: dict) -> bool:
    return all(torch.isfinite(t).all() for sd in state["modules"].values() for t in sd.values()
               if t.is_floating_point())


def divergence_events(run_dir: Path) -> list[dict]:
    return [r for r in records(run_dir) if r["kind"] == "event" and r["event"] == "divergence"]


# ---- NaN and infinity -------------------------------------------------------------------


@pytest.mark.parametrize("at_step, found_at, seen_in, extra", [
    (25, 30, "g_loss", []),  # NaN losses from step 26 on: the monitor names it at the next log
    (40, 40, "generator weights", []),  # a checkpoint step, losses still finite: only the weights show it
    (25, 30, "g_loss", ["train.monitor.enabled=false"]),  # no monitor: the trainer names it
])
def test_nan_stops_at_the_last_finite_checkpoint(tmp_path, tiny_overrides, at_step, found_at, seen_in, extra) -> None:
    run_dir = tmp_path / "run"
    run = poison(Run.create(fault_config(tiny_overrides, *extra), run_dir), at_step)
    with pytest.raises(Diverged) as stop:
        run.fit(progress=False)
    message = str(stop.value)
    assert "\n" not in message and f"diverged at step {found_at}" in message and "seed 1" in message
    kept = checkpoint(run_dir)
    assert kept["step"] == 20 and all_finite(kept)  # the NaN weights of step 40 never replaced it
    [event] = divergence_events(run_dir)  # one event, whoever noticed first
    assert (event["seed"], event["step"], event["status"]) == (1, found_at, "started")
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert summary["step"] == 20 and summary["diverged"]["step"] == found_at
    assert seen_in in ", ".join(summary["diverged"]["non_finite"]["1"])
    assert summary["verdict"].startswith(f"diverged at step {found_at}")
    assert np.isfinite(np.load(run_dir / SAMPLES)).all()  # the last finite checkpoint's samples


def test_cli_says_one_line_and_exits_non_zero_on_divergence(tmp_path, tiny_overrides, monkeypatch, capsys) -> None:
    create = Run.create
    monkeypatch.setattr(Run, "create", classmethod(lambda cls, cfg, run_dir: poison(create(cfg, run_dir), 25)))
    args = [a for o in [*tiny_overrides, "train.steps=40", "train.seeds=2"] for a in ("-s", o)]
    assert main(["train", "-q", "-o", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("ganscope: training diverged at step 30 (seed 1: ")
    assert "train.on_divergence=rollback" in err and "Traceback" not in err


def test_rollback_lowers_the_learning_rates_and_resumes_bit_exact(tmp_path, tiny_overrides) -> None:
    cfg = fault_config(tiny_overrides, "train.on_divergence=rollback", "train.rollback_lr_factor=0.25")
    summary = poison(Run.create(cfg, tmp_path / "whole"), 25).fit(progress=False)
    assert (summary["rollbacks"], summary["lr_scale"]) == (1, 0.25) and "rolled back 1 time" in summary["verdict"]
    log = records(tmp_path / "whole")
    [rollback] = [r for r in log if r["kind"] == "rollback"]
    assert (rollback["step"], rollback["seed"], rollback["rolled_back_to"], rollback["rollback"]) == (30, 1, 20, 1)
    [event] = divergence_events(tmp_path / "whole")
    assert (event["step"], event["seed"], event["rolled_back_to"]) == (30, 1, 20)
    for seed in (0, 1):  # the whole population went back: each train record once, in order
        assert [r["step"] for r in log if r["kind"] == "train" and r["seed"] == seed] == [10, 20, 30, 40, 50, 60]
    final = checkpoint(tmp_path / "whole")
    assert all_finite(final) and final["lr_scale"] == 0.25
    lowered = {0.25 * cfg.optimizer.generator.lr, 0.25 * cfg.optimizer.discriminator.lr}
    assert {g["lr"] for o in final["optimizers"].values() for g in o["param_groups"]} == lowered

    # Stopped at step 40, after the rollback: resume continues with the lowered rates.
    half = ganscope.load_config(cfg.to_dict(), ["train.steps=40"])
    poison(Run.create(half, tmp_path / "half"), 25).fit(progress=False)
    Run.open(tmp_path / "half", ["train.steps=60"]).fit(progress=False)
    assert (tmp_path / "half" / METRICS).read_text() == (tmp_path / "whole" / METRICS).read_text()
    resumed = checkpoint(tmp_path / "half")
    for name, weights in final["modules"].items():
        for key, value in weights.items():
            assert torch.equal(value, resumed["modules"][name][key]), (name, key)


def test_rollbacks_stop_at_their_cap(tmp_path, tiny_overrides) -> None:
    cfg = fault_config(tiny_overrides, "train.on_divergence=rollback", "train.max_rollbacks=1")
    run = poison(Run.create(cfg, tmp_path / "run"), 25, times=2)
    with pytest.raises(Diverged, match=r"diverged at step 30 after 1 rollback\(s\)"):
        run.fit(progress=False)
    kept = checkpoint(tmp_path / "run")
    assert kept["step"] == 20 and all_finite(kept)
    assert [r["rolled_back_to"] for r in records(tmp_path / "run") if r["kind"] == "rollback"] == [20]
    assert len(divergence_events(tmp_path / "run")) == 2  # the one rolled back, the one that stopped it


# ---- kill -9 ------------------------------------------------------------------------------


KILL_ARGS = ["train.steps=200", "train.seeds=2"]


def fork_cli(argv: list[str], before: Callable[[], None] = lambda: None) -> int:
    """Run the CLI in a forked child (torch already imported: it trains at once, where a
    fresh interpreter would spend seconds importing); its pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            before()
            code = main(argv)
        finally:
            os._exit(code)
    return pid


def train_or_resume(run_dir: Path, tiny_overrides: list[str]) -> list[str]:
    """What a user runs next: resume a run folder, or train anew where a kill came before
    the config was written."""
    if (run_dir / CONFIG).exists():
        return ["resume", "-q", str(run_dir)]
    shutil.rmtree(run_dir, ignore_errors=True)
    return ["train", "-q", "-o", str(run_dir), *[a for o in [*tiny_overrides, *KILL_ARGS] for a in ("-s", o)]]


@pytest.fixture
def uninterrupted(tmp_path_factory, tiny_overrides) -> Path:
    """A 200-step population trained without interruption, to compare killed runs with;
    trained once per session."""
    run_dir = tmp_path_factory.getbasetemp() / "uninterrupted"
    if not (run_dir / SUMMARY).exists():
        assert main(train_or_resume(run_dir, tiny_overrides)) == 0
    return run_dir


def assert_same_run(run_dir: Path, reference: Path) -> None:
    assert (run_dir / METRICS).read_text() == (reference / METRICS).read_text()
    assert np.array_equal(np.load(run_dir / SAMPLES), np.load(reference / SAMPLES))
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".") and p.name != LOCK]


def test_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run(
    tmp_path, tiny_overrides, uninterrupted, capsys
) -> None:
    # Kill after a random share of the time the whole run trained, measured on this machine now.
    whole_s = json.loads((uninterrupted / SUMMARY).read_text())["wall_time_s"]
    run_dir, rng, killed = tmp_path / "run", random.Random(0), 0
    for _ in range(5):
        pid = fork_cli(train_or_resume(run_dir, tiny_overrides))
        time.sleep(rng.uniform(0.05, 0.35) * whole_s)
        os.kill(pid, signal.SIGKILL)
        killed += os.WIFSIGNALED(os.waitpid(pid, 0)[1])
    assert killed >= 3  # most kills landed while the child was still working
    assert main(train_or_resume(run_dir, tiny_overrides)) == 0
    assert "resumed from step" in capsys.readouterr().err
    assert_same_run(run_dir, uninterrupted)


def die_renaming_checkpoint(at_write: int) -> Callable[[], None]:
    """In the child: SIGKILL itself inside the `at_write`-th checkpoint write, after the
    temporary file is written and before it replaces checkpoint.pt."""
    def install() -> None:
        replace, writes = os.replace, [0]

        def dying_replace(src: str, dst: str) -> None:
            writes[0] += Path(dst).name == CHECKPOINT
            if writes[0] == at_write:
                os.kill(os.getpid(), signal.SIGKILL)
            replace(src, dst)

        os.replace = dying_replace
    return install


def die_appending_metrics(at_append: int) -> Callable[[], None]:
    """In the child: SIGKILL itself in the middle of the `at_append`-th metrics append."""
    def install() -> None:
        append, appends = MetricsLog.append, [0]

        def dying_append(self: MetricsLog, new: list[dict]) -> None:
            appends[0] += 1
            if appends[0] == at_append:
                text = "".join(json.dumps(r) + "\n" for r in new)
                with self.path.open("a") as handle:
                    handle.write(text[: len(text) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            append(self, new)

        MetricsLog.append = dying_append  # type: ignore[method-assign]
    return install


@pytest.mark.parametrize("die", [die_renaming_checkpoint(4), die_appending_metrics(9)], ids=["checkpoint", "metrics"])
def test_kill_9_mid_write_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_overrides, uninterrupted, die) -> None:
    run_dir = tmp_path / "run"
    pid = fork_cli(train_or_resume(run_dir, tiny_overrides), die)
    assert os.WTERMSIG(os.waitpid(pid, 0)[1]) == signal.SIGKILL
    assert main(train_or_resume(run_dir, tiny_overrides)) == 0
    assert_same_run(run_dir, uninterrupted)


# ---- damaged logs, two processes, foreign checkpoints -------------------------------------


def test_a_torn_last_log_line_is_dropped_and_a_damaged_one_is_an_error(tmp_path, tiny_config, capsys) -> None:
    run_dir = tmp_path / "run"
    Run.create(tiny_config, run_dir).fit(progress=False)
    whole = (run_dir / METRICS).read_text()
    with (run_dir / METRICS).open("a") as handle:
        handle.write('{"step": 40, "seed": 0, "ki')  # what a kill mid-append leaves
    assert records(run_dir) == [json.loads(line) for line in whole.splitlines()]
    Run.open(run_dir).fit(progress=False)  # resume rewrites the log without it
    assert (run_dir / METRICS).read_text() == whole

    lines = whole.splitlines(keepends=True)
    (run_dir / METRICS).write_text("".join(lines[:3]) + '{"step": 20, "se\n' + "".join(lines[3:]))
    with pytest.raises(CheckpointError, match=rf"{METRICS} line 4 is not a JSON record \(column 14: Unterminated"):
        records(run_dir)
    capsys.readouterr()
    assert main(["resume", "-q", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ganscope: ") and "line 4" in err


def test_a_second_process_in_the_same_folder_fails_with_one_line(tmp_path, tiny_config, capsys) -> None:
    run_dir = tmp_path / "run"
    run = Run.create(tiny_config, run_dir)
    capsys.readouterr()
    with folder_lock(run_dir):  # as another process training there holds it
        with pytest.raises(RunInUse, match=f"in use by another ganscope process \\(pid {os.getpid()}\\)"):
            run.fit(progress=False)
        assert main(["resume", "-q", str(run_dir), "-s", "train.steps=80"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "in use by another ganscope process" in err
    assert Run.open(run_dir).cfg.train.steps == 40  # the refused resume changed nothing
    assert run.fit(progress=False)["step"] == 40  # released: a lock outlives no process


@pytest.mark.parametrize("ours, theirs, message", [
    (["generator.hidden=48"], [], "generator.hidden: 32 there, 48 in config.yaml"),
    (["train.seeds=[0,2]"], ["train.seeds=[0,1]"], r"holds seeds \[0, 1\] but config.yaml asks for \[0, 2\]"),
])
def test_a_checkpoint_from_another_config_is_refused(tmp_path, tiny_config, ours, theirs, message, capsys) -> None:
    run_dir = tmp_path / "run"
    Run.create(ganscope.load_config(tiny_config.to_dict(), ours), run_dir)
    Run.create(ganscope.load_config(tiny_config.to_dict(), theirs), tmp_path / "other")
    shutil.copy(tmp_path / "other" / CHECKPOINT, run_dir / CHECKPOINT)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(CheckpointError, match=message):
        Run.open(run_dir)
    assert main(["resume", "-q", str(run_dir), "-s", "train.steps=80"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "put back this run's own checkpoint" in err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


# ---- what resume says, and the progress line ------------------------------------------------


def test_resume_says_where_it_starts_and_what_new_steps_do_to_the_schedule(tmp_path, tiny_overrides) -> None:
    for schedule in ("cosine", "constant"):
        cfg = ganscope.load_config(overrides=[*tiny_overrides, "train.steps=20", f"train.lr_schedule={schedule}"])
        Run.create(cfg, tmp_path / schedule).fit(progress=False)
    assert Run.open(tmp_path / "constant").resume_message() == (
        "resumed from step 20 of 20; it already reached train.steps: raise it with -s train.steps=N to train on")
    assert Run.open(tmp_path / "constant", ["train.steps=80"]).resume_message() == "resumed from step 20 of 80"
    stretched = Run.open(tmp_path / "cosine", ["train.steps=80"]).resume_message()
    assert stretched == ("resumed from step 20 of 80; train.steps 20 -> 80 stretches the cosine learning-rate decay "
                         "over 80 steps: the learning rate rises from 0 to 0.000854 at step 20")


def test_resume_keeps_what_was_logged_by_its_checkpoint(tiny_overrides) -> None:
    """At a checkpoint off the evaluation schedule (the end of a shorter run, or a Ctrl-C),
    the events of that step's train records stay; its final evaluation and the events
    that evaluation raised go, as a longer run never made them."""
    run = Run(ganscope.load_config(overrides=[*tiny_overrides, "train.steps=50"]), Path("unused"))
    log = [{"step": step, "kind": kind, "seed": 0} for step, kind in [
        (40, "train"), (40, "eval"), (40, "event"), (50, "event"), (50, "train"), (50, "eval"), (50, "event"),
    ]]
    run.step = 50
    assert run.logged_by_checkpoint(log) == log[:5]
    run.step = 40
    assert run.logged_by_checkpoint(log) == log[:3]


def test_the_progress_line_shows_every_seed_or_the_population_whole() -> None:
    def scores(modes: list[int], hq: list[float]) -> list[ModeScore]:
        return [ModeScore(n_samples=100, n_modes=8, modes_covered=m, hq_fraction=h, reverse_kl=0.1, counts=[],
                          nearest_counts=[]) for m, h in zip(modes, hq)]

    assert progress_line(scores([8, 7, 8, 6], [0.97, 0.951, 1.0, 0.9])) == "8/8 97% | 7/8 95% | 8/8 100% | 6/8 90%"
    assert progress_line(scores([8, 8, 8, 8, 6, 6], [0.9] * 6)) == "7.3±1.0/8 90±0% HQ"
