"""Nietzsche's writings as character windows for next-character prediction (DLwP 8.1)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from dlrun.config.base import FilePath
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import DatasetConfig
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.download import Resource
from dlrun.data.locate import locate
from dlrun.errors import DataError


def char_windows(text: str, maxlen: int, step: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Windows of ``maxlen`` character indices every ``step`` characters, and the next one."""
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    encoded = np.array([index[c] for c in text], dtype=np.int64)
    starts = np.arange(0, len(text) - maxlen, step)
    if not len(starts):
        raise DataError(f"the text has {len(text)} characters, fewer than maxlen {maxlen}")
    x = np.stack([encoded[s : s + maxlen] for s in starts])
    return x, encoded[starts + maxlen], chars


@DATASETS.register("nietzsche")
class Nietzsche(DataSource):
    """About 600,000 characters of Nietzsche, lower-cased; every window of ``maxlen`` characters
    (taken every ``step``) is a sample whose label is the character that follows."""

    class Config(DatasetConfig):
        path: FilePath | None = None
        maxlen: int = Field(default=60, gt=0)
        step: int = Field(default=3, gt=0)

    config: Config
    resources = (
        Resource("nietzsche.txt", "https://s3.amazonaws.com/text-datasets/nietzsche.txt", None,
                 600901),
    )  # fmt: skip

    def load(self, context: LoadContext) -> LoadedData:
        c = self.config
        path = locate("nietzsche", self.resources[0], c.path)
        try:
            text = path.read_text(encoding="utf-8").lower()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from None
        x, y, chars = char_windows(text, c.maxlen, c.step)
        description = f"Nietzsche, {len(text)} characters, {len(x)} windows of {c.maxlen}"
        return LoadedData(Arrays(x, y), None, description, None, chars)
