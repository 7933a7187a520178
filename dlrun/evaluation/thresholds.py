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

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from dlrun.evaluation.analysis import balanced_accuracy_of
from dlrun.evaluation.analysis import confusion_matrix
from dlrun.training.metrics import Predictions

SAVED = "thresholds.json"
FIXED = 0.5  # the run's own labels: positive above it, as Keras's binary accuracy counts


class ThresholdRule(str, Enum):
    """How a threshold was set."""

    FIXED = "fixed"  # 0.5, the run's own labels (a score above it is positive)
    YOUDEN = "youden"  # where TPR - FPR peaks on the split it was chosen on

    @property
    def label(self) -> str:
        return {"fixed": "fixed (above 0.5)", "youden": "Youden's J (max TPR - FPR)"}[self.value]


@dataclass(frozen=True)
class RocCurve:
    """Points from (0, 0) to (1, 1); a sample is called positive when its score is at least the
    point's threshold (the first threshold, ``inf``, calls none positive)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


@dataclass(frozen=True)
class ThresholdScore:
    """What one decision threshold gives on the scored split."""

    rule: ThresholdRule
    chosen_on: str  # the split it was chosen on ("" for the fixed one)
    in_sample: bool  # chosen on the scored split itself: its score is optimistic
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
        return {"rule": self.rule.value, "chosen_on": self.chosen_on,
                "in_sample": self.in_sample, "threshold": self.threshold,
                "balanced_accuracy": self.balanced_accuracy,
                "tn": tn, "fp": fp, "fn": fn, "tp": tp}  # fmt: skip


def binary_scores(predictions: Predictions) -> tuple[np.ndarray, np.ndarray] | None:
    """Each sample's true class (bool, positive = 1) and its one output, or ``None`` when there
    is no curve to draw: not one output per sample, a class absent, or a score not finite."""
    if predictions.true_labels is None or predictions.several_labels:
        return None
    true = predictions.true_labels.cpu().numpy().reshape(-1)
    scores = predictions.y_pred.detach().cpu().double().numpy().reshape(len(true), -1)
    if scores.shape[1] != 1 or not np.isfinite(scores).all() or true.max(initial=0) > 1:
        return None
    positive = true == 1
    return (positive, scores[:, 0]) if positive.any() and not positive.all() else None


def roc_curve(positive: np.ndarray, scores: np.ndarray) -> RocCurve:
    """One point per distinct score from the highest down, less the points that lie on a
    straight line between their neighbours. NaN rates where a class is absent."""
    order = np.argsort(-scores, kind="mergesort")
    ranked, hits = scores[order], positive[order]
    last_of_score = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    tps = np.cumsum(hits)[last_of_score]
    fps = last_of_score + 1 - tps
    kept = ranked[last_of_score]
    if len(fps) > 2:  # as scikit-learn: two points or fewer are kept as they are
        bends = np.r_[True, np.diff(fps, 2) != 0, True] | np.r_[True, np.diff(tps, 2) != 0, True]
        tps, fps, kept = tps[bends], fps[bends], kept[bends]
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    with np.errstate(invalid="ignore", divide="ignore"):
        return RocCurve(fps / fps[-1], tps / tps[-1], np.r_[np.inf, kept])


def youden_threshold(curve: RocCurve) -> float:
    """The threshold where TPR - FPR is largest (its first point, as ``np.argmax`` takes),
    among the scores: the ``inf`` point, which calls nothing positive, is no decision rule
    (it would win only for a model worse than chance)."""
    return float(curve.thresholds[1 + int(np.argmax((curve.tpr - curve.fpr)[1:]))])


def score_labels(
    positive: np.ndarray,
    called: np.ndarray,
    threshold: float,
    rule: ThresholdRule,
    chosen_on: str = "",
    in_sample: bool = False,
) -> ThresholdScore:
    """Balanced accuracy and confusion matrix of calling the ``called`` samples positive."""
    matrix = confusion_matrix(positive, called, 2)
    balanced = balanced_accuracy_of(matrix)
    return ThresholdScore(rule, chosen_on, in_sample, float(threshold), balanced, matrix)


def validation_row(run: Path) -> dict[str, object] | None:
    """The row of a run's thresholds.json chosen on its validation split (``None`` without
    one: no file, or no validation split of the scored model's own)."""
    saved = run / SAVED
    rows = json.loads(saved.read_text())["thresholds"] if saved.is_file() else []
    chosen: list[dict[str, object]] = [row for row in rows if row["chosen_on"] == "validation"]
    return chosen[0] if chosen else None
