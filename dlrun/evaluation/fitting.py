"""Fit one model on one index split: preprocessing, tensors, model, optimizer, loop.

Every protocol calls :func:`train_model` once per split, so each
split gets a freshly fitted pipeline and a freshly initialised model.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dlrun.config.entries import OneOfEntry
from dlrun.config.schema import ExperimentConfig
from dlrun.config.schema import StepEntry
from dlrun.data.base import Arrays
from dlrun.errors import DataError
from dlrun.models.build import BuiltModel
from dlrun.models.build import build_model
from dlrun.preprocess.pipeline import Pipeline
from dlrun.preprocess.pipeline import fit_pipeline
from dlrun.training.callbacks import Callback
from dlrun.training.loop import fit
from dlrun.training.losses import LOSSES
from dlrun.training.losses import Loss
from dlrun.training.optimizers import OPTIMIZERS
from dlrun.training.state import TrainState
from dlrun.training.steps import TASK_STEPS
from dlrun.training.steps import SupervisedStep
from dlrun.training.steps import TensorData

SaverFactory = Callable[[Pipeline, SupervisedStep], Callable[[str], None]]
"""Given the fitted pipeline and step, returns a function that writes a named checkpoint."""


@dataclass
class FittedModel:
    pipeline: Pipeline
    model: BuiltModel
    step: SupervisedStep
    state: TrainState


def preprocess_entries(cfg: ExperimentConfig, implied: list[dict[str, Any]]) -> list[OneOfEntry]:
    """The configured steps, after any the data source asked for (e.g. imputation)."""
    return [StepEntry.model_validate(step) for step in implied] + list(cfg.preprocess)


def make_loss(cfg: ExperimentConfig) -> Loss:
    return LOSSES.get(cfg.loss_name)(cfg.loss)


def to_tensors(
    x: np.ndarray, y: np.ndarray | None, cfg: ExperimentConfig, device: torch.device
) -> TensorData:
    """Float inputs; integer labels for sparse cross-entropy, else float targets of shape (N, k)."""
    if x.dtype == object:
        raise DataError(
            "the inputs are ragged sequences; add a multi_hot (or padding) step to preprocess"
        )
    xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=device)
    if y is None:
        return TensorData(xt, torch.empty(0, device=device))
    if cfg.loss_name == "sparse_categorical_crossentropy":
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64).reshape(-1), device=device)
    else:
        values = np.asarray(y, dtype=np.float32)
        yt = torch.as_tensor(values.reshape(len(values), -1), device=device)
    return TensorData(xt, yt)


def check_output_matches_targets(
    model: BuiltModel, targets: torch.Tensor, cfg: ExperimentConfig
) -> None:
    units = model.output_shape[-1]
    sparse = cfg.loss_name == "sparse_categorical_crossentropy"  # integer labels, not vectors
    if not sparse and targets.dim() == 2 and targets.shape[1] != units:
        raise DataError(
            f"the model outputs {units} values per sample but the targets have {targets.shape[1]}; "
            f"set units: {targets.shape[1]} on the last dense layer"
        )
    if sparse and len(targets) and int(targets.max()) >= units:
        raise DataError(
            f"label {int(targets.max())} needs at least {int(targets.max()) + 1} output units; "
            f"the last dense layer has {units}"
        )


def make_step(cfg: ExperimentConfig, model: BuiltModel, loss: Loss) -> SupervisedStep:
    """The task's training step with the configured optimizer and metrics."""
    optimizer = OPTIMIZERS.get(cfg.optimizer_name)(cfg.optimizer)  # type: ignore[arg-type]
    return TASK_STEPS.get(cfg.task)(cfg.task, model, loss, optimizer, list(cfg.metrics))


def build_for(cfg: ExperimentConfig, input_shape: Sequence[int], loss: Loss) -> BuiltModel:
    return build_model(cfg.model.layers, tuple(input_shape), cfg.model.init == "keras", loss.fuses)


@dataclass
class PreparedFold:
    """A split ready to train: fitted preprocessing, device tensors, a new model and step."""

    pipeline: Pipeline
    train: TensorData
    val: TensorData | None
    model: BuiltModel
    step: SupervisedStep


def prepare_fold(
    cfg: ExperimentConfig,
    data: Arrays,
    train_idx: np.ndarray,
    val_idx: np.ndarray | None,
    device: torch.device,
    implied_steps: list[dict[str, Any]],
    seed: int,
) -> PreparedFold:
    """Fit preprocessing on ``train_idx`` only and build a model initialised from ``seed``."""
    entries = preprocess_entries(cfg, implied_steps)
    pipeline, x_tr, y_tr = fit_pipeline(entries, data.x, data.y, train_idx)
    train = to_tensors(x_tr, y_tr, cfg, device)
    val = None
    if val_idx is not None and len(val_idx):
        x_val, y_val = pipeline.transform(data.x[val_idx], data.y[val_idx])
        val = to_tensors(x_val, y_val, cfg, device)
    loss = make_loss(cfg)
    input_shape = tuple(train.x.shape[1:])
    if cfg.model.input_shape is not None and tuple(cfg.model.input_shape) != input_shape:
        raise DataError(
            f"model.input_shape is {cfg.model.input_shape} but the preprocessed data has "
            f"shape {list(input_shape)} per sample"
        )
    torch.manual_seed(seed)
    model = build_for(cfg, input_shape, loss)
    model.network.to(device)
    check_output_matches_targets(model, train.y, cfg)
    return PreparedFold(pipeline, train, val, model, make_step(cfg, model, loss))


def train_model(
    cfg: ExperimentConfig,
    data: Arrays,
    train_idx: np.ndarray,
    val_idx: np.ndarray | None,
    epochs: int,
    device: torch.device,
    callbacks: Callback,
    implied_steps: list[dict[str, Any]],
    seed: int,
    saver: SaverFactory | None = None,
) -> FittedModel:
    """Prepare the split, then train for ``epochs``; ``seed`` fixes initialisation and order."""
    fold = prepare_fold(cfg, data, train_idx, val_idx, device, implied_steps, seed)
    save = saver(fold.pipeline, fold.step) if saver is not None else None
    generator = torch.Generator().manual_seed(seed)
    state = fit(
        fold.step, fold.train, fold.val, epochs, cfg.train.batch_size, callbacks, generator,
        cfg.train.shuffle, save,
    )  # fmt: skip
    return FittedModel(fold.pipeline, fold.model, fold.step, state)
