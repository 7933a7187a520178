"""A small generic registry: names to objects, with did-you-mean errors.

New layers, datasets, losses, metrics, steps and callbacks are added by decorating them with
``@REGISTRY.register("name")``; nothing else has to be edited.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from collections.abc import Iterator
from typing import Generic
from typing import TypeVar

from dlrun.errors import RegistryError

T = TypeVar("T")


def did_you_mean(name: str, options: list[str] | tuple[str, ...]) -> str:
    """Return "; did you mean 'x'?" for the closest option, or an empty string.

    An abbreviation (``acc`` for ``accuracy``) is too short for a close match, so a single
    option that starts with ``name`` is suggested too.
    """
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    if not close and len(name) >= 2:
        close = [o for o in options if o.startswith(name)]
    return f"; did you mean '{close[0]}'?" if len(close) == 1 else ""


class Registry(Generic[T]):
    """Maps short documented names to objects of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its argument under ``name`` and returns it unchanged."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise RegistryError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}; known: {known}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
