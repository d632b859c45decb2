"""Config loading, overrides and the one-line errors users see."""

from __future__ import annotations

import pytest

from ganscope.cli import main
from ganscope.config import load_config
from ganscope.errors import ConfigError


def test_defaults_and_overrides_parse_yaml_values() -> None:
    cfg = load_config(overrides=["objective.name=minimax", "train.seeds=[0,2,5]", "train.steps=7"])
    assert cfg.objective.name == "minimax"
    assert cfg.seed_list() == [0, 2, 5]
    assert cfg.train.steps == 7
    assert load_config(overrides=["seed=10", "train.seeds=3"]).seed_list() == [10, 11, 12]


def test_defaults_are_the_demo_settings() -> None:
    """The settings measured to train the ring well at short budgets: 2-D noise, batch 128,
    5,000 steps with a cosine decay of every learning rate to 0."""
    cfg = load_config()
    assert cfg == load_config(profile="demo")
    assert (cfg.data.name, cfg.noise.z_dim, cfg.train.batch_size, cfg.train.steps, cfg.train.eval_every) == (
        "ring", 2, 128, 5000, 500)
    assert (cfg.train.lr_schedule, cfg.train.lr_final_fraction) == ("cosine", 0.0)


@pytest.mark.parametrize("profile", ["metz-unrolled", "pacgan-paper"])
def test_published_profiles_keep_their_constant_learning_rate(profile: str) -> None:
    assert load_config(profile=profile).train.lr_schedule == "constant"


def test_override_of_piece_option_keeps_default_name() -> None:
    cfg = load_config(overrides=["data.std=0.02"])
    assert cfg.data.name == "ring" and cfg.data.options() == {"std": 0.02}


def test_yaml_file_and_override_on_top(tmp_path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("data:\n  name: grid\n  std: 0.1\ntrain:\n  steps: 100\n")
    cfg = load_config(path, ["train.steps=200"])
    assert cfg.data.name == "grid" and cfg.train.steps == 200


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.stepz=3"], "train.stepz: unknown key; valid keys: steps"),
        (["objective.name=foo"], "objective.name: unknown objective 'foo'; valid: hinge, least-squares, minimax"),
        (["data.name=moon"], "data.name: unknown dataset 'moon'; valid: "),
        (["train.batch_size=0"], "train.batch_size: Input should be greater than 0"),
        (["optimizer.generator.lr=-1"], "optimizer.generator.lr: Input should be greater than 0"),
        (["data.radious=2"], "data.radious: unknown key; valid keys: n_modes, radius, std"),
        (["data.std=-1"], "data.std: Input should be greater than 0"),
        (["train.seeds=[1,1]"], "train.seeds: Value error, give a positive count or a non-empty list"),
        (["optimizer.generator.betas=[0.5,1.5]"], "optimizer.generator.betas"),
        (["regularizers=[{name: nope}]"], "regularizers.0.name: unknown regularizer 'nope'"),
        (["train.steps"], "is not KEY=VALUE"),
    ],
)
def test_bad_config_gives_one_line_naming_the_key(overrides, message) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    text = str(info.value)
    assert "\n" not in text
    assert message in text


def test_malformed_yaml_and_cli_exit_code(tmp_path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train: [steps: 1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    assert main(["train", str(path), "-q"]) == 2
    assert main(["train", "-q", "-s", "scheme.name=bogus", "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "scheme.name: unknown scheme 'bogus'; valid: alternating" in err
    assert not (tmp_path / "run").exists()


def test_invalid_combinations_are_rejected_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="needs regularizer.*gradient-penalty"):
        load_config(overrides=["objective.name=wgan-gp"])
    with pytest.raises(ConfigError, match="given twice"):
        load_config(overrides=["regularizers=[{name: dragan}, {name: dragan}]"])
    cfg = load_config(overrides=["objective.name=wgan-gp", "regularizers=[{name: gradient-penalty}]"])
    assert cfg.regularizers[0].name == "gradient-penalty"
