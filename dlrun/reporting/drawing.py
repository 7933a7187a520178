"""Figures drawn after a command has printed its result, when the command asks for it.

Matplotlib costs about half a second to import and a tenth of a second or more per figure, which
a run's result line should not wait for. Inside :func:`drawn_last` (what ``dlrun train`` uses)
:func:`draw` only records a figure and the scope draws them all as it closes, after the command
printed; elsewhere (the library API, tests, sweep trials) figures are drawn at once, as before.
Either way each file is written atomically, so it is there whole or not at all.

Example:
    >>> with drawn_last():  # doctest: +SKIP
    ...     result = run_experiment(cfg)  # figures recorded, not yet drawn
    ...     print(result.run_dir)  # the result line comes first
    ... # the figures are drawn here, before the process goes on
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    """A call ``function(*args, target)`` that draws one figure into ``target``."""

    function: Callable[..., None]
    args: tuple[Any, ...]
    target: Path

    def __call__(self) -> None:
        self.function(*self.args, self.target)


_PENDING: ContextVar[list[Figure] | None] = ContextVar("dlrun_pending_figures", default=None)


def draw(function: Callable[..., None], *args: Any, target: Path) -> None:
    """Draw ``function(*args, target)`` now, or when the enclosing :func:`drawn_last` closes."""
    figure = Figure(function, args, target)
    pending = _PENDING.get()
    if pending is None:
        figure()
    else:
        pending.append(figure)


def pending_names(directory: Path) -> list[str]:
    """Names of the figures still to be drawn into ``directory`` (a report lists them)."""
    return [f.target.name for f in _PENDING.get() or [] if f.target.parent == directory]


@contextlib.contextmanager
def drawn_last() -> Iterator[None]:
    """Record the figures of the block and draw them when it ends.

    A block that fails still gets the figures of what it finished (a K-fold run's completed
    folds), and its own error is the one raised; Ctrl-C skips them.
    """
    pending: list[Figure] = []
    finished = interrupted = False
    token = _PENDING.set(pending)
    try:
        yield
        finished = True
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        _PENDING.reset(token)
        if finished:
            _draw_all(pending)
        elif not interrupted:
            with contextlib.suppress(Exception):
                _draw_all(pending)


def _draw_all(figures: list[Figure]) -> None:
    """Every figure, even after one fails (each is its own file); then the first failure."""
    failure: Exception | None = None
    for figure in figures:
        try:
            figure()
        except Exception as exc:  # raised below, once the others are drawn
            failure = failure or exc
    if failure is not None:
        raise failure
