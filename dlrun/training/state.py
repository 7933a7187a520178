"""The mutable state one ``fit`` call shares with its callbacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING

from dlrun.training.status import RunStatus

if TYPE_CHECKING:
    from dlrun.tasks.base import StepResult
    from dlrun.tasks.base import Task


@dataclass
class TrainState:
    task: Task
    epochs: int
    batches_per_epoch: int
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches completed in the current epoch
    results: list[StepResult] = field(default_factory=list)  # the current epoch's batches
    history: list[dict[str, float]] = field(default_factory=list)
    should_stop: bool = False
    stop_reason: str | None = None
    status: RunStatus = RunStatus.RUNNING
    save_checkpoint: Callable[[str, TrainState], None] | None = None  # (file name, this state)
    resumed_from: int | None = None  # the epoch a resumed fit continued from
    restored_epoch: int | None = None  # the epoch whose weights a callback put back at the end

    def stop(self, status: RunStatus, reason: str) -> None:
        self.should_stop = True
        self.status = status
        self.stop_reason = reason
