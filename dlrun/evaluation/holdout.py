"""The hold-out protocol: train on one split, watch a validation part, test once at the end.

With ``evaluation.final`` the model is retrained from scratch on training + validation data for
the given epochs before the test evaluation (DLwP 4.2.1 and the universal workflow, ch. 4.5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np
import torch

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import Arrays
from dlrun.data.base import LoadedData
from dlrun.evaluation.fitting import FittedModel
from dlrun.evaluation.fitting import SaverFactory
from dlrun.evaluation.fitting import to_tensors
from dlrun.evaluation.fitting import train_model
from dlrun.evaluation.splits import holdout_indices
from dlrun.training.callbacks import Callback


@dataclass
class Evaluation:
    """One scored split: its metrics and the raw targets/predictions behind them."""

    split: str  # "test" or "validation"
    metrics: dict[str, float]
    y_true: torch.Tensor
    y_pred: torch.Tensor
    y_raw: np.ndarray


@dataclass
class HoldoutOutcome:
    fitted: FittedModel  # the model that was scored (the retrained one if final is set)
    status: str
    stop_reason: str | None
    sizes: dict[str, int]
    validation: dict[str, Any] = field(default_factory=dict)
    evaluation: Evaluation | None = None
    y_train_raw: np.ndarray | None = None


PhaseCallbacks = Callable[[str], Callback]
"""Returns the callbacks for a phase: ``fit`` (the protocol's training) or ``final``."""


def evaluate_split(
    fitted: FittedModel, arrays: Arrays, cfg: ExperimentConfig, split: str
) -> Evaluation:
    x, y = fitted.pipeline.transform(arrays.x, arrays.y)
    device = next(fitted.model.network.parameters()).device
    data = to_tensors(x, y, cfg, device)
    metrics, y_pred = fitted.step.score(data, cfg.train.batch_size)
    return Evaluation(split, metrics, data.y, y_pred, arrays.y)


def best_epoch(history: list[dict[str, float]], monitor: str, higher: bool) -> dict[str, Any]:
    values = [row[monitor] for row in history if monitor in row]
    if not values:
        return {}
    index = int(np.argmax(values) if higher else np.argmin(values))
    return {"monitor": monitor, "best_epoch": index + 1, "best_value": values[index]}


def run_holdout(
    cfg: ExperimentConfig,
    data: LoadedData,
    device: torch.device,
    generator: torch.Generator,
    callbacks_for: PhaseCallbacks,
    saver: SaverFactory | None = None,
) -> HoldoutOutcome:
    train_all = data.train
    n = len(train_all)
    if cfg.evaluation.validation is not None:
        train_idx, val_idx = holdout_indices(n, train_all.y, cfg.evaluation.validation, cfg.seed)
    else:
        train_idx, val_idx = np.arange(n), None
    sizes = {"train": len(train_idx), "validation": 0 if val_idx is None else len(val_idx)}
    sizes["test"] = len(data.test) if data.test is not None else 0
    fitted = train_model(
        cfg, train_all, train_idx, val_idx, cfg.train.epochs, device,
        callbacks_for("fit"), generator, data.implied_steps, saver,
    )  # fmt: skip
    state = fitted.state
    outcome = HoldoutOutcome(
        fitted, state.status, state.stop_reason, sizes, y_train_raw=train_all.y[train_idx]
    )
    if val_idx is not None and state.history:
        last = {k: v for k, v in state.history[-1].items() if k.startswith("val_")}
        outcome.validation = {**last, **best_epoch(state.history, "val_loss", higher=False)}
    if state.status in ("interrupted", "diverged"):
        return outcome
    final = cfg.evaluation.final
    if final is not None:
        everything = np.arange(n)
        fitted = train_model(
            cfg, train_all, everything, None, final.epochs, device,
            callbacks_for("final"), generator, data.implied_steps, saver,
        )  # fmt: skip
        outcome.fitted = fitted
        outcome.y_train_raw = train_all.y
        if fitted.state.status in ("interrupted", "diverged"):
            outcome.status, outcome.stop_reason = fitted.state.status, fitted.state.stop_reason
            return outcome
    if data.test is not None and len(data.test):
        outcome.evaluation = evaluate_split(fitted, data.test, cfg, "test")
    elif val_idx is not None and final is None:
        outcome.evaluation = evaluate_split(fitted, train_all.subset(val_idx), cfg, "validation")
    return outcome
