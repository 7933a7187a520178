"""Per-split analysis written beside the metrics: confusion matrix, class report, residuals.

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
    from sklearn import metrics as skm  # once per run, for its per-class scores and report

    true, pred = predictions.host_labels()
    several = predictions.several_labels
    if several:
        true, pred = true.reshape(-1), pred.reshape(-1)
    y_pred = predictions.y_pred
    width = y_pred.shape[1] if y_pred.dim() == 2 and y_pred.shape[1] > 1 and not several else 2
    count = max(width, int(max(true.max(initial=0), pred.max(initial=0))) + 1)
    labels = class_names_for(count, None if several else class_names)
    matrix = skm.confusion_matrix(true, pred, labels=list(range(count)))
    per_class_recall = np.divide(
        np.diag(matrix), matrix.sum(axis=1), out=np.zeros(count), where=matrix.sum(axis=1) > 0
    )
    present = matrix.sum(axis=1) > 0
    ber = float(1 - per_class_recall[present].mean()) if present.any() else float("nan")
    report = skm.classification_report(
        true, pred, labels=list(range(count)), target_names=labels, digits=4, zero_division=0
    )
    accuracy = float((true == pred).mean()) if len(true) else float("nan")
    report += f"\nbalanced error rate (BER): {ber:.4f}\n"
    scores = skm.precision_recall_fscore_support(
        true, pred, labels=list(range(count)), zero_division=0
    )
    rows = [
        ClassScores(label, float(p), float(r), float(f), int(n))
        for label, p, r, f, n in zip(labels, *scores, strict=True)
    ]
    return ClassificationAnalysis(labels, matrix, report, accuracy, ber, rows)


def residual_statistics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    residuals = (y_pred - y_true).reshape(-1)
    return {
        "mean": float(residuals.mean()),
        "std": float(residuals.std()),
        "median_abs": float(np.median(np.abs(residuals))),
        "max_abs": float(np.abs(residuals).max()),
    }
