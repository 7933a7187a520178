"""The TensorBoard events file dlrun writes from the training thread: what TensorBoard reads back,
when it reaches the disk, and that writing it starts no thread."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import google_crc32c
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto.summary_pb2 import Summary

from dlrun.reporting import loggers
from dlrun.reporting.events import EventsFile
from dlrun.reporting.events import masked_crc
from dlrun.reporting.events import record
from dlrun.reporting.loggers import TensorBoardLogger
from dlrun.training.state import TrainState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(directory))
    events.Reload()
    return {
        tag: [(e.step, round(e.value, 6)) for e in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def test_tensorboard_reads_every_value_at_its_step(tmp_path: Path) -> None:
    events = EventsFile(tmp_path / "train", flush_seconds=2)
    for step in (1, 2, 3):
        summary = Summary(value=[Summary.Value(tag="epoch/loss", simple_value=1 / step),
                                 Summary.Value(tag="epoch/accuracy", simple_value=step / 4)])  # fmt: skip
        events.add_summary(summary, step)
    events.add_scalar("results/test_accuracy", 0.75)
    events.close()
    assert events.path.name.startswith("events.out.tfevents.")
    assert scalars(tmp_path / "train") == {
        "epoch/loss": [(1, 1.0), (2, 0.5), (3, 0.333333)],
        "epoch/accuracy": [(1, 0.25), (2, 0.5), (3, 0.75)],
        "results/test_accuracy": [(0, 0.75)],
    }


def test_events_reach_the_disk_every_flush_interval(tmp_path: Path) -> None:
    clock = Clock()
    events = EventsFile(tmp_path, flush_seconds=2, clock=clock)
    header = events.path.stat().st_size  # the file-version event is on disk at once
    assert header > 0
    events.add_scalar("epoch/loss", 0.5, 1)
    clock.now += 1.5
    events.add_scalar("epoch/loss", 0.4, 2)
    assert events.path.stat().st_size == header  # buffered: a second and a half since the flush
    clock.now += 0.5
    events.add_scalar("epoch/loss", 0.3, 3)  # two seconds: all three go out
    assert scalars(tmp_path) == {"epoch/loss": [(1, 0.5), (2, 0.4), (3, 0.3)]}
    events.add_scalar("epoch/loss", 0.2, 4)
    events.close()  # and closing writes the rest
    assert scalars(tmp_path)["epoch/loss"][-1] == (4, 0.2)


def test_two_files_in_one_directory_get_different_names(tmp_path: Path) -> None:
    first, second = EventsFile(tmp_path, 2), EventsFile(tmp_path, 2)
    assert first.path != second.path
    first.close()
    second.close()


def test_writing_starts_no_thread(tmp_path: Path) -> None:
    """torch's SummaryWriter runs a thread per file; this one writes in the caller's."""
    before = threading.active_count()
    events = EventsFile(tmp_path, 2)
    events.add_scalar("epoch/loss", 0.5, 1)
    assert threading.active_count() == before
    events.close()


def test_a_finished_fit_is_on_disk_before_the_run_closes_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A final retrain or the test scoring may follow for minutes: the fit's last epochs are
    readable (and safe from a kill) as soon as it ends."""
    monkeypatch.setattr(loggers, "FLUSH_SECONDS", 3600)  # no flush by the clock in this test
    logger = TensorBoardLogger(tmp_path)
    state = cast(TrainState, SimpleNamespace(epoch=0))
    for epoch in (1, 2):
        state.epoch = epoch
        logger.on_epoch_end(state, {"loss": 1 / epoch, "val_loss": 2 / epoch})
    assert "epoch/loss" not in scalars(tmp_path / "train")  # still in the file's buffer
    logger.on_fit_end(state)
    assert scalars(tmp_path / "train") == {"epoch/loss": [(1, 1.0), (2, 0.5)]}
    assert scalars(tmp_path / "validation") == {"epoch/loss": [(1, 2.0), (2, 1.0)]}
    logger.close()


@pytest.mark.parametrize("size", [0, 1, 7, 8, 120, 4096])
def test_records_are_framed_byte_for_byte_as_tensorboards_writer_frames_them(size: int) -> None:
    from tensorboard.summary.writer.record_writer import RecordWriter

    data = bytes((i * 37 + size) % 256 for i in range(size))
    theirs = io.BytesIO()
    RecordWriter(theirs).write(data)
    assert record(data) == theirs.getvalue()


def test_the_checksum_is_crc32c_masked() -> None:
    """The standard CRC-32C check value, and its masked form computed by hand."""
    assert google_crc32c.value(b"123456789") == 0xE3069283
    assert (
        masked_crc(b"123456789")
        == (((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xA282EAD8) % 2**32
    )
    assert masked_crc(b"123456789") == 0xC78AB0E5
