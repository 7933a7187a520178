"""Per-class precision, recall, F1 and support, read from a run's ``confusion_matrix.csv``.

report.md shows them as a table. They are derived from the matrix the run wrote, not recomputed
from the predictions, so the table and ``confusion_matrix.csv`` cannot disagree; the numbers are
the ones ``classification_report.txt`` gives (scikit-learn, ``zero_division=0``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONFUSION_CSV = "confusion_matrix.csv"


@dataclass(frozen=True)
class ClassScores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


def class_scores(labels: list[str], matrix: np.ndarray) -> list[ClassScores]:
    """One row per class of ``matrix`` (rows: true class, columns: predicted class)."""
    matrix = np.asarray(matrix, dtype=float)
    hits = np.diag(matrix)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return [
        ClassScores(label, float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    ]


def read_class_scores(directory: Path) -> list[ClassScores]:
    """The scores behind ``directory/confusion_matrix.csv``, or ``[]`` when it has none."""
    path = directory / CONFUSION_CSV
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    labels = [row[0] for row in rows]
    if labels != header[1:]:
        return []  # not a square matrix of the same classes: nothing to derive
    return class_scores(labels, np.array([[int(v) for v in row[1:]] for row in rows]))
