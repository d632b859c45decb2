"""MLflow tracking of run folders (`pip install 'ganscope[mlflow]'`), beside TensorBoard.

A run folder already holds everything a tracker wants (config, per-seed metrics, monitor
events, summary, report), so tracking is a copy of the folder into MLflow rather than a
second logging path inside the training loop: `log_run` copies the config as parameters
(dotted keys), every numeric train and eval record as a per-seed metric
(`seed_<s>/<name>` at its step), the population's means and stds at the end, the verdict
and the seeds as tags, the events (`events.jsonl`), the summary, the config and
`report.html` as artifacts. `train.mlflow.enabled` makes `Run.fit` call it when a run
ends; `ganscope mlflow RUN...` does it for folders trained earlier.

The MLflow run id and the last step copied are kept in the folder (`mlflow.json`), so a
resumed run continues the same MLflow run and copies only the steps after that one
(MLflow cannot delete metrics: steps a rollback retrains are kept as first logged).

The store. MLflow 3 keeps a local tracking store in SQLite (its file store is frozen), so
the default is `sqlite:///mlflow.db` in the working directory, artifacts in `mlartifacts/`
beside it (`mlflow ui --backend-store-uri sqlite:///mlflow.db` shows them); `train.mlflow.uri` (or the
`MLFLOW_TRACKING_URI` environment variable) names another store or a tracking server.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ganscope.errors import ConfigError
from ganscope.train.checkpoint import atomic_write_text

MLFLOW_JSON = "mlflow.json"
DEFAULT_URI = "sqlite:///mlflow.db"
#: MLflow's limits on one `log_batch` call.
BATCH_METRICS = 1000
BATCH_PARAMS = 100
PARAM_VALUE_CHARS = 6000


def tracking_uri(uri: str | None) -> str:
    """`uri`, else the MLFLOW_TRACKING_URI environment variable, else the local SQLite store;
    a relative SQLite path made absolute, so that a resume from another folder finds it."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith("sqlite:///"):
        return "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return uri


def flatten(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, value as text) for every leaf of a nested config; lists stay whole."""
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from flatten(value, f"{name}.")
        else:
            yield name, json.dumps(value)[:PARAM_VALUE_CHARS]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def record_metrics(records: list[dict[str, Any]], after_step: int) -> Iterator[tuple[str, float, int]]:
    """(name, value, step) of every numeric field of the train and eval records past `after_step`."""
    for r in records:
        if r.get("kind") not in ("train", "eval") or r["step"] <= after_step:
            continue
        for key, value in r.items():
            number = None if key in ("step", "seed", "kind") else _number(value)
            if number is not None:
                yield f"seed_{r['seed']}/{key}", number, int(r["step"])


def _exists(client: Any, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id).info.lifecycle_stage != "deleted"
    except MlflowException:
        return False


def require_mlflow() -> None:
    """A one-line ConfigError, before anything trains, when MLflow is not installed."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError("MLflow tracking needs MLflow: pip install 'ganscope[mlflow]' (or set "
                          "train.mlflow.enabled=false)") from None


def artifact_location(uri: str) -> str | None:
    """Where a new experiment in a local SQLite store keeps its artifacts: `mlartifacts/`
    beside the database (MLflow's own default, ./mlruns, depends on the working
    directory); None for a server, which decides."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()


def _client(uri: str) -> Any:
    require_mlflow()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def copy_or_warn(run_dir: Path, uri: str | None, experiment: str, tags: Mapping[str, Any]) -> None:
    """`log_run` at the end of training: a store that cannot be reached costs a warning,
    not the run, whose folder is complete (`ganscope mlflow RUN` copies it later)."""
    try:
        log_run(run_dir, uri, experiment, tags)
    except Exception as err:  # noqa: BLE001  (MLflow's and the network's errors alike)
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"ganscope: the run was not copied into MLflow at {tracking_uri(uri)} ({type(err).__name__}: "
              f"{message}); the run folder is complete: ganscope mlflow {run_dir} copies it later", file=sys.stderr)


def log_run(run_dir: Path | str, uri: str | None = None, experiment: str = "ganscope",
            tags: Mapping[str, Any] | None = None) -> str:
    """Copy the run folder into MLflow (see the module's docstring); returns the MLflow run id."""
    from mlflow.entities import Metric, Param, RunTag

    from ganscope.train.log import MetricsLog
    from ganscope.report.single import REPORT
    from ganscope.train.run import CONFIG, METRICS, SUMMARY

    run_dir = Path(run_dir)
    uri = tracking_uri(uri)
    client = _client(uri)
    state_path = run_dir / MLFLOW_JSON
    state = json.loads(state_path.read_text()) if state_path.is_file() else None
    if state is not None and (state.get("uri") != uri or not _exists(client, state["run_id"])):
        state = None  # another store (or the run was deleted there): a new MLflow run
    if state is None:
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(
            experiment, artifact_location=artifact_location(uri))
        run_id = client.create_run(experiment_id, run_name=run_dir.name,
                                   tags={"ganscope.run_dir": str(run_dir.resolve())}).info.run_id
        params = [Param(k, v) for k, v in flatten(yaml.safe_load((run_dir / CONFIG).read_text()))]
        for i in range(0, len(params), BATCH_PARAMS):
            client.log_batch(run_id, params=params[i:i + BATCH_PARAMS])
        state = {"uri": uri, "run_id": run_id, "experiment": experiment, "step": -1}
    run_id = state["run_id"]
    now = int(time.time() * 1000)
    records = MetricsLog(run_dir / METRICS).read()
    metrics = [Metric(name, value, now, step) for name, value, step in record_metrics(records, state["step"])]
    summary = json.loads((run_dir / SUMMARY).read_text()) if (run_dir / SUMMARY).is_file() else {}
    step = int(summary.get("step", max((r["step"] for r in records), default=0)))
    metrics += [Metric(k, v, now, step) for k, v in ((k, _number(v)) for k, v in summary.items()
                                                      if k.endswith(("_mean", "_std"))) if v is not None]
    for i in range(0, len(metrics), BATCH_METRICS):
        client.log_batch(run_id, metrics=metrics[i:i + BATCH_METRICS])
    run_tags = {"ganscope.seeds": json.dumps(summary.get("seeds")), **{k: str(v) for k, v in (tags or {}).items()}}
    if summary.get("verdict"):
        run_tags["ganscope.verdict"] = summary["verdict"][:5000]
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in run_tags.items()])
    client.log_text(run_id, "".join(json.dumps(r) + "\n" for r in records if r.get("kind") == "event"),
                    "events.jsonl")
    for name in (REPORT, SUMMARY, CONFIG):  # what the folder shows a reader, when present
        if (run_dir / name).is_file():
            client.log_artifact(run_id, str(run_dir / name))
    if summary:
        client.set_terminated(run_id, "FINISHED")
    atomic_write_text(state_path, json.dumps({**state, "step": step}, indent=2) + "\n")
    return run_id
