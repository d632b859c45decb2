"""MLflow tracking against a local store: what a run logs, a resume continuing the same
MLflow run without repeating steps, and the CLI for folders trained earlier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ganscope
from ganscope.cli import main
from ganscope.tracking import MLFLOW_JSON, flatten, record_metrics

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install 'ganscope[mlflow]')")


def test_flatten_and_records_are_what_the_folder_holds() -> None:
    assert dict(flatten({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": {}})) == {
        "a.b": "1", "a.c": "[1, 2]", "d": "null", "e": "{}"}
    records = [{"kind": "train", "step": 10, "seed": 3, "d_loss": 0.5, "flag": True, "nan": float("nan")},
               {"kind": "eval", "step": 20, "seed": 3, "modes_covered": 7, "counts": [1, 2]},
               {"kind": "event", "step": 20, "seed": 3, "event": "collapse"}]
    assert list(record_metrics(records, after_step=-1)) == [("seed_3/d_loss", 0.5, 10),
                                                            ("seed_3/modes_covered", 7.0, 20)]
    assert list(record_metrics(records, after_step=10)) == [("seed_3/modes_covered", 7.0, 20)]


def test_run_logs_to_mlflow_and_resume_continues_the_same_run(tmp_path: Path, tiny_overrides: list[str]) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = ganscope.load_config(overrides=[*tiny_overrides, "train.steps=40", "train.seeds=2",
                                          "train.mlflow.enabled=true", f"train.mlflow.uri={uri}",
                                          "train.mlflow.experiment=tests", "train.report=true"])
    run = ganscope.Run.create(cfg, tmp_path / "run")
    summary = run.fit(progress=False)
    state = json.loads((tmp_path / "run" / MLFLOW_JSON).read_text())
    client = mlflow.MlflowClient(tracking_uri=uri)
    logged = client.get_run(state["run_id"])
    assert logged.info.status == "FINISHED" and state["step"] == 40
    assert logged.data.params["train.steps"] == "40" and logged.data.params["data.name"] == '"ring"'
    assert logged.data.tags["ganscope.verdict"] == summary["verdict"]
    history = client.get_metric_history(state["run_id"], "seed_1/d_loss")
    assert [m.step for m in history] == [10, 20, 30, 40]
    evals = [r for r in run.log.read() if r["kind"] == "eval" and r["seed"] == 1]
    assert [m.value for m in client.get_metric_history(state["run_id"], "seed_1/hq_fraction")] == \
        [r["hq_fraction"] for r in evals]
    assert logged.data.metrics["modes_covered_mean"] == summary["modes_covered_mean"]
    artifacts = {a.path for a in client.list_artifacts(state["run_id"])}
    assert {"report.html", "summary.json", "config.yaml", "events.jsonl"} <= artifacts

    resumed = ganscope.Run.open(tmp_path / "run", ["train.steps=60"])
    resumed.fit(progress=False)
    again = json.loads((tmp_path / "run" / MLFLOW_JSON).read_text())
    assert again["run_id"] == state["run_id"] and again["step"] == 60
    steps = [m.step for m in client.get_metric_history(state["run_id"], "seed_1/d_loss")]
    assert steps == [10, 20, 30, 40, 50, 60]  # nothing logged twice


def test_a_store_that_fails_costs_a_warning_not_the_run(tmp_path: Path, tiny_overrides: list[str],
                                                         capsys) -> None:
    cfg = ganscope.load_config(overrides=[*tiny_overrides, "train.steps=20", "train.mlflow.enabled=true",
                                          "train.mlflow.uri=nosuch://store"])
    summary = ganscope.Run.create(cfg, tmp_path / "run").fit(progress=False)
    assert summary["step"] == 20 and (tmp_path / "run" / "summary.json").is_file()
    err = capsys.readouterr().err
    assert "was not copied into MLflow at nosuch://store" in err and "ganscope mlflow" in err
    assert main(["mlflow", str(tmp_path / "run"), "--uri", "nosuch://store"]) == 2
    err = capsys.readouterr().err.strip()
    assert "was not copied into MLflow" in err and "\n" not in err


def test_cli_copies_an_earlier_run_and_refuses_other_folders(tmp_path: Path, tiny_overrides: list[str],
                                                             capsys) -> None:
    run = ganscope.Run.create(ganscope.load_config(overrides=[*tiny_overrides, "train.steps=20"]), tmp_path / "run")
    run.fit(progress=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["mlflow", str(tmp_path / "run"), "--uri", uri, "--experiment", "earlier"]) == 0
    assert "MLflow run" in capsys.readouterr().out
    runs = mlflow.MlflowClient(tracking_uri=uri).search_runs(
        [mlflow.MlflowClient(tracking_uri=uri).get_experiment_by_name("earlier").experiment_id])
    assert len(runs) == 1 and runs[0].data.params["train.steps"] == "20"
    assert main(["mlflow", str(tmp_path), "--uri", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a run folder" in err and "\n" not in err
