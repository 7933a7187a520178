"""Process-wide guard that tells whether a model is being trained right now.

The sealed test split (:class:`dlrun.data.base.SealedSplit`) refuses to open while training runs,
so no training code path can peek at test rows, however it gets hold of the split.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_TRAINING: ContextVar[bool] = ContextVar("dlrun_training", default=False)


@contextmanager
def training_active() -> Iterator[None]:
    token = _TRAINING.set(True)
    try:
        yield
    finally:
        _TRAINING.reset(token)


def is_training() -> bool:
    return _TRAINING.get()
