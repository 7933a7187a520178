"""Metric registry. Each metric declares its direction and the kind of prediction it scores.

Metrics see a whole epoch's targets and predictions (probabilities for classification), which
matches Keras's stateful epoch metrics. A task says which kinds of metric it can feed
(:attr:`dlrun.tasks.base.Task.metric_kinds`) and turns its outputs into :class:`Predictions`;
metrics never ask which task produced them. Every metric runs in torch on the device that holds
the outputs and only scalars come back (its result; on CUDA also a bincount's size), so an epoch
costs no host copy of the outputs and no scikit-learn call (about 7 ms each, mostly argument
checks). Tests hold the values to scikit-learn's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from dlrun.registry import Registry
from dlrun.training.ranking import roc_auc_columns
from dlrun.training.ranking import wide_float


class MetricKind(Enum):
    """What a metric needs from the predictions."""

    LABELS = "class labels"  # predicted and true classes (one or several per sample)
    SINGLE_LABEL = "one class label per sample"
    ERRORS = "numeric outputs compared with numeric targets"
    REGRESSION = "continuous targets"


class Averaging(str, Enum):
    """How precision, recall and F1 combine per-class scores (scikit-learn's ``average``)."""

    BINARY = "binary"  # the positive class's score alone
    MACRO = "macro"  # the mean over the classes (or labels)


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
    averaging: Averaging = Averaging.MACRO

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
class Reconstructions(Predictions):
    """An autoencoder's: inputs (``y_true``), their reconstructions (``y_pred``) and, from an
    evaluation, each sample's code and the dataset's labels for it (any values; never trained
    on), which the code-space figure colours by."""

    codes: torch.Tensor | None = None
    classes: torch.Tensor | None = None
    generated: Generated | None = None  # a generative model's samples (a VAE's), beside them
    shown: tuple[int, ...] | None = None  # the samples to draw (None: the first ones)


@dataclass(frozen=True)
class Generated:
    """Samples a generative model decoded from codes of its choosing, laid out ``side`` by
    ``side`` row by row; ``chosen`` says how the codes were chosen."""

    samples: torch.Tensor  # (side * side, *sample shape), as the model's outputs
    codes: torch.Tensor  # (side * side, code width)
    side: int
    chosen: str


@dataclass(frozen=True)
class Metric:
    compute: Callable[[Predictions], float]
    higher_is_better: bool
    kind: MetricKind
    per_class: bool = False  # combines per-class scores as the task averages them

    @property
    def meaning(self) -> str:
        """What the number is, in one sentence (its function's docstring), for reports."""
        paragraph = (self.compute.__doc__ or "").strip().split("\n\n")[0]
        return " ".join(paragraph.split()).rstrip(".").replace("``", "`")


METRICS: Registry[Metric] = Registry("metric")


def metric(
    name: str, higher_is_better: bool, kind: MetricKind, per_class: bool = False
) -> Callable[[Callable[[Predictions], float]], Callable[[Predictions], float]]:
    def decorator(fn: Callable[[Predictions], float]) -> Callable[[Predictions], float]:
        METRICS.register(name)(Metric(fn, higher_is_better, kind, per_class))
        return fn

    return decorator


@metric("accuracy", True, MetricKind.LABELS)
def accuracy(p: Predictions) -> float:
    """Share of samples whose predicted class (the largest output, or one output above 0.5)
    is the true class; for several labels per sample, the share of right 0/1 labels."""
    true, pred = p.labels()
    return float((true == pred).float().mean())


@metric("binary_accuracy", True, MetricKind.LABELS)
def binary_accuracy(p: Predictions) -> float:
    """Share of output values on the right side of 0.5 against 0/1 (or one-hot) targets: what
    Keras reports as ``accuracy`` when the loss is binary cross-entropy."""
    outputs = p.y_pred.float()
    targets = p.y_true
    if targets.shape != outputs.shape and targets.numel() == len(outputs) < outputs.numel():
        targets = F.one_hot(targets.reshape(-1).long(), outputs.shape[-1])  # class indices
    return float(((outputs > 0.5) == (targets.reshape(outputs.shape) > 0.5)).float().mean())


class ClassCounts(NamedTuple):
    """Per class (or per label of a multilabel task): true positives, predicted, actual."""

    hits: torch.Tensor
    predicted: torch.Tensor
    actual: torch.Tensor


def class_counts(p: Predictions) -> ClassCounts:
    """Counts behind precision, recall, F1 and balanced accuracy, as floats on the device.

    Single-label counts come from bincounts, so they cover classes ``0 .. max label``;
    unweighted bincounts stay allowed under ``torch.use_deterministic_algorithms``.
    """
    true, pred = p.labels()
    dtype = wide_float(true.device)
    if p.several_labels:
        t, q = true.bool(), pred.bool()
        return ClassCounts(*(c.sum(dim=0).to(dtype) for c in (t & q, q, t)))
    t, q = true.reshape(-1).long(), pred.reshape(-1).long()
    split = torch.bincount(2 * t + (t == q), minlength=4)  # per class: misses, then hits
    predicted = torch.bincount(q, minlength=2)
    size = max((len(split) + 1) // 2, len(predicted))
    split = F.pad(split, (0, 2 * size - len(split))).reshape(size, 2).to(dtype)
    predicted = F.pad(predicted, (0, size - len(predicted))).to(dtype)
    return ClassCounts(split[:, 1], predicted, split.sum(dim=1))


def _share(part: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """``part / whole`` with 0 where ``whole`` is 0 (then ``part`` is 0 too): zero_division=0."""
    return part / whole.clamp(min=1)


def _average(p: Predictions, per_class: torch.Tensor, counts: ClassCounts) -> float:
    """Combine per-class scores as scikit-learn's ``average=p.averaging`` does.

    "binary" scores the positive class 1; "macro" averages every label of a multilabel task and,
    for one label per sample, the classes that occur in the targets or the predictions.
    """
    if p.several_labels:
        return float(per_class.mean())
    if p.averaging is Averaging.BINARY:
        return float(per_class[1])
    seen = (counts.predicted + counts.actual) > 0
    return float(per_class.sum() / seen.sum())


@metric("precision", True, MetricKind.LABELS, per_class=True)
def precision(p: Predictions) -> float:
    """Of the samples predicted as a class, the share that belong to it."""
    counts = class_counts(p)
    return _average(p, _share(counts.hits, counts.predicted), counts)


@metric("recall", True, MetricKind.LABELS, per_class=True)
def recall(p: Predictions) -> float:
    """Of the samples of a class, the share predicted as it."""
    counts = class_counts(p)
    return _average(p, _share(counts.hits, counts.actual), counts)


@metric("f1", True, MetricKind.LABELS, per_class=True)
def f1(p: Predictions) -> float:
    """Harmonic mean of precision and recall, as ``2 tp / (predicted + actual)``."""
    counts = class_counts(p)
    return _average(p, _share(2 * counts.hits, counts.predicted + counts.actual), counts)


@metric("roc_auc", True, MetricKind.LABELS)
def roc_auc(p: Predictions) -> float:
    """Area under the ROC curve from ranks (one-vs-rest macro average for several classes).

    NaN where it is undefined: a single class in the targets, or classes missing from them.
    Several softmax units are renormalised to probabilities first, as scikit-learn demands.
    """
    true = p.labels()[0]
    scores = p.y_pred.detach().float()
    if p.several_labels:
        return float(roc_auc_columns(scores.reshape(true.shape), true.bool()).mean())
    true = true.reshape(-1)
    if len(true) == 0:
        return float("nan")
    scores = scores.reshape(len(true), -1)
    if scores.shape[1] == 1:  # the larger of two labels is the positive one
        positive = true == true.max()
        auc = roc_auc_columns(scores, positive[:, None])[0]
        return float(auc.where((positive | (true == true.min())).all(), torch.nan))
    columns = scores.shape[1]
    scores = scores / scores.sum(dim=1, keepdim=True)
    one_vs_rest = true[:, None] == torch.arange(columns, device=true.device)
    if columns == 2:  # two softmax units: the score of the second class
        auc = roc_auc_columns(scores[:, 1:], one_vs_rest[:, 1:])[0]
    else:  # a class absent from the targets makes its column, and so the mean, NaN
        auc = roc_auc_columns(scores, one_vs_rest).mean()
    return float(auc.where(true.max() < columns, torch.nan))


@metric("balanced_accuracy", True, MetricKind.SINGLE_LABEL)
def balanced_accuracy(p: Predictions) -> float:
    """Mean per-class recall over the classes in the targets; robust to class imbalance."""
    counts = class_counts(p)
    return float(_share(counts.hits, counts.actual).sum() / (counts.actual > 0).sum())


@metric("ber", False, MetricKind.SINGLE_LABEL)
def balanced_error_rate(p: Predictions) -> float:
    """Balanced error rate, 1 - balanced accuracy (Deep Learning for Beginners ch. 4)."""
    return 1.0 - balanced_accuracy(p)


def _errors(p: Predictions) -> torch.Tensor:
    return p.y_pred.float() - p.y_true.float().reshape(p.y_pred.shape)


@metric("mae", False, MetricKind.ERRORS)
def mae(p: Predictions) -> float:
    """Mean absolute difference between outputs and targets."""
    return float(_errors(p).abs().mean())


@metric("mse", False, MetricKind.ERRORS)
def mse(p: Predictions) -> float:
    """Mean squared difference between outputs and targets."""
    return float(_errors(p).square().mean())


@metric("rmse", False, MetricKind.ERRORS)
def rmse(p: Predictions) -> float:
    """Square root of the mean squared difference between outputs and targets."""
    return float(_errors(p).square().mean().sqrt())


@metric("r2", True, MetricKind.REGRESSION)
def r2(p: Predictions) -> float:
    """Coefficient of determination: 1 - residual / total sum of squares (1 is perfect)."""
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
