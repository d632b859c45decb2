"""The command line end to end, with small settings."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ganscope.cli import main


@pytest.fixture
def small(tiny_overrides) -> list[str]:
    return [a for o in tiny_overrides + ["train.steps=40", "train.seeds=2"] for a in ("-s", o)]


def test_demo_eval_sample_report_resume(tmp_path, small, capsys) -> None:
    run = tmp_path / "demo"
    assert main(["demo", "-q", "-o", str(run), *small]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ring (2 seeds): ")
    assert "seed 0:" in out and "seed 1:" in out and "report:" in out

    assert main(["eval", str(run), "--json", "-n", "300", "-m", "prdc"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["metrics"]) == {"0", "1"}
    assert 0.0 <= result["metrics"]["1"]["prdc"]["coverage"] <= 1.0
    assert result["seeds"] == [0, 1] and len(result["scores"]) == 2
    assert result["scores"][0]["n_samples"] == 300
    assert sum(result["scores"][0]["counts"]) == round(300 * result["scores"][0]["hq_fraction"])

    assert main(["sample", str(run), "-n", "50", "-o", str(tmp_path / "s.npy"), "--seed", "1"]) == 0
    assert np.load(tmp_path / "s.npy").shape == (50, 2)
    assert main(["sample", str(run), "-n", "50", "-o", str(tmp_path / "all.npy"), "--all-seeds"]) == 0
    both = np.load(tmp_path / "all.npy")
    assert both.shape == (2, 50, 2)
    np.testing.assert_array_equal(both[1], np.load(tmp_path / "s.npy"))

    assert not (run / "report.html").exists()  # train.report=false (tiny_overrides)
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").read_text().count("<img") >= 2

    assert main(["resume", "-q", str(run), "-s", "train.steps=60"]) == 0
    capsys.readouterr()
    assert json.loads((run / "summary.json").read_text())["step"] == 60


def test_list_json_names_every_registry(capsys) -> None:
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    for kind in ("datasets", "generators", "discriminators", "objectives", "regularizers", "schemes",
                 "metrics", "profiles"):
        assert listing[kind], kind
    assert {"ring", "grid", "mixture", "file"} <= {e["name"] for e in listing["datasets"]}
    assert {"minimax", "nonsaturating"} <= {e["name"] for e in listing["objectives"]}


def test_train_from_yaml_with_profile_and_file_data(tmp_path, small, capsys) -> None:
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 0.1, (200, 2)), rng.normal(3, 0.1, (200, 2))])
    np.save(tmp_path / "points.npy", points)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data:\n  name: file\n  path: {tmp_path / 'points.npy'}\n")
    assert main(["train", str(cfg), "-q", "-o", str(tmp_path / "run"), "--profile", "demo", *small]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "BIC" in summary["modes_found_by"]
    assert summary["scores"][0]["n_modes"] == 2


def test_user_errors_exit_2_with_one_line(tmp_path, capsys) -> None:
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert main(["resume", str(tmp_path / "missing")]) == 2
    assert main(["train", "-q", "--profile", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert all(line.startswith("ganscope: ") for line in err)
    assert "unknown profile 'nope'; valid: cyclegan-digits, demo" in err[2]


HELP_PAGES = [[], ["train"], ["score"], ["bench"], ["theory"], ["theory", "optimal-d"]]


def test_help_imports_neither_torch_nor_numpy() -> None:
    """`ganscope --help` must answer at once; importing torch alone takes seconds."""
    script = (
        "import sys\n"
        "from ganscope.cli import main\n"
        f"for page in {HELP_PAGES!r}:\n"
        "    assert main([*page, '--help']) == 0\n"
        "print(sorted({'torch', 'numpy', 'sklearn', 'matplotlib'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith("[]"), done.stdout[-300:]
    assert "usage: ganscope theory optimal-d" in done.stdout


def test_usage_errors_are_one_line(capsys) -> None:
    assert main(["sample", "runs/x", "-n", "-3", "-o", "s.npy"]) == 2
    err = capsys.readouterr().err
    assert err == "ganscope: argument -n: must be at least 1 (got -3); see `ganscope sample --help`\n"


def test_score_text_says_how_the_modes_were_found(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 0.1, (100, 2)), rng.normal(3, 0.1, (100, 2))])
    np.savetxt(tmp_path / "points.csv", points, delimiter=",")
    np.save(tmp_path / "samples.npy", points[::2])
    assert main(["score", "--data", str(tmp_path / "points.csv"), str(tmp_path / "samples.npy")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("file: 2/2 modes covered")
    assert lines[1] == "modes: spherical Gaussian mixture, 2 components chosen by BIC (1..30)"
    assert main(["score", "--data", "ring", str(tmp_path / "samples.npy")]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "modes: known centres"
