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
# Set once this process got SIGTERM: the stop it raised may be caught and raised again as a
# plain KeyboardInterrupt on its way up (an interrupted sweep trial), losing its type
TERMINATED = threading.Event()


class Terminated(KeyboardInterrupt):
    """SIGTERM, stopping as Ctrl-C does; unlike Ctrl-C it reaches this process only, so a
    process with workers of its own passes it on."""


class HeldInterrupt(KeyboardInterrupt):
    """A stop that came while :func:`held_interrupts` held it, raised once the block is done:
    what the block wrote is complete."""


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Within the block a first Ctrl-C or SIGTERM is held and raised as :class:`HeldInterrupt`
    when the block ends; a second one stops at once (the user insists). Only the main thread
    receives signals: elsewhere nothing changes."""
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGTERM:
            TERMINATED.set()
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    with _handled(record):
        yield
    if received:
        raise HeldInterrupt


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a command as Ctrl-C does (an epoch ends cleanly, the run is marked
    interrupted and can be resumed); by default it killed the process mid-write, its status
    left "running"."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        TERMINATED.set()
        raise Terminated

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
