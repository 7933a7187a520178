"""A seeded hold-out draws exactly the rows scikit-learn's train_test_split draws."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from dlrun.errors import DataError
from dlrun.evaluation.splits import seeded_split


def _theirs(n: int, size: float | int, seed: int, labels: np.ndarray | None) -> tuple[list, list]:
    train, held = train_test_split(np.arange(n), test_size=size, random_state=seed,
                                   stratify=labels)  # fmt: skip
    return sorted(train), sorted(held)


@pytest.mark.parametrize("case", range(150))
def test_the_rows_equal_train_test_split(case: int) -> None:
    rng = np.random.default_rng(case)
    n = int(rng.integers(10, 400))
    size: float | int = (
        float(rng.choice([0.1, 0.2, 0.25, 1 / 3, 0.5, rng.uniform(0.05, 0.9)]))
        if case % 4
        else int(rng.integers(1, n // 2))
    )
    seed = int(rng.integers(0, 2**31))
    labels = None
    if case % 3:  # stratified: a few classes, unbalanced, every class at least 2 rows
        classes = int(rng.integers(2, 6))
        labels = np.concatenate([np.repeat(np.arange(classes), 2),
                                 rng.choice(classes, n - 2 * classes, p=rng.dirichlet(np.ones(classes)))])  # fmt: skip
        rng.shuffle(labels)
        if case % 7 == 0:
            labels = np.eye(classes)[labels]  # one-hot rows are stratified on as scikit-learn does
    try:
        expected = _theirs(n, size, seed, labels)
    except ValueError:
        with pytest.raises(DataError):
            seeded_split(n, size, seed, labels)
        return
    train, held = seeded_split(n, size, seed, labels)
    assert (train.tolist(), held.tolist()) == expected


def test_impossible_splits_are_one_line_errors() -> None:
    with pytest.raises(DataError, match=r"holding out 0\.99 of 10 samples leaves one side empty"):
        seeded_split(10, 0.99, 0)
    with pytest.raises(DataError, match=r"classes \[2\] have a single sample"):
        seeded_split(10, 0.3, 0, np.array([0, 0, 0, 1, 1, 1, 0, 1, 0, 2]))
    with pytest.raises(DataError, match=r"1 samples on one side cannot hold 2 classes"):
        seeded_split(10, 1, 0, np.array([0, 1] * 5))
