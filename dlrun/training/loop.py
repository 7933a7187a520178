"""The training loop: epochs of index-batched steps with callbacks at fixed points.

Data stays on the device as whole tensors; each batch is a gather by shuffled indices, so there
is no per-sample Python work. Stopping goes through ``state.should_stop``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from dlrun.guards import training_active
from dlrun.training.callbacks import Callback
from dlrun.training.state import TrainState
from dlrun.training.steps import TaskStep
from dlrun.training.steps import TensorData


def fit(
    step: TaskStep,
    train: TensorData,
    val: TensorData | None,
    epochs: int,
    batch_size: int,
    callbacks: Callback,
    generator: torch.Generator,
    shuffle: bool = True,
    save_checkpoint: Callable[[str], None] | None = None,
) -> TrainState:
    """Train ``step`` for up to ``epochs`` epochs; returns the final state with its history."""
    batches = math.ceil(len(train) / batch_size)
    state = TrainState(step, epochs, batches, save_checkpoint=save_checkpoint)
    callbacks.on_fit_start(state)
    try:
        with training_active():  # the sealed test split refuses to open inside this block
            while state.epoch < epochs and not state.should_stop:
                callbacks.on_epoch_start(state)
                logs = train_epoch(step, train, batch_size, shuffle, generator, callbacks, state)
                if val is not None and len(val):
                    logs.update(step.evaluate(val, batch_size, prefix="val_"))
                end_epoch(step, state, logs, callbacks)
    except KeyboardInterrupt:
        state.stop("interrupted", f"interrupted by the user during epoch {state.epoch + 1}")
    if state.status == "running":
        state.status = "completed"
    callbacks.on_fit_end(state)
    return state


def end_epoch(
    step: TaskStep, state: TrainState, logs: dict[str, float], callbacks: Callback
) -> None:
    """Record a finished epoch, stop on a non-finite loss, and run the epoch-end callbacks."""
    logs["lr"] = step.learning_rate()
    state.epoch += 1
    state.history.append(logs)
    if not math.isfinite(logs["loss"]):
        state.stop("diverged", f"the training loss became {logs['loss']} in epoch {state.epoch}")
    callbacks.on_epoch_end(state, logs)


def train_epoch(
    step: TaskStep,
    train: TensorData,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator,
    callbacks: Callback,
    state: TrainState,
) -> dict[str, float]:
    """One pass over the training data; returns the mean batch loss and epoch metrics."""
    n = len(train)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(train.x.device)
    outputs: list[torch.Tensor] = []
    state.batch = 0
    state.loss_sum = torch.zeros((), device=train.x.device)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        loss, out = step.train_batch(train.x[index], train.y[index])
        outputs.append(out)
        state.loss_sum += loss
        state.batch += 1
        callbacks.on_batch_end(state)
    logs = {"loss": float(state.loss_sum) / max(state.batch, 1)}
    logs.update(step.epoch_logs(outputs, train.y[order]))
    return logs
