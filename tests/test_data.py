from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from dlrun.config.load import config_from_data
from dlrun.data import idx
from dlrun.data.base import LoadContext
from dlrun.data.base import SplitConfig
from dlrun.data.base import split_off_test
from dlrun.data.idx import read_idx
from dlrun.data.load import load_data
from dlrun.data.synthetic import two_spirals
from dlrun.errors import ConfigError
from dlrun.errors import DataError
from tests.conftest import tiny_config

BINARY_MODEL = {"layers": [{"dense": 4}, {"dense": {"units": 1, "activation": "sigmoid"}}]}


def csv_config(path: Path, **data: object) -> dict:
    return tiny_config(
        task="binary", data={"dataset": "csv", "path": str(path), "target": "label", **data},
        preprocess=["standardize"], model=BINARY_MODEL, loss="binary_crossentropy",
    )  # fmt: skip


def write_csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "table.csv"
    path.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    return path


ROWS = [f"{i},{i % 3 if i != 4 else '?'},{'yes' if i % 2 else 'no'}" for i in range(20)]


def test_csv_string_labels_become_classes_and_missing_is_an_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path, ROWS)
    with pytest.raises(
        DataError, match=r"1 rows have missing values \(first on line 6\); set data.missing"
    ):
        load_data(config_from_data(csv_config(path)))
    data = load_data(config_from_data(csv_config(path, missing="drop", test_fraction=0.25)))
    assert data.class_names == ["no", "yes"]
    assert data.feature_names == ["a", "b"]
    assert len(data.train) + len(data.test_split or []) == 19
    assert len(data.test_split or []) == 5


def test_csv_mean_imputation_is_a_training_only_step(tmp_path: Path) -> None:
    data = load_data(config_from_data(csv_config(write_csv(tmp_path, ROWS), missing="mean")))
    assert data.implied_steps == [{"impute": {"strategy": "mean"}}]
    assert np.isnan(np.concatenate([data.train.x, data.test_split.unseal().x])).sum() == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"target": "lable"}, "no column named 'lable'; columns: a, b, label"),
        ({"features": ["a", 7]}, "column 7 does not exist"),
        ({"path": "missing.csv"}, "CSV file not found: missing.csv"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path: Path, changes: dict, expected: str) -> None:
    cfg = csv_config(write_csv(tmp_path, ROWS), missing="drop")
    cfg["data"].update(changes)
    with pytest.raises(DataError, match=expected):
        load_data(config_from_data(cfg))


def test_csv_non_numeric_feature_is_reported(tmp_path: Path) -> None:
    path = write_csv(tmp_path, ["1,x,yes", "2,3,no", "3,?,no"])  # one stray text cell
    with pytest.raises(DataError) as caught:
        load_data(config_from_data(csv_config(path)))
    assert str(caught.value) == (
        f"{path}: column 'b' is not numeric (1 of 3 values are not numbers, first 'x'); fix "
        "them, list such markers in data.missing_values, encode the column with "
        "data.categorical (a list of columns, or auto) or leave it out with data.features"
    )  # '?' is a missing-value marker by default


def test_npz_with_official_split_and_with_one_array_pair(tmp_path: Path) -> None:
    x, y = np.random.rand(50, 3), np.arange(50) % 2
    np.savez(tmp_path / "split.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    np.savez(tmp_path / "plain.npz", features=x, labels=y)
    official = load_data(
        config_from_data(tiny_config(data={"dataset": "npz", "path": str(tmp_path / "split.npz")}))
    )
    assert (len(official.train), len(official.test_split or [])) == (40, 10)
    plain_cfg = {
        "dataset": "npz",
        "path": str(tmp_path / "plain.npz"),
        "x_key": "features",
        "y_key": "labels",
    }
    plain = load_data(config_from_data(tiny_config(data=plain_cfg)))
    assert (len(plain.train), len(plain.test_split or [])) == (40, 10)
    plain_cfg["y_key"] = "y"
    with pytest.raises(DataError, match="has no array 'y' \\(it has: features, labels\\)"):
        load_data(config_from_data(tiny_config(data=plain_cfg)))


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_idx_files_from_the_mirror_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    images = np.arange(5 * 28 * 28).reshape(5, 28, 28) % 256
    write_idx(folder / "train-images-idx3-ubyte.gz", images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(5))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[:2])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(2))
    np.testing.assert_array_equal(read_idx(folder / "train-images-idx3-ubyte.gz"), images)
    monkeypatch.setenv("DLRUN_DATA_PATH", str(tmp_path))
    data = load_data(config_from_data(tiny_config(data={"dataset": "mnist"})))
    assert (
        data.train.x.shape == (5, 28, 28)
        and data.test_split is not None
        and data.test_split.unseal().y.tolist() == [0, 1]
    )


def test_a_gzipped_idx_file_is_decoded_once_then_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLRUN_CACHE", str(tmp_path / "cache"))
    images = np.arange(3 * 4 * 4).reshape(3, 4, 4) % 256
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, images)
    np.testing.assert_array_equal(read_idx(path), images)
    assert [entry.parent.name for entry in (tmp_path / "cache").rglob("*.npz")] == ["idx"]

    def inflate(path: Path) -> np.ndarray:
        raise AssertionError(f"{path} inflated again")

    monkeypatch.setattr(idx, "_parse_idx", inflate)
    np.testing.assert_array_equal(read_idx(path), images)
    write_idx(path, images[:2])  # new content: a new entry, not the old array
    with pytest.raises(AssertionError, match="inflated again"):
        read_idx(path)


def test_a_damaged_idx_file_leaves_nothing_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLRUN_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "bad.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"cannot read .*bad\.gz"):
        read_idx(path)
    assert not list((tmp_path / "cache").rglob("*"))


def test_mnist_missing_file_error_says_where_to_put_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLRUN_DATA_PATH", raising=False)
    with pytest.raises(
        DataError, match=r"file train-images-idx3-ubyte\.gz not found.*set DLRUN_DATA_PATH"
    ):
        load_data(config_from_data(tiny_config(data={"dataset": "mnist"})))


def test_truncated_idx_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"abc")
    with pytest.raises(DataError, match="truncated or damaged: 3 data bytes, expected 10"):
        read_idx(path)


def test_two_spirals_are_mirrored_with_balanced_labels() -> None:
    x, y = two_spirals(300, noise=0.0, seed=1)
    assert x.shape == (600, 2) and y.sum() == 300
    np.testing.assert_allclose(x[300:], -x[:300])
    radius = np.hypot(x[:, 0], x[:, 1])
    assert radius.max() == pytest.approx(780 * 2 * np.pi / 360, rel=0.01)


def test_bits_are_numbers_written_in_binary_digits() -> None:
    """Beginners E19: 39 trains as 00100111 and 216 tests as 11011000."""
    bits = {"dataset": "bits", "train": [39, 5], "test": [216], "width": 8}
    autoencoder = {"task": {"name": "autoencoder", "code_layer": 0}, "loss": "mse",
                   "preprocess": [], "metrics": [], "evaluation": {"validation": None},
                   "model": {"layers": [{"dense": 2}, {"dense": 8}]}}  # fmt: skip
    data = load_data(config_from_data(tiny_config(data=bits, **autoencoder)))
    assert data.train.x.tolist() == [[0, 0, 1, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 1, 0, 1]]
    assert data.train.y.tolist() == [39, 5] and data.train.x.dtype == np.float32
    assert data.test_split is not None and data.test_split.unseal().x.tolist() == [
        [1, 1, 0, 1, 1, 0, 0, 0]
    ]
    assert data.description == "8-digit binary numbers: 39 = 00100111, 5 = 00000101"
    with pytest.raises(ConfigError, match=r"data: 256 does not fit in 8 binary digits \(0 to "
                       r"255\); raise width"):  # fmt: skip
        config_from_data(tiny_config(data={**bits, "test": [256]}, **autoencoder))
    with pytest.raises(ConfigError, match=r"data\.train\[0\]: .*greater than or equal to 0"):
        config_from_data(tiny_config(data={**bits, "train": [-3]}, **autoencoder))


@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer", "diabetes"])
def test_bundled_datasets_load_offline_with_a_stratified_test_split(name: str) -> None:
    task = "regression" if name == "diabetes" else "multiclass"
    regression = {"loss": "mse", "preprocess": [], "metrics": [], "evaluation": {},
                  "model": {"layers": [{"dense": 1}]}}  # fmt: skip
    extra = regression if task == "regression" else {}
    data = load_data(config_from_data(tiny_config(task=task, data={"dataset": name}, **extra)))
    total = len(data.train) + len(data.test_split or [])
    assert len(data.test_split or []) == pytest.approx(0.2 * total, abs=1)


def test_test_splits_are_stratified_only_for_one_label_per_sample() -> None:
    x, y = np.zeros((10, 2)), np.array([0] * 9 + [1])  # a class with one member cannot stratify
    split = SplitConfig(test_fraction=0.2)
    with pytest.raises(DataError, match="cannot split off a test set"):
        split_off_test(x, y, split, LoadContext(0, class_labels=True, single_label=True))
    train, test = split_off_test(
        x, y, split, LoadContext(0, class_labels=True, single_label=False)
    )
    assert test is not None and len(train) == 8 and len(test) == 2
