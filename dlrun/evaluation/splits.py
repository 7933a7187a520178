"""Index splits for every protocol: hold-out, K-fold (shuffled, stratified, contiguous) and
chronological ranges. Pure functions of sizes, labels and seeds, returning sorted index arrays.

A seeded hold-out (:func:`seeded_split`) draws the same rows as scikit-learn's
``train_test_split`` with the same seed, without importing scikit-learn: its import costs more
than a second here, a quarter of a small run, and every hold-out run would pay it.
``tests/test_splits.py`` holds the two equal on random sizes, fractions and class balances.
K-fold splits still come from scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dlrun.errors import DataError

IndexPair = tuple[np.ndarray, np.ndarray]


def holdout_indices(
    n: int,
    y: np.ndarray,
    seed: int,
    fraction: float | None = None,
    count: int | None = None,
    first: int | None = None,
    stratify: bool = False,
    last_fraction: float | None = None,
) -> IndexPair:
    """``(train_idx, val_idx)`` for ``n`` samples.

    ``first`` takes the leading samples in file order (no shuffle), matching DLwP's
    ``x_val = x_train[:10000]``; ``last_fraction`` the trailing ones as Keras's
    ``validation_split`` does; ``fraction`` and ``count`` draw a seeded random sample.
    """
    index = np.arange(n)
    if last_fraction is not None:
        split_at = int(n * (1 - last_fraction))  # Keras's rounding
        if split_at in (0, n):
            raise DataError(
                f"validation.last_fraction {last_fraction} of {n} samples leaves a side empty"
            )
        return index[:split_at], index[split_at:]
    if first is not None:
        if first >= n:
            raise DataError(f"validation.first is {first} but there are only {n} training samples")
        return index[first:], index[:first]
    size: float | int = fraction if fraction is not None else int(count or 0)
    if isinstance(size, int) and size >= n:
        raise DataError(f"validation.count is {size} but there are only {n} training samples")
    try:
        return seeded_split(n, size, seed, y if stratify else None)
    except DataError as exc:
        raise DataError(f"cannot make the validation split: {exc}") from None


def seeded_split(
    n: int, size: float | int, seed: int, labels: np.ndarray | None = None
) -> IndexPair:
    """``(train_idx, held_idx)``, sorted: the rows scikit-learn's ``train_test_split(range(n),
    test_size=size, random_state=seed, stratify=labels)`` holds out.

    ``size`` is a fraction (``ceil(size * n)`` rows) or a count. With ``labels`` every class
    keeps its share on both sides (StratifiedShuffleSplit's allocation and draws, in order).
    """
    held = math.ceil(size * n) if isinstance(size, float) else int(size)
    kept = n - held
    if held < 1 or kept < 1:
        raise DataError(f"holding out {size} of {n} samples leaves one side empty")
    rng = np.random.RandomState(seed)
    if labels is None:
        order = rng.permutation(n)
        return np.sort(order[held:]), np.sort(order[:held])
    labels = np.asarray(labels)
    if labels.ndim == 2:  # one label per row of a 2-D target, as scikit-learn reads it
        labels = np.array([" ".join(row.astype("str")) for row in labels])
    classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if counts.min() < 2:
        rare = classes[counts < 2].tolist()
        raise DataError(f"classes {rare} have a single sample; a stratified split needs 2 or more")
    if min(kept, held) < len(classes):
        raise DataError(
            f"{min(kept, held)} samples on one side cannot hold {len(classes)} classes"
        )
    members = np.split(np.argsort(codes, kind="stable"), np.cumsum(counts)[:-1])
    kept_per_class = _approximate_mode(counts, kept, rng)
    held_per_class = _approximate_mode(counts - kept_per_class, held, rng)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for rows, k, h in zip(members, kept_per_class, held_per_class, strict=True):
        shuffled = rows.take(rng.permutation(len(rows)), mode="clip")
        train.append(shuffled[:k])
        test.append(shuffled[k : k + h])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _approximate_mode(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Per class, its share of ``draws`` rounded down, then one more for the largest remainders
    (ties broken at random), as scikit-learn allots a stratified split."""
    continuous = counts / counts.sum() * draws
    floored = np.floor(continuous)
    missing = int(draws - floored.sum())
    remainder = continuous - floored
    for value in np.sort(np.unique(remainder))[::-1]:
        if missing <= 0:
            break
        (candidates,) = np.where(remainder == value)
        now = min(len(candidates), missing)
        floored[rng.choice(candidates, size=now, replace=False)] += 1
        missing -= now
    return floored.astype(int)


def too_many_folds(k: int, n: int) -> DataError:
    return DataError(
        f"evaluation.k is {k}, but there are only {n} training samples to fold; set k to at "
        f"most {n} (k = {n} is leave-one-out)"
    )


def contiguous_folds(n: int, k: int) -> list[IndexPair]:
    """DLwP listing 3.27: fold i validates on rows ``[i*n//k, (i+1)*n//k)`` in file order and
    trains on all other rows, so the ``n % k`` trailing rows are always in training."""
    size = n // k
    if size == 0:
        raise too_many_folds(k, n)
    index = np.arange(n)
    return [
        (
            np.concatenate([index[: i * size], index[(i + 1) * size :]]),
            index[i * size : (i + 1) * size],
        )
        for i in range(k)
    ]


def kfold_indices(
    n: int, y: np.ndarray, k: int, shuffle: bool, stratify: bool, seed: int
) -> list[IndexPair]:
    """scikit-learn's (Stratified)KFold; ``seed`` only matters when shuffling."""
    from sklearn.model_selection import KFold
    from sklearn.model_selection import StratifiedKFold

    if k > n:
        raise too_many_folds(k, n)
    splitter = (StratifiedKFold if stratify else KFold)(
        n_splits=k, shuffle=shuffle, random_state=seed if shuffle else None
    )
    labels = np.asarray(y).reshape(len(y), -1)[:, 0] if stratify else None
    try:
        pairs = list(splitter.split(np.zeros(n), labels))
    except ValueError as exc:
        raise DataError(f"cannot make {k} folds: {exc}") from None
    return [(np.sort(tr), np.sort(va)) for tr, va in pairs]


Span = float | Sequence[int | None]


def time_ranges(n: int, spans: Sequence[Span | None]) -> list[np.ndarray | None]:
    """Chronological index ranges for consecutive parts (train, validation, test).

    A span is a fraction of ``n`` (parts follow each other from row 0) or a half-open
    ``[start, end)`` row range with ``end: null`` meaning the last row. Ranges must not overlap
    and must follow time order, otherwise a later row could train a model scored on an earlier one.
    """
    ranges: list[np.ndarray | None] = []
    cursor = 0
    previous_end = 0
    for span in spans:
        if span is None:
            ranges.append(None)
            continue
        if isinstance(span, float | int):
            start, end = cursor, min(n, cursor + round(span * n))
        else:
            start, end = int(span[0] or 0), n if span[1] is None else min(int(span[1]), n)
        if start < previous_end:
            raise DataError(
                f"time_split ranges overlap or go back in time (a part starts at row {start} "
                f"before the previous part ends at row {previous_end})"
            )
        if end <= start:
            raise DataError(f"time_split range [{start}, {end}) is empty ({n} rows in the data)")
        ranges.append(np.arange(start, end))
        cursor = previous_end = end
    return ranges
