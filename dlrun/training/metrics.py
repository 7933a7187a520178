"""Metric registry. Each metric declares its direction and the kind of prediction it scores.

Metrics see a whole epoch's targets and predictions (probabilities for classification), which
matches Keras's stateful epoch metrics. A task says which kinds of metric it can feed
(:attr:`dlrun.tasks.base.Task.metric_kinds`) and turns its outputs into :class:`Predictions`;
metrics never ask which task produced them. Accuracy and the regression errors run on the
device; the rest use scikit-learn on the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import numpy as np
import torch
from sklearn import metrics as skm

from dlrun.registry import Registry


class MetricKind(Enum):
    """What a metric needs from the predictions."""

    LABELS = "class labels"  # predicted and true classes (one or several per sample)
    SINGLE_LABEL = "one class label per sample"
    ERRORS = "numeric outputs compared with numeric targets"
    REGRESSION = "continuous targets"


@dataclass(frozen=True)
class Predictions:
    """Targets and model outputs (after the output activation) for one evaluation.

    Classification tasks also give the class labels behind them: shape ``(N,)`` for one label per
    sample, ``(N, L)`` of 0/1 for several; ``averaging`` says how precision, recall and F1
    combine per-class scores ("binary" scores the positive class only).
    """

    y_true: torch.Tensor
    y_pred: torch.Tensor
    true_labels: torch.Tensor | None = None
    pred_labels: torch.Tensor | None = None
    averaging: Literal["binary", "macro"] = "macro"

    def labels(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.true_labels is None or self.pred_labels is None:
            raise ValueError("these predictions carry no class labels")
        return self.true_labels, self.pred_labels

    def host_labels(self) -> tuple[np.ndarray, np.ndarray]:
        true, pred = self.labels()
        return true.cpu().numpy(), pred.cpu().numpy()

    @property
    def several_labels(self) -> bool:
        """True for multi-label predictions (a 0/1 column per label)."""
        return self.true_labels is not None and self.true_labels.dim() == 2


@dataclass(frozen=True)
class Metric:
    compute: Callable[[Predictions], float]
    higher_is_better: bool
    kind: MetricKind


METRICS: Registry[Metric] = Registry("metric")


def metric(
    name: str, higher_is_better: bool, kind: MetricKind
) -> Callable[[Callable[[Predictions], float]], Callable[[Predictions], float]]:
    def decorator(fn: Callable[[Predictions], float]) -> Callable[[Predictions], float]:
        METRICS.register(name)(Metric(fn, higher_is_better, kind))
        return fn

    return decorator


@metric("accuracy", True, MetricKind.LABELS)
def accuracy(p: Predictions) -> float:
    true, pred = p.labels()
    return float((true == pred).float().mean())


def _register_averaged(name: str, score: Callable[..., float]) -> None:
    """Precision, recall and F1: binary for two classes, macro-averaged for more."""

    def compute(p: Predictions) -> float:
        y, yhat = p.host_labels()
        return float(score(y, yhat, average=p.averaging, zero_division=0))

    METRICS.register(name)(Metric(compute, True, MetricKind.LABELS))


_register_averaged("precision", skm.precision_score)
_register_averaged("recall", skm.recall_score)
_register_averaged("f1", skm.f1_score)


@metric("roc_auc", True, MetricKind.LABELS)
def roc_auc(p: Predictions) -> float:
    """Area under the ROC curve (one-vs-rest macro average for several classes)."""
    y = p.host_labels()[0]
    scores = p.y_pred.detach().float().cpu().numpy()
    if p.several_labels:
        return float(skm.roc_auc_score(y, scores, average="macro"))
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")  # undefined with a single class
    if scores.ndim == 1 or scores.shape[1] == 1:
        return float(skm.roc_auc_score(y, scores.reshape(-1)))
    if scores.shape[1] != len(present):
        return float("nan")  # some classes absent from this split
    scores = scores / scores.sum(axis=1, keepdims=True)
    if scores.shape[1] == 2:  # two softmax units: the score of the second class
        return float(skm.roc_auc_score(y, scores[:, 1]))
    return float(skm.roc_auc_score(y, scores, multi_class="ovr", average="macro"))


@metric("balanced_accuracy", True, MetricKind.SINGLE_LABEL)
def balanced_accuracy(p: Predictions) -> float:
    """Mean per-class recall; robust to class imbalance."""
    y, yhat = p.host_labels()
    return float(skm.balanced_accuracy_score(y, yhat))


@metric("ber", False, MetricKind.SINGLE_LABEL)
def balanced_error_rate(p: Predictions) -> float:
    """Balanced error rate, 1 - balanced accuracy (Deep Learning for Beginners ch. 4)."""
    return 1.0 - balanced_accuracy(p)


def _errors(p: Predictions) -> torch.Tensor:
    return p.y_pred.float() - p.y_true.float().reshape(p.y_pred.shape)


@metric("mae", False, MetricKind.ERRORS)
def mae(p: Predictions) -> float:
    return float(_errors(p).abs().mean())


@metric("mse", False, MetricKind.ERRORS)
def mse(p: Predictions) -> float:
    return float(_errors(p).square().mean())


@metric("rmse", False, MetricKind.ERRORS)
def rmse(p: Predictions) -> float:
    return float(_errors(p).square().mean().sqrt())


@metric("r2", True, MetricKind.REGRESSION)
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
