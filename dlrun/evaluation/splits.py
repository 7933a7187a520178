"""Hold-out validation splits as index pairs (scikit-learn splitter style)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from dlrun.config.schema import ValidationConfig
from dlrun.errors import DataError


def holdout_indices(
    n: int, y: np.ndarray, config: ValidationConfig, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, val_idx)`` for ``n`` samples.

    ``first`` takes the leading samples in file order (no shuffle), matching DLwP's
    ``x_val = x_train[:10000]``; ``fraction`` and ``count`` draw a seeded random sample.
    """
    index = np.arange(n)
    if config.first is not None:
        if config.first >= n:
            raise DataError(
                f"validation.first is {config.first} but there are only {n} training samples"
            )
        return index[config.first :], index[: config.first]
    size: float | int = config.fraction if config.fraction is not None else int(config.count or 0)
    if isinstance(size, int) and size >= n:
        raise DataError(f"validation.count is {size} but there are only {n} training samples")
    try:
        train_idx, val_idx = train_test_split(
            index, test_size=size, random_state=seed, stratify=y if config.stratify else None
        )
    except ValueError as exc:
        raise DataError(f"cannot make the validation split: {exc}") from None
    return np.sort(train_idx), np.sort(val_idx)
