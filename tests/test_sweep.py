"""Sweeps: the file validated, the trials planned and packed, the local backend end to end
(results, resume, a crashed trial kept), the CLI, and Ray Tune when its extra is installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import ganscope
from ganscope import bench
from ganscope.cli import main
from ganscope.errors import ConfigError
from ganscope.sweep import SweepResult, load_sweep, plan, run_sweep, validate_sweep
from ganscope.sweep.results import metric_values, ranked
from ganscope.sweep.worker import TRIAL_JSON
from ganscope.train.run import Run

LR = "optimizer.generator.lr,optimizer.discriminator.lr"


@pytest.fixture
def base(tiny_overrides: list[str]) -> list[str]:
    return [*tiny_overrides, "train.steps=20", "train.eval_every=20", "train.checkpoint_every=20"]


def sweep_file(tmp_path: Path, base: list[str], **fields: object) -> Path:
    raw = {"name": "t", "base": {"set": base}, "axes": {LR: [1e-3, 1e-4]}, "seeds": 2, **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"axes": {"seed": [1, 2]}}, "seeds are not swept"),
        ({"axes": {"train.seeds": [1, 2]}}, "seeds are not swept"),
        ({"axes": {"train.steps": {"uniform": [1, 9]}}}, "add samples: N"),
        ({"samples": 3, "axes": {"train.steps": [1, 2]}}, "this sweep has none"),
        ({"axes": {"train.steps": []}}, "an empty list"),
        ({"axes": {"train.steps": 5}}, "a single value belongs in base.set"),
        ({"samples": 2, "axes": {"optimizer.generator.lr": {"loguniform": [0, 1]}}}, "0 < low < high"),
        ({"metric": "fid"}, "unknown metric 'fid'"),
        ({"scheduler": {"name": "asha"}}, "set backend: ray"),
        ({"protocol": "moons"}, "unknown protocol 'moons'"),
        ({"protocol": "ring", "axes": {"data.name": ["grid"]}}, "the protocol fixes the data"),
        ({"protocol": "ring", "base": {"set": ["train.eval_samples=100"]}}, "the protocol fixes the samples"),
        ({"colour": "red"}, "colour"),
        ({"target": {"hq_fraction": "about 0.9"}}, "is not a condition"),
        ({"target": {"fid": ">= 1"}}, "unknown metric 'fid'"),
    ],
)
def test_bad_sweep_files_fail_in_one_line(raw: dict, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_sweep(raw)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_plan_packs_seeds_expands_axes_and_validates_every_trial(tmp_path: Path, base: list[str]) -> None:
    sweep = load_sweep(sweep_file(tmp_path, base, samples=3, sampling_seed=7, seeds=[5, 9],
                                  axes={LR: [1e-3, 1e-4], "noise.z_dim": {"choice": [4, 8, 16, 32]},
                                        "train.batch_size": {"loguniform": [16, 256], "integer": True}}))
    trials = plan(sweep)
    assert len(trials) == 2 * 3  # each random draw with every grid point
    assert trials == plan(load_sweep(tmp_path / "sweep.yaml"))  # the same file plans the same trials
    for trial in trials:
        cfg = ganscope.load_config(trial.config)
        assert cfg.train.seeds == [5, 9] and cfg.seed == 5  # one population per configuration
        assert cfg.optimizer.generator.lr == cfg.optimizer.discriminator.lr == trial.values[LR]
        assert cfg.noise.z_dim == trial.values["noise.z_dim"] in (4, 8, 16, 32)
        assert isinstance(trial.values["train.batch_size"], int) and 16 <= cfg.train.batch_size <= 256
    assert len({t.name for t in trials}) == len(trials)

    # a method axis applies `ganscope bench`'s overrides; the protocol its data
    unscored = [o for o in base if not o.startswith("train.eval_samples=")]
    sweep = load_sweep(sweep_file(tmp_path, unscored, protocol="ring", axes={"method": ["gan", "pacgan2"]}))
    gan, pac = (ganscope.load_config(t.config) for t in plan(sweep))
    assert gan.data.name == pac.data.name == "ring" and gan.train.eval_samples == 2500
    assert pac.train.batch_size == 2 * gan.train.batch_size and pac.d_modifiers[0].name == "pack"

    # a value the schema refuses fails at planning, naming the trial
    with pytest.raises(ConfigError, match=r"the trial train.batch_size=-3 is not a valid config"):
        plan(load_sweep(sweep_file(tmp_path, base, axes={"train.batch_size": [64, -3]})))


def test_local_sweep_ranks_resumes_and_keeps_a_crashed_trial(tmp_path: Path, base: list[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = sweep_file(tmp_path, base, axes={LR: [1e-3, 1e-4], "noise.z_dim": [4, 8]}, metric="reverse_kl",
                      target={"modes_covered": ">= 0", "hq_fraction": "<= 1"})
    out = tmp_path / "out"
    real_fit = Run.fit

    def crash_at_z4_lr1e4(self: Run, *args: object, **kwargs: object) -> dict:
        if self.cfg.noise.z_dim == 4 and self.cfg.optimizer.generator.lr == 1e-4:
            raise RuntimeError("simulated crash")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(Run, "fit", crash_at_z4_lr1e4)
    result: SweepResult = run_sweep(path, out, workers=0, progress=False)
    assert result.ran == 4 and result.skipped == 0
    statuses = {tuple(e["values"].values()): e["status"] for e in result.entries}
    assert statuses == {(1e-3, 4): "ok", (1e-3, 8): "ok", (1e-4, 4): "failed", (1e-4, 8): "ok"}
    failed = next(e for e in result.entries if e["status"] == "failed")
    assert failed["error"] == "RuntimeError: simulated crash" and "simulated crash" in failed["traceback"]

    # the results are the runs' own scores, ranked by the metric (lower reverse KL first)
    saved = json.loads(result.json_path.read_text())
    ok = [e for e in saved["trials"] if e["status"] == "ok"]
    for entry in ok:
        summary = json.loads((out / entry["run_dir"] / "summary.json").read_text())
        assert [s["reverse_kl"] for s in summary["scores"]] == metric_values(entry, "reverse_kl")
        assert entry["seeds"] == [0, 1] and len(entry["scores"]) == 2
        assert entry["seeds_on_target"] == [True, True]  # every seed covers >= 0 modes
    order = [e["name"] for e in ranked(ok, "reverse_kl", "min")]
    assert [e["name"] for e in result.best[None]] == order
    table = result.markdown_path.read_text()
    assert "| seeds on target |" in table and "| 2 of 2 |" in table
    assert "**failed**: RuntimeError: simulated crash" in table and table.index(order[0]) < table.index(order[-1])
    assert result.compare_path is not None and result.compare_path.is_file()

    # the same command again trains nothing; --retry-failed trains the crashed trial only
    monkeypatch.setattr(Run, "fit", real_fit)
    again = run_sweep(path, out, workers=0, progress=False)
    assert again.ran == 0 and again.skipped == 4
    retried = run_sweep(path, out, workers=0, progress=False, retry_failed=True)
    assert retried.ran == 1 and all(e["status"] == "ok" for e in retried.entries)


def test_a_trial_equals_the_same_population_trained_alone(tmp_path: Path, base: list[str]) -> None:
    """The packing rule changes nothing: a trial's seeds score as `ganscope train` would."""
    path = sweep_file(tmp_path, base, axes={LR: [5e-4]}, seeds=[3, 4])
    entry = run_sweep(path, tmp_path / "out", workers=0, progress=False).entries[0]
    alone = Run.create(ganscope.load_config(overrides=[*base, *(f"{k}=5e-4" for k in LR.split(",")),
                                                      "seed=3", "train.seeds=[3, 4]"]), tmp_path / "alone")
    summary = alone.fit(progress=False)
    assert [s["modes_covered"] for s in summary["scores"]] == metric_values(entry, "modes_covered")
    assert [s["reverse_kl"] for s in summary["scores"]] == metric_values(entry, "reverse_kl")


def test_local_pool_in_worker_processes(tmp_path: Path, base: list[str]) -> None:
    result = run_sweep(sweep_file(tmp_path, base), tmp_path / "out", workers=2, progress=False)
    assert result.ran == 2 and all(e["status"] == "ok" for e in result.entries)
    assert all((tmp_path / "out" / e["run_dir"] / TRIAL_JSON).is_file() for e in result.entries)


def test_cli_sweep_dry_run_json_and_bad_file(tmp_path: Path, base: list[str], capsys) -> None:
    path = sweep_file(tmp_path, base)
    assert main(["sweep", str(path), "-o", str(tmp_path / "out"), "--dry-run", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed["trials"]) == 2 and not (tmp_path / "out" / "trials").exists()
    assert main(["sweep", str(path), "-o", str(tmp_path / "out"), "-q", "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "| rank |" in printed and "2 trained, 0 already there" in printed

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"axes": {"seed": [1, 2]}}))
    assert main(["sweep", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "seeds are not swept" in err
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_ray_backend_trains_reports_and_resumes(tmp_path: Path, base: list[str]) -> None:
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'ganscope[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        path = sweep_file(tmp_path, [*base, "train.steps=40"], backend="ray", resources={"cpu": 1},
                          scheduler={"name": "asha", "grace_period": 20, "reduction_factor": 2})
        out = tmp_path / "out"
        result = run_sweep(path, out, progress=False)
        assert result.ran == 2 and {e["status"] for e in result.entries} <= {"ok", "stopped"}
        assert any(e["status"] == "ok" for e in result.entries)  # ASHA keeps the better half
        for entry in result.entries:
            assert len(entry["scores"]) == 2 and (out / entry["run_dir"] / TRIAL_JSON).is_file()
        again = run_sweep(path, out, progress=False)
        assert again.ran == 0 and again.skipped == 2
        # `ganscope bench` runs on the same engine and backend: two populations, one table.
        jobs = bench.plan("ring", ["gan", "pacgan2"], seeds=2, steps=20)
        result = bench.run_benchmark(jobs, tmp_path / "bench", progress=False, backend="ray")
        assert (result.ran, result.skipped) == (2, 0)
        assert [(e["method"], len(e["scores"])) for e in result.entries] == [("gan", 2), ("pacgan2", 2)]
        assert all((job.run_dir(tmp_path / "bench") / TRIAL_JSON).is_file() for job in jobs)
    finally:
        ray.shutdown()
