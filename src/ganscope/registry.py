"""One registry per kind of piece (datasets, networks, objectives, ...).

A piece is registered under a name with a one-line description and, optionally, a
pydantic model of its parameters; config sections name the piece and give those
parameters. `ganscope list` prints every registry, and an unknown name produces one line
listing the valid ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from pydantic import BaseModel, ConfigDict

from ganscope.errors import ConfigError

T = TypeVar("T")


class Params(BaseModel):
    """Base for a piece's parameters: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    description: str
    params: type[Params]


class Registry(Generic[T]):
    """A named collection of pieces of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, description: str, params: type[Params] = Params
    ) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, obj, description, params)
            return obj

        return decorate

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}"
            ) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._entries)


#: Packages whose modules create the registries and register the built-in pieces.
BUILTIN_PIECES = (
    "ganscope.data",
    "ganscope.nets",
    "ganscope.objectives",
    "ganscope.regularizers",
    "ganscope.schemes",
    "ganscope.metrics",
    "ganscope.monitor",
)


class Registries(Mapping[str, Registry[Any]]):
    """Every registry by its plural name, complete whenever it is read.

    Pieces register themselves when their modules are imported, and those modules import
    torch. Reading this mapping imports them first, so `import ganscope` and the CLI's
    `--help` need not load them up front, yet a config validated against a registry always
    sees every built-in piece.
    """

    def __init__(self) -> None:
        self._registries: dict[str, Registry[Any]] = {}

    def add(self, plural: str, registry: Registry[Any]) -> None:
        self._registries[plural] = registry

    def _complete(self) -> dict[str, Registry[Any]]:
        for package in BUILTIN_PIECES:
            importlib.import_module(package)
        return self._registries

    def __getitem__(self, plural: str) -> Registry[Any]:
        return self._complete()[plural]

    def __iter__(self) -> Iterator[str]:
        return iter(self._complete())

    def __len__(self) -> int:
        return len(self._complete())


ALL_REGISTRIES = Registries()


def new_registry(kind: str, plural: str) -> Registry[Any]:
    """Create a registry and record it so `ganscope list` can show it."""
    registry: Registry[Any] = Registry(kind)
    ALL_REGISTRIES.add(plural, registry)
    return registry
