"""Train a protocol's folds: one after another, or all at once as one stacked task."""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Iterator

import torch

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import LoadedData
from dlrun.evaluation.fitting import FittedModel
from dlrun.evaluation.fitting import prepare_fold
from dlrun.evaluation.fitting import train_fold
from dlrun.evaluation.outcome import ProtocolOutcome
from dlrun.evaluation.outcome import Recording
from dlrun.evaluation.protocols import Fold
from dlrun.evaluation.protocols import Protocol
from dlrun.evaluation.stacking import FoldFanOut
from dlrun.evaluation.stacking import StackedSource
from dlrun.tasks.base import TASKS
from dlrun.tasks.base import StackedTask
from dlrun.tasks.base import Task
from dlrun.training.batches import InMemorySource
from dlrun.training.callbacks import CallbackList
from dlrun.training.loop import fit
from dlrun.training.state import TrainState


def stacking_blocker(cfg: ExperimentConfig, folds: list[Fold]) -> str | None:
    """Why these folds cannot train as one stacked task, or ``None`` if they can."""
    batch = cfg.train.batch_size
    counts = {math.ceil(len(f.train_idx) / batch) for f in folds}
    if len(counts) > 1:
        return (
            f"the folds need different numbers of batches per epoch ({sorted(counts)}) "
            f"at batch size {batch}"
        )
    if cfg.train.callbacks:
        return "callbacks act on each fold separately"
    if not TASKS.get(cfg.task.name).stackable:
        return f"task {cfg.task.name} cannot be stacked"
    if cfg.data.in_memory is False:
        return "stacked folds need the data in memory (data.in_memory is false)"
    if cfg.data.augment is not None:  # known before any fold is prepared
        return "training transforms draw per fold"
    return None


def fold_models(
    cfg: ExperimentConfig,
    protocol: Protocol,
    data: LoadedData,
    folds: list[Fold],
    device: torch.device,
    recording: Recording,
    outcome: ProtocolOutcome,
) -> Iterator[tuple[Fold, FittedModel]]:
    """Fitted models fold by fold: all at once when parallel folds apply, else one at a time."""
    wants_stacking = protocol.parallel_folds and len(folds) > 1
    blocker = stacking_blocker(cfg, folds) if wants_stacking else None
    if wants_stacking and blocker is None:
        stacked = train_stacked(cfg, data, folds, device, recording)
        if isinstance(stacked, str):
            blocker = stacked
        else:
            fitted, group = stacked
            outcome.parallel = True
            if group.status.halted:  # the cause (a fold that diverged), not its siblings' stop
                outcome.stop(group.status, group.stop_reason)
            yield from zip(folds, fitted, strict=True)
            return
    if wants_stacking and blocker is not None:
        outcome.warnings.append(f"parallel_folds: {blocker}; training folds one after another")
    for fold in folds:
        yield fold, train_fold(
            cfg, data.train, fold.train_idx, fold.val_idx, cfg.train.epochs, device,
            recording.hooks(fold, "fit"), data.implied_steps, fold.seed,
        )  # fmt: skip


def train_stacked(
    cfg: ExperimentConfig,
    data: LoadedData,
    folds: list[Fold],
    device: torch.device,
    recording: Recording,
    stack: Callable[[list[Task]], StackedTask] | None = None,
) -> tuple[list[FittedModel], TrainState] | str:
    """Every fold prepared as for sequential training, then stacked by its task
    (``stack``, by default the task's own :meth:`~dlrun.tasks.base.Task.stacked`) and trained
    by the loop as one. Returns each fold's model and the stack's own state (its status names
    a halting fold), or why these prepared folds cannot stack after all."""
    prepared = [
        prepare_fold(cfg, data.train, f.train_idx, f.val_idx, device, data.implied_steps, f.seed)
        for f in folds
    ]
    trains = [p.train for p in prepared if isinstance(p.train, InMemorySource)]
    vals = [p.val for p in prepared if isinstance(p.val, InMemorySource)]
    if len(trains) != len(folds):
        return "the data is streamed (too large to hold in memory), and stacking gathers it"
    if any(t.train_transforms for t in trains):
        return "training transforms draw per fold"
    if any(t.layout != torch.strided for source in trains for t in source.tensors.values()):
        return "sparse multi-hot inputs have a different number of ones in every row"
    task = (stack or TASKS.get(cfg.task.name).stacked)([p.task for p in prepared])
    train = StackedSource(trains)
    val = StackedSource(vals) if len(vals) == len(folds) else None
    states = [TrainState(m, cfg.train.epochs, train.batches_per_epoch) for m in task.members]
    fan_out = FoldFanOut(task, states, [recording.hooks(f, "fit", False).callbacks for f in folds])
    callbacks = CallbackList([fan_out, recording.progress(f"folds 1-{len(folds)} together: ")])
    group = fit(task, train, val, cfg.train.epochs, callbacks, recording.snapshots(None, "folds"))
    fitted = [FittedModel(p.sources, p.fields, s) for p, s in zip(prepared, states, strict=True)]
    return fitted, group
