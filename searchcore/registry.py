"""A small name → object registry shared by ops, spaces, strategies and datasets."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from searchcore.errors import UnknownNameError

T = TypeVar("T")


def import_target(target: str) -> Any:
    """The object a `"package.module:attribute"` string names, imported now.

    Registries hold such strings for whatever needs torch or graphviz, so registering it
    imports neither.
    """
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry(Generic[T]):
    """Maps names to objects; `register` works as a decorator.

    Lookups of unknown names raise `UnknownNameError` listing every known name, which is
    what a user who mistyped a flag needs to see. `register_lazy` names an object by its
    import path, so listing names never imports heavy modules (the web process lists
    strategies without importing torch).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        def add(item: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add(obj) if obj is not None else add

    def register_lazy(self, name: str, target: str) -> None:
        """Register `"package.module:attribute"`, imported on the first `get(name)`."""
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._lazy[name] = target

    def get(self, name: str) -> T:
        if name in self._lazy:
            self._items[name] = import_target(self._lazy.pop(name))
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def unregister(self, name: str) -> None:
        """Remove a name; tests use it to undo what they registered."""
        self._items.pop(name, None)
        self._lazy.pop(name, None)

    def names(self) -> list[str]:
        return sorted([*self._items, *self._lazy])

    def __contains__(self, name: object) -> bool:
        """Whether `name` is registered; anything but a string is not (a JSON list where a name
        belongs is bad input, not a crash)."""
        return isinstance(name, str) and (name in self._items or name in self._lazy)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items) + len(self._lazy)
