"""One registry per kind of piece (datasets, networks, objectives, ...).

A piece is registered under a name with a one-line description and, optionally, a
pydantic model of its parameters; config sections name the piece and give those
parameters. `ganscope list` prints every registry, and an unknown name produces one line
listing the valid ones.
"""

from __future__ import annotations

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


ALL_REGISTRIES: dict[str, Registry[Any]] = {}


def new_registry(kind: str, plural: str) -> Registry[Any]:
    """Create a registry and record it so `ganscope list` can show it."""
    registry: Registry[Any] = Registry(kind)
    ALL_REGISTRIES[plural] = registry
    return registry
