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

    @classmethod
    def from_arrays(cls, arrays: Sequence[np.ndarray]) -> Ragged:
        """From integer arrays (one concatenation, not a Python pass over every value)."""
        lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
        values = np.concatenate(arrays) if len(arrays) else np.empty(0, dtype=np.int64)
        return cls(values.astype(np.int64, copy=False), lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, rows: np.ndarray) -> Ragged:
        """The sequences ``rows`` (indices, in that order)."""
        lengths = self.lengths[rows]
        return Ragged(gather_segments(self.values, starts(self.lengths)[rows], lengths), lengths)

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

    def owners(self) -> np.ndarray:
        """The sequence each value belongs to."""
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    def keep(self, mask: np.ndarray) -> Ragged:
        """Only the values where ``mask`` (one flag per value) is true; sequences may shrink."""
        kept = np.bincount(self.owners()[mask], minlength=len(self.lengths))
        return Ragged(self.values[mask], kept.astype(np.int64))

    def distinct(self, width: int) -> Ragged:
        """Per sequence its distinct values from 0 to ``width - 1``, ascending: the indices of
        its multi-hot row. One sort of (sequence, value) keys for the whole corpus."""
        inside = (self.values >= 0) & (self.values < width)
        keys = np.sort(self.owners()[inside] * width + self.values[inside])
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        keys = keys[first]
        counts = np.bincount(keys // width, minlength=len(self.lengths))
        return Ragged(keys % width, counts.astype(np.int64))

    def rows(self, dtype: type[np.integer] = np.int32) -> np.ndarray:
        """One array per sequence, in an object array (what a dataset hands over)."""
        out = np.empty(len(self.lengths), dtype=object)
        out[:] = np.split(self.values.astype(dtype), np.cumsum(self.lengths)[:-1])
        return out


def gather_segments(values: np.ndarray, firsts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The segments of ``values`` that begin at ``firsts`` with these ``lengths``, end to end
    (sequences picked out of a corpus, or rows out of a CSR matrix's column indices).

    The positions are computed as int64, numpy's index type: int32 ones (a CSR tensor's) would
    be converted by the indexing, which made a gather of an IMDB batch 1.5x slower."""
    # each picked value's position: its segment's old start, plus its place within it
    positions = np.repeat(firsts.astype(np.int64) - starts(lengths), lengths)
    positions += np.arange(len(positions))
    return values[positions]


def starts(lengths: np.ndarray) -> np.ndarray:
    """Where each of sequences of these ``lengths``, laid end to end, begins."""
    out = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=out[1:])
    return out
