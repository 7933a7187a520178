"""Leak checks: exact duplicate rows that sit on both sides of a split (DLwP 4.2.2, redundancy).

A sample present in both the training and the evaluation part is scored on data the model has
already seen, so the score overstates how well it generalises. dlrun counts such rows and warns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dlrun.data.base import Arrays
from dlrun.data.base import SealedSplit
from dlrun.data.base import row_hashes
from dlrun.evaluation.protocols import Fold


def straddling(train_hashes: np.ndarray, eval_hashes: np.ndarray) -> int:
    """How many evaluation rows also occur among the training rows."""
    return int(np.isin(eval_hashes, train_hashes).sum())


def duplicate_counts(
    train: Arrays, folds: Sequence[Fold], test: SealedSplit | None, inputs: Sequence[str]
) -> dict[str, int]:
    """``train_validation``: validation rows duplicated in their fold's training part (summed
    over folds; absent without validation rows); ``train_test``: test rows duplicated anywhere in the non-test data. A row is
    its ``inputs`` arrays (a model's inputs), as the task names them."""
    hashes = row_hashes(train, inputs)
    counts = {}
    validated = [f for f in folds if f.val_idx is not None and len(f.val_idx)]
    if validated:  # no validation split, no count: "train/validation 0" would say there was
        counts["train_validation"] = sum(
            straddling(hashes[f.train_idx], hashes[f.val_idx]) for f in validated
        )
    if test is not None:
        counts["train_test"] = straddling(hashes, test.row_hashes(inputs))
    return counts


def duplicate_warnings(counts: dict[str, int]) -> list[str]:
    names = {"train_validation": "validation", "train_test": "test"}
    return [
        f"{_rows(count, names[key])} of training rows; their scores are optimistic "
        "(deduplicate the data to fix this)"
        for key, count in counts.items()
        if count
    ]


def _rows(count: int, split: str) -> str:
    if count == 1:
        return f"1 {split} row is an exact duplicate"
    return f"{count} {split} rows are exact duplicates"
