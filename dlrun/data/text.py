"""Text as character windows for next-character prediction (DLwP 8.1).

Every window of ``maxlen`` characters, taken every ``step`` characters, is a sample whose label
is the character that follows; the alphabet is the text's sorted distinct characters (the class
names). With ``one_hot`` the windows are ``(N, maxlen, chars)`` 0/1 arrays, as the book
vectorizes them for an LSTM; they are kept as uint8 (a quarter of float32's memory: Nietzsche's
200,000 windows take 680 MB) and become float one batch at a time on the device. Without it,
integer windows suit an embedding.

The labels stay character indices, as every class target in dlrun does: train with
``sparse_categorical_crossentropy`` (the same loss as the book's ``categorical_crossentropy`` on
one-hot rows), or add ``- one_hot: {num_classes: <chars>}`` to use the latter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from dlrun.config.base import FilePath
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import DatasetConfig
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.base import existing_file
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


def one_hot_chars(indices: np.ndarray, count: int) -> np.ndarray:
    """Character indices to uint8 0/1 rows along a new last axis."""
    return np.eye(count, dtype=np.uint8)[indices]


class CharWindowConfig(DatasetConfig):
    maxlen: int = Field(default=60, gt=0, description="characters per window")
    step: int = Field(default=3, gt=0, description="characters between window starts")


def windows_data(text: str, config: CharWindowConfig, one_hot: bool, what: str) -> LoadedData:
    """The windows of ``text`` and their next characters, one-hot or as indices."""
    x, y, chars = char_windows(text, config.maxlen, config.step)
    if one_hot:
        x = one_hot_chars(x, len(chars))
    form = f"one-hot over {len(chars)} characters" if one_hot else "character indices"
    description = f"{what}, {len(text)} characters, {len(x)} windows of {config.maxlen} ({form})"
    return LoadedData(Arrays(x, y), None, description, None, chars)


def read_text(path: Path, encoding: str, lower: bool) -> str:
    try:
        text = path.read_text(encoding=encoding)
    except (OSError, UnicodeDecodeError, LookupError) as exc:  # LookupError: unknown encoding
        raise DataError(f"cannot read {path}: {exc}") from None
    return text.lower() if lower else text


@DATASETS.register("nietzsche")
class Nietzsche(DataSource):
    """About 600,000 characters of Nietzsche, lower-cased, as character windows (DLwP 8.1)."""

    class Config(CharWindowConfig):
        path: FilePath | None = None
        one_hot: bool = Field(default=False, description="one-hot windows (N, maxlen, chars)")

    config: Config
    resources = (
        Resource("nietzsche.txt", "https://s3.amazonaws.com/text-datasets/nietzsche.txt", None,
                 600901),
    )  # fmt: skip

    def load(self, context: LoadContext) -> LoadedData:
        path = locate("nietzsche", self.resources[0], self.config.path)
        text = read_text(path, "utf-8", lower=True)
        return windows_data(text, self.config, self.config.one_hot, "Nietzsche")


@DATASETS.register("char_text")
class CharText(DataSource):
    """Any text file as character windows, one-hot by default (DLwP 8.1 on your own text).

    Example: ``data: {dataset: char_text, path: shakespeare.txt, maxlen: 60, step: 3}`` with an
    ``lstm: 128`` and a softmax over the characters, ``sparse_categorical_crossentropy``.
    """

    class Config(CharWindowConfig):
        path: FilePath
        encoding: str = "utf-8"
        lower: bool = Field(default=True, description="lower-case the text first (the book's)")
        one_hot: bool = Field(default=True, description="one-hot windows (N, maxlen, chars)")

    config: Config

    def load(self, context: LoadContext) -> LoadedData:
        c = self.config
        text = read_text(existing_file(c.path, "text"), c.encoding, c.lower)
        return windows_data(text, c, c.one_hot, Path(c.path).name)
