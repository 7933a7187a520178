"""The progress bar on a terminal: one bar per fit, a line per epoch above it."""

from __future__ import annotations

import io
import time
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
import torch
from rich.console import Console
from rich.progress import Progress

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.reporting import progress as progress_module
from dlrun.reporting.progress import ProgressReporter
from dlrun.tasks.base import StepResult
from dlrun.training.callbacks import Callback
from dlrun.training.state import TrainState
from dlrun.training.status import RunStatus
from tests.conftest import tiny_config


def test_one_bar_serves_every_epoch_and_each_epoch_prints_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    added: list[str] = []
    add_task = Progress.add_task

    def counted(self: Progress, description: str, *args: object, **kwargs: object) -> object:
        added.append(description)
        return add_task(self, description, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Progress, "add_task", counted)
    shown = io.StringIO()
    console = Console(file=shown, force_terminal=True, width=150)
    config = tiny_config(train={"epochs": 5, "batch_size": 16, "progress": "bar"})
    run_experiment(config_from_data(config), tmp_path, console)
    assert len(added) == 1  # rewinding a bar redraws nothing; adding one redraws at once
    text = shown.getvalue()
    for epoch in range(1, 6):
        assert f"epoch {epoch}/5 (" in text
    assert "val_loss" in text


def test_each_epoch_rewinds_the_bar_and_its_elapsed_time() -> None:
    reporter = ProgressReporter("bar", Console(file=io.StringIO(), force_terminal=True))
    state = cast(TrainState, SimpleNamespace(epoch=0, epochs=3, batches_per_epoch=4, batch=0,
                                             results=[], stop_reason=None))  # fmt: skip
    reporter.on_fit_start(state)
    assert reporter.progress is not None
    for epoch in range(3):
        state.epoch = epoch
        reporter.on_epoch_start(state)
        (task,) = reporter.progress.tasks
        assert (task.completed, task.finished, task.description) == (
            0,
            False,
            f"epoch {epoch + 1}/3",
        )
        assert task.elapsed is not None and task.elapsed < 1.0
        for batch in range(1, 5):
            state.batch = batch
            reporter.on_batch_end(state)
        assert (task.completed, task.finished) == (4, True)
        time.sleep(1.0)  # an epoch later, the next one's elapsed time starts again
        state.epoch = epoch + 1
        reporter.on_epoch_end(state, {"loss": 0.5})
    reporter.on_fit_end(state)


def test_lines_of_fast_epochs_are_printed_together_and_all_by_the_fits_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under the bar each print redraws the display; epochs of a millisecond share one."""
    monkeypatch.setattr(progress_module, "LINES_SECONDS", 3600.0)  # no epoch here is that late
    shown = io.StringIO()
    console = Console(file=shown, force_terminal=True, width=150)
    prints: list[str] = []
    real_print = console.print

    def counted(*objects: object, **kwargs: object) -> None:
        prints.append(str(objects[0]))
        real_print(*objects, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(console, "print", counted)
    reporter = ProgressReporter("bar", console)
    losses = [StepResult(torch.tensor(0.5), 16, {})]  # the bar shows their mean now and then
    state = cast(TrainState, SimpleNamespace(epoch=0, epochs=40, batches_per_epoch=1, batch=0,
                                             results=losses, stop_reason="stopped early",
                                             status=RunStatus.COMPLETED))  # fmt: skip
    reporter.on_fit_start(state)
    for epoch in range(1, 41):
        reporter.on_epoch_start(state)
        state.batch = 1
        reporter.on_batch_end(state)
        state.epoch = epoch
        reporter.on_epoch_end(state, {"loss": 1 / epoch})
    reporter.on_fit_end(state)
    epoch_prints = [p for p in prints if p.startswith("epoch ")]
    assert len(epoch_prints) == 2  # the first at once, the other 39 together at the end
    printed = "\n".join(epoch_prints).splitlines()
    assert [line.split(" (")[0] for line in printed] == [f"epoch {e}/40" for e in range(1, 41)]
    assert prints[-1] == "stopped early"  # after every epoch's line


class Recorded(io.StringIO):
    """A file that notes what had been written each time it was flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())


def test_without_a_bar_each_epoch_line_is_written_and_flushed_at_once() -> None:
    """Block-buffered stdout (a pipe, ``> log``, a batch job) still shows every epoch."""
    shown = Recorded()
    reporter = ProgressReporter("plain", Console(file=shown))
    state = cast(TrainState, SimpleNamespace(epoch=0, epochs=2, batches_per_epoch=1, batch=0,
                                             results=[], stop_reason=None))  # fmt: skip
    reporter.on_fit_start(state)
    for epoch in (1, 2):
        reporter.on_epoch_start(state)
        state.epoch = epoch
        reporter.on_epoch_end(state, {"loss": 0.5, "accuracy": 0.75})
        assert shown.flushed[-1].splitlines()[-1] == (
            f"epoch {epoch}/2 (0.0s)  loss 0.5  accuracy 0.75"
        )


class FailsInEpoch(Callback):
    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        if state.epoch == self.epoch:
            raise RuntimeError("out of memory")


def test_a_run_that_fails_inside_a_fit_still_prints_its_gathered_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress_module, "LINES_SECONDS", 3600.0)
    monkeypatch.setattr(progress_module, "REFRESH_SECONDS", 3600.0)  # no printing mid-epoch
    shown = io.StringIO()
    console = Console(file=shown, force_terminal=True, width=150)
    config = tiny_config(train={"epochs": 5, "batch_size": 16, "progress": "bar"})
    with pytest.raises(RuntimeError, match="out of memory"):
        run_experiment(
            config_from_data(config), tmp_path, console, extra_callbacks=[FailsInEpoch(3)]
        )
    text = shown.getvalue()
    assert "epoch 1/5 (" in text and "epoch 2/5 (" in text  # the second was only gathered
