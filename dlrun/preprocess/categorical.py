"""Text categories in a table (``gender``, ``chest pain type``) as numbers a network can read.

The CSV source turns each categorical column's text into codes, positions in the column's
vocabulary (every distinct value in the file, sorted), and -1 for an empty or missing cell; the
vocabulary rides in this step's config, so ``dlrun predict`` maps new text the same way. Which
categories get a column is learned from the training rows only: one seen only in validation or
test rows encodes like a missing cell (all zeros one-hot, -1 ordinal), as scikit-learn's
``OneHotEncoder(handle_unknown="ignore")`` does.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from dlrun.preprocess.base import Step
from dlrun.preprocess.base import StepConfig
from dlrun.preprocess.steps import STEPS

UNKNOWN = -1  # the code of a missing cell or a category outside the vocabulary


def category_codes(values: np.ndarray, vocabulary: list[str], missing: list[str]) -> np.ndarray:
    """Text cells to vocabulary positions; missing or unknown cells to ``UNKNOWN``."""
    text = np.char.strip(values.astype(str))
    index = {category: code for code, category in enumerate(vocabulary)}
    codes = [UNKNOWN if cell in missing else index.get(cell, UNKNOWN) for cell in text]
    return np.asarray(codes, dtype=np.float64)


@STEPS.register("categorical")
class Categorical(Step):
    """Category codes to one-hot columns (or one ordinal number), fitted on training rows."""

    class Config(StepConfig):
        columns: list[int] = Field(min_length=1, description="positions of the coded columns")
        categories: list[list[str]] = Field(description="each column's vocabulary, in order")
        encoding: Literal["one_hot", "ordinal"] = "one_hot"

    config: Config
    fitted_attributes = ("seen_",)

    def _fit(self, data: np.ndarray) -> None:
        width = max(len(c) for c in self.config.categories)
        seen = np.zeros((len(self.config.columns), max(width, 1)), dtype=bool)
        for row, column in enumerate(self.config.columns):
            codes = data[:, column].astype(np.int64)
            seen[row, codes[codes >= 0]] = True
        self.seen_ = seen

    def _transform(self, data: np.ndarray) -> np.ndarray:
        coded = dict(zip(self.config.columns, range(len(self.config.columns)), strict=True))
        parts = []
        for column in range(data.shape[1]):
            values = data[:, column]
            if column not in coded:
                parts.append(values.astype(np.float32)[:, None])
                continue
            kept = np.flatnonzero(self.seen_[coded[column]])
            codes = values.astype(np.int64)
            if self.config.encoding == "one_hot":
                parts.append((codes[:, None] == kept[None, :]).astype(np.float32))
            else:  # the rank among the training categories, UNKNOWN for any other
                rank = np.full(self.seen_.shape[1] + 1, UNKNOWN, dtype=np.float32)
                rank[kept] = np.arange(len(kept))
                parts.append(rank[np.where(codes >= 0, codes, -1)][:, None])
        return np.concatenate(parts, axis=1)


def vocabularies(steps: list[tuple[str, Step]], array: str) -> dict[int, list[str]]:
    """Each coded column of ``array`` (by position) with its vocabulary, for reading new rows."""
    for _, step in steps:
        if isinstance(step, Categorical) and step.field == array:
            return dict(zip(step.config.columns, step.config.categories, strict=True))
    return {}
