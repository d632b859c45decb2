"""Data-parallel runs under torchrun: shares of the batch, the streams they come from, the
refusals, and two gloo processes on the CPU training an image population against one
process with the full batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganscope
from ganscope import distributed
from ganscope.cli import main
from ganscope.distributed import World
from ganscope.errors import ConfigError
from ganscope.seeding import PopulationRandom, SharedRandom
from ganscope.train import Run
from ganscope.train.run import resume_command


def test_a_share_is_the_rank_s_contiguous_slice_of_the_batch_axis() -> None:
    x = torch.arange(2 * 8).reshape(2, 8)
    assert World().share(x) is x
    assert torch.equal(World(rank=1, size=4).share(x), x[:, 2:4])
    parts = [World(rank=r, size=4).share(x) for r in range(4)]
    assert torch.equal(torch.cat(parts, dim=1), x)


def test_shared_streams_give_each_process_its_share_of_the_one_process_draw() -> None:
    seeds = [3, 5]
    alone = PopulationRandom(seeds, "noise")
    shared = [SharedRandom(seeds, "noise", world=World(rank=r, size=2)) for r in range(2)]
    for _ in range(3):  # the streams advance alike: every draw stays aligned
        whole = alone.randn(6, 4)
        shares = [rng.randn(3, 4) for rng in shared]
        assert torch.equal(torch.cat(shares, dim=1), whole)
    assert torch.equal(shared[1].get_state(), alone.get_state())


@pytest.mark.parametrize("overrides", [[], ["conditioning.name=cgan"]])
def test_real_batches_noise_and_labels_are_shares_of_one_process_draws(
    monkeypatch: pytest.MonkeyPatch, overrides: list[str]
) -> None:
    cfg = ganscope.load_config(overrides=["train.batch_size=8", "train.device=cpu", "train.seeds=2", *overrides])
    alone = ganscope.schemes.Parts.from_config(cfg)
    shares = []
    for rank in range(2):
        monkeypatch.setattr(distributed, "_current", World(rank=rank, size=2))
        shares.append(ganscope.schemes.Parts.from_config(cfg))
    monkeypatch.setattr(distributed, "_current", World())
    for _ in range(2):
        real, noise, labels = alone.real_batch(), alone.noise_batch(), alone.generator_labels()
        got = [(p.real_batch(), p.noise_batch(), p.generator_labels()) for p in shares]
        assert all(p.process_batch_size == 4 for p in shares)
        assert torch.equal(torch.cat([r.x for r, _, _ in got], dim=1), real.x)
        assert torch.equal(torch.cat([z for _, z, _ in got], dim=1), noise)
        if labels is not None:
            assert torch.equal(torch.cat([r.labels for r, _, _ in got], dim=1), real.labels)
            assert torch.equal(torch.cat([y for _, _, y in got], dim=1), labels)


@pytest.mark.parametrize(("overrides", "said"), [
    (["scheme.name=madgan", "scheme.generators=2"], "scheme madgan does not run data-parallel"),
    (["scheme.name=unrolled"], "scheme unrolled does not run data-parallel"),
    (["train.batch_size=6"], "must split into 4 equal shares of whole packs of 1: use a multiple of 4"),
    (["train.batch_size=12", "d_modifiers=[{name: pack, m: 2}]"], "use a multiple of 8"),
    (["train.batch_size=48", "d_modifiers=[{name: minibatch-stddev, group_size: 8}]"],
     "each takes 12 of the 48 samples per seed in train.batch_size, and then:"),
])
def test_what_cannot_split_exactly_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, overrides: list[str], said: str
) -> None:
    cfg = ganscope.load_config(overrides=["train.device=cpu", *overrides])
    monkeypatch.setattr(distributed, "_current", World(rank=0, size=4))
    with pytest.raises(ConfigError, match=said) as caught:
        Run(cfg, tmp_path / "run")
    assert "\n" not in str(caught.value)


def test_one_process_averages_and_broadcasts_nothing() -> None:
    out = {"d_loss": torch.tensor([1.0, 2.0])}
    assert distributed.average_step(out, True) == (out, True)
    assert distributed.from_leader("mine") == "mine"


def test_messages_name_the_launch_that_continues_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resume_command(Path("runs/a")) == "ganscope resume runs/a"
    monkeypatch.setattr(distributed, "_current", World(rank=0, size=4))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert resume_command(Path("runs/a")) == "torchrun --nproc_per_node=4 -m ganscope resume runs/a"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two nodes of two
    assert resume_command(Path("runs/a")).endswith("resume runs/a on every node with its rendezvous flags")


# ---- two gloo processes ------------------------------------------------------------------

#: Two processes agree with one up to the order of floating-point sums (the all-reduce
#: adds two half-batch gradients where one process sums the whole batch).
TOLERANCE = 1e-5


def _train_records(run_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]


def _launch(args: list[str], processes: int, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANSCOPE_CACHE": str(cache)}
    if processes == 1:
        command = [sys.executable, "-m", "ganscope", *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   "-m", "ganscope", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _close(a: list[dict], b: list[dict]) -> float:
    """The largest relative difference between two logs' train numbers."""
    assert [(r["step"], r["seed"]) for r in a] == [(r["step"], r["seed"]) for r in b]
    return max(abs(x[k] - y[k]) / (1 + abs(x[k])) for x, y in zip(a, b) for k in x if isinstance(x[k], float))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A DCGAN population on 8x8 digits, G with synchronised batch norm and D with a
    gradient penalty, trained by one process and by two (10 steps, and 5 then resumed to
    10); the digits oracle is trained once into a cache every launch reads."""
    root = tmp_path_factory.mktemp("ddp")
    cache = root / "cache"
    common = ["data.name=digits", "generator.name=dcgan", "discriminator.name=dcgan", "discriminator.batch_norm=false",
              "regularizers=[{name: gradient-penalty, weight: 1.0}]", "noise.z_dim=16", "generator.width=8",
              "discriminator.width=8", "train.batch_size=16", "train.seeds=2", "train.lr_schedule=constant",
              "train.log_every=1", "train.eval_every=5", "train.checkpoint_every=5", "train.eval_samples=200",
              "train.device=cpu", "train.distributed.sync_batch_norm=true"]
    unreported = [*common, "train.report=false"]  # only "two"'s folder is checked for the page
    _launch(["train", "-q", "-o", str(root / "one"), "-s", *unreported, "train.steps=10"], 1, cache)
    two = _launch(["train", "-q", "-o", str(root / "two"), "-s", *common, "train.steps=10"], 2, cache)
    _launch(["train", "-q", "-o", str(root / "resumed"), "-s", *unreported, "train.steps=5"], 2, cache)
    _launch(["resume", "-q", str(root / "resumed"), "-s", "train.steps=10"], 2, cache)
    (root / "two.out").write_text(two.stdout + two.stderr)
    return {name: root / name for name in ("one", "two", "resumed", "two.out", "cache")}


def test_two_processes_equal_one_with_the_full_batch(runs: dict[str, Path]) -> None:
    # The shares of real images, noise and interpolation weights, the synchronised batch
    # statistics and the averaged gradients add up to the full batch's: per-process
    # statistics alone put the losses 100x the tolerance apart (measured on points).
    one, two = _train_records(runs["one"]), _train_records(runs["two"])
    assert len(one) == 20  # 10 steps x 2 seeds
    assert "penalty_gradient-penalty" in one[0]
    assert _close(one, two) < TOLERANCE


def test_rank_zero_alone_writes_a_complete_resumable_folder(runs: dict[str, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    two = runs["two"]
    for name in ("config.yaml", "checkpoint.pt", "metrics.jsonl", "summary.json", "report.html",
                 "generator.safetensors", "samples.npy"):
        assert (two / name).is_file(), name
    said = runs["two.out"].read_text()
    assert said.count("run folder:") == 1 and said.count("report:") == 1  # one process printed
    summary = json.loads((two / "summary.json").read_text())
    assert summary["step"] == 10 and summary["seeds"] == [0, 1]
    # Resumed at step 5 with the same two processes: bit for bit the uninterrupted run.
    assert _train_records(runs["resumed"]) == _train_records(two)
    # Its checkpoint is a one-process checkpoint: it opens (and samples) in this process.
    monkeypatch.setenv("GANSCOPE_CACHE", str(runs["cache"]))
    assert Run.open(two).sample(5).shape == (2, 5, 1, 8, 8)


def test_only_training_commands_run_under_torchrun(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganscope: only train, resume, demo run under torchrun") and err.count("\n") == 1
