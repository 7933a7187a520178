"""Unpickle data (CIFAR batches, object arrays in Keras ``.npz`` files) without running code.

A pickle may name any importable callable and call it while loading, so a tampered data file
could run arbitrary code. The unpickler here resolves only the few NumPy names needed to rebuild
arrays; lists, dicts, numbers and strings need no name lookup at all. Every other name is
refused before it is imported.
"""

from __future__ import annotations

import pickle
from typing import IO
from typing import Any

ALLOWED = frozenset(
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
) | {("numpy", "ndarray"), ("numpy", "dtype")}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names something other than an array constructor: code, not data."""

    def __init__(self, target: str) -> None:
        super().__init__(f"refusing to load {target}: a data file may hold only arrays and lists")
        self.target = target


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Rebuilds NumPy arrays and plain containers; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise RefusedGlobal(f"{module}.{name}")
        return super().find_class(module, name)


def load_restricted(handle: IO[bytes], encoding: str = "ASCII") -> Any:
    """Unpickle ``handle`` with :class:`ArraysOnlyUnpickler` (``encoding`` as for pickle)."""
    return ArraysOnlyUnpickler(handle, encoding=encoding).load()
