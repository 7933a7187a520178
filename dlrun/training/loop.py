"""The one training loop: epochs of task steps over a batch source, callbacks at fixed points.

Every kind of model trains here: the task supplies the steps, the batch source the batches.
Variants of training wrap one of the two (parallel folds stack K tasks into one, see
:mod:`dlrun.evaluation.stacking`) and never copy this loop. Stopping goes through
``state.should_stop``; a :class:`~dlrun.training.snapshots.Snapshots` store saves the state
after each epoch and puts a resumed fit back where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from dlrun.guards import training_active
from dlrun.tasks.base import StepResult
from dlrun.tasks.base import Task
from dlrun.training.batches import BatchSource
from dlrun.training.callbacks import Callback
from dlrun.training.snapshots import Snapshots
from dlrun.training.state import TrainState
from dlrun.training.status import RunStatus


def fit(
    task: Task,
    train: BatchSource,
    val: BatchSource | None,
    epochs: int,
    callbacks: Callback,
    snapshots: Snapshots | None = None,
    save_checkpoint: Callable[[str, TrainState], None] | None = None,
) -> TrainState:
    """Train ``task`` for up to ``epochs`` epochs; returns the final state with its history."""
    state = TrainState(task, epochs, train.batches_per_epoch, save_checkpoint=save_checkpoint)
    callbacks.on_fit_start(state)
    if snapshots is not None:
        snapshots.restore(state, train, callbacks)
    try:
        with training_active():  # the sealed test split refuses to open inside this block
            while state.epoch < epochs and not state.should_stop:
                callbacks.on_epoch_start(state)
                logs = train_epoch(task, train, callbacks, state)
                if val is not None and len(val):
                    logs.update(evaluate(task, val, prefix="val_"))
                end_epoch(task, state, logs, callbacks)
                if snapshots is not None:
                    snapshots.save(state, train, callbacks)
    except KeyboardInterrupt:
        state.stop(
            RunStatus.INTERRUPTED, f"interrupted by the user during epoch {state.epoch + 1}"
        )
    if state.status is RunStatus.RUNNING:
        state.status = RunStatus.COMPLETED
    callbacks.on_fit_end(state)
    return state


def train_epoch(
    task: Task, source: BatchSource, callbacks: Callback, state: TrainState
) -> dict[str, float]:
    """One pass over the training batches; returns the epoch's loss and metrics."""
    results: list[StepResult] = []
    state.batch, state.results = 0, results
    for batch in source.epoch():
        results.append(task.train_step(batch))
        del batch  # free it before the next one is gathered
        state.batch += 1
        callbacks.on_batch_end(state)
    return task.epoch_logs(results)


def collect(task: Task, source: BatchSource) -> list[StepResult]:
    """Every evaluation batch's result, models and the random streams unchanged.

    A model that draws while evaluating (a VAE's code) draws the same numbers at every
    evaluation of a split, from ``cfg.seed``: ``dlrun eval`` gives the run's own test loss, and
    validating leaves training's stream where it was.
    """
    with torch.no_grad(), _draws_from(task.cfg.seed):
        return [task.eval_step(batch) for batch in source.epoch()]


@contextmanager
def _draws_from(seed: int) -> Iterator[None]:
    """Torch's generators seeded with ``seed`` inside the block and as they were after it. A
    CUDA generator is touched only once CUDA is in use (seeding it earlier would queue a seed
    for whenever it starts)."""
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for device in cuda:
            torch.cuda.default_generators[device].manual_seed(seed)
        yield


def evaluate(task: Task, source: BatchSource, prefix: str = "") -> dict[str, float]:
    return task.epoch_logs(collect(task, source), prefix)


def end_epoch(task: Task, state: TrainState, logs: dict[str, float], callbacks: Callback) -> None:
    """Record a finished epoch, stop on a non-finite loss, and run the epoch-end callbacks."""
    logs["lr"] = task.learning_rate()
    state.epoch += 1
    state.history.append(logs)
    if not math.isfinite(logs["loss"]):
        state.stop(
            RunStatus.DIVERGED, f"the training loss became {logs['loss']} in epoch {state.epoch}"
        )
    callbacks.on_epoch_end(state, logs)
