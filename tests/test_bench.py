"""The protocol benchmark: every method is a valid config everywhere, and `ganscope bench`
trains, records, renders, skips what is done and resumes what was interrupted."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from ganscope import bench
from ganscope.cli import build_parser, main
from ganscope.config import load_config
from ganscope.sweep import worker
from ganscope.train.run import Run


def _combinations() -> list[tuple[str, str, str]]:
    """Every (method, protocol, budget) that exists: each protocol's kind's methods and budgets."""
    return [(m, p, b) for p, protocol in bench.PROTOCOLS.items() for b in protocol.kind.budgets
            for m in bench.kind_methods(protocol.kind)]


@pytest.mark.parametrize("method, protocol, budget", _combinations())
def test_every_method_builds_for_every_protocol_and_budget(method: str, protocol: str, budget: str,
                                                           tmp_path: Path) -> None:
    """Loading validates each piece and combination; building the run catches what only
    the scheme checks (MAD-GAN's batch must split evenly among its generators)."""
    cfg = bench.method_config(method, protocol, budget, seeds=1)
    assert cfg.data.name == protocol.removesuffix("-conditional")
    assert (cfg.conditioning.name == method) == (method in ("cgan", "projection", "acgan"))
    assert cfg.train.eval_samples == bench.PROTOCOLS[protocol].samples_per_seed
    Run(cfg, tmp_path)


def test_pacgan_keeps_the_budgets_number_of_packs() -> None:
    plain = bench.method_config("gan", "ring", "paper")
    packed = bench.method_config("pacgan3", "ring", "paper")
    assert packed.train.batch_size == 3 * plain.train.batch_size == 300
    assert plain.train.steps == 400_000 and plain.train.seeds == bench.DEFAULT_SEEDS


def test_image_jobs_are_dcgans_on_the_stacked_protocol() -> None:
    jobs = bench.plan("stacked-digits")
    assert [j.method for j in jobs] == ["gan", "unrolled", "pacgan2", "minibatch", "wgan-gp", "madgan", "mrgan"]
    cfgs = {j.method: j.cfg for j in jobs}
    for cfg in cfgs.values():
        assert (cfg.data.name, cfg.data.size, cfg.train.eval_samples) == ("stacked-digits", 16, 26_000)
        assert (cfg.generator.name, cfg.discriminator.name, cfg.noise.z_dim) == ("dcgan", "dcgan", 100)
        assert cfg.seed_list() == [1000, 1001, 1002, 1003, 1004]
    assert cfgs["gan"].train.batch_size == 64 and cfgs["pacgan2"].train.batch_size == 128  # 64 packs of 2
    # a gradient penalty cannot go with batch norm in D, which couples a batch's samples
    assert cfgs["wgan-gp"].discriminator.batch_norm is False and cfgs["gan"].discriminator.batch_norm is True
    assert "discriminator.batch_norm=false" not in bench.method_overrides("wgan-gp", 64)  # points keep their D
    paper = bench.method_config("gan", "stacked-mnist", "paper")
    assert (paper.train.steps, paper.train.batch_size, paper.generator.width, paper.discriminator.width) == (
        100_000, 64, 64, 64)
    assert paper.optimizer.generator.lr == 2e-4 and paper.optimizer.generator.betas == (0.5, 0.999)
    assert paper.train.lr_schedule == "constant" and paper.noise.dist == "uniform"


def test_protocol_groups_name_every_protocol_of_a_kind() -> None:
    assert bench.protocols_named("points") == ["ring", "grid"]
    assert bench.protocols_named("images") == ["stacked-digits", "stacked-mnist"]
    assert bench.protocols_named("conditional") == ["mnist-conditional", "stacked-mnist-conditional"]
    every = ["ring", "grid", "stacked-digits", "stacked-mnist", "mnist-conditional", "stacked-mnist-conditional"]
    assert bench.protocols_named("all") == every
    assert [(j.protocol, j.method) for j in bench.plan("all", ["gan"], seeds=1)] == [(p, "gan") for p in every]
    conditional = ["gan", "cgan", "projection", "acgan", "projection-cbn"]
    assert [j.method for j in bench.plan("conditional", seeds=1)] == conditional * 2


@pytest.fixture
def tiny_budget(monkeypatch: pytest.MonkeyPatch) -> str:
    """The cpu budget with tiny networks, so a smoke benchmark takes seconds."""
    cpu = bench.POINTS.budgets["cpu"]
    small = ("generator.hidden=16", "generator.depth=2", "discriminator.hidden=16", "discriminator.depth=2",
             "train.report=false")
    monkeypatch.setitem(bench.POINTS.budgets, "tiny", bench.Budget("tiny", None, cpu.overrides + small, "for tests"))
    return "tiny"


def test_smoke_benchmark_writes_table_and_skips_finished_entries(tiny_budget: str, tmp_path: Path, capsys) -> None:
    args = ["bench", "ring", "--steps", "30", "--seeds", "2", "--budget", tiny_budget, "-o", str(tmp_path), "-q"]
    assert main([*args, "--methods", "gan", "pacgan2"]) == 0
    out, err = capsys.readouterr()
    assert "[1/2] ring gan" in err and "[2/2] ring pacgan2" in err
    entries = json.loads((tmp_path / bench.JSON_NAME).read_text())["entries"]
    assert [(e["method"], e["protocol"], e["n_seeds"], e["steps"]) for e in entries] == [
        ("gan", "ring", 2, 30), ("pacgan2", "ring", 2, 30)]
    assert [e["seeds"] for e in entries] == [[1000, 1001]] * 2  # evaluation seeds unless told otherwise
    for e in entries:
        assert [s["n_samples"] for s in e["scores"]] == [bench.POINT_SAMPLES] * 2
        assert e["wall_time_s"] > 0 and e["resumed_from_step"] == 0
    table = (tmp_path / bench.MARKDOWN_NAME).read_text()
    assert out.startswith(table)
    for published in ("| GAN | PacGAN Table 1, ± s.e. | 10 runs | 6.3 ± 0.5 | 98.2 ± 0.2 | 0.45 ± 0.09 |",
                      "| VEEGAN | VEEGAN Table 1, mean | 5 runs | 8 | 52.9 |", "| GDPP-GAN | GDPP Table 1, mean | — |"):
        assert published in table
    cell = r"\d+\.\d+ ± \d+\.\d+"
    for method in ("gan", "pacgan2"):
        assert re.search(rf"\| \*\*{method}\*\* \| ganscope, ± std \| 1000-1001 \| {cell} \| {cell} \| ", table), method
    for e in entries:  # the worst-seed column: fewest modes / lowest HQ % / highest reverse KL
        modes = min(s["modes_covered"] for s in e["scores"])
        hq = 100 * min(s["hq_fraction"] for s in e["scores"])
        assert f"| {modes} / {hq:.1f} / " in table
    assert "30 steps instead of the budget's 4,000" in table
    assert "`d_modifiers=[{name: pack, m: 2}]`, `train.batch_size=256`" in table  # 128 packs of 2

    assert main([*args, "--methods", "gan", "pacgan2", "hinge", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert (result["ran"], result["skipped"]) == (1, 2)
    assert err.count("skipped") == 2
    again = json.loads((tmp_path / bench.JSON_NAME).read_text())["entries"]
    assert again[:2] == entries and again[2]["method"] == "hinge"


def test_evaluation_seeds_lead_the_table_and_tuning_seeds_stand_apart(tiny_budget: str, tmp_path: Path) -> None:
    args = ["bench", "ring", "--steps", "10", "--seeds", "2", "--budget", tiny_budget, "-o", str(tmp_path), "-q",
            "--methods", "gan"]
    assert main([*args, "--base-seed", "0"]) == 0  # tuning seeds trained first: order comes from the seeds
    tuning_only = (tmp_path / bench.MARKDOWN_NAME).read_text()
    headline = tuning_only.index("## Evaluation seeds (1000-1999): the results")
    assert headline < tuning_only.index("None trained yet") < tuning_only.index("## Tuning seeds")

    assert main(args) == 0  # the default base seed
    entries = json.loads((tmp_path / bench.JSON_NAME).read_text())["entries"]
    assert [e["seeds"] for e in entries] == [[0, 1], [1000, 1001]]
    table = (tmp_path / bench.MARKDOWN_NAME).read_text()
    positions = [table.index(text) for text in (
        "## Evaluation seeds (1000-1999): the results",
        "| **gan** | ganscope, ± std | 1000-1001 |",
        "## Tuning seeds (0-999): settings were chosen on these",
        "| **gan** | ganscope, ± std | 0-1 |",
    )]
    assert positions == sorted(positions)
    assert "None trained yet" not in table and "## Other seeds" not in table

    straddling = {**entries[0], "seeds": [999, 1000]}  # neither range: not passed off as either
    table = bench.render_markdown([*entries, straddling])
    assert table.index("## Tuning seeds") < table.index("## Other seeds") < table.index("| 999-1000 |")


def test_cli_default_base_seed_is_the_first_evaluation_seed() -> None:
    args = build_parser().parse_args(["bench", "ring"])
    assert args.base_seed == bench.EVALUATION_SEEDS.start
    assert bench.TUNING_SEEDS.stop <= args.base_seed


def test_entries_saved_by_another_process_meanwhile_are_kept(tiny_budget: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Two bench processes (one per protocol) share one protocols.json: each re-reads it
    # before saving, so neither drops what the other finished while it trained.
    args = ["bench", "ring", "--steps", "10", "--seeds", "1", "--budget", tiny_budget, "-o", str(tmp_path), "-q"]
    assert main([*args, "--methods", "gan"]) == 0
    [first] = json.loads((tmp_path / bench.JSON_NAME).read_text())["entries"]
    real_entry = bench.bench_entry

    def other_process_finishes_meanwhile(job, trial, out):  # noqa: ANN001, ANN202
        foreign = {**first, "protocol": "grid"}
        bench.save_entries(out, [first, foreign])
        return real_entry(job, trial, out)

    monkeypatch.setattr(bench, "bench_entry", other_process_finishes_meanwhile)
    assert main([*args, "--methods", "hinge"]) == 0
    saved = json.loads((tmp_path / bench.JSON_NAME).read_text())["entries"]
    assert [(e["method"], e["protocol"]) for e in saved] == [("gan", "ring"), ("gan", "grid"), ("hinge", "ring")]


def test_a_crashed_population_is_recorded_and_the_others_are_saved(
    tiny_budget: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # bench runs its jobs as trials of the sweep engine: a crash is kept in the run
    # folder's trial.json, the other populations train and are saved, the command fails.
    real = worker.resume_or_create

    def crash_hinge(cfg, run_dir, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if run_dir.name == "ring-hinge":
            raise RuntimeError("boom")
        return real(cfg, run_dir, *args, **kwargs)

    monkeypatch.setattr(worker, "resume_or_create", crash_hinge)
    args = ["bench", "ring", "--steps", "10", "--seeds", "1", "--budget", tiny_budget, "-o", str(tmp_path), "-q",
            "--methods", "hinge", "gan"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ganscope: 1 of 2 population(s) failed (ring hinge: RuntimeError: boom)")
    saved = json.loads((tmp_path / bench.JSON_NAME).read_text())["entries"]
    assert [e["method"] for e in saved] == ["gan"]
    [job, _] = bench.plan("ring", ["hinge", "gan"], tiny_budget, seeds=1, steps=10)
    trial = json.loads((job.run_dir(tmp_path) / "trial.json").read_text())
    assert trial["status"] == "failed" and "boom" in trial["traceback"]
    monkeypatch.setattr(worker, "resume_or_create", real)
    assert main(args) == 0  # the same command trains what failed
    saved = json.loads((tmp_path / bench.JSON_NAME).read_text())["entries"]
    assert [e["method"] for e in saved] == ["gan", "hinge"]


def test_interrupted_population_resumes_from_its_checkpoint(tiny_budget: str, tmp_path: Path) -> None:
    [job] = bench.plan("grid", ["gan"], tiny_budget, seeds=2, steps=30)
    partial = load_config(job.cfg.to_dict(), ["train.steps=10"])
    Run.create(partial, job.run_dir(tmp_path)).fit(progress=False)
    Run.open(job.run_dir(tmp_path), ["train.steps=30"])  # as a run stopped at step 10 of 30 looks
    [entry] = bench.run_benchmark([job], tmp_path, progress=False).entries
    assert entry["resumed_from_step"] == 10 and entry["steps"] == 30
    assert json.loads((job.run_dir(tmp_path) / "summary.json").read_text())["step"] == 30
    assert "resumed at step 10" in (tmp_path / bench.MARKDOWN_NAME).read_text()


@pytest.mark.parametrize("argv, message", [
    (["ring", "--methods", "gan", "nope"], "unknown method 'nope'; valid: gan, gan-minimax, unrolled"),
    (["square"], "unknown protocol 'square'; valid: ring, grid, stacked-digits, stacked-mnist, "
                   "mnist-conditional, stacked-mnist-conditional, points, images, conditional, all"),
    (["all", "--budget", "gpu"], "unknown budget 'gpu' for the points protocols (ring, grid); valid: cpu, cpu-long, "
                                 "paper"),
    (["images", "--budget", "cpu-long"], "unknown budget 'cpu-long' for the images protocols (stacked-digits, "
                                         "stacked-mnist); valid: cpu, paper"),
    (["stacked-digits", "--methods", "gan", "hinge"], "method 'hinge' does not apply to the images protocols "
     "(stacked-digits, stacked-mnist); valid there: gan, unrolled, pacgan2, minibatch, wgan-gp, madgan, mrgan"),
    (["all", "--methods", "ebgan"], "method 'ebgan' does not apply to the images protocols"),
])
def test_unknown_names_exit_2_with_one_line(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    assert main(["bench", *argv, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ganscope: ") and message in err[0]
    assert not any(tmp_path.iterdir())


@pytest.fixture
def tiny_images(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image cpu budget with tiny DCGANs, on stacked 8x8 digits scored by a 4-epoch
    oracle (trained into a temporary cache) on 300 samples per seed: seconds, not minutes."""
    monkeypatch.setenv("GANSCOPE_CACHE", str(tmp_path_factory.mktemp("oracle-cache")))
    small = ("generator.width=8", "discriminator.width=8", "noise.z_dim=8", "train.batch_size=16",
             "train.report=false")
    cpu = bench.IMAGES.budgets["cpu"]
    monkeypatch.setitem(bench.IMAGES.budgets, "tiny", bench.Budget("tiny", None, cpu.overrides + small, "for tests"))
    stacked = bench.PROTOCOLS["stacked-digits"]
    monkeypatch.setitem(bench.PROTOCOLS, "stacked-digits", dataclasses.replace(
        stacked, overrides=(*stacked.overrides, "data.size=8", "data.classifier_epochs=4"), samples_per_seed=300))
    return "tiny"


def test_smoke_image_population_renders_the_stacked_table(tiny_images: str, tmp_path: Path) -> None:
    jobs = bench.plan("stacked-digits", ["gan", "wgan-gp"], tiny_images, seeds=2, steps=4)
    result = bench.run_benchmark(jobs, tmp_path, progress=False)
    assert (result.ran, result.skipped) == (2, 0)
    entries = json.loads((tmp_path / bench.JSON_NAME).read_text())["entries"]
    assert [(e["method"], e["protocol"], e["n_modes"], e["seeds"]) for e in entries] == [
        ("gan", "stacked-digits", 1000, [1000, 1001]), ("wgan-gp", "stacked-digits", 1000, [1000, 1001])]
    assert "`discriminator.batch_norm=false`" in (tmp_path / bench.MARKDOWN_NAME).read_text()
    table = (tmp_path / bench.MARKDOWN_NAME).read_text()
    for e in entries:
        protocol = [s["protocol"] for s in e["scores"]]
        assert [p["n_samples"] for p in protocol] == [300, 300]
        assert 1 <= min(p["modes"] for p in protocol) <= 300
        modes, kl = [p["modes"] for p in protocol], [p["kl"] for p in protocol]
        # the cells: mean ± sample std of the protocol numbers, then the worst seed's
        assert e["protocol_modes_mean"] == pytest.approx(sum(modes) / 2)
        cells = (f"| {sum(modes) / 2:.1f} ± {abs(modes[0] - modes[1]) / math.sqrt(2):.1f} | "
                 f"{sum(kl) / 2:.3f} ± {abs(kl[0] - kl[1]) / math.sqrt(2):.3f} | ")
        assert f"| **{e['method']}** | ganscope, ± std | 1000-1001 {cells}" in table, e["method"]
        assert f"| {min(modes)} / {max(kl):.3f} |" in table
    accuracy = entries[0]["scores"][0]["protocol"]["oracle_held_out_accuracy"]
    assert (f"#### stacked-digits (1000 modes, 300 samples per seed; modes read by the oracle CNN, held-out accuracy "
            f"{100 * accuracy:.1f}%)") in table
    assert "| method | source | seeds | modes (all samples) | KL (all samples) | HQ % | worst seed: modes / KL | " \
           "wall time |" in table
    for published in ("| DCGAN | VEEGAN Table 2, mean | — | 99 | 3.4 | — | — | — |",
                      "| PacDCGAN2 | PacGAN Table 2, ± as printed | 10 runs | 1000 ± 0 | 0.06 ± 0.003 | — | — |",
                      "| GDPP-GAN | GDPP Table 3, mean | — | 1000 | 0.135 | — | — | — |"):
        assert published in table
    assert "the published rows give scale only" in table and "ring" not in table.split("\n")[0]
    assert "Goal: 1000 modes and KL <= 0.05 on every seed with the best method. Reached by: no row here." in table
    assert "### Image protocols: tiny budget, 4 steps" in table and "4 steps instead of the budget's 2,000" in table
    assert "| HQ % | reverse KL |" not in table  # no 2-D table, and no 2-D budgets listed
    assert "2-D point protocols, `cpu`" not in table and "Image protocols, `paper` (**not run here**)" in table


def test_goal_is_reached_only_when_every_seed_has_every_mode_and_a_small_kl() -> None:
    def seed(modes: int, kl: float) -> dict[str, object]:
        return {"protocol": {"modes": modes, "kl": kl}}

    reached = bench.IMAGES.goal.reached
    assert reached([seed(1000, 0.05), seed(1000, 0.01)])
    assert not reached([seed(1000, 0.01), seed(999, 0.01)])
    assert not reached([seed(1000, 0.051), seed(1000, 0.01)])
