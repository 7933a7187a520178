"""TensorBoard events files appended to by the training thread itself.

torch's ``SummaryWriter`` hands each event to a writer thread that, without TensorFlow, opens
the file, appends the record and closes it again for every event; with epochs of a few
milliseconds that thread's wake-ups and file operations cost the training thread more than the
epoch's own work (measured: 2.5-3.7 ms an epoch on the ch. 6 spirals network, two events an
epoch). Here an event is serialized and framed into an open, buffered file. The file goes to
the operating system with the first event written ``flush_seconds`` after the last flush, and
whenever its owner flushes it (the end of each fit) or closes it, so a live TensorBoard follows
the run.

The framing is TensorBoard's record format (length, data, each followed by its masked
CRC-32C), written here rather than by its ``RecordWriter``: that class checksums in pure Python
(25 microseconds an event, 0.3 with ``google_crc32c``), and importing it loads TensorBoard's
TensorFlow stand-ins (0.3 s of a run's start). A test holds the bytes equal to its writer's.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO
from typing import TYPE_CHECKING

import google_crc32c

if TYPE_CHECKING:
    from tensorboard.compat.proto.summary_pb2 import Summary

FILE_VERSION = "brain.Event:2"  # the first event of every events file, as TensorBoard writes it
_FILE_NUMBERS = itertools.count()  # files one process opens in the same second differ by it
_CRC_MASK_DELTA = 0xA282EAD8  # the record format's constant added to each rotated checksum


def masked_crc(data: bytes) -> int:
    """The record format's checksum: CRC-32C rotated right by 15 bits, plus a constant."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """``data`` framed as one record: its length and the data, each with its checksum."""
    header = struct.pack("<Q", len(data))
    return b"".join(
        (header, struct.pack("<I", masked_crc(header)), data, struct.pack("<I", masked_crc(data)))
    )


class EventsFile:
    """One ``events.out.tfevents.*`` file in ``directory``, opened on creation."""

    def __init__(
        self,
        directory: Path,
        flush_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        directory.mkdir(parents=True, exist_ok=True)
        name = (
            f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}"
            f".{os.getpid()}.{next(_FILE_NUMBERS)}"
        )
        self.path = directory / name
        self._file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._event = Event
        self._clock = clock
        self._flush_seconds = flush_seconds
        self._flushed = clock()
        self._write_event(file_version=FILE_VERSION)
        self.flush()

    def add_summary(self, summary: Summary, step: int = 0) -> None:
        self._write_event(summary=summary, step=step)
        if self._clock() - self._flushed >= self._flush_seconds:
            self.flush()

    def add_scalar(self, tag: str, value: float, step: int = 0) -> None:
        """The summary ``SummaryWriter.add_scalar`` writes: one ``simple_value``."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        self.add_summary(Summary(value=[Summary.Value(tag=tag, simple_value=value)]), step)

    def flush(self) -> None:
        self._file.flush()
        self._flushed = self._clock()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def _write_event(self, **fields: object) -> None:
        event = self._event(wall_time=time.time(), **fields)
        self._file.write(record(event.SerializeToString()))
