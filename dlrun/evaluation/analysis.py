"""Per-split analysis written beside the metrics: confusion matrix, class report, residuals.

The confusion matrix, per-class scores and the text report are computed here from label counts
with scikit-learn's definitions and layout (``zero_division=0``) rather than by scikit-learn,
whose import (over a second on a small machine) every classification run would pay at its end;
tests/test_analysis_report.py holds them to scikit-learn's output on the same labels.
Baselines live in :mod:`dlrun.evaluation.baselines`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlrun.training.metrics import Predictions


@dataclass(frozen=True)
class ClassScores:
    """One class's precision, recall, F1 and support (scikit-learn, ``zero_division=0``)."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationAnalysis:
    labels: list[str]
    matrix: np.ndarray  # rows = true class, columns = predicted class (scikit-learn orientation)
    report: str
    accuracy: float
    ber: float
    class_scores: list[ClassScores]  # one per label, the numbers of ``report``


def class_names_for(count: int, names: list[str] | None) -> list[str]:
    return names if names is not None and len(names) == count else [str(i) for i in range(count)]


def analyse_classification(
    predictions: Predictions, class_names: list[str] | None
) -> ClassificationAnalysis:
    """Confusion matrix and per-class precision/recall/F1/support with accuracy and BER.

    Several labels per sample are pooled into one 0/1 matrix over every (sample, label) pair.
    """
    true, pred = predictions.host_labels()
    several = predictions.several_labels
    if several:
        true, pred = true.reshape(-1), pred.reshape(-1)
    y_pred = predictions.y_pred
    width = y_pred.shape[1] if y_pred.dim() == 2 and y_pred.shape[1] > 1 and not several else 2
    count = max(width, int(max(true.max(initial=0), pred.max(initial=0))) + 1)
    labels = class_names_for(count, None if several else class_names)
    matrix = confusion_matrix(true, pred, count)
    rows = class_scores(matrix, labels)
    ber = 1 - balanced_accuracy_of(matrix)
    accuracy = float((true == pred).mean()) if len(true) else float("nan")
    report = report_text(rows, accuracy) + f"\nbalanced error rate (BER): {ber:.4f}\n"
    return ClassificationAnalysis(labels, matrix, report, accuracy, ber, rows)


def confusion_matrix(true: np.ndarray, pred: np.ndarray, count: int) -> np.ndarray:
    """``count x count`` int64 counts; rows the true class, columns the predicted one."""
    pairs = np.asarray(true, dtype=np.int64) * count + np.asarray(pred, dtype=np.int64)
    return np.bincount(pairs, minlength=count * count).reshape(count, count)


def balanced_accuracy_of(matrix: np.ndarray) -> float:
    """The mean recall of the classes present in the targets (NaN without any)."""
    actual = matrix.sum(axis=1)
    present = actual > 0
    if not present.any():
        return float("nan")
    return float((np.diag(matrix)[present] / actual[present]).mean())


def class_scores(matrix: np.ndarray, labels: list[str]) -> list[ClassScores]:
    """Precision, recall and F1 (``2 tp / (predicted + actual)``) per class; 0 where undefined."""
    hits = np.diag(matrix).astype(np.float64)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision, recall, f1 = (
        np.divide(scale * hits, total, out=np.zeros(len(hits)), where=total > 0)
        for scale, total in ((1, predicted), (1, actual), (2, predicted + actual))
    )
    return [
        ClassScores(label, float(p), float(r), float(f), int(n))
        for label, p, r, f, n in zip(labels, precision, recall, f1, actual, strict=True)
    ]


def report_text(rows: list[ClassScores], accuracy: float, digits: int = 4) -> str:
    """The table of ``sklearn.metrics.classification_report``: classes, accuracy, averages."""
    width = max(max(len(row.label) for row in rows), len("weighted avg"), digits)
    line = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    text = ("{:>{width}s} " + " {:>9}" * 4).format(
        "", "precision", "recall", "f1-score", "support", width=width
    )
    text += "\n\n"
    for row in rows:
        text += line.format(row.label, row.precision, row.recall, row.f1, row.support,
                            width=width, digits=digits)  # fmt: skip
    support = np.array([row.support for row in rows])
    total = int(support.sum())
    text += "\n" + ("{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f} {:>9}\n").format(
        "accuracy", "", "", accuracy, total, width=width, digits=digits
    )
    scores = np.array([[row.precision, row.recall, row.f1] for row in rows])
    weights = support / total if total else np.zeros(len(rows))
    for name, average in (("macro avg", scores.mean(axis=0)), ("weighted avg", weights @ scores)):
        text += line.format(name, *average, total, width=width, digits=digits)
    return text


def residual_statistics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    residuals = (y_pred - y_true).reshape(-1)
    return {
        "mean": float(residuals.mean()),
        "std": float(residuals.std()),
        "median_abs": float(np.median(np.abs(residuals))),
        "max_abs": float(np.abs(residuals).max()),
    }
