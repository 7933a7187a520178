"""Integer sequences of different lengths (a corpus of word indices) as two flat arrays.

IMDB holds about 11 million word indices in 50,000 reviews. Kept as Python lists of lists,
every pass over them (Keras's index shift, start and out-of-vocabulary marks, the seed-113
shuffle) is a Python loop of seconds; as one array of all values end to end plus each
sequence's length, each pass is a numpy operation of milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np


@dataclass(frozen=True)
class Ragged:
    values: np.ndarray  # int64: every sequence's values, one sequence after the other
    lengths: np.ndarray  # int64: one length per sequence

    @classmethod
    def from_lists(cls, sequences: Sequence[Sequence[int]] | np.ndarray) -> Ragged:
        """From lists (or an object array of them, as Keras's npz files hold them)."""
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        values = np.fromiter(chain.from_iterable(sequences), np.int64, int(lengths.sum()))
        return cls(values, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, rows: np.ndarray) -> Ragged:
        """The sequences ``rows`` (indices, in that order)."""
        lengths = self.lengths[rows]
        # each kept value's position: its sequence's old start, plus its place within it
        shift = np.repeat(starts(self.lengths)[rows] - starts(lengths), lengths)
        return Ragged(self.values[shift + np.arange(len(shift))], lengths)

    def prepend(self, value: int) -> Ragged:
        """Every sequence with ``value`` put in front."""
        lengths = self.lengths + 1
        out = np.empty(len(self.values) + len(lengths), dtype=np.int64)
        firsts = starts(lengths)
        rest = np.ones(len(out), dtype=bool)
        rest[firsts] = False
        out[firsts] = value
        out[rest] = self.values
        return Ragged(out, lengths)

    def keep(self, mask: np.ndarray) -> Ragged:
        """Only the values where ``mask`` (one flag per value) is true; sequences may shrink."""
        owners = np.repeat(np.arange(len(self.lengths)), self.lengths)
        kept = np.bincount(owners[mask], minlength=len(self.lengths))
        return Ragged(self.values[mask], kept.astype(np.int64))

    def rows(self) -> np.ndarray:
        """One int32 array per sequence, in an object array (what a dataset hands over)."""
        out = np.empty(len(self.lengths), dtype=object)
        parts = np.split(self.values.astype(np.int32), np.cumsum(self.lengths)[:-1])
        for i in range(len(out)):  # one by one: equal lengths must not make a 2-D array
            out[i] = parts[i]
        return out


def starts(lengths: np.ndarray) -> np.ndarray:
    """Where each of sequences of these ``lengths``, laid end to end, begins."""
    out = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=out[1:])
    return out
