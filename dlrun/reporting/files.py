"""Atomic file writes: write to a temporary file beside the target, then rename.

A run killed at any moment leaves either the old complete file or the new complete file,
never half of one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlrun.errors import OutputError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(target: Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` in one rename.

    ``durable`` also flushes the data to disk before the rename, so even a power cut leaves a
    complete file; without it a killed process still never leaves half a file (the rename is
    atomic) and frequent writes stay cheap.
    """
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a directory; name a file to write")
    blocking = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:  # mkdir says only "File exists"
        raise OutputError(f"cannot write {target}: {blocking} is a file, not a folder")
    with refused_as(f"cannot write {target}"):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual file mode
    try:
        yield tmp_path
        if durable:
            with open(tmp_path, "rb+") as handle:
                os.fsync(handle.fileno())
        with refused_as(f"cannot write {target}"):
            os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def refused_as(what: str) -> Iterator[None]:
    """The file system's refusal (a file where a directory should be, no permission, a full
    disk) as one line for the user, ``<what>: <reason>``, not a traceback. A path that exists
    already is left to the caller, which may try another name."""
    try:
        yield
    except FileExistsError:
        raise
    except OSError as exc:
        raise OutputError(f"{what}: {exc.strerror or exc}") from None


def write_text(target: Path, text: str, durable: bool = True) -> None:
    with atomic_path(target, durable) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: Path, data: Any) -> None:
    write_text(target, json.dumps(strict_json(data), indent=2, allow_nan=False) + "\n")


def json_line(row: dict[str, Any]) -> str:
    """One JSON Lines row (``metrics.jsonl``), NaN written as ``null`` as in :func:`strict_json`."""
    return json.dumps(strict_json(row), allow_nan=False) + "\n"


def strict_json(value: Any) -> Any:
    """``value`` as plain JSON data: numpy and torch numbers and arrays as Python ones, and a
    non-finite number (a diverged loss, a metric a fold could not score) as ``None``. JSON has
    no NaN: Python writes and reads the bare token, but JavaScript's parser and other strict
    readers refuse the whole file. :func:`number` reads such a ``null`` back as NaN."""
    if hasattr(value, "tolist"):  # numpy scalars and arrays, tensors
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(f"cannot serialise {type(value).__name__}")


def number(value: float | None) -> float:
    """A number read back from dlrun's JSON: ``null`` (written for NaN) is NaN again."""
    return math.nan if value is None else float(value)


def write_csv(
    target: Path, header: list[str], rows: list[list[Any]], durable: bool = True
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(target, buffer.getvalue(), durable)


class TimeShare:
    """Lets a repeated write run only while it takes at most ``share`` of the wall time.

    A write that took ``c`` seconds is allowed again ``c / share`` seconds later: epochs of
    seconds are saved after every epoch, epochs of milliseconds every few hundred
    milliseconds, so a kill loses at most that much work and the writes never dominate.
    """

    def __init__(self, share: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share
        self.clock = clock
        self.done_at = -float("inf")
        self.cost = 0.0

    def due(self) -> bool:
        return self.clock() - self.done_at >= self.cost / self.share

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Measure one write (use around it, whether it was due or forced)."""
        started = self.clock()
        yield
        self.done_at = self.clock()
        self.cost = self.done_at - started
