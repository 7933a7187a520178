"""Boston housing and IMDB loaders on generated files in their canonical formats."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dlrun.config.load import config_from_data
from dlrun.data.imdb import decode
from dlrun.data.imdb import tokenize
from dlrun.data.imdb import word_index_from_training
from dlrun.data.load import load_data
from dlrun.errors import DataError
from tests.conftest import tiny_config

REGRESSION = {"task": "regression", "loss": "mse", "metrics": ["mae"], "preprocess": [],
              "model": {"layers": [{"dense": 1}]}, "evaluation": {}}  # fmt: skip
BINARY = {"task": "binary", "loss": "binary_crossentropy", "metrics": ["accuracy"],
          "preprocess": [{"multi_hot": 50}],
          "model": {"layers": [{"dense": {"units": 1, "activation": "sigmoid"}}]}}  # fmt: skip


def _load(data: dict[str, object], **changes: object):  # type: ignore[no-untyped-def]
    return load_data(config_from_data(tiny_config(data=data, **changes)))


def test_boston_housing_uses_the_keras_seed_113_split(tmp_path: Path) -> None:
    x = np.arange(506 * 13, dtype=np.float64).reshape(506, 13)
    y = np.arange(506, dtype=np.float64)
    np.savez(tmp_path / "boston_housing.npz", x=x, y=y)
    data = _load({"dataset": "boston_housing", "path": str(tmp_path)}, **REGRESSION)
    order = np.arange(506)
    np.random.RandomState(113).shuffle(order)
    assert len(data.train) == 404 and data.test_split is not None and len(data.test_split) == 102
    assert data.train.y.tolist() == order[:404].tolist()
    assert data.test_split.unseal().y.tolist() == order[404:].tolist()
    assert data.train.x[0].tolist() == x[order[0]].tolist() and data.feature_names[5] == "RM"  # type: ignore[index]


def test_boston_housing_missing_file_says_where_to_put_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DLRUN_DATA_PATH", str(tmp_path))
    with pytest.raises(DataError, match=r"boston_housing\.npz not found .*DLRUN_DATA_PATH"):
        _load({"dataset": "boston_housing"}, **REGRESSION)


REVIEWS = {
    ("train", "pos"): ["A great, great film!", "great acting<br />and a great plot"],
    ("train", "neg"): ["a dull film", "dull, dull plot"],
    ("test", "pos"): ["great twist"],
    ("test", "neg"): ["dull film"],
}


def _write_aclimdb(path: Path) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for (split, label), texts in REVIEWS.items():
            for i, text in enumerate(texts):
                body = text.encode()
                info = tarfile.TarInfo(f"aclImdb/{split}/{label}/{i}_7.txt")
                info.size = len(body)
                archive.addfile(info, io.BytesIO(body))


def test_raw_imdb_ranks_words_on_training_reviews_with_keras_offsets(tmp_path: Path) -> None:
    archive = tmp_path / "aclImdb_v1.tar.gz"
    _write_aclimdb(archive)
    data = _load({"dataset": "imdb", "source": "raw", "path": str(archive)}, **BINARY)
    texts = [tokenize(t) for key in (("train", "neg"), ("train", "pos")) for t in REVIEWS[key]]
    index = word_index_from_training(texts)
    assert list(index)[:3] == ["great", "a", "dull"]  # by training frequency, ties alphabetical
    assert len(data.train) == 4 and sorted(data.train.y.tolist()) == [0, 0, 1, 1]
    sequences = {tuple(s.tolist()) for s in data.train.x}
    great, dull, a, film = (index[w] + 3 for w in ("great", "dull", "a", "film"))
    assert (1, a, dull, film) in sequences  # start_char 1, then ranks shifted by index_from 3
    test = data.test_split.unseal()  # type: ignore[union-attr]
    twist_unknown = len(index) + 1 + 3  # a test-only word gets no rank of its own
    assert {tuple(s.tolist()) for s in test.x} == {(1, great, twist_unknown), (1, dull, film)}
    assert decode([1, great, dull], index) == "? great dull"


def test_raw_imdb_num_words_maps_rare_words_to_oov(tmp_path: Path) -> None:
    archive = tmp_path / "aclImdb_v1.tar.gz"
    _write_aclimdb(archive)
    data = _load({"dataset": "imdb", "source": "raw", "path": str(archive), "num_words": 5}, **BINARY)
    assert max(int(s.max()) for s in data.train.x) <= 4  # great=4, a=5 and rarer -> 2
    assert any(2 in s.tolist() for s in data.train.x)


def test_keras_imdb_npz_is_read_with_the_same_semantics(tmp_path: Path) -> None:
    def ragged(rows: list[list[int]]) -> np.ndarray:
        array = np.empty(len(rows), dtype=object)
        array[:] = rows
        return array

    np.savez(tmp_path / "imdb.npz", x_train=ragged([[1, 2], [3, 4, 5]]), y_train=np.array([0, 1]),
             x_test=ragged([[2, 9]]), y_test=np.array([1]))  # fmt: skip
    data = _load({"dataset": "imdb", "path": str(tmp_path), "num_words": 8, "maxlen": 4}, **BINARY)
    assert sorted(tuple(s.tolist()) for s in data.train.x) == [(1, 4, 5), (1, 6, 7, 2)]
    assert [s.tolist() for s in data.test_split.unseal().x] == [[1, 5, 2]]  # type: ignore[union-attr]
    dropped = _load({"dataset": "imdb", "path": str(tmp_path), "maxlen": 3}, **BINARY)
    assert len(dropped.train) == 1  # Keras drops longer sequences rather than cutting them
