"""Score a fitted model on one split of raw arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import Arrays
from dlrun.evaluation.fitting import FittedModel
from dlrun.evaluation.fitting import to_tensors


@dataclass
class Evaluation:
    """One scored split: its metrics and the raw targets/predictions behind them."""

    split: str  # "test" or "validation"
    metrics: dict[str, float]
    y_true: torch.Tensor
    y_pred: torch.Tensor
    y_raw: np.ndarray


def evaluate_split(
    fitted: FittedModel, arrays: Arrays, cfg: ExperimentConfig, split: str
) -> Evaluation:
    """Apply the model's own preprocessing to ``arrays`` and compute loss and metrics."""
    x, y = fitted.pipeline.transform(arrays.x, arrays.y)
    device = next(fitted.model.network.parameters()).device
    data = to_tensors(x, y, cfg, device)
    metrics, y_pred = fitted.step.score(data, cfg.train.batch_size)
    return Evaluation(split, metrics, data.y, y_pred, arrays.y)
