"""Pre-trained GloVe word vectors turned into an embedding matrix for a vocabulary (DLwP 6.1.3).

The file is given by path (``glove.6B.<dim>d.txt``, or the ``glove.6B.zip`` holding it). Row ``i``
of the matrix is the vector of the word whose index is ``i`` (Keras word index rank plus
``index_from``); words without a vector, and the reserved rows, stay zero.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlrun.data.download import Resource
from dlrun.errors import DataError

GLOVE = Resource("glove.6B.zip", "https://nlp.stanford.edu/data/glove.6B.zip", None, 862182613)


def _lines(path: Path, dim: int) -> io.TextIOBase:
    if zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        member = f"glove.6B.{dim}d.txt"
        if member not in archive.namelist():
            raise DataError(f"{path} has no {member} (has {', '.join(archive.namelist())})")
        return io.TextIOWrapper(archive.open(member), encoding="utf-8")
    return path.open(encoding="utf-8")


def read_glove(path: Path, dim: int, words: set[str] | None = None) -> dict[str, np.ndarray]:
    """``word -> vector`` for every line (or only ``words``); every vector must have ``dim``."""
    vectors: dict[str, np.ndarray] = {}
    try:
        with _lines(path, dim) as handle:
            for number, line in enumerate(handle, start=1):
                word, *values = line.rstrip().split(" ")
                if words is not None and word not in words:
                    continue
                if len(values) != dim:
                    raise DataError(f"{path}, line {number}: {len(values)} values, expected {dim}")
                vectors[word] = np.asarray(values, dtype=np.float32)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read GloVe vectors from {path}: {exc}") from None
    return vectors


@dataclass(frozen=True)
class EmbeddingMatrix:
    matrix: np.ndarray  # (num_words, dim)
    found: int  # vocabulary rows that got a vector
    rows: int  # vocabulary rows inside num_words


def embedding_matrix(
    path: Path, dim: int, word_index: dict[str, int], num_words: int, index_from: int = 0
) -> EmbeddingMatrix:
    wanted = {w for w, rank in word_index.items() if rank + index_from < num_words}
    vectors = read_glove(path, dim, wanted)
    matrix = np.zeros((num_words, dim), dtype=np.float32)
    for word in wanted:
        if word in vectors:
            matrix[word_index[word] + index_from] = vectors[word]
    return EmbeddingMatrix(matrix, sum(w in vectors for w in wanted), len(wanted))
