"""The four supervised tasks of DLwP table 4.1: binary, multiclass, multilabel, regression.

Each declares its capabilities, how its outputs become class labels, its prediction columns
and the loss/activation combinations it refuses, with the fix in the message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import torch

from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue
from dlrun.tasks.base import TASKS
from dlrun.tasks.supervised import SupervisedTask
from dlrun.training.losses import Loss
from dlrun.training.metrics import Averaging
from dlrun.training.metrics import MetricKind
from dlrun.training.metrics import Predictions

if TYPE_CHECKING:
    from dlrun.config.schema import ExperimentConfig
    from dlrun.training.batches import Batch


def output_path(cfg: ExperimentConfig) -> str:
    return f"model.layers[{len(cfg.model.layers) - 1}]"


def argmax_or_threshold(values: torch.Tensor) -> torch.Tensor:
    """Class labels from one-hot/probability rows (argmax) or one sigmoid column (> 0.5)."""
    if values.dim() == 2 and values.shape[1] > 1:
        return values.argmax(dim=1)
    flat = values.reshape(-1)
    return (flat > 0.5).long() if flat.is_floating_point() else flat.long()


def names_for(class_names: list[str] | None, count: int) -> list[str]:
    names = list(class_names or [])
    return names + [str(i) for i in range(len(names), count)]


class SingleLabel(SupervisedTask):
    """What binary and multiclass share: one class per sample, class metrics and baselines."""

    class_labels = True
    single_label = True
    metric_kinds = frozenset({MetricKind.LABELS, MetricKind.SINGLE_LABEL, MetricKind.ERRORS})
    baselines = ("majority class", "random guessing", "shuffled labels")
    analyses: ClassVar[tuple[str, ...]] = ("confusion_matrix",)
    class_averaging = Averaging.MACRO


@TASKS.register("binary")
class Binary(SingleLabel):
    """Two classes: one sigmoid output with binary cross-entropy."""

    max_classes = 2
    class_averaging = Averaging.BINARY
    decision_threshold = True
    analyses: ClassVar[tuple[str, ...]] = ("confusion_matrix", "roc_curve")

    @classmethod
    def check_model(
        cls, cfg: ExperimentConfig, loss: type[Loss], final: str | None
    ) -> list[ConfigIssue]:
        if final == "softmax":
            return [ConfigIssue(output_path(cfg),
                "task binary needs independent per-output probabilities: use activation: sigmoid "
                "with binary_crossentropy (softmax is for task: multiclass)")]  # fmt: skip
        return []

    @classmethod
    def label(cls, y_true: torch.Tensor, y_pred: torch.Tensor) -> Predictions:
        true, pred = argmax_or_threshold(y_true), argmax_or_threshold(y_pred)
        return Predictions(y_true, y_pred, true, pred, cls.class_averaging)

    def check_batch(self, batch: Batch) -> None:
        """Targets are 0/1 (or probabilities between): a third label would be scored as a 1
        and its baselines on three classes, with nothing said."""
        super().check_batch(batch)
        y = batch.get("y")
        if y is None or not len(y) or y.is_sparse or y.layout != torch.strided:
            return
        outside = y[(y < 0) | (y > 1)]
        if len(outside):
            labels = torch.unique(y.reshape(-1))
            shown = ", ".join(f"{float(v):g}" for v in labels[:5])
            more = ", ..." if len(labels) > 5 else ""
            raise ConfigError([ConfigIssue("task",
                f"task binary needs targets 0 and 1, but they hold {len(labels)} values "
                f"({shown}{more}); for more than two classes use task: multiclass with one "
                "softmax unit per class")])  # fmt: skip

    def prediction_table(
        self, outputs: torch.Tensor, class_names: list[str] | None, threshold: float | None = None
    ) -> tuple[list[str], list[list[Any]]]:
        names = names_for(class_names, 2)
        values = outputs.detach().cpu()
        positive = values[:, -1] / values.sum(dim=1) if values.shape[1] > 1 else values[:, 0]
        if threshold is None:
            labels = argmax_or_threshold(outputs).tolist()
        else:  # positive at a score of at least the threshold, as thresholds.json counts
            labels = (positive >= threshold).long().tolist()
        rows = [[names[int(lab)], float(p)] for lab, p in zip(labels, positive, strict=True)]
        return ["prediction", "probability"], rows


@TASKS.register("multiclass")
class Multiclass(SingleLabel):
    """One of several classes: softmax with (sparse) categorical cross-entropy."""

    @classmethod
    def check_model(
        cls, cfg: ExperimentConfig, loss: type[Loss], final: str | None
    ) -> list[ConfigIssue]:
        if loss.fuses == frozenset({"sigmoid"}) and not cfg.one_hot_labels:
            # Keras trains one sigmoid per class with binary cross-entropy on one-hot rows
            # (Beginners ch. 6 and 11 do); on integer labels the shapes cannot match.
            return [ConfigIssue("preprocess",
                f"{cfg.loss.name if cfg.loss else 'the loss'} scores each class's output on its "
                "own and needs one-hot targets: add '- one_hot' to preprocess, or use softmax "
                "with categorical_crossentropy")]  # fmt: skip
        return []

    @classmethod
    def label(cls, y_true: torch.Tensor, y_pred: torch.Tensor) -> Predictions:
        if y_true.dim() == 2 and y_true.shape[1] > 1:
            true = y_true.argmax(dim=1)
        else:
            true = y_true.reshape(-1).round().long()  # integer labels, possibly stored as floats
        return Predictions(y_true, y_pred, true, argmax_or_threshold(y_pred), cls.class_averaging)

    def prediction_table(
        self, outputs: torch.Tensor, class_names: list[str] | None, threshold: float | None = None
    ) -> tuple[list[str], list[list[Any]]]:
        values = outputs.detach().cpu().reshape(len(outputs), -1)
        names = names_for(class_names, max(2, values.shape[1]))
        labels = argmax_or_threshold(values).tolist()
        header = ["prediction"] + [f"prob_{name}" for name in names[: values.shape[1]]]
        rows = [[names[int(lab)], *row] for lab, row in zip(labels, values.tolist(), strict=True)]
        return header, rows


@TASKS.register("multilabel")
class Multilabel(SupervisedTask):
    """Several independent labels per sample: one sigmoid per label, binary cross-entropy."""

    class_labels = True
    metric_kinds = frozenset({MetricKind.LABELS, MetricKind.ERRORS})
    baselines = ("most frequent value per label",)
    analyses: ClassVar[tuple[str, ...]] = ("confusion_matrix",)
    class_averaging = Averaging.MACRO
    averaged_over = ("label", "labels")

    @classmethod
    def check_model(
        cls, cfg: ExperimentConfig, loss: type[Loss], final: str | None
    ) -> list[ConfigIssue]:
        if final == "softmax":
            return [ConfigIssue(output_path(cfg),
                "task multilabel needs independent per-output probabilities: use activation: "
                "sigmoid with binary_crossentropy (softmax is for task: multiclass)")]  # fmt: skip
        if loss.one_hot_targets or loss.integer_targets:  # one class per sample
            return [ConfigIssue("loss", "multilabel targets need binary_crossentropy")]
        return []

    @classmethod
    def label(cls, y_true: torch.Tensor, y_pred: torch.Tensor) -> Predictions:
        true, pred = (y_true > 0.5).long(), (y_pred > 0.5).long()
        return Predictions(y_true, y_pred, true, pred, cls.class_averaging)

    def prediction_table(
        self, outputs: torch.Tensor, class_names: list[str] | None, threshold: float | None = None
    ) -> tuple[list[str], list[list[Any]]]:
        values = outputs.detach().cpu()
        labels = (values > 0.5).long()
        width = values.shape[1]
        header = [f"label_{i}" for i in range(width)] + [f"prob_{i}" for i in range(width)]
        rows = [[*lab, *p] for lab, p in zip(labels.tolist(), values.tolist(), strict=True)]
        return header, rows


@TASKS.register("regression")
class Regression(SupervisedTask):
    """Continuous targets: a linear output with mse, mae or huber."""

    metric_kinds = frozenset({MetricKind.ERRORS, MetricKind.REGRESSION})
    baselines = ("mean predictor", "median predictor", "last value (common sense)")
    analyses = ("residuals",)

    @classmethod
    def check_model(
        cls, cfg: ExperimentConfig, loss: type[Loss], final: str | None
    ) -> list[ConfigIssue]:
        if loss.classification:
            return [ConfigIssue("loss",
                f"{cfg.loss.name if cfg.loss else 'the loss'} is a classification loss; "
                "for task: regression use mse, mae or huber")]  # fmt: skip
        if final == "softmax":
            return [ConfigIssue(output_path(cfg),
                "a softmax output cannot predict regression targets; remove the activation")]  # fmt: skip
        return []
