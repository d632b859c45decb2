"""Named config profiles: YAML presets shipped with the package.

A profile is a partial config (the same keys as a config file). `ganscope train
--profile NAME` starts from it, a config file is merged on top, and `-s` overrides come
last, so the published settings of a paper and settings tuned for a small machine can sit
side by side under their own names.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from ganscope.errors import ConfigError

_SUFFIX = ".yaml"


def _files() -> dict[str, Any]:
    return {
        entry.name[: -len(_SUFFIX)]: entry
        for entry in resources.files(__package__).iterdir()
        if entry.name.endswith(_SUFFIX)
    }


def profile_names() -> list[str]:
    return sorted(_files())


def load_profile(name: str) -> dict[str, Any]:
    files = _files()
    if name not in files:
        raise ConfigError(f"unknown profile {name!r}; valid: {', '.join(sorted(files))}")
    return yaml.safe_load(files[name].read_text()) or {}


def describe_profile(name: str) -> str:
    """The first comment line of the profile's YAML file."""
    first = _files()[name].read_text().splitlines()[0]
    return first.lstrip("# ").strip()
