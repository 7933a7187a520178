"""Ctrl-C and SIGTERM: both stop a command cleanly, and wait while a finished run's files are
written.

Training stops cleanly at Ctrl-C or SIGTERM (at the end of the epoch), but once it has
finished, a run writes results.json, its figures, report.md and status.json one after the
other: a Ctrl-C among them left a run whose files disagree (results "completed", status
"interrupted", figures embedded but never drawn). These writes take a moment, so a stop waits
for them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from collections.abc import Iterator
from types import FrameType

STOPS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and a scheduler's or timeout's stop


@contextlib.contextmanager
def held_interrupts() -> Iterator[Callable[[], bool]]:
    """Within the block Ctrl-C and SIGTERM are recorded, not raised; the block gets a function
    saying whether one came. Only the main thread receives signals: elsewhere nothing changes."""
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    with _handled(record):
        yield lambda: bool(received)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a command as Ctrl-C does (an epoch ends cleanly, the run is marked
    interrupted and can be resumed); by default it killed the process mid-write, its status
    left "running"."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    with _handled(interrupt, (signal.SIGTERM,)):
        yield


@contextlib.contextmanager
def _handled(
    handler: Callable[[int, FrameType | None], None], signals: tuple[int, ...] = STOPS
) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, handler) for number in signals}
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before)
