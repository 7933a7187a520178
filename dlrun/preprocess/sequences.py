"""Steps on integer sequences: padding them to one length, and reversing them.

Sequences arrive ragged (an object array of index arrays, as ``imdb``, ``reuters`` and
``tokenize`` give them) or already as a ``(N, steps, ...)`` matrix; either way the steps act
along each sample's first axis, as Keras's ``pad_sequences`` and DLwP 6.3.8's ``x[::-1]`` do.
"""

from __future__ import annotations

from typing import ClassVar
from typing import Literal

import numpy as np
from pydantic import Field

from dlrun.errors import DataError
from dlrun.preprocess.base import Step
from dlrun.preprocess.base import StepConfig
from dlrun.preprocess.steps import STEPS
from dlrun.preprocess.steps import index_sequence
from dlrun.preprocess.steps import not_text

End = Literal["pre", "post"]


def pad_sequences(
    sequences: np.ndarray, maxlen: int, padding: End, truncating: End, value: int
) -> np.ndarray:
    """Keras's ``pad_sequences`` with ``dtype="int64"``: an ``(N, maxlen)`` matrix.

    ``truncating`` says which end a longer sequence loses, ``padding`` which end a shorter one
    is filled at (both ``pre`` by default, so the last ``maxlen`` ids are kept, right-aligned).
    """
    out = np.full((len(sequences), maxlen), value, dtype=np.int64)
    for row, raw in enumerate(sequences):
        sequence = index_sequence(raw, "pad_sequences")
        kept = sequence[max(len(sequence) - maxlen, 0) :] if truncating == "pre" else (
            sequence[:maxlen]
        )  # fmt: skip
        if not len(kept):
            continue
        if padding == "post":
            out[row, : len(kept)] = kept
        else:
            out[row, maxlen - len(kept) :] = kept
    return out


def _longest(sequences: np.ndarray) -> int:
    return max((len(index_sequence(s, "pad_sequences")) for s in sequences), default=0)


@STEPS.register("pad_sequences")
class PadSequences(Step):
    """Pad or cut each index sequence to ``maxlen`` ids (Keras ``pad_sequences``), giving the
    ``(N, maxlen)`` int64 matrix an embedding reads.

    Without ``maxlen`` the length is the longest *training* sequence, so validation and test
    sequences are cut to what the model was built for. Example (DLwP 6.1.2):
    ``- pad_sequences: 20`` keeps each review's last 20 words.
    """

    class Config(StepConfig):
        positional: ClassVar[str] = "maxlen"
        maxlen: int | None = Field(
            default=None, gt=0, description="ids per sample (default: the longest training one)"
        )
        padding: End = Field(default="pre", description="the end filled with value")
        truncating: End = Field(default="pre", description="the end a longer sequence loses")
        value: int = Field(default=0, description="the padding id (0: Keras's, and mask_zero's)")

    config: Config
    fitted_attributes = ("maxlen_",)
    maxlen_: np.ndarray

    def _fit(self, data: np.ndarray) -> None:
        maxlen = self.config.maxlen
        self.maxlen_ = np.array(maxlen if maxlen is not None else _longest(data))

    def _transform(self, data: np.ndarray) -> np.ndarray:
        c = self.config
        return pad_sequences(data, int(self.maxlen_), c.padding, c.truncating, c.value)


@STEPS.register("reverse")
class Reverse(Step):
    """Reverse every sequence in time (DLwP 6.3.8: ``x[::-1]``).

    Listed before ``pad_sequences`` it reverses the words and padding then goes where
    ``padding`` says (the book's order); listed after, the padding is reversed with the words.
    """

    def _transform(self, data: np.ndarray) -> np.ndarray:
        if data.dtype.kind in "US":
            raise not_text("reverse")
        if data.dtype != object:
            if data.ndim < 2:
                raise DataError("reverse needs a sequence per sample; the inputs are scalars")
            return np.ascontiguousarray(data[:, ::-1])
        out = np.empty(len(data), dtype=object)
        for row, sequence in enumerate(data):
            if isinstance(sequence, str):
                raise not_text("reverse")
            out[row] = np.asarray(sequence)[::-1].copy()  # any dtype: ids or feature rows
        return out
