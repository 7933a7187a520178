"""The confusion matrix, per-class scores and class report equal scikit-learn's on the same labels."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn import metrics as skm

from dlrun.evaluation.analysis import class_scores
from dlrun.evaluation.analysis import confusion_matrix
from dlrun.evaluation.analysis import report_text


def _tokens(text: str) -> list[list[str]]:
    """Words per line, a support written ``5.0`` read as ``5`` (scikit-learn turns supports
    into floats when a class has no predictions; dlrun keeps them integers)."""
    return [[re.sub(r"^(\d+)\.0$", r"\1", word) for word in line.split()]
            for line in text.splitlines()]  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_matrix_scores_and_report_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count, n = int(rng.integers(2, 7)), int(rng.integers(1, 80))
    true = rng.integers(0, int(rng.integers(1, count + 1)), n)  # some classes never true
    pred = rng.integers(0, count if seed % 3 else 1, n)  # or never predicted
    labels = ["c" * int(rng.integers(1, 15)) + str(i) for i in range(count)]
    everything = list(range(count))

    matrix = confusion_matrix(true, pred, count)
    np.testing.assert_array_equal(matrix, skm.confusion_matrix(true, pred, labels=everything))
    rows = class_scores(matrix, labels)
    expected = skm.precision_recall_fscore_support(true, pred, labels=everything, zero_division=0)
    ours: list[list[float]] = [[r.precision for r in rows], [r.recall for r in rows],
                               [r.f1 for r in rows], [r.support for r in rows]]  # fmt: skip
    for mine, theirs in zip(ours, expected, strict=True):
        np.testing.assert_allclose(mine, np.asarray(theirs, dtype=np.float64), rtol=1e-12)
    report = report_text(rows, float((true == pred).mean()))
    reference = skm.classification_report(
        true, pred, labels=everything, target_names=labels, digits=4, zero_division=0
    )
    assert _tokens(report) == _tokens(reference)
    if "support" in reference and ".0\n" not in reference:
        assert report == reference  # same layout, character for character
