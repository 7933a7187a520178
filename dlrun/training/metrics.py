"""Metric registry. Each metric declares its direction and the tasks it applies to.

Metrics see a whole epoch's targets and predictions (probabilities for classification), which
matches Keras's stateful epoch metrics. Accuracy and the regression errors run on the device;
the rest use scikit-learn on the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from sklearn import metrics as skm

from dlrun.registry import Registry

CLASSIFICATION = frozenset({"binary", "multiclass", "multilabel"})
ALL_TASKS = CLASSIFICATION | {"regression"}


@dataclass(frozen=True)
class Predictions:
    """Targets and model outputs (after the output activation) for one evaluation."""

    task: str
    y_true: torch.Tensor
    y_pred: torch.Tensor

    @cached_property
    def true_labels(self) -> torch.Tensor:
        return to_labels(self.task, self.y_true, threshold_targets=True)

    @cached_property
    def pred_labels(self) -> torch.Tensor:
        return to_labels(self.task, self.y_pred, threshold_targets=False)

    def host_labels(self) -> tuple[np.ndarray, np.ndarray]:
        return self.true_labels.cpu().numpy(), self.pred_labels.cpu().numpy()


def to_labels(task: str, values: torch.Tensor, threshold_targets: bool) -> torch.Tensor:
    """Class labels from one-hot/probability rows, integer labels or sigmoid outputs."""
    if task == "multilabel":
        return (values > 0.5).long()
    if values.dim() == 2 and values.shape[1] > 1:
        return values.argmax(dim=1)
    flat = values.reshape(-1)
    if task == "binary" or not threshold_targets:
        return (flat > 0.5).long() if flat.is_floating_point() else flat.long()
    return flat.round().long()


@dataclass(frozen=True)
class Metric:
    compute: Callable[[Predictions], float]
    higher_is_better: bool
    tasks: frozenset[str]


METRICS: Registry[Metric] = Registry("metric")


def metric(
    name: str, higher_is_better: bool, tasks: frozenset[str] = ALL_TASKS
) -> Callable[[Callable[[Predictions], float]], Callable[[Predictions], float]]:
    def decorator(fn: Callable[[Predictions], float]) -> Callable[[Predictions], float]:
        METRICS.register(name)(Metric(fn, higher_is_better, tasks))
        return fn

    return decorator


def _average(p: Predictions) -> str:
    return "binary" if p.task == "binary" else "macro"


@metric("accuracy", True, CLASSIFICATION)
def accuracy(p: Predictions) -> float:
    return float((p.true_labels == p.pred_labels).float().mean())


def _register_averaged(name: str, score: Callable[..., float]) -> None:
    """Precision, recall and F1: binary for two classes, macro-averaged for more."""

    def compute(p: Predictions) -> float:
        y, yhat = p.host_labels()
        return float(score(y, yhat, average=_average(p), zero_division=0))

    METRICS.register(name)(Metric(compute, True, CLASSIFICATION))


_register_averaged("precision", skm.precision_score)
_register_averaged("recall", skm.recall_score)
_register_averaged("f1", skm.f1_score)


@metric("roc_auc", True, CLASSIFICATION)
def roc_auc(p: Predictions) -> float:
    """Area under the ROC curve (one-vs-rest macro average for several classes)."""
    y = p.true_labels.cpu().numpy()
    scores = p.y_pred.detach().cpu().numpy()
    if p.task == "binary":
        scores = scores.reshape(-1)
    present = np.unique(y)
    if p.task != "multilabel" and len(present) < 2:
        return float("nan")  # undefined with a single class
    if p.task == "multiclass":
        if scores.ndim == 1 or scores.shape[1] != len(present):
            return float("nan")  # some classes absent from this split
        scores = scores / scores.sum(axis=1, keepdims=True)
        return float(skm.roc_auc_score(y, scores, multi_class="ovr", average="macro"))
    return float(skm.roc_auc_score(y, scores, average="macro"))


@metric("balanced_accuracy", True, frozenset({"binary", "multiclass"}))
def balanced_accuracy(p: Predictions) -> float:
    """Mean per-class recall; robust to class imbalance."""
    y, yhat = p.host_labels()
    return float(skm.balanced_accuracy_score(y, yhat))


@metric("ber", False, frozenset({"binary", "multiclass"}))
def balanced_error_rate(p: Predictions) -> float:
    """Balanced error rate, 1 - balanced accuracy (Deep Learning for Beginners ch. 4)."""
    return 1.0 - balanced_accuracy(p)


def _errors(p: Predictions) -> torch.Tensor:
    return p.y_pred.float() - p.y_true.float().reshape(p.y_pred.shape)


@metric("mae", False)
def mae(p: Predictions) -> float:
    return float(_errors(p).abs().mean())


@metric("mse", False)
def mse(p: Predictions) -> float:
    return float(_errors(p).square().mean())


@metric("rmse", False)
def rmse(p: Predictions) -> float:
    return float(_errors(p).square().mean().sqrt())


@metric("r2", True, frozenset({"regression"}))
def r2(p: Predictions) -> float:
    y = p.y_true.float().reshape(p.y_pred.shape)
    residual = (y - p.y_pred.float()).square().sum()
    total = (y - y.mean(dim=0)).square().sum()
    return float(1 - residual / total) if float(total) > 0 else float("nan")


def compute_metrics(names: list[str], predictions: Predictions) -> dict[str, float]:
    return {name: METRICS.get(name).compute(predictions) for name in names}


def higher_is_better(monitor: str) -> bool:
    """Direction of a monitored quantity such as ``val_loss`` or ``val_accuracy``."""
    name = monitor.removeprefix("val_")
    return False if name == "loss" else METRICS.get(name).higher_is_better
