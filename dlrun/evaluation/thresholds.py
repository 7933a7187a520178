"""A binary classifier's ROC curve and the decision threshold read off it (Youden's J).

Beginners ch. 13 picks the threshold where TPR - FPR peaks on the test reviews and reports the
test balanced accuracy at it: the threshold has seen the answers it is scored on, so the figure
flatters the model. dlrun picks it on the validation split and applies it to the test split,
and shows the in-sample figure beside it, labelled as such, to compare with the book.

The curve is scikit-learn's ``roc_curve`` (its default ``drop_intermediate=True``), computed here
in numpy: scikit-learn's import costs every classification run over a second at its end.
tests/test_thresholds.py holds the two to each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlrun.evaluation.analysis import balanced_accuracy_of
from dlrun.evaluation.analysis import confusion_matrix
from dlrun.training.metrics import Predictions


@dataclass(frozen=True)
class RocCurve:
    """Points from (0, 0) to (1, 1); a sample is called positive when its score is at least the
    point's threshold (the first threshold, ``inf``, calls none positive)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray

    @property
    def area(self) -> float:
        """The area under the curve (trapezoids): the ROC AUC."""
        return float(np.sum(np.diff(self.fpr) * (self.tpr[1:] + self.tpr[:-1]) / 2))


@dataclass(frozen=True)
class ThresholdScore:
    """What calling ``score >= threshold`` positive gives on one split."""

    rule: str  # how the threshold was chosen, e.g. "Youden's J"
    chosen_on: str  # the split it was chosen on ("" for a fixed one)
    threshold: float
    balanced_accuracy: float
    matrix: np.ndarray  # 2 x 2 counts: rows the true class (0, 1), columns the predicted one

    @property
    def fpr(self) -> float:
        """The share of negatives called positive: where the threshold sits on the curve."""
        (tn, fp), _ = self.matrix.tolist()
        return fp / (tn + fp) if tn + fp else float("nan")

    @property
    def tpr(self) -> float:
        """The share of positives called positive."""
        _, (fn, tp) = self.matrix.tolist()
        return tp / (fn + tp) if fn + tp else float("nan")

    def as_dict(self) -> dict[str, object]:
        (tn, fp), (fn, tp) = self.matrix.tolist()
        return {"rule": self.rule, "chosen_on": self.chosen_on, "threshold": self.threshold,
                "balanced_accuracy": self.balanced_accuracy,
                "tn": tn, "fp": fp, "fn": fn, "tp": tp}  # fmt: skip


def binary_scores(predictions: Predictions) -> tuple[np.ndarray, np.ndarray] | None:
    """Each sample's true class (bool, positive = 1) and score for the positive class, or
    ``None`` when the predictions are not of two classes with scores, both present."""
    if predictions.true_labels is None or predictions.several_labels:
        return None
    true = predictions.true_labels.cpu().numpy().reshape(-1)
    values = predictions.y_pred.detach().cpu().double().numpy().reshape(len(true), -1)
    if values.shape[1] > 2 or not len(true) or true.max(initial=0) > 1:
        return None
    scores = values[:, 0] if values.shape[1] == 1 else values[:, 1] / values.sum(axis=1)
    positive = true == 1
    return (positive, scores) if positive.any() and not positive.all() else None


def roc_curve(positive: np.ndarray, scores: np.ndarray) -> RocCurve:
    """One point per distinct score from the highest down, less the points that lie on a
    straight line between their neighbours. NaN rates where a class is absent."""
    order = np.argsort(-scores, kind="mergesort")
    ranked, hits = scores[order], positive[order]
    last_of_score = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    tps = np.cumsum(hits)[last_of_score]
    fps = last_of_score + 1 - tps
    bends = np.r_[True, np.diff(fps, 2) != 0, True] | np.r_[True, np.diff(tps, 2) != 0, True]
    tps, fps, kept = np.r_[0, tps[bends]], np.r_[0, fps[bends]], ranked[last_of_score][bends]
    with np.errstate(invalid="ignore", divide="ignore"):
        return RocCurve(fps / fps[-1], tps / tps[-1], np.r_[np.inf, kept])


def youden_threshold(curve: RocCurve) -> float:
    """The threshold where TPR - FPR is largest (its first point, as ``np.argmax`` takes)."""
    return float(curve.thresholds[int(np.argmax(curve.tpr - curve.fpr))])


def score_at(
    positive: np.ndarray, scores: np.ndarray, threshold: float, rule: str, chosen_on: str
) -> ThresholdScore:
    """Balanced accuracy and confusion matrix of ``score >= threshold`` on these samples."""
    matrix = confusion_matrix(positive, scores >= threshold, 2)
    return ThresholdScore(rule, chosen_on, float(threshold), balanced_accuracy_of(matrix), matrix)
