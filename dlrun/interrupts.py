"""Holding Ctrl-C back while a finished run's files are written.

Training stops cleanly at Ctrl-C (at the end of the epoch), but once it has finished a run
writes results.json, its figures, report.md and status.json one after the other: a Ctrl-C among
them left a run whose files disagree (results "completed", status "interrupted", figures
embedded but never drawn). These writes take a moment, so Ctrl-C waits for them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def held_interrupts() -> Iterator[Callable[[], bool]]:
    """Within the block Ctrl-C (SIGINT) is recorded, not raised; the block gets a function
    saying whether one came. Only the main thread receives signals: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, record)
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGINT, previous)
