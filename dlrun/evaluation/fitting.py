"""Fit one model on one index split: preprocessing, batch sources, task, the loop.

Every protocol calls :func:`train_fold` once per split, so each split gets a freshly fitted
pipeline and freshly initialised models.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np
import torch

from dlrun.config.entries import OneOfEntry
from dlrun.config.schema import ExperimentConfig
from dlrun.config.schema import StepEntry
from dlrun.data.base import Arrays
from dlrun.data.images import decoded
from dlrun.errors import DataError
from dlrun.preprocess.augment import Augment
from dlrun.preprocess.pipeline import DeviceSteps
from dlrun.preprocess.pipeline import Pipeline
from dlrun.preprocess.pipeline import fit_pipeline
from dlrun.tasks.base import TASKS
from dlrun.tasks.base import Task
from dlrun.training.batches import BatchReader
from dlrun.training.batches import BatchSource
from dlrun.training.batches import BatchTransform
from dlrun.training.batches import Fields
from dlrun.training.batches import InMemorySource
from dlrun.training.batches import StreamingSource
from dlrun.training.batches import estimated_bytes
from dlrun.training.batches import evaluation_batch_size
from dlrun.training.batches import host_tensors
from dlrun.training.batches import memory_budget
from dlrun.training.callbacks import Callback
from dlrun.training.loop import fit
from dlrun.training.snapshots import Snapshots
from dlrun.training.state import TrainState

SaverFactory = Callable[[Pipeline, Fields], Callable[[str, TrainState], None]]
"""Given the fitted pipeline and input shapes, returns a function that writes a named
checkpoint of a fit's state."""

SAMPLE_ROWS = 64  # rows preprocessed to estimate the size of the whole split


def task_for(cfg: ExperimentConfig) -> Task:
    return TASKS.get(cfg.task.name)(cfg)


def preprocess_entries(cfg: ExperimentConfig, implied: list[dict[str, Any]]) -> list[OneOfEntry]:
    """The configured steps, after any the data source asked for (e.g. imputation)."""
    return [StepEntry.model_validate(step) for step in implied] + list(cfg.preprocess)


def deferring(pipeline: Pipeline, raw: Arrays) -> tuple[Arrays, DeviceSteps]:
    """Raw rows (images decoded, only these rows) through the pipeline, uint8 kept."""
    return pipeline.transform_deferring(decoded(raw))


def train_transforms(cfg: ExperimentConfig) -> list[BatchTransform]:
    """What changes training batches only: ``data.augment``."""
    augment = cfg.data.augment
    return [Augment(augment)] if augment is not None and augment.active else []


def check_augment(cfg: ExperimentConfig, fields: Fields) -> None:
    """Refuse, before training starts, augmentation of an array that is not images."""
    augment = cfg.data.augment
    if augment is None or not augment.active:
        return
    if augment.array not in fields:
        raise DataError(f"data.augment.array: the batches have no array '{augment.array}' "
                        f"(they have {', '.join(fields)})")  # fmt: skip
    Augment(augment).check(fields[augment.array].shape)


@dataclass(frozen=True)
class PreparedRows:
    """Raw rows to what the task's steps read: the pipeline, then the task's array form.

    A uint8 array's elementwise steps are left to the device, as for in-memory data, so a
    batch crosses from a DataLoader worker as uint8 (4x smaller). Images read from files are
    decoded here, in the worker, a batch at a time."""

    pipeline: Pipeline
    form: Callable[[Arrays], Arrays]

    def __call__(self, raw: Arrays) -> Arrays:
        return self.form(deferring(self.pipeline, raw)[0])


@dataclass
class Sources:
    """Makes batch sources over raw arrays for one fitted pipeline and task."""

    pipeline: Pipeline
    task: Task
    batch_size: int
    device: torch.device
    streaming: bool
    workers: int = 2
    transforms: Sequence[BatchTransform] = field(default_factory=list)  # training batches only

    def __call__(
        self, raw: Arrays, rows: np.ndarray | None = None, training: bool = False,
        shuffle: bool = False, seed: int = 0,
    ) -> BatchSource:  # fmt: skip
        """A source over ``raw`` (or its ``rows``), shuffled with ``seed`` when asked; sources
        that only score take larger batches (:func:`evaluation_batch_size`)."""
        options: dict[str, Any] = {"shuffle": shuffle, "seed": seed}
        if training:
            options["train_transforms"] = self.transforms
        batch_size = self.batch_size if training else evaluation_batch_size(self.batch_size)
        form = self.task.array_form()
        if self.streaming:
            _, device_steps = deferring(self.pipeline, raw.subset(np.arange(min(len(raw), 1))))
            reader = BatchReader(raw, PreparedRows(self.pipeline, form), rows)
            return StreamingSource(reader, batch_size, self.device, self.workers,
                                   device_steps=device_steps, **options)  # fmt: skip
        arrays, device_steps = deferring(self.pipeline, raw if rows is None else raw.subset(rows))
        tensors = host_tensors(form(arrays))
        return InMemorySource(tensors, batch_size, self.device,
                              device_steps=device_steps, **options)  # fmt: skip

    def check(self, source: BatchSource) -> None:
        """The task's checks on a split scored without training (token ids beyond an
        embedding's rows, say), when all of it is in memory: a streamed split is not decoded
        twice for them."""
        if not self.streaming:
            self.task.check_batch(source.check_view())


def sample_source(sources: Sources, sample: Arrays) -> InMemorySource:
    """These raw rows as the task would see them (for their fields and a batch to check)."""
    arrays, device_steps = deferring(sources.pipeline, sample)
    tensors = host_tensors(sources.task.array_form()(arrays))
    return InMemorySource(tensors, 1, torch.device("cpu"), device_steps=device_steps)


def fold_sources(
    cfg: ExperimentConfig,
    data: Arrays,
    train_idx: np.ndarray,
    implied_steps: list[dict[str, Any]],
    batch_size: int,
    device: torch.device,
    workers: int = 2,
) -> Sources:
    """Sources (not yet streaming) for preprocessing fitted on ``train_idx`` only and the
    configured task, training batches transformed by ``data.augment``. Pass the fields of a
    source they make to :func:`check_augment` before training."""
    pipeline = fit_pipeline(preprocess_entries(cfg, implied_steps), data, train_idx)
    return Sources(pipeline, task_for(cfg), batch_size, device, False, workers,
                   train_transforms(cfg))  # fmt: skip


def streams(cfg: ExperimentConfig, sources: Sources, sample: Arrays, rows: int) -> bool:
    """``data.in_memory``: as configured, or by the estimated size of ``rows`` rows
    preprocessed like the ``sample`` rows."""
    setting = cfg.data.in_memory
    if isinstance(setting, bool):
        return not setting
    prepared, _ = deferring(sources.pipeline, sample)
    return estimated_bytes(sources.task.array_form()(prepared), rows) > memory_budget(
        sources.device
    )


@dataclass
class PreparedFold:
    """A split ready to train: fitted preprocessing, a built task and its batch sources."""

    sources: Sources
    train: BatchSource
    val: BatchSource | None
    fields: Fields

    @property
    def task(self) -> Task:
        return self.sources.task


def prepare_fold(
    cfg: ExperimentConfig,
    data: Arrays,
    train_idx: np.ndarray,
    val_idx: np.ndarray | None,
    device: torch.device,
    implied_steps: list[dict[str, Any]],
    seed: int,
) -> PreparedFold:
    """Fit preprocessing on ``train_idx`` only and build the task's models from ``seed``."""
    sources = fold_sources(cfg, data, train_idx, implied_steps, cfg.train.batch_size, device,
                           cfg.data.workers)  # fmt: skip
    rows = len(train_idx) + (0 if val_idx is None else len(val_idx))
    sources.streaming = streams(cfg, sources, data.subset(train_idx[:SAMPLE_ROWS]), rows)
    train = sources(data, train_idx, training=True, shuffle=cfg.train.shuffle, seed=seed)
    val = sources(data, val_idx) if val_idx is not None and len(val_idx) else None
    fields = train.fields()
    check_augment(cfg, fields)
    torch.manual_seed(seed)
    sources.task.build(fields, device)
    sources.task.check_batch(train.check_view())
    if val is not None:
        sources.check(val)
    return PreparedFold(sources, train, val, fields)


@dataclass
class FitHooks:
    """What one fit records into: callbacks, named checkpoints, per-epoch resume state."""

    callbacks: Callback
    saver: SaverFactory | None = None
    snapshots: Snapshots | None = None


@dataclass
class FittedModel:
    sources: Sources
    fields: Fields
    state: TrainState

    @property
    def task(self) -> Task:
        return self.sources.task

    @property
    def pipeline(self) -> Pipeline:
        return self.sources.pipeline


def train_fold(
    cfg: ExperimentConfig,
    data: Arrays,
    train_idx: np.ndarray,
    val_idx: np.ndarray | None,
    epochs: int,
    device: torch.device,
    hooks: FitHooks,
    implied_steps: list[dict[str, Any]],
    seed: int,
) -> FittedModel:
    """Prepare the split, then train for ``epochs``; ``seed`` fixes initialisation and order."""
    fold = prepare_fold(cfg, data, train_idx, val_idx, device, implied_steps, seed)
    saver = hooks.saver
    save = saver(fold.sources.pipeline, fold.fields) if saver is not None else None
    state = fit(fold.task, fold.train, fold.val, epochs, hooks.callbacks, hooks.snapshots, save)
    return FittedModel(fold.sources, fold.fields, state)
