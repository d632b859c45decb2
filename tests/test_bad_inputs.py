"""Bad input to every command: one line on stderr starting `ganscope:`, a non-zero exit
code, no traceback, and every file that existed before left byte for byte as it was.

Each case prepares its files in its own folder, runs the command in-process from that
folder (so a stray default output such as `runs/` would be noticed), and names a phrase
the message must contain, so a misleading message fails too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from ganscope.cli import main
from ganscope.train.run import CHECKPOINT, CONFIG, METRICS, SUMMARY

TINY = [
    "train.steps=20", "train.eval_every=10", "train.log_every=10", "train.checkpoint_every=10",
    "train.eval_samples=200", "train.batch_size=32", "train.seeds=2", "noise.z_dim=4",
    "generator.hidden=16", "generator.depth=2", "discriminator.hidden=16", "discriminator.depth=2", "train.report=false",
]
POINTS = np.random.default_rng(0).normal(size=(50, 2))
CSV_20_ROWS = "x,y\n" + "".join(f"{a},{b}\n" for a, b in POINTS[:20])

Setup = Callable[[Path, Path], None]
"""Prepare files in the case's folder, given that folder and the shared finished run."""


class Case(NamedTuple):
    name: str
    argv: str  # {dir}: the case's folder, {run}: the shared finished run, {copy}: {dir}/run
    expect: str  # a phrase the one-line message must contain
    setup: Setup = lambda folder, run: None


def write(name: str, content: str | bytes) -> Setup:
    def setup(folder: Path, _run: Path) -> None:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)

    return setup


def save(name: str, array: np.ndarray) -> Setup:
    def setup(folder: Path, _run: Path) -> None:
        np.save(folder / name, array, allow_pickle=array.dtype == object)

    return setup


def truncated_npy(name: str) -> Setup:
    def setup(folder: Path, _run: Path) -> None:
        np.save(folder / name, POINTS)
        whole = (folder / name).read_bytes()
        (folder / name).write_bytes(whole[: len(whole) // 2])

    return setup


def folder(name: str) -> Setup:
    return lambda where, _run: (where / name).mkdir(parents=True)


def copied_run(damage: Callable[[Path], None] = lambda run: None) -> Setup:
    """A copy of the finished run at {dir}/run, then `damage` applied to it."""

    def setup(where: Path, run: Path) -> None:
        shutil.copytree(run, where / "run")
        damage(where / "run")

    return setup


def truncate(name: str, keep: Callable[[bytes], int]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        content = (run / name).read_bytes()
        (run / name).write_bytes(content[: keep(content)])

    return damage


def damage_line(name: str, number: int) -> Callable[[Path], None]:
    """Cut line `number` of a JSON-lines file in half, as a disk fault would, not a kill."""

    def damage(run: Path) -> None:
        lines = (run / name).read_text().splitlines(keepends=True)
        lines[number - 1] = lines[number - 1][: len(lines[number - 1]) // 2] + "\n"
        (run / name).write_text("".join(lines))

    return damage


def edit_config(old: str, new: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        text = (run / CONFIG).read_text()
        assert old in text
        (run / CONFIG).write_text(text.replace(old, new, 1))

    return damage


def both(*setups: Setup) -> Setup:
    def setup(where: Path, run: Path) -> None:
        for one in setups:
            one(where, run)

    return setup


DATA = "train -q -s data.name=file -s data.path={dir}/"
SCORE = "score --data ring {dir}/"

CASES = [
    # configs
    Case("config-missing", "train {dir}/missing.yaml", "does not exist"),
    Case("config-is-a-folder", "train {dir}/cfg", "is a folder", folder("cfg")),
    Case("config-invalid-yaml", "train {dir}/c.yaml", "not valid YAML", write("c.yaml", "train: [1,\n")),
    Case("config-is-a-list", "train {dir}/c.yaml", "mapping", write("c.yaml", "- 1\n- 2\n")),
    Case("config-not-text", "train {dir}/c.yaml", "UTF-8", write("c.yaml", b"\xff\xfe\x00steps: [")),
    Case("config-unknown-key", "train -s nope=1", "unknown key"),
    Case("config-unknown-key-in-file", "train {dir}/c.yaml", "unknown key", write("c.yaml", "train: {stepz: 3}\n")),
    Case("config-bad-value-type", "train -s train.steps=abc", "train.steps"),
    Case("config-negative-steps", "train -s train.steps=-5", "greater than 0"),
    Case("override-without-equals", "train -s train.steps", "KEY=VALUE"),
    Case("override-invalid-yaml", "train -s train.steps=[1", "not valid YAML"),
    Case("unknown-objective", "train -s objective.name=nope", "unknown objective"),
    Case("unknown-profile", "train --profile nope", "unknown profile"),
    Case("nonsense-combination", "train -s objective.name=wgan-gp", "needs regularizer"),
    Case("empty-seed-list", "train -s train.seeds=[]", "train.seeds"),
    Case("demo-unknown-key", "demo -s nope=1", "unknown key"),
    # data files
    Case("data-path-missing", DATA + "missing.npy", "does not exist"),
    Case("data-path-not-given", "train -s data.name=file", "data.path"),
    Case("data-path-is-a-folder", DATA + "points", "is a folder", folder("points")),
    Case("data-empty-file", DATA + "p.csv", "0 points", write("p.csv", "")),
    Case("data-one-row", DATA + "p.csv", "1 point", write("p.csv", "x,y\n1,2\n")),
    Case("data-string-in-numeric-column", DATA + "p.csv", "row 21 is not numeric",
         write("p.csv", CSV_20_ROWS + "1,abc\n")),
    Case("data-nan-row", DATA + "p.csv", "NaN", write("p.csv", CSV_20_ROWS + "nan,1\n")),
    Case("data-inf-row", DATA + "p.csv", "infinite", write("p.csv", CSV_20_ROWS + "1,inf\n")),
    Case("data-ragged-rows", DATA + "p.csv", "different numbers of columns", write("p.csv", CSV_20_ROWS + "1,2,3\n")),
    Case("data-truncated-npy", DATA + "p.npy", "could not be read", truncated_npy("p.npy")),
    Case("data-pickled-object-array", DATA + "p.npy", "could not be read", save("p.npy", np.array([{}] * 20))),
    Case("data-3d-array", DATA + "p.npy", "points x features", save("p.npy", np.zeros((20, 2, 2)))),
    Case("data-npz-several-arrays", DATA + "p.npz", "data.key",
         lambda where, _run: np.savez(where / "p.npz", a=POINTS, b=POINTS)),
    Case("data-unsupported-suffix", DATA + "p.txt", "unsupported file type", write("p.txt", "1 2\n")),
    Case("data-more-modes-than-points", DATA + "p.npy -s data.n_modes=100", "exceeds", save("p.npy", POINTS)),
    Case("data-centres-wrong-dimension", DATA + "p.npy -s data.centres=[[1,2,3]]", "2-D points", save("p.npy", POINTS)),
    # where a new run goes
    Case("train-out-is-a-file", "train -q -o {dir}/f", "is a file", write("f", "mine")),
    Case("train-out-inside-a-file", "train -q -o {dir}/f/run", "is a file", write("f", "mine")),
    Case("train-out-holds-other-files", "train -q -o {dir}/mine", "not empty", write("mine/samples.npy", "mine")),
    Case("train-out-holds-a-run", "train -q -o {copy}", "not empty", copied_run()),
    Case("demo-out-is-a-file", "demo -q -o {dir}/f", "is a file", write("f", "mine")),
    # resume, eval and sample on run folders
    Case("resume-missing-folder", "resume {dir}/nothing", "not a ganscope run folder"),
    Case("resume-not-a-run", "resume {dir}/plain", "not a ganscope run folder", write("plain/notes.txt", "x")),
    Case("resume-truncated-checkpoint", "resume -q {copy}", "corrupt",
         copied_run(truncate(CHECKPOINT, lambda content: len(content) // 2))),
    Case("resume-without-checkpoint", "resume -q {copy}", "no checkpoint",
         copied_run(lambda run: (run / CHECKPOINT).unlink())),
    Case("resume-model-override", "resume -q {run} -s generator.hidden=8", "only train.* keys"),
    Case("resume-other-seeds", "resume -q {run} -s train.seeds=[5,6]", "seeds"),
    Case("resume-zero-steps", "resume -q {run} -s train.steps=0", "greater than 0"),
    Case("checkpoint-from-another-width", "resume -q {copy}", "checkpoint",
         copied_run(edit_config("hidden: 16", "hidden: 24"))),
    Case("checkpoint-from-other-seeds", "resume -q {copy}", "checkpoint",
         copied_run(edit_config("seeds: 2", "seeds: [5, 6]"))),
    Case("metrics-log-damaged-mid-file", "resume -q {copy} -s train.steps=30", f"{METRICS} line 3",
         copied_run(damage_line(METRICS, 3))),
    Case("eval-config-not-text", "eval {copy}", "UTF-8",
         copied_run(lambda run: (run / CONFIG).write_bytes(b"\xff\xfe"))),
    Case("eval-n-zero", "eval {run} -n 0", "at least 1"),
    Case("eval-n-negative", "eval {run} -n -5", "at least 1"),
    Case("eval-n-not-a-number", "eval {run} -n many", "not a whole number"),
    Case("eval-unknown-metric", "eval {run} -m nope", "unknown metric"),
    Case("eval-too-few-samples-for-metric", "eval {run} -n 1 -m prdc", "needs at least"),
    Case("eval-not-a-run", "eval {dir}/f", "not a ganscope run folder", write("f", "mine")),
    Case("sample-n-negative", "sample {run} -n -3 -o {dir}/s.npy", "at least 1"),
    Case("sample-n-zero", "sample {run} -n 0 -o {dir}/s.npy", "at least 1"),
    Case("sample-seed-not-in-population", "sample {run} --seed 99 -o {dir}/s.npy", "not in this run's population"),
    Case("sample-negative-key", "sample {run} --key -1 -o {dir}/s.npy", "at least 0"),
    Case("sample-out-is-a-folder", "sample {run} -o {dir}/out", "is a folder", folder("out")),
    Case("sample-out-inside-a-file", "sample {run} -o {dir}/f/s.npy", "is a file", write("f", "mine")),
    Case("sample-out-missing", "sample {run}", "required: -o/--out"),
    Case("sample-not-a-run", "sample {dir}/plain -o {dir}/s.npy", "not a ganscope run folder", folder("plain")),
    # score
    Case("samples-wrong-shape", SCORE + "s.npy", "per sample", save("s.npy", np.zeros((10, 3)))),
    Case("samples-one-dimensional", SCORE + "s.npy", "shape (10,)", save("s.npy", np.zeros(10))),
    Case("samples-empty", SCORE + "s.npy", "shape (0, 2)", save("s.npy", np.zeros((0, 2)))),
    Case("samples-nan", SCORE + "s.npy", "NaN", save("s.npy", np.array([[0.0, 1.0], [np.nan, 0.0]]))),
    Case("samples-truncated", SCORE + "s.npy", "not a NumPy .npy array", truncated_npy("s.npy")),
    Case("samples-pickled-objects", SCORE + "s.npy", "not a NumPy .npy array", save("s.npy", np.array([{}] * 3))),
    Case("samples-strings", SCORE + "s.npy", "must be numbers", save("s.npy", np.array([["a", "b"]]))),
    Case("samples-npz-archive", SCORE + "s.npz", "not a NumPy .npy file",
         lambda where, _run: np.savez(where / "s.npz", POINTS)),
    Case("samples-csv", SCORE + "s.csv", "not a NumPy .npy file", write("s.csv", CSV_20_ROWS)),
    Case("samples-folder", SCORE + "samples", "is a folder", folder("samples")),
    Case("samples-missing", SCORE + "nothing.npy", "does not exist"),
    Case("score-data-folder", "score --data {dir}/points {dir}/s.npy", "is a folder",
         both(folder("points"), save("s.npy", POINTS))),
    Case("score-data-unknown-name", "score --data nope {dir}/s.npy", "unknown dataset", save("s.npy", POINTS)),
    Case("score-data-option-without-equals", "score --data ring --data-option std {dir}/s.npy", "KEY=VALUE",
         save("s.npy", POINTS)),
    Case("score-data-option-unknown-key", "score --data ring --data-option nope=1 {dir}/s.npy", "unknown key",
         save("s.npy", POINTS)),
    # report
    Case("report-not-a-run", "report {dir}/plain", "no summary.json", folder("plain")),
    Case("report-metrics-log-damaged", "report {copy}", f"{METRICS} line 3", copied_run(damage_line(METRICS, 3))),
    Case("report-corrupt-summary", "report {copy}", SUMMARY,
         copied_run(truncate(SUMMARY, lambda content: len(content) // 2))),
    Case("report-out-inside-a-file", "report {run} -o {dir}/f/report.html", "is a file", write("f", "mine")),
    Case("compare-with-a-non-run", "report {run} {dir}/plain -o {dir}/c.html", "no summary.json", folder("plain")),
    # list, bench, theory and the command line itself
    Case("list-unknown-option", "list --bogus", "unrecognized arguments"),
    Case("bench-unknown-protocol", "bench nope", "unknown protocol"),
    Case("bench-unknown-method", "bench ring --methods nope", "unknown method"),
    Case("bench-unknown-budget", "bench ring --budget nope", "unknown budget"),
    Case("bench-zero-seeds", "bench ring --seeds 0", "at least 1"),
    Case("bench-negative-steps", "bench ring --steps -1", "at least 1"),
    Case("bench-out-is-a-file", "bench ring --methods gan --steps 1 -o {dir}/f", "is a file", write("f", "mine")),
    Case("optimal-d-zero-steps", "theory optimal-d --steps 0", "at least 1"),
    Case("optimal-d-negative-seed", "theory optimal-d --seed -1", "at least 0"),
    Case("optimal-d-three-dimensions", "theory optimal-d --dim 3", "invalid choice"),
    Case("optimal-d-out-is-a-file", "theory optimal-d --steps 1 -o {dir}/f", "is a file", write("f", "mine")),
    Case("mode-hopping-zero-seeds", "theory mode-hopping --seeds 0", "at least 1"),
    Case("mode-hopping-unknown-remedy", "theory mode-hopping --remedies nope", "unknown method"),
    Case("mode-hopping-out-is-a-file", "theory mode-hopping --quick -o {dir}/f", "is a file", write("f", "mine")),
    Case("theory-without-demo", "theory", "required: DEMO"),
    Case("unknown-command", "nope", "invalid choice"),
    Case("no-command", "", "required: COMMAND"),
]


#: A run folder's lock file holds the process id of its last holder, no data of the run.
LOCK = ".lock"


def file_hashes(root: Path) -> dict[str, str]:
    """Every file and folder under `root` but lock files, with the SHA-256 of its content."""
    return {
        str(p.relative_to(root)): "folder" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.name != LOCK
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "-q", "-o", str(run), *[a for o in TINY for a in ("-s", o)]]) == 0
    return run


def test_the_table_is_large_and_names_are_unique() -> None:
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gives_one_line_and_keeps_every_file(
    case: Case, finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    case.setup(tmp_path, finished_run)
    before = file_hashes(tmp_path), file_hashes(finished_run)
    capsys.readouterr()
    code = main(shlex.split(case.argv.format(dir=tmp_path, run=finished_run, copy=tmp_path / "run")))
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("ganscope: ") and "Traceback" not in err, err
    assert case.expect in err, err
    assert (file_hashes(tmp_path), file_hashes(finished_run)) == before


def test_a_path_the_system_refuses_is_one_line(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Permissions cannot be denied to root, so the refusal is simulated where files are created."""

    def refuse(*_args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(kwargs["dir"]))

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    assert main(["sample", str(finished_run), "-o", str(tmp_path / "s.npy")]) == 2
    err = capsys.readouterr().err
    assert err == f"ganscope: cannot write or read {tmp_path}: Permission denied\n"
    assert not (tmp_path / "s.npy").exists()


def test_a_run_killed_while_logging_resumes(finished_run: Path, tmp_path: Path, capsys) -> None:
    """A kill while appending leaves a last line without its end; that is no bad input
    but the normal aftermath of a kill, so resume drops it and continues."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    truncate(METRICS, lambda content: len(content) - 40)(run)
    assert main(["resume", "-q", str(run), "-s", "train.steps=30"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    records = [json.loads(line) for line in (run / METRICS).read_text().splitlines()]
    assert max(r["step"] for r in records) == 30


def test_two_processes_cannot_train_into_one_folder(finished_run: Path, tmp_path: Path, capsys) -> None:
    """A second `resume` of a run that is training must refuse, not interleave its writes."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    first = subprocess.Popen(
        [sys.executable, "-m", "ganscope.cli", "resume", "-q", str(run), "-s", "train.steps=1000000"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    logged = (run / METRICS).stat().st_size
    deadline = time.time() + 120
    while (run / METRICS).stat().st_size <= logged and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, first.communicate()[1]
    first.send_signal(signal.SIGSTOP)  # hold it mid-training so its files stand still
    try:
        before = file_hashes(run)
        code = main(["resume", "-q", str(run), "-s", "train.steps=40"])
        err = capsys.readouterr().err
        after = file_hashes(run)
    finally:
        first.send_signal(signal.SIGCONT)
        first.send_signal(signal.SIGTERM)
        _, first_err = first.communicate(timeout=120)
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("ganscope: "), err
    assert after == before
    assert first.returncode == 128 + signal.SIGTERM, first_err
