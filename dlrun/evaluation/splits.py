"""Index splits for every protocol: hold-out, K-fold (shuffled, stratified, contiguous) and
chronological ranges. Pure functions of sizes, labels and seeds, returning sorted index arrays."""

from __future__ import annotations

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
    from sklearn.model_selection import train_test_split  # imported where a split is made

    try:
        train_idx, val_idx = train_test_split(
            index, test_size=size, random_state=seed, stratify=y if stratify else None
        )
    except ValueError as exc:
        raise DataError(f"cannot make the validation split: {exc}") from None
    return np.sort(train_idx), np.sort(val_idx)


def contiguous_folds(n: int, k: int) -> list[IndexPair]:
    """DLwP listing 3.27: fold i validates on rows ``[i*n//k, (i+1)*n//k)`` in file order and
    trains on all other rows, so the ``n % k`` trailing rows are always in training."""
    size = n // k
    if size == 0:
        raise DataError(f"cannot make {k} folds from {n} samples")
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
        raise DataError(f"cannot make {k} folds from {n} samples")
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
