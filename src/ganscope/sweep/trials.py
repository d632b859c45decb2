"""A sweep's trials: the axes expanded, the seeds packed, every config validated.

The packing rule. A trial is one point of the axes with *all* the sweep's seeds: the
seeds of a trial train as one population run (`train.seeds`), which costs about what one
seed costs until the machine is busy (README, "Populations of seeds"), so a sweep never
pays per seed. Only configurations that differ in something other than the seed are
separate trials, each in its own run folder.

Expansion. Grid axes multiply; random axes are drawn `samples` times from
`numpy.random.default_rng(sampling_seed)`, in the order the file lists them, and each
draw is combined with every grid point (as Ray Tune combines `num_samples` with
`grid_search`), so the same file always plans the same trials. With several protocols,
every protocol gets the same trials.

Identity. A trial is known by a hash of what the sweep file says about it (the base
config's content, profile and overrides, the protocol, its axis values and its seeds), not
of the resolved config, so that a new ganscope default does not make a finished sweep
look new. Its run folder is named after its axis values and that hash.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganscope.config import load_config
from ganscope.errors import ConfigError
from ganscope.sweep.spec import METHOD, Grid, Random, Sweep, yaml_value

TRIALS = "trials"
"""The folder of a sweep's output that holds one run folder per trial."""


@dataclass(frozen=True)
class Trial:
    """One configuration of the sweep with all its seeds: one population run."""

    key: str
    name: str
    #: Axis values, in the order of the sweep file's axes.
    values: dict[str, Any]
    protocol: str | None
    #: Every override on top of the base (protocol, base.set, axes, seeds), in order.
    overrides: tuple[str, ...]
    #: The validated config (`Config.to_dict()`): workers rebuild the run from it alone,
    #: so they need neither the sweep file nor its base config file.
    config: dict[str, Any]
    #: The run folder relative to the output folder, when not `trials/NAME`: `ganscope
    #: bench` keeps its own layout, so that benchmarks started before it ran on this
    #: engine resume.
    folder: str | None = None

    @property
    def relative_dir(self) -> str:
        return self.folder or f"{TRIALS}/{self.name}"

    def run_dir(self, out: Path) -> Path:
        return Path(out) / self.relative_dir

    @property
    def steps(self) -> int:
        return int(self.config["train"]["steps"])

    def label(self) -> str:
        """The trial's axis values (and protocol), as a line of progress names it."""
        shown = ", ".join(f"{k}={yaml_value(v)}" for k, v in self.values.items()) or "the base config"
        return f"{self.protocol}: {shown}" if self.protocol else shown

    def command(self, sweep: Sweep) -> str:
        """The `ganscope train` command that trains this trial alone."""
        base = sweep.spec.base
        words = ["ganscope", "train"]
        if base.config is not None:
            words.append(str(base.config))
        if base.profile is not None:
            words += ["-p", base.profile]
        if self.overrides:
            words += ["-s", *self.overrides]
        return " ".join(shlex.quote(w) for w in words)


def seed_overrides(seeds: list[int]) -> list[str]:
    """The population of `seeds`: a count from the first when consecutive, else the list."""
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return [f"seed={seeds[0]}", f"train.seeds={len(seeds)}"]
    return [f"seed={seeds[0]}", f"train.seeds={yaml_value(seeds)}"]


def protocol_overrides(protocol: str | None) -> list[str]:
    """docs/PROTOCOLS.md's data and samples per seed for `protocol`, as `ganscope bench` uses them."""
    if protocol is None:
        return []
    from ganscope.bench import PROTOCOLS

    p = PROTOCOLS[protocol]
    return [*p.overrides, f"train.eval_samples={p.samples_per_seed}"]


def points(sweep: Sweep) -> list[dict[str, Any]]:
    """Every combination of axis values, in the sweep file's axis order: each random draw
    with every grid point."""
    grid = [(k, a.values) for k, a in sweep.axes.items() if isinstance(a, Grid)]
    randoms = [(k, a) for k, a in sweep.axes.items() if isinstance(a, Random)]
    rng = np.random.default_rng(sweep.spec.sampling_seed)
    draws = [{k: a.draw(rng) for k, a in randoms} for _ in range(sweep.spec.samples or 1)]
    combos = list(itertools.product(*(values for _, values in grid)))
    return [
        {k: {**dict(zip([g for g, _ in grid], combo, strict=True)), **draw}[k] for k in sweep.axes}
        for draw in draws
        for combo in combos
    ]


def _slug(values: dict[str, Any]) -> str:
    """A folder-name rendering of axis values: the last part of each key, then its value."""
    parts = []
    for key, value in values.items():
        text = f"{value:g}" if isinstance(value, float) else yaml_value(value)
        parts.append(f"{key.rsplit('.', 1)[-1]}={re.sub(r'[^A-Za-z0-9.+-]+', '', text)[:16]}")
    return "_".join(parts)[:60].rstrip("_") or "base"


def _key(sweep: Sweep, protocol: str | None, values: dict[str, Any], seeds: list[int]) -> str:
    base = sweep.spec.base
    identity = {"base": {"config": sweep.base_config, "profile": base.profile, "set": base.set},
                "protocol": protocol, "values": values, "seeds": seeds}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _method_overrides(method: str, protocol: str | None, batch: int) -> tuple[list[str], list[str]]:
    """`ganscope bench`'s method (its overrides on the protocol's kind of data, the 2-D
    points without a protocol), split into its settings and its batch (a factor of the
    batch the axes give, so it goes after them)."""
    from ganscope.bench import POINTS, PROTOCOLS, method_overrides

    overrides = method_overrides(method, batch, PROTOCOLS[protocol].kind if protocol else POINTS)
    batch_keys = [o for o in overrides if o.startswith("train.batch_size=")]
    return [o for o in overrides if o not in batch_keys], batch_keys


def trial_overrides(sweep: Sweep, protocol: str | None, values: dict[str, Any]) -> tuple[str, ...]:
    """Everything a trial sets on top of the base, in order: the protocol's data, the base
    overrides, a `method`'s settings, the axes (which win over the method's settings), the
    method's batch, the seeds."""
    head = [*protocol_overrides(protocol), *sweep.spec.base.set]
    axes = [f"{k}={yaml_value(v)}" for key, v in values.items() if key != METHOD for k in key.split(",")]
    settings: list[str] = []
    batch: list[str] = []
    if METHOD in values:
        given = load_config(sweep.base_config, [*head, *axes], profile=sweep.spec.base.profile).train.batch_size
        settings, batch = _method_overrides(str(values[METHOD]), protocol, given)
    return (*head, *settings, *axes, *batch, *seed_overrides(sweep.seeds()))


def plan(sweep: Sweep) -> list[Trial]:
    """Every trial of the sweep, each config validated before anything trains, so that a
    bad axis value fails in a second rather than hours into a sweep."""
    where = f"sweep file {sweep.path}" if sweep.path else "sweep"
    trials: dict[str, Trial] = {}
    for protocol in sweep.protocols():
        for values in points(sweep):
            try:
                overrides = trial_overrides(sweep, protocol, values)
                cfg = load_config(sweep.base_config, list(overrides), profile=sweep.spec.base.profile)
            except ConfigError as err:
                trial = ", ".join(f"{k}={yaml_value(v)}" for k, v in values.items()) or "the base config"
                raise ConfigError(f"{where}: the trial {trial}{f' on {protocol}' if protocol else ''} "
                                  f"is not a valid config: {err}") from None
            key = _key(sweep, protocol, values, sweep.seeds())
            if key not in trials:  # the same values twice (a choice drawn again): one trial
                name = f"{protocol}_" * bool(protocol) + f"{_slug(values)}-{key[:8]}"
                trials[key] = Trial(key, name, values, protocol, overrides, cfg.to_dict())
    return list(trials.values())
