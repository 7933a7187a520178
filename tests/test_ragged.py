"""Word-index corpora as flat arrays: the same sequences as Keras's list code, and the raw IMDB
reviews tokenized once, then read back from dlrun's cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlrun.data import checksums
from dlrun.data import word_sequences
from dlrun.data.ragged import Ragged
from dlrun.data.word_sequences import WordIndexConfig
from dlrun.data.word_sequences import keras_encode
from tests.test_book_datasets import BINARY
from tests.test_book_datasets import _load
from tests.test_book_datasets import _write_aclimdb


def keras_lists(sequences: list[list[int]], c: WordIndexConfig) -> list[list[int]]:
    """Keras's ``imdb.load_data`` encoding, written as its list code does it."""
    shifted = [[w + c.index_from for w in seq] for seq in sequences]
    if c.start_char is not None:
        shifted = [[c.start_char, *seq] for seq in shifted]
    limit = c.num_words or max((max(seq) for seq in shifted if seq), default=0) + 1
    if c.oov_char is not None:
        return [[w if c.skip_top <= w < limit else c.oov_char for w in seq] for seq in shifted]
    return [[w for w in seq if c.skip_top <= w < limit] for seq in shifted]


def as_lists(ragged: Ragged) -> list[list[int]]:
    return [row.tolist() for row in ragged.rows()]


@pytest.mark.parametrize(
    "options",
    [{}, {"num_words": 30}, {"num_words": 30, "skip_top": 5}, {"oov_char": None, "num_words": 25},
     {"start_char": None, "index_from": 0, "skip_top": 2}, {"oov_char": None, "start_char": None}],
)  # fmt: skip
def test_keras_encoding_of_flat_arrays_equals_keras_list_code(options: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    sequences = [rng.integers(1, 40, rng.integers(0, 12)).tolist() for _ in range(200)]
    sequences[3] = []
    config = WordIndexConfig.model_validate(options)
    assert as_lists(keras_encode(Ragged.from_lists(sequences), config)) == keras_lists(
        sequences, config
    )


def test_ragged_sequences_reorder_and_split_like_lists() -> None:
    sequences = [[5, 6], [], [7], [8, 9, 10], []]
    ragged = Ragged.from_lists(sequences)
    order = np.array([3, 1, 0, 3, 4])
    assert as_lists(ragged.take(order)) == [sequences[i] for i in order]
    assert as_lists(ragged.take(np.array([], dtype=np.int64))) == []
    assert as_lists(Ragged.from_lists([[1, 2], [3, 4]])) == [[1, 2], [3, 4]]  # equal lengths
    assert ragged.rows()[0].dtype == np.int32
    assert as_lists(ragged.prepend(1)) == [[1, *s] for s in sequences]


def test_distinct_values_per_sequence_are_each_rows_sorted_unique_in_range() -> None:
    rng = np.random.default_rng(1)
    arrays = [rng.integers(-3, 25, rng.integers(0, 30)) for _ in range(300)]
    arrays[7] = np.array([4, 4, 4])
    rows = Ragged.from_arrays(arrays).distinct(20).rows(np.int64)
    for row, array in zip(rows, arrays, strict=True):
        unique = np.unique(array)
        assert row.tolist() == unique[(unique >= 0) & (unique < 20)].tolist()
    assert len(Ragged.from_arrays([]).distinct(20).rows()) == 0


def test_raw_reviews_are_tokenized_once_then_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "aclImdb_v1.tar.gz"
    _write_aclimdb(archive)
    data: dict[str, object] = {"dataset": "imdb", "source": "raw", "path": str(archive)}
    first = _load(data, **BINARY)
    (entry,) = (Path(os.environ["DLRUN_CACHE"]) / "imdb").glob("raw-v*.npz")

    tokenize_reviews = word_sequences._index_raw

    def tokenized(*args: object) -> None:
        raise AssertionError("the reviews were tokenized again")

    monkeypatch.setattr(word_sequences, "_index_raw", tokenized)
    again = _load(data, **BINARY)
    assert [s.tolist() for s in again.train.x] == [s.tolist() for s in first.train.x]
    assert again.train.y.tolist() == first.train.y.tolist()
    monkeypatch.setattr(word_sequences, "_index_raw", tokenize_reviews)

    entry.write_bytes(entry.read_bytes()[:100])  # damaged: derived again, and rewritten whole
    assert [s.tolist() for s in _load(data, **BINARY).train.x] == [
        s.tolist() for s in first.train.x
    ]
    assert entry.stat().st_size > 100
    with np.load(entry) as saved:
        arrays = dict(saved)
    for broken in ({k: v for k, v in arrays.items() if k != "y_test"},  # written by hand
                   {**arrays, "x_train_lengths": arrays["x_train_lengths"][1:]}):  # fmt: skip
        np.savez(entry, **broken)
        assert [s.tolist() for s in _load(data, **BINARY).train.x] == [
            s.tolist() for s in first.train.x
        ]
    os.utime(archive, ns=(0, 0))  # the same reviews, touched: the same entry
    monkeypatch.setattr(word_sequences, "_index_raw", tokenized)
    _load(data, **BINARY)
    monkeypatch.setattr(word_sequences, "_index_raw", tokenize_reviews)
    _write_aclimdb(archive, gzip_name="x" * 40)
    before = _load(data, **BINARY).train.x
    stat = archive.stat()

    def other_reviews(text: str) -> str:
        return text.replace("film", "dull")  # ranks change: "dull" is now the commonest word

    _write_aclimdb(archive, other_reviews, "x" * 40)
    padding = "x" * (40 + stat.st_size - archive.stat().st_size)
    _write_aclimdb(archive, other_reviews, padding)
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert archive.stat().st_size == stat.st_size  # other reviews, same size and time:
    checksums._digest.cache_clear()  # (in the next process)
    after = _load(data, **BINARY).train.x  # read again, not taken for the old ones
    assert [s.tolist() for s in after] != [s.tolist() for s in before]
    assert len(list(entry.parent.glob("raw-v*.npz"))) == 3
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("DLRUN_CACHE", str(blocked))  # a cache that cannot be written: skipped
    assert len(_load(data, **BINARY).train) == len(first.train)
