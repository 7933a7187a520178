"""Raw text to word-index sequences, with the semantics of Keras 2's ``Tokenizer``.

DLwP 6.1.3 fits ``Tokenizer(num_words=10000)`` and calls ``texts_to_sequences``. This step does
the same, but as a preprocessing step it is fitted on the training part only (the book fits it
on every review before splitting off the validation ones): a word seen only in validation or test
text is unknown, so it becomes the ``oov_token``'s index or is dropped, as Keras does for words
outside its index.

Keras's rules, kept exactly (Keras 3 no longer ships the class, so they are restated here):

* a text is lower-cased (``lower``), every character of ``filters`` becomes ``split``, and the
  text is split on ``split`` with empty pieces dropped (``text_to_word_sequence``);
* index 0 is reserved; the ``oov_token``, if any, is 1; then words by descending training count,
  ties in order of first appearance (a stable sort of the insertion-ordered counts);
* ``num_words`` keeps the indices below ``num_words``: a word ranked at or beyond it becomes the
  ``oov_token``'s index, or is dropped without one.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field

from dlrun.errors import DataError
from dlrun.preprocess.base import Step
from dlrun.preprocess.base import StepConfig
from dlrun.preprocess.steps import STEPS

KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


@functools.cache
def _table(filters: str, split: str) -> dict[int, str]:
    return {ord(char): split for char in filters}


def text_to_word_sequence(text: str, filters: str, lower: bool, split: str) -> list[str]:
    """Keras's ``text_to_word_sequence``: the words of one text."""
    if lower:
        text = text.lower()
    text = text.translate(_table(filters, split))
    return [word for word in text.split(split) if word]


def ranked_words(texts: list[list[str]]) -> list[str]:
    """Distinct words by descending count, ties by first appearance (Keras's stable sort)."""
    counts = Counter(word for words in texts for word in words)  # insertion-ordered
    return [word for word, _ in sorted(counts.items(), key=lambda item: -item[1])]


def _texts(data: np.ndarray) -> list[str]:
    """The array's cells as strings, or a one-line error for anything that is not text."""
    cells = np.asarray(data).reshape(len(data), -1)
    if cells.shape[1] != 1 or not all(isinstance(cell, str) for cell in cells[:, 0]):
        kind = f"{data.dtype} arrays of shape {list(data.shape[1:])}"
        raise DataError(
            f"tokenize reads one text per sample, but the inputs are {kind}; load text (e.g. "
            "imdb with source: raw and output: text), or drop tokenize for index sequences"
        )
    return [str(cell) for cell in cells[:, 0]]


@STEPS.register("tokenize")
class Tokenize(Step):
    """Texts to word-index sequences (Keras ``Tokenizer``), fitted on the training texts only.

    Example (DLwP 6.1.3): ``- tokenize: 10000`` then ``- pad_sequences: 100``. The output is one
    ragged int64 sequence per sample; ``pad_sequences`` makes the matrix an embedding reads.
    """

    reads_text = True

    class Config(StepConfig):
        positional: ClassVar[str] = "num_words"
        num_words: int | None = Field(
            default=None, gt=0, description="keep the indices below this (Keras: num_words)"
        )
        filters: str = Field(default=KERAS_FILTERS, description="characters turned into split")
        lower: bool = True
        split: str = Field(default=" ", min_length=1)
        oov_token: str | None = Field(
            default=None, description="index 1 stands for unknown words (otherwise dropped)"
        )

    config: Config
    fitted_attributes = ("words_",)
    words_: list[str]  # the training vocabulary, most frequent first (index = position + 1)

    def _fit(self, data: np.ndarray) -> None:
        c = self.config
        words = [text_to_word_sequence(t, c.filters, c.lower, c.split) for t in _texts(data)]
        ranked = ranked_words(words)
        self.words_ = ranked if c.oov_token is None else [c.oov_token, *ranked]
        self._index: dict[str, int] | None = None

    @property
    def word_index(self) -> dict[str, int]:
        """Word to index, built as Keras builds it (a later duplicate of the oov word wins)."""
        if getattr(self, "_index", None) is None:
            self._index = dict(zip(self.words_, range(1, len(self.words_) + 1), strict=True))
        assert self._index is not None
        return self._index

    def _transform(self, data: np.ndarray) -> np.ndarray:
        c = self.config
        index = self.word_index
        oov = index.get(c.oov_token) if c.oov_token is not None else None
        limit = c.num_words
        out = np.empty(len(data), dtype=object)
        for row, text in enumerate(_texts(data)):
            ids = []
            for word in text_to_word_sequence(text, c.filters, c.lower, c.split):
                i = index.get(word)
                if i is not None and (limit is None or i < limit):
                    ids.append(i)
                elif oov is not None:
                    ids.append(oov)
            out[row] = np.asarray(ids, dtype=np.int64)
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The vocabulary as UTF-8 bytes plus each word's byte length (tensors only)."""
        self.check_is_fitted()
        encoded = [word.encode("utf-8") for word in self.words_]
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        lengths = np.array([len(b) for b in encoded], dtype=np.int64)
        return {"words_": torch.from_numpy(data), "lengths_": torch.from_numpy(lengths)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        data = state["words_"].numpy().tobytes()
        ends = np.cumsum(state["lengths_"].numpy())
        starts = ends - state["lengths_"].numpy()
        self.words_ = [data[s:e].decode("utf-8") for s, e in zip(starts, ends, strict=True)]
        self._index = None
