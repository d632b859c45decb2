"""Typed, validated run configuration.

A config names pieces from the registries (`data.name`, `objective.name`,
`scheme.name`, `generator.name`, ...) and gives their parameters beside the name; each
piece's parameters are validated against the pydantic model it registered, so an unknown
key or a bad value fails at load time with one line naming the key. A registered piece
that conflicts with other keys (packing needs a batch size divisible by the pack size)
says so through a `check_config(params, cfg)` method returning the one-line reason.
"""

from __future__ import annotations

import re

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)

from ganscope.errors import ConfigError
from ganscope.registry import ALL_REGISTRIES, Params, Registry


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Piece(BaseModel):
    """`name` of a registered piece plus that piece's own parameters, side by side."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def params(self, registry: Registry[Any]) -> Params:
        """Validate this piece's parameters against its registered model."""
        return registry.entry(self.name).params.model_validate(self.options())


class NoiseConfig(Strict):
    dist: Literal["gaussian", "uniform"] = "gaussian"
    z_dim: PositiveInt = 2


class OptimizerConfig(Strict):
    name: Literal["adam", "sgd", "rmsprop"] = "adam"
    lr: PositiveFloat = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    momentum: NonNegativeFloat = 0.0
    weight_decay: NonNegativeFloat = 0.0

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError("each beta must lie in [0, 1)")
        return betas


class OptimizersConfig(Strict):
    generator: OptimizerConfig = OptimizerConfig()
    discriminator: OptimizerConfig = OptimizerConfig()


class MonitorConfig(Strict):
    """The training monitor (`ganscope.monitor`): which events stop training, the
    detectors' thresholds (`detectors: {collapse: {max_spread_ratio: 0.4}}`), and the
    near-duplicate threshold as a quantile of the real data's nearest-neighbour distances."""

    enabled: bool = True
    stop_on: list[str] = Field(default_factory=list)
    duplicate_quantile: float = Field(0.01, gt=0.0, lt=1.0)
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: A condition ends after this many evaluations in a row without it, so a statistic
    #: wavering around a threshold does not raise the same event again and again.
    end_after: PositiveInt = 2

    @field_validator("stop_on", mode="before")
    @classmethod
    def _known_kinds(cls, kinds: Any, info: Any) -> Any:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if kinds and not info.data.get("enabled", True):
            raise ValueError("stopping on events needs the monitor; drop stop_on or set enabled: true")
        _check_detector_names(kinds if isinstance(kinds, list) else [])
        return kinds

    @field_validator("detectors")
    @classmethod
    def _valid_thresholds(cls, detectors: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        _check_detector_names(list(detectors))
        registry = ALL_REGISTRIES["detectors"]
        for name, options in detectors.items():
            try:
                registry.entry(name).params.model_validate(options)
            except ValidationError as err:
                raise ValueError(describe_validation_error(err, registry.entry(name).params, prefix=name)) from None
        return detectors


def _check_detector_names(names: list[Any]) -> None:
    registry = ALL_REGISTRIES["detectors"]
    for name in names:
        if name not in registry:
            raise ValueError(f"unknown event kind {name!r}; valid: {', '.join(registry.names())}")


class MlflowConfig(Strict):
    """Copy the run into MLflow when it ends (`ganscope.tracking`): `uri` of the tracking
    store or server (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)."""

    enabled: bool = False
    uri: str | None = None
    experiment: str = "ganscope"


class DistributedConfig(Strict):
    """Data-parallel runs under torchrun (`ganscope.distributed`)."""

    #: Batch norm statistics over every process's share of the batch (the full batch's)
    #: rather than each process's own; works on gloo (CPU) and NCCL (CUDA).
    sync_batch_norm: bool = False


class TrainConfig(Strict):
    steps: PositiveInt = 5000
    batch_size: PositiveInt = 128
    seeds: PositiveInt | list[NonNegativeInt] = 1
    eval_every: PositiveInt = 500
    #: Samples per seed at each evaluation; None: the data's own count
    #: (`Dataset.eval_samples`: 2,500 for the 2-D protocols, 26,000 for Stacked MNIST).
    eval_samples: PositiveInt | None = None
    log_every: PositiveInt = 50
    checkpoint_every: PositiveInt = 1000
    #: Where networks, batches and random draws live: `auto` (CUDA when available, else
    #: CPU), `cpu`, `cuda` or `cuda:N`.
    device: str = "auto"
    #: `bf16` autocasts to bfloat16 on either device (CPU or CUDA).
    precision: Literal["fp32", "bf16"] = "fp32"
    #: Let CUDA matmuls and convolutions use TensorFloat-32 (faster, 10-bit mantissa);
    #: off by default so that fp32 means fp32 on every device.
    tf32: bool = False
    lr_schedule: Literal["constant", "cosine", "linear"] = "cosine"
    lr_final_fraction: float = Field(0.0, ge=0.0, le=1.0)
    #: The share of `train.steps` at the full learning rate before the decay starts
    #: (CycleGAN: 0.5, constant for the first half, then linear to zero).
    lr_decay_start: float = Field(0.0, ge=0.0, lt=1.0)
    #: Sample and evaluate a moving average of G's weights with a half-life of this many
    #: thousand images (StyleGAN2: 10); 0: G itself. `ema_rampup` caps the half-life at
    #: that share of the images seen so far (stylegan2-ada: 0.05), None: no ramp.
    ema_kimg: float = Field(0.0, ge=0.0)
    ema_rampup: float | None = Field(0.05, gt=0.0)
    #: A NaN or infinity in a loss or weight: `stop` at the last finite checkpoint, or
    #: `rollback` to it with every learning rate times `rollback_lr_factor` and train on,
    #: at most `max_rollbacks` times (then stop).
    on_divergence: Literal["stop", "rollback"] = "stop"
    rollback_lr_factor: float = Field(0.5, gt=0.0, lt=1.0)
    max_rollbacks: PositiveInt = 3
    #: Write the HTML report and its pictures when training ends. Off, a run ends with
    #: its scores, samples, weights and summary, and `ganscope report RUN` writes the page
    #: later: a sweep of many trials, or a test, need not render pages nobody opens.
    report: bool = True
    monitor: MonitorConfig = MonitorConfig()
    mlflow: MlflowConfig = MlflowConfig()
    distributed: DistributedConfig = DistributedConfig()

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
            raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
        return device

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, list) and (not seeds or len(set(seeds)) != len(seeds)):
            raise ValueError("give a positive count or a non-empty list of distinct seeds")
        return seeds


class Config(Strict):
    seed: NonNegativeInt = 0
    data: Piece = Piece(name="ring")
    noise: NoiseConfig = NoiseConfig()
    generator: Piece = Piece(name="mlp")
    discriminator: Piece = Piece(name="mlp")
    d_modifiers: list[Piece] = Field(default_factory=list)
    conditioning: Piece = Piece(name="none")
    objective: Piece = Piece(name="nonsaturating")
    regularizers: list[Piece] = Field(default_factory=list)
    scheme: Piece = Piece(name="alternating")
    optimizer: OptimizersConfig = OptimizersConfig()
    train: TrainConfig = TrainConfig()

    def seed_list(self) -> list[int]:
        """The population's seeds: `train.seeds` consecutive seeds from `seed`, or the list."""
        if isinstance(self.train.seeds, list):
            return list(self.train.seeds)
        return [self.seed + i for i in range(self.train.seeds)]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


#: Which registry validates each piece section.
PIECE_REGISTRIES = {
    "data": "datasets",
    "generator": "generators",
    "discriminator": "discriminators",
    "conditioning": "conditionings",
    "objective": "objectives",
    "scheme": "schemes",
}


def piece_params(cfg: Config, section: str) -> Params:
    return getattr(cfg, section).params(ALL_REGISTRIES[PIECE_REGISTRIES[section]])


#: Sections holding a list of pieces, each piece at most once, and their registries.
PIECE_LIST_REGISTRIES = {
    "regularizers": "regularizers",
    "d_modifiers": "d_modifiers",
}


def piece_list_params(cfg: Config, section: str) -> list[Params]:
    registry = ALL_REGISTRIES[PIECE_LIST_REGISTRIES[section]]
    return [piece.params(registry) for piece in getattr(cfg, section)]


def regularizer_params(cfg: Config) -> list[Params]:
    return piece_list_params(cfg, "regularizers")


def d_modifier_params(cfg: Config) -> list[Params]:
    return piece_list_params(cfg, "d_modifiers")


def parse_overrides(overrides: list[str]) -> list[tuple[list[str], Any]]:
    """`key.sub=value` strings to (path, YAML-parsed value) pairs."""
    parsed = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not KEY=VALUE; write e.g. -s train.steps=2000")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: value is not valid YAML") from None
        parsed.append((key.strip().split("."), value))
    return parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (list entries by index: regularizers.0.weight)."""
    for path, value in parse_overrides(overrides):
        node: Any = raw
        for depth, part in enumerate(path[:-1]):
            if isinstance(node, list):
                node = node[_index(node, part, path[: depth + 1])]
            else:
                child = node.get(part)
                if not isinstance(child, (dict, list)):
                    child = node[part] = {}
                node = child
        last = path[-1]
        if isinstance(node, list):
            node[_index(node, last, path)] = value
        else:
            node[last] = value
    return raw


def _index(node: list[Any], part: str, path: list[str]) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"{'.'.join(path)}: no list entry {part!r} (the list has {len(node)})")
    return int(part)



def load_config(
    source: Path | dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    profile: str | None = None,
) -> Config:
    """Start from a named profile (if any), merge the YAML file (or dict) on top, apply
    `-s` overrides, validate everything."""
    from ganscope.profiles import load_profile

    raw: dict[str, Any] = load_profile(profile) if profile else {}
    if isinstance(source, dict):
        deep_merge(raw, yaml.safe_load(yaml.safe_dump(source)) or {})
    elif source is not None:
        deep_merge(raw, read_yaml(source))
    for section in PIECE_REGISTRIES:
        if isinstance(raw.get(section, {}), dict):  # so `-s data.std=0.02` keeps the default name
            raw.setdefault(section, {}).setdefault("name", Config.model_fields[section].default.name)
    apply_overrides(raw, overrides or [])
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, Config)) from None
    validate_pieces(cfg)
    validate_combination(cfg)
    return cfg


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Merge `top` into `base` in place; nested mappings merge, everything else replaces.

    A mapping naming a different piece (`name`) replaces the old one wholesale, since the
    old piece's parameters mean nothing to the new one.
    """
    for key, value in top.items():
        old = base.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and value.get("name", old.get("name")) == old.get("name"):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def read_yaml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give a YAML file, e.g. {path / 'config.yaml'}")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; give a YAML file") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise ConfigError(f"config file {path} is not valid YAML{line}; check indentation and colons") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not a {type(raw).__name__}")
    return raw


def validate_pieces(cfg: Config) -> None:
    """Check every named piece exists, its parameters are valid and agree with the rest
    of the config, and no list names a piece twice."""
    sections: list[tuple[str, Piece, str]] = [
        (section, getattr(cfg, section), registry) for section, registry in PIECE_REGISTRIES.items()
    ]
    for section, registry_name in PIECE_LIST_REGISTRIES.items():
        pieces = getattr(cfg, section)
        sections += [(f"{section}.{i}", piece, registry_name) for i, piece in enumerate(pieces)]
        names = [piece.name for piece in pieces]
        repeated = next((name for i, name in enumerate(names) if name in names[:i]), None)
        if repeated is not None:
            raise ConfigError(f"{section}: {repeated!r} is given twice; name each at most once")
    # Every piece's own parameters first: a check that reads another piece's parameters
    # (MAD-GAN reads pack's m) may then rely on them being valid.
    validated: list[tuple[str, Any, Params]] = []
    for where, piece, registry_name in sections:
        registry = ALL_REGISTRIES[registry_name]
        if piece.name not in registry:
            raise ConfigError(
                f"{where}.name: unknown {registry.kind} {piece.name!r}; valid: {', '.join(registry.names())}"
            )
        try:
            validated.append((where, registry.get(piece.name), piece.params(registry)))
        except ValidationError as err:
            raise ConfigError(
                describe_validation_error(err, registry.entry(piece.name).params, prefix=where)
            ) from None
    for where, piece_class, params in validated:
        check = getattr(piece_class, "check_config", None)
        reason = check(params, cfg) if check else None
        if reason:
            raise ConfigError(f"{where}: {reason}")


def validate_combination(cfg: Config) -> None:
    """Reject combinations of valid pieces that make no sense together, with the reason."""
    objective = ALL_REGISTRIES["objectives"].get(cfg.objective.name)
    names = {piece.name for piece in cfg.regularizers}
    missing = [r for r in objective.required_regularizers if r not in names]
    if missing:
        raise ConfigError(
            f"objective {cfg.objective.name!r} needs regularizer(s) {', '.join(missing)}; "
            f"add -s 'regularizers=[{{name: {missing[0]}}}]'"
        )


def describe_validation_error(err: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """The first pydantic error as one line: `key.path: problem` (+ valid keys if unknown)."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"] if not _is_type_tag(p)]
    key = ".".join(([prefix] if prefix else []) + loc) or prefix or "config"
    if first["type"] == "extra_forbidden":
        valid = _valid_keys(model, [p for p in first["loc"][:-1]])
        hint = f"; valid keys: {', '.join(valid)}" if valid else ""
        return f"{key}: unknown key{hint}"
    value = first.get("input")
    shown = f" (got {value!r})" if not isinstance(value, (dict, list)) else ""
    return f"{key}: {first['msg']}{shown}"


def _is_type_tag(part: object) -> bool:
    """pydantic names union branches in error locations ('constrained-int', 'list[int]')."""
    return isinstance(part, str) and ("[" in part or "-" in part or part in ("int", "float", "str", "bool"))


def _valid_keys(model: type[BaseModel], loc: list[Any]) -> list[str]:
    current: Any = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        current = field.annotation
    return list(current.model_fields)


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
