"""The mode-hopping demonstration: hop counting on hand-made histories, and the quick
setting end to end through the CLI (picture, result.json with per-seed records)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ganscope.cli import main
from ganscope.errors import ConfigError
from ganscope.theory.mode_hopping import QUICK, MethodResult, count_hops, mode_hopping_settings, outcome


def histogram(*modes: int, k: int = 8) -> list[int]:
    """HQ counts with 10 samples on each of `modes`, the first one dominant."""
    counts = [0] * k
    for rank, mode in enumerate(modes):
        counts[mode] = 10 - rank
    return counts


def test_hops_count_changes_of_the_dominant_mode_while_collapsed() -> None:
    assert count_hops(np.array([histogram(0), histogram(0), histogram(3), histogram(3, 4), histogram(4, 3)])) == 2
    # An evaluation without HQ samples (G in transit) is skipped: 0 -> (none) -> 5 is one hop.
    assert count_hops(np.array([histogram(0), [0] * 8, histogram(5)])) == 1
    # Covering more than two modes breaks the chain, and argmax changes while covering are no hops.
    covering = [histogram(1, 2, 3), histogram(6, 2, 3, 1), histogram(2, 5, 6)]
    assert count_hops(np.array([histogram(0), *covering, histogram(7)])) == 0


def method_result(name: str, hops: list[int], covered_last: list[float]) -> MethodResult:
    seeds = [{"hops": h, "mean_modes_covered_last": c} for h, c in zip(hops, covered_last, strict=True)]
    return MethodResult(name, Path(name), seeds, np.zeros((8, 2)), 0.0)


def test_a_remedy_cures_when_it_hops_less_and_covers_most_modes() -> None:
    methods = {
        "plain": method_result("plain", [15, 17], [0.5, 1.0]),
        "pacgan2": method_result("pacgan2", [1, 3], [8.0, 7.5]),  # cures
        "madgan": method_result("madgan", [22, 23], [1.0, 1.0]),  # hops even more
        "partial": method_result("partial", [2, 2], [5.0, 6.0]),  # hops less, covers < 75% of 8
    }
    assert outcome(methods) == {
        "plain_hops": True, "remedy_cures": {"pacgan2": True, "madgan": False, "partial": False}
    }
    calm = {"plain": method_result("plain", [1, 2], [1.0, 1.0]), "pacgan2": methods["pacgan2"]}
    assert outcome(calm)["plain_hops"] is False  # 1.5 hops per seed < HOPPING_MIN


def test_settings_validate_and_quick_overrides_apply(capsys: pytest.CaptureFixture[str]) -> None:
    assert mode_hopping_settings(quick=True, steps=10).steps == 10
    assert mode_hopping_settings(quick=True).seeds == QUICK["seeds"]
    with pytest.raises(ConfigError, match="seeds"):
        mode_hopping_settings(seeds=0)
    assert main(["theory", "mode-hopping", "--steps", "0"]) == 2
    assert "steps" in capsys.readouterr().err
    assert main(["theory", "mode-hopping", "--remedies", "unrolled", "pacman"]) == 2
    assert "unknown method 'pacman'; valid: gan," in capsys.readouterr().err
    with pytest.raises(ConfigError, match="at most once"):
        mode_hopping_settings(remedies=["pacgan2", "pacgan2"])
    assert mode_hopping_settings(remedies=["pacgan3"]).methods()["pacgan3"] == [
        "d_modifiers=[{name: pack, m: 3}]", "train.batch_size=768"]


def test_quick_cli_writes_the_picture_and_per_seed_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hopping"
    steps = 100  # the quick setting's evaluation schedule over fewer steps: the same files, sooner
    assert main(["theory", "mode-hopping", "--quick", "--steps", str(steps), "-q", "--json", "-o", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "result.json").read_text())
    assert printed == saved
    assert (out / "mode_hopping.png").stat().st_size > 10_000
    assert isinstance(saved["plain_hops"], bool)
    assert list(saved["remedy_cures"]) == ["unrolled", "pacgan2"]
    assert all(isinstance(v, bool) for v in saved["remedy_cures"].values())
    assert "hopped" in saved["summary"]
    n_evals = steps // QUICK["eval_every"]
    for name in ("plain", "unrolled", "pacgan2"):
        method = saved["methods"][name]
        assert (out / name / "metrics.jsonl").is_file()
        assert [s["seed"] for s in method["seeds"]] == list(range(QUICK["seeds"]))
        for record in method["seeds"]:
            assert record["steps"] == [QUICK["eval_every"] * (i + 1) for i in range(n_evals)]
            assert len(record["dominant_mode"]) == len(record["modes_covered"]) == n_evals
            assert all(d is None or 0 <= d < 8 for d in record["dominant_mode"])
            assert isinstance(record["hops"], int) and record["hops"] >= 0
            assert 0 <= record["mean_modes_covered_last"] <= 8
        assert method["hops_mean"] == pytest.approx(np.mean([s["hops"] for s in method["seeds"]]))

    # A second run into the same folder is refused before anything is overwritten.
    before = (out / "result.json").read_bytes()
    assert main(["theory", "mode-hopping", "--quick", "-q", "-o", str(out)]) == 2
    assert (out / "result.json").read_bytes() == before
