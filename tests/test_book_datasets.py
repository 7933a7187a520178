"""Boston housing and IMDB loaders on generated files in their canonical formats."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dlrun.config.load import config_from_data
from dlrun.data.checksums import collect_notes
from dlrun.data.load import load_data
from dlrun.data.word_sequences import decode
from dlrun.data.word_sequences import tokenize
from dlrun.data.word_sequences import word_index_from_training
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
    assert data.train.x[0].tolist() == x[order[0]].tolist() and data.feature_names[5] == "RM"
    np.savez(tmp_path / "boston_housing.npz", x=x[:100], y=y)  # trained on wrong pairs before
    with pytest.raises(DataError, match=r"100 rows in 'x' but 506 in 'y'"):
        _load({"dataset": "boston_housing", "path": str(tmp_path)}, **REGRESSION)


def test_boston_housing_missing_file_says_where_to_put_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DLRUN_DATA_PATH", str(tmp_path))
    with pytest.raises(DataError, match=r"boston_housing\.npz not found .*DLRUN_DATA_PATH"):
        _load({"dataset": "boston_housing"}, **REGRESSION)


REVIEWS = {
    ("train", "pos"): ["A great, great film!", "great acting<br />and a great plot"],
    ("train", "neg"): ["a dull film", "dull, dull plot"],
    ("test", "pos"): ["great twist"],
    ("test", "neg"): ["dull film"],
}


def _write_aclimdb(path: Path, edit: Callable[[str], str] = str, gzip_name: str = "") -> None:
    """The reviews as an archive like aclImdb's; ``edit`` rewrites each text. The name stored
    in the gzip header (``gzip_name``) sets the file's size to the byte."""
    with (
        open(path, "wb") as file,
        gzip.GzipFile(gzip_name, "wb", fileobj=file, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as archive,
    ):
        for (split, label), texts in REVIEWS.items():
            for i, text in enumerate(texts):
                body = edit(text).encode()
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
    test = data.test_split.unseal()
    twist_unknown = len(index) + 1 + 3  # a test-only word gets no rank of its own
    assert {tuple(s.tolist()) for s in test.x} == {(1, great, twist_unknown), (1, dull, film)}
    assert decode([1, great, dull], index) == "? great dull"


def test_raw_imdb_num_words_maps_rare_words_to_oov(tmp_path: Path) -> None:
    archive = tmp_path / "aclImdb_v1.tar.gz"
    _write_aclimdb(archive)
    data = _load(
        {"dataset": "imdb", "source": "raw", "path": str(archive), "num_words": 5}, **BINARY
    )
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
    assert [s.tolist() for s in data.test_split.unseal().x] == [[1, 5, 2]]
    with collect_notes() as notes:
        dropped = _load({"dataset": "imdb", "path": str(tmp_path), "maxlen": 3}, **BINARY)
    assert len(dropped.train) == 1  # Keras drops longer sequences rather than cutting them
    assert notes[-1] == ("data.maxlen 3 keeps 1 of the 2 training reviews (longer ones are "
                         "dropped, as Keras does; pad_sequences' maxlen cuts them instead)")  # fmt: skip
    assert len(notes) == 2  # after the note that this npz is not the published one
    with pytest.raises(DataError, match=r"data.maxlen is 2, but every sequence is longer \(the "
                       r"shortest has 3 words, start mark included\)"):  # fmt: skip
        _load({"dataset": "imdb", "path": str(tmp_path), "maxlen": 2}, **BINARY)


def test_reuters_npz_shuffles_with_seed_113_and_splits_80_20(tmp_path: Path) -> None:
    rows = [[i % 7 + 1, i % 5 + 1] for i in range(50)]
    ragged = np.empty(50, dtype=object)
    ragged[:] = rows
    np.savez(tmp_path / "reuters.npz", x=ragged, y=np.arange(50) % 46)
    multiclass = {**BINARY, "task": "multiclass", "loss": "sparse_categorical_crossentropy",
                  "model": {"layers": [{"dense": {"units": 46, "activation": "softmax"}}]}}  # fmt: skip
    data = _load({"dataset": "reuters", "path": str(tmp_path)}, **multiclass)
    order = np.arange(50)
    np.random.RandomState(113).shuffle(order)
    assert len(data.train) == 40 and data.train.y.tolist() == (order[:40] % 46).tolist()
    assert data.train.x[0].tolist() == [1, *(w + 3 for w in rows[order[0]])]
    assert data.class_names[3] == "earn"


def test_pima_reads_the_canonical_headerless_csv_and_the_kaggle_copy(tmp_path: Path) -> None:
    rows = [[i % 5, 100 + i, 70, 20, 0, 30.5, 0.5, 21 + i, i % 2] for i in range(40)]
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    kaggle = tmp_path / "kaggle.csv"
    kaggle.write_text(
        "Pregnancies,Glucose,BP,Skin,Insulin,BMI,DPF,Age,Outcome\n" + plain.read_text()
    )
    for path in (plain, kaggle):
        data = _load(
            {"dataset": "pima", "path": str(path), "test_fraction": 0.25},
            **{**BINARY, "preprocess": []},
        )
        assert (len(data.train), len(data.test_split or [])) == (30, 10)
        assert data.feature_names[1] == "Glucose" and data.train.x.shape[1] == 8
        assert data.description == f"{path}: 40 rows, 8 features, target 'Outcome'"  # not col8


def test_heart_imputes_question_marks_and_can_binarize(tmp_path: Path) -> None:
    lines = [f"{50 + i}.0,1.0,3.0,130.0,250.0,0.0,2.0,150.0,0.0,1.5,2.0,{'?' if i == 3 else '0.0'},3.0,{i % 5}"
             for i in range(30)]  # fmt: skip
    path = tmp_path / "processed.cleveland.data"
    path.write_text("\n".join(lines) + "\n")
    five = _load({"dataset": "heart", "path": str(path), "test_fraction": 0.0},
                 **{**BINARY, "task": "multiclass", "loss": "sparse_categorical_crossentropy", "preprocess": [],
                    "model": {"layers": [{"dense": {"units": 5, "activation": "softmax"}}]}})  # fmt: skip
    assert sorted(set(five.train.y.tolist())) == [0, 1, 2, 3, 4] and five.implied_steps == [
        {"impute": {"strategy": "mean"}}
    ]
    two = _load(
        {"dataset": "heart", "path": str(path), "test_fraction": 0.0, "binarize": True},
        **{**BINARY, "preprocess": []},
    )
    assert sorted(set(two.train.y.tolist())) == [0, 1] and int(two.train.y.sum()) == 24
    with pytest.raises(DataError, match=r"the heart diagnosis has 5 values \(0-4\).*set "
                       "data.binarize: true"):  # fmt: skip
        _load({"dataset": "heart", "path": str(path), "test_fraction": 0.0},
              **{**BINARY, "preprocess": []})  # it blamed 'col13' and data.target  # fmt: skip


def test_jena_climate_zip_keeps_time_order(tmp_path: Path) -> None:
    import zipfile

    header = '"Date Time","p (mbar)","T (degC)","rh (%)"'
    rows = [f"01.01.2009 00:{i:02d}:00,{996 + i},{-8.0 + i},{93.0}" for i in range(20)]
    with zipfile.ZipFile(tmp_path / "jena_climate_2009_2016.csv.zip", "w") as archive:
        archive.writestr("jena_climate_2009_2016.csv", "\n".join([header, *rows]) + "\n")
    data = _load({"dataset": "jena_climate", "path": str(tmp_path)}, **REGRESSION)
    assert data.feature_names == ["p (mbar)", "T (degC)", "rh (%)"] and data.test_split is None
    assert data.train.y.tolist() == [-8.0 + i for i in range(20)]  # not shuffled


def test_nietzsche_windows_predict_the_next_character(tmp_path: Path) -> None:
    (tmp_path / "nietzsche.txt").write_text("Abcdefghij")
    multiclass = {**BINARY, "task": "multiclass", "loss": "sparse_categorical_crossentropy", "preprocess": [],
                  "model": {"layers": [{"dense": {"units": 10, "activation": "softmax"}}]}}  # fmt: skip
    data = _load(
        {"dataset": "nietzsche", "path": str(tmp_path), "maxlen": 4, "step": 3}, **multiclass
    )
    chars = data.class_names
    assert chars == list("abcdefghij")
    assert data.train.x.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6]] and data.train.y.tolist() == [
        4,
        7,
    ]


def _cifar_tarball(path: Path, folder: str, batches: dict[str, dict[bytes, object]]) -> None:
    import pickle

    with tarfile.open(path, "w:gz") as archive:
        for name, batch in batches.items():
            body = pickle.dumps(batch)
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))


def test_cifar10_tarball_gives_channels_last_images(tmp_path: Path) -> None:
    def batch(n: int, start: int) -> dict[bytes, object]:
        data = np.arange(n * 3072, dtype=np.int64).reshape(n, 3072) % 256
        return {b"data": data.astype(np.uint8), b"labels": [(start + i) % 10 for i in range(n)]}

    batches = {f"data_batch_{i}": batch(2, i) for i in range(1, 6)} | {"test_batch": batch(3, 0)}
    _cifar_tarball(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", batches)
    multiclass = {**BINARY, "task": "multiclass", "loss": "sparse_categorical_crossentropy", "preprocess": ["flatten"],
                  "model": {"layers": [{"dense": {"units": 10, "activation": "softmax"}}]}}  # fmt: skip
    data = _load(
        {"dataset": "cifar10", "path": str(tmp_path / "cifar-10-python.tar.gz")}, **multiclass
    )
    assert data.train.x.shape == (10, 32, 32, 3) and data.train.x.dtype == np.uint8
    assert (
        data.train.x[0, 0, 1, 0] == 1 and data.train.x[0, 0, 0, 1] == 1024 % 256
    )  # R then G planes
    assert len(data.test_split or []) == 3 and data.class_names[0] == "airplane"


def test_cifar_batches_refuse_pickled_code(tmp_path: Path) -> None:
    import os
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test"):
        (folder / name).write_bytes(pickle.dumps({b"data": Evil()}))
    multiclass = {**BINARY, "task": "multiclass", "loss": "sparse_categorical_crossentropy", "preprocess": [],
                  "model": {"layers": [{"dense": {"units": 100, "activation": "softmax"}}]}}  # fmt: skip
    with pytest.raises(DataError, match="refusing to load"):
        _load({"dataset": "cifar100", "path": str(tmp_path)}, **multiclass)


def test_cifar100_reads_fine_or_coarse_labels_from_an_extracted_folder(tmp_path: Path) -> None:
    import pickle

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 4), ("test", 2)):
        batch = {b"data": np.zeros((n, 3072), dtype=np.uint8), b"fine_labels": list(range(n)),
                 b"coarse_labels": [i % 2 for i in range(n)]}  # fmt: skip
        (folder / name).write_bytes(pickle.dumps(batch))
    multiclass = {**BINARY, "task": "multiclass", "loss": "sparse_categorical_crossentropy", "preprocess": [],
                  "model": {"layers": [{"dense": {"units": 100, "activation": "softmax"}}]}}  # fmt: skip
    fine = _load({"dataset": "cifar100", "path": str(tmp_path)}, **multiclass)
    coarse = _load(
        {"dataset": "cifar100", "path": str(tmp_path), "label_mode": "coarse"}, **multiclass
    )
    assert fine.train.x.shape == (4, 32, 32, 3) and fine.train.y.tolist() == [0, 1, 2, 3]
    assert coarse.train.y.tolist() == [0, 1, 0, 1] and len(coarse.test_split or []) == 2
