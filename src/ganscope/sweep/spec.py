"""The sweep file: a base config, axes over its keys, seeds, a metric to rank by, and
where to run (`ganscope sweep SWEEP.yaml`; README, "Sweeps").

Validated like a run config (pydantic, unknown keys refused) and, beyond the schema, for
what only a sweep can get wrong: an axis over the seeds (seeds are packed, never swept),
random axes without `samples`, a Ray scheduler on the local backend. Every problem is one
line naming the key and the fix; the configs the axes make are validated when the sweep
is planned (`ganscope.sweep.trials`), before anything trains.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, ValidationError
from pydantic import field_validator

from ganscope.config import Strict, describe_validation_error, read_yaml
from ganscope.errors import ConfigError
from ganscope.seed_ranges import EVALUATION_SEEDS, TUNING_SEEDS, span

#: The per-seed scores a sweep can rank by (`ModeScore.to_dict()`, and `protocol_modes` /
#: `protocol_kl` of the Stacked protocols), and the direction that is better.
METRICS: dict[str, Literal["max", "min"]] = {
    "modes_covered": "max",
    "hq_fraction": "max",
    "reverse_kl": "min",
    "label_fidelity": "max",
    "intra_class_coverage": "max",
    "protocol_modes": "max",
    "protocol_kl": "min",
}

#: Keys an axis or `base.set` may not touch: the population's seeds come from `seeds:`, so
#: that trials differing only in their seed always train as one population.
SEED_KEYS = ("seed", "train.seeds")

#: The axis over `ganscope bench`'s methods (gan, pacgan2, madgan, ...): not a config key,
#: each value applies that method's overrides, as the protocol table does.
METHOD = "method"

#: Significant digits of a drawn number: tables and folder names stay readable, and the
#: rounding is far finer than any difference a sweep can resolve.
DRAWN_DIGITS = 4


class BaseSpec(Strict):
    """What every trial starts from: a config file (relative to the sweep file) and/or a
    profile, then `set` overrides (`KEY=VALUE` strings, or a mapping of dotted keys)."""

    config: Path | None = None
    profile: str | None = None
    set: list[str] = Field(default_factory=list)

    @field_validator("set", mode="before")
    @classmethod
    def _mapping_to_overrides(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return [f"{k}={yaml_value(v)}" for k, v in value.items()]
        return value


class SeedsSpec(Strict):
    """The seeds of every trial, trained as one population: `count` seeds from `first`, or
    the `values` given."""

    count: PositiveInt = 1
    first: NonNegativeInt = 0
    values: list[NonNegativeInt] | None = None

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: list[int] | None) -> list[int] | None:
        if values is not None and (not values or len(set(values)) != len(values)):
            raise ValueError("give a non-empty list of distinct seeds")
        return values

    def seeds(self) -> list[int]:
        return list(self.values) if self.values is not None else list(range(self.first, self.first + self.count))


class SchedulerSpec(Strict):
    """Early stopping (Ray backend): ASHA (Li et al. 2020) on the sweep's metric, at the
    population's mean over seeds, judged at the evaluations (`train.eval_every`); no trial
    is stopped before `grace_period` steps."""

    name: Literal["asha"] = "asha"
    grace_period: PositiveInt = 1000
    reduction_factor: float = Field(3.0, gt=1.0)


class ResourcesSpec(Strict):
    """What one trial (one population) asks of a Ray cluster; `cpu` is also its torch threads."""

    cpu: PositiveFloat = 1.0
    gpu: NonNegativeFloat = 0.0


class SweepSpec(Strict):
    name: str | None = None
    base: BaseSpec = BaseSpec()
    #: docs/PROTOCOLS.md protocol(s) (`ganscope bench`'s names): the data and the samples
    #: scored per seed; several are ranked apart, their metrics are not comparable.
    protocol: str | list[str] | None = None
    axes: dict[str, Any] = Field(default_factory=dict)
    samples: PositiveInt | None = None
    sampling_seed: NonNegativeInt = 0
    seeds: SeedsSpec = SeedsSpec()
    metric: str = "modes_covered"
    mode: Literal["max", "min"] | None = None
    #: A goal each seed must meet, metric -> "OP NUMBER" (OP one of >=, <=, >, <), e.g.
    #: {modes_covered: ">= 8", hq_fraction: ">= 0.98", reverse_kl: "<= 0.05"}: the table
    #: counts the seeds of each trial that meet all of it. It does not change the ranking.
    target: dict[str, str] = Field(default_factory=dict)
    #: How many of the best trials the summary lists and the HTML page compares.
    top: PositiveInt = 3
    backend: Literal["local", "ray"] = "local"
    #: Trials at a time: local, N worker processes (default 0: one at a time in this
    #: process, which saves a worker's start-up of a few seconds per sweep); Ray, at
    #: most this many (default: as many as the cluster's resources allow).
    workers: NonNegativeInt | None = None
    #: torch threads per local worker, or of this process with workers 0 (default: the
    #: CPUs shared among the workers; torch's own count in this process).
    threads: PositiveInt | None = None
    address: str | None = None
    resources: ResourcesSpec = ResourcesSpec()
    scheduler: SchedulerSpec | None = None

    @field_validator("seeds", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """`seeds: 5` (5 seeds from 0) and `seeds: [1000, 1003]` as well as the mapping."""
        if isinstance(value, int) and not isinstance(value, bool):
            return {"count": value}
        if isinstance(value, list):
            return {"values": value}
        return value


@dataclass(frozen=True)
class Grid:
    """An axis whose every value is tried."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class Random:
    """An axis drawn `samples` times: `uniform` or `loguniform` in [low, high] (`integer`
    rounds), or a `choice` among values, each equally likely."""

    kind: Literal["uniform", "loguniform", "choice"]
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()
    integer: bool = False

    def draw(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.kind == "uniform":
            x = float(rng.uniform(self.low, self.high))
        else:
            x = math.exp(float(rng.uniform(math.log(self.low), math.log(self.high))))
        return int(round(x)) if self.integer else float(f"{x:.{DRAWN_DIGITS}g}")


Axis = Grid | Random


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file: its settings, its parsed axes and where it came from."""

    spec: SweepSpec
    axes: dict[str, Axis]
    path: Path | None
    #: The base config file's content (None without one): part of each trial's identity.
    base_config: dict[str, Any] | None

    @property
    def name(self) -> str:
        return self.spec.name or (self.path.stem if self.path else "sweep")

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def mode(self) -> Literal["max", "min"]:
        return self.spec.mode or METRICS[self.spec.metric]

    def seeds(self) -> list[int]:
        return self.spec.seeds.seeds()

    def protocols(self) -> list[str | None]:
        p = self.spec.protocol
        return [None] if p is None else [p] if isinstance(p, str) else list(p)

    def seed_note(self) -> str:
        """Which of docs/PROTOCOLS.md's seed ranges the trials' seeds lie in, and what that means."""
        seeds = self.seeds()
        if all(s in TUNING_SEEDS for s in seeds):
            return (f"tuning seeds ({span(TUNING_SEEDS)}): the ranking is chosen on them, so confirm the best "
                    f"configuration on evaluation seeds (seeds: {{first: {EVALUATION_SEEDS.start}}}) before "
                    "quoting its numbers")
        if all(s in EVALUATION_SEEDS for s in seeds):
            return (f"evaluation seeds ({span(EVALUATION_SEEDS)}): choosing the best trial here is tuning on "
                    "them; confirm on seeds no sweep has seen")
        return "seeds outside both ranges of docs/PROTOCOLS.md, or spanning them"


#: A target's comparison, as the sweep file writes it.
COMPARISONS: dict[str, Any] = {">=": float.__ge__, "<=": float.__le__, ">": float.__gt__, "<": float.__lt__}


def parse_condition(where: str, text: str) -> tuple[str, float]:
    """("OP", number) from a target's "OP NUMBER"."""
    match = re.fullmatch(r"\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*", str(text))
    try:
        number = float(match.group(2)) if match else math.nan
    except ValueError:
        number = math.nan
    if match is None or not math.isfinite(number):
        raise _fail(where, f"{text!r} is not a condition; write OP NUMBER with OP one of >=, <=, >, <, e.g. '>= 0.98'")
    return match.group(1), number


def yaml_value(value: Any) -> str:
    """`value` as the right-hand side of a `KEY=VALUE` override, which is parsed as YAML."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def _fail(where: str, problem: str) -> ConfigError:
    return ConfigError(f"{where}: {problem}")


def _bounds(where: str, kind: str, raw: Any) -> tuple[float, float]:
    ok = isinstance(raw, list) and len(raw) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)
    if not ok:
        raise _fail(where, f"{kind} takes [low, high], two numbers (got {raw!r}); e.g. {{{kind}: [1e-4, 1e-2]}}")
    low, high = float(raw[0]), float(raw[1])
    if not low < high or (kind == "loguniform" and low <= 0):
        floor = "0 < " if kind == "loguniform" else ""
        raise _fail(where, f"{kind} needs {floor}low < high (got [{raw[0]}, {raw[1]}])")
    return low, high


def parse_axis(where: str, raw: Any) -> Axis:
    """An axis from the sweep file: a list (grid) or a mapping naming one distribution."""
    if isinstance(raw, list):
        if not raw:
            raise _fail(where, "an empty list; give at least one value")
        return Grid(tuple(raw))
    kinds = ("uniform", "loguniform", "choice")
    if not isinstance(raw, dict):
        raise _fail(where, f"give a list of values (a grid) or one of {{uniform|loguniform|choice: ...}} "
                           f"(got {raw!r}); a single value belongs in base.set")
    named = [k for k in raw if k in kinds]
    unknown = [k for k in raw if k not in (*kinds, "integer")]
    if unknown or len(named) != 1:
        extra = f"unknown key {unknown[0]!r}; " if unknown else ""
        raise _fail(where, f"{extra}give exactly one of {', '.join(kinds)} (plus integer: true for whole numbers)")
    kind = named[0]
    integer = raw.get("integer", False)
    if not isinstance(integer, bool):
        raise _fail(f"{where}.integer", f"true or false (got {integer!r})")
    if kind == "choice":
        if not isinstance(raw[kind], list) or not raw[kind]:
            raise _fail(where, f"choice takes a non-empty list of values (got {raw[kind]!r})")
        if integer:
            raise _fail(f"{where}.integer", "integer rounds uniform and loguniform draws; drop it from a choice")
        return Random("choice", choices=tuple(raw[kind]))
    low, high = _bounds(where, kind, raw[kind])
    return Random(kind, low, high, integer=integer)


def _check_keys(where: str, keys: list[str], protocols: list[str | None]) -> None:
    for key in (k.strip() for joined in keys for k in joined.split(",")):
        if not key:
            raise _fail(f"{where}", f"an empty key in {keys!r}; join several keys that take the same value with "
                                    "commas, e.g. optimizer.generator.lr,optimizer.discriminator.lr")
        if key in SEED_KEYS:
            raise _fail(f"{where}.{key}" if where else key,
                        "seeds are not swept: trials that differ only in their seed train as one population; "
                        "give them as seeds: {count: N, first: S} (or seeds: [s1, s2, ...])")
        if protocols != [None] and key in ("data", "data.name", "train.eval_samples"):
            fixed = "the samples scored per seed" if key == "train.eval_samples" else "the data"
            raise _fail(f"{where}.{key}" if where else key,
                        f"the protocol fixes {fixed} (docs/PROTOCOLS.md); drop this key or drop protocol")


def validate_sweep(raw: dict[str, Any], path: Path | None = None) -> Sweep:
    """A sweep from its parsed file (`path` resolves `base.config` and names errors)."""
    where = f"sweep file {path}" if path else "sweep"
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{where}: {describe_validation_error(err, SweepSpec)}") from None
    try:
        return _checked(spec, path)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _checked(spec: SweepSpec, path: Path | None) -> Sweep:
    """What the schema cannot say: axes, seeds, metric, backend and scheduler agree."""
    from ganscope.bench import PROTOCOLS
    from ganscope.config import parse_overrides
    from ganscope.profiles import load_profile

    axes = {key: parse_axis(f"axes.{key}", raw) for key, raw in spec.axes.items()}
    protocols = Sweep(spec, axes, path, None).protocols()
    unknown = next((p for p in protocols if p is not None and p not in PROTOCOLS), None)
    if unknown is not None:
        raise _fail("protocol", f"unknown protocol {unknown!r}; valid: {', '.join(PROTOCOLS)}")
    _check_keys("axes", list(axes), protocols)
    _check_keys("base.set", [".".join(p) for p, _ in parse_overrides(spec.base.set)], protocols)
    randoms = [k for k, a in axes.items() if isinstance(a, Random)]
    if randoms and spec.samples is None:
        raise _fail(f"axes.{randoms[0]}", "a random axis is drawn samples: N times; add samples: N (and "
                                          "sampling_seed: S for another draw)")
    if spec.samples is not None and not randoms:
        raise _fail("samples", "draws the random axes (uniform, loguniform, choice), and this sweep has none; "
                               "drop samples or make an axis random")
    for metric in (spec.metric, *spec.target):
        if metric not in METRICS:
            where = "metric" if metric == spec.metric else f"target.{metric}"
            raise _fail(where, f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    for metric, condition in spec.target.items():
        parse_condition(f"target.{metric}", condition)
    if spec.scheduler is not None and spec.backend != "ray":
        raise _fail("scheduler", f"{spec.scheduler.name} stops trials early on Ray Tune, and the local backend "
                                 "runs every trial to its end; set backend: ray or drop scheduler")
    if spec.base.profile is not None:
        load_profile(spec.base.profile)  # an unknown name lists the valid ones
    base_config = None
    if spec.base.config is not None:
        config_path = spec.base.config if path is None else path.parent / spec.base.config
        base_config = read_yaml(config_path)
        spec = spec.model_copy(update={"base": spec.base.model_copy(update={"config": config_path})})
    return Sweep(spec, axes, path, base_config)


def load_sweep(path: Path | str) -> Sweep:
    """Read and validate a sweep file."""
    path = Path(path)
    if path.is_dir() or not path.is_file():
        raise ConfigError(f"sweep file {path} {'is a folder' if path.is_dir() else 'does not exist'}; "
                          "give a YAML file, e.g. benchmarks/sweeps/ring-cheapest.yaml")
    try:
        raw = read_yaml(path)
    except ConfigError as err:  # read_yaml speaks of config files
        raise ConfigError(str(err).replace("config file", "sweep file", 1)) from None
    return validate_sweep(raw, path)
