"""The dataset contract: a registered source turns its typed config into arrays.

Every source returns the training part and, where one exists, a test part: the dataset's
official split, or a seeded (optionally stratified) fraction for sources without one.
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import ClassVar

import numpy as np
from pydantic import Field
from sklearn.model_selection import train_test_split

from dlrun.config.base import StrictModel
from dlrun.errors import DataError
from dlrun.registry import Registry


@dataclass(frozen=True)
class Arrays:
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray) -> Arrays:
        return Arrays(self.x[index], self.y[index])


@dataclass(frozen=True)
class LoadedData:
    """Raw arrays before preprocessing. ``test`` is ``None`` when no test part exists."""

    train: Arrays
    test: Arrays | None
    description: str
    feature_names: list[str] | None = None
    class_names: list[str] | None = None
    # Preprocessing steps the source asks for, e.g. imputing values a CSV marked missing.
    implied_steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class LoadContext:
    seed: int
    task: str


class SplitConfig(StrictModel):
    """For sources without an official test split: how much to hold out as the test set."""

    test_fraction: float = Field(default=0.2, ge=0, lt=1)
    stratify: bool = True


class DataSource(ABC):
    Config: ClassVar[type[StrictModel]]

    def __init__(self, config: StrictModel) -> None:
        self.config = config

    @abstractmethod
    def load(self, context: LoadContext) -> LoadedData:
        """Read the data; raise :class:`DataError` with a fix for anything the user can mend."""


DATASETS: Registry[type[DataSource]] = Registry("dataset")


def split_off_test(
    x: np.ndarray, y: np.ndarray, split: SplitConfig, context: LoadContext
) -> tuple[Arrays, Arrays | None]:
    """Seeded test split; stratified on the labels for classification tasks when asked."""
    if split.test_fraction == 0:
        return Arrays(x, y), None
    stratify = y if split.stratify and context.task in ("binary", "multiclass") else None
    try:
        index = np.arange(len(x))
        train_idx, test_idx = train_test_split(
            index, test_size=split.test_fraction, random_state=context.seed, stratify=stratify
        )
    except ValueError as exc:
        raise DataError(f"cannot split off a test set: {exc}") from None
    return Arrays(x[np.sort(train_idx)], y[np.sort(train_idx)]), Arrays(
        x[np.sort(test_idx)], y[np.sort(test_idx)]
    )


def existing_file(path: str, what: str) -> Path:
    """``path`` as a Path, or a one-line error naming the missing file."""
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise DataError(f"{what} file not found: {path} (looked in {resolved.resolve().parent})")
    return resolved
