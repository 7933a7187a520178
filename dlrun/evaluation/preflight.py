"""Check the configured models against the data before anything is trained or written.

``dlrun validate`` and ``dlrun train`` (before the run directory exists) build the task's models
on torch's ``meta`` device, which gives every shape and size but allocates nothing, so a model
whose outputs do not match the targets, or that cannot fit in memory, is refused at once with
the key to change and its line in the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import Arrays
from dlrun.data.base import LoadedData
from dlrun.data.sparse import IndexRows
from dlrun.data.sparse import csr_tensor
from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue
from dlrun.evaluation.fitting import SAMPLE_ROWS
from dlrun.evaluation.fitting import check_augment
from dlrun.evaluation.fitting import fold_sources
from dlrun.evaluation.fitting import sample_source
from dlrun.evaluation.fitting import task_for
from dlrun.models.size import largest
from dlrun.models.size import too_big
from dlrun.models.size import training_bytes
from dlrun.models.size import weight_bytes
from dlrun.preprocess.pipeline import build_pipeline
from dlrun.tasks.base import Task
from dlrun.training.batches import Fields
from dlrun.training.batches import FieldSpec

META = torch.device("meta")
CHECKED_ROWS = 4096  # rows preprocessed at once when every row is checked


def check_with_data(cfg: ExperimentConfig, data: LoadedData, device: torch.device) -> Task:
    """The task built for the data's shapes, its outputs checked against every training target.

    Preprocessing is fitted on the whole training part, so steps that learn the number of
    classes (``one_hot``) see every class, as the final model will. The sources are made as
    every fold's are (:func:`fold_sources`) and ``data.augment`` is checked as every fold
    checks it, so those mistakes are refused before the run directory exists.
    """
    train = data.train
    rows = np.arange(len(train))
    with _streams_untouched(), _located(cfg):
        sources = fold_sources(cfg, train, rows, data.implied_steps, cfg.train.batch_size,
                               torch.device("cpu"))  # fmt: skip
        task, pipeline = sources.task, sources.pipeline
        sample = sample_source(sources, train.subset(rows[:SAMPLE_ROWS]))
        fields = sample.fields()
        check_augment(cfg, fields)  # as each fold will, but before the run directory exists
        _build_on_meta(task, fields, device)
        task.check_batch(sample.check_view())
        if task.checks_every_row():  # train and validation rows: the test split stays sealed
            for start in range(0, len(train), CHECKED_ROWS):  # a bounded copy at a time
                part = train.subset(rows[start : start + CHECKED_ROWS])
                task.check_batch(sample_source(sources, part).check_view())
        if task.target is not None and task.target in train:
            targets = task.array_form()(
                pipeline.transform(Arrays(**{task.target: train[task.target]}))
            )
            task.check_batch({task.target: torch.as_tensor(targets[task.target])})
    return task


def check_with_shape(cfg: ExperimentConfig, device: torch.device) -> Task:
    """The task built for ``model.input_shape`` alone (``dlrun validate --no-data``)."""
    if cfg.model.input_shape is None:
        issue = ConfigIssue(
            "model.input_shape",
            "checking without the data needs model.input_shape (the per-sample input shape, "
            "e.g. [784]); set it, or let validate read the data",
        )
        raise cfg.origin.error([issue])
    task = task_for(cfg)
    name = task.inputs[0]
    fields = {name: FieldSpec(tuple(cfg.model.input_shape), torch.float32)}
    with _located(cfg):
        _build_on_meta(task, fields, device)
        if build_pipeline(cfg.preprocess).ends_sparse(name):  # can the first layer read them?
            task.check_batch({name: csr_tensor(IndexRows([], cfg.model.input_shape[-1]))})
    return task


def _build_on_meta(task: Task, fields: Fields, device: torch.device) -> None:
    """Build without allocating, then refuse models that cannot train on ``device``."""
    with META:
        task.build(fields, META)
    issues = []
    for model in task.models.values():
        sizes = [weight_bytes(module) for module in model.network]
        index = largest(sizes)
        path = f"model.layers[{index}].{model.layers[index][0]}" if model.layers else "model"
        needed = training_bytes(model.network)
        issues += too_big(model.total_params, sum(sizes), needed, device, path)
    if issues:
        raise ConfigError(issues)


@contextmanager
def _located(cfg: ExperimentConfig) -> Iterator[None]:
    """Re-raise a config problem found while building with the file's name and lines."""
    try:
        yield
    except ConfigError as exc:
        if exc.source is not None:
            raise
        raise cfg.origin.error(exc.issues) from None


@contextmanager
def _streams_untouched() -> Iterator[None]:
    """Whatever the check draws, the run's random streams continue as if it had not run."""
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        np.random.set_state(state)
