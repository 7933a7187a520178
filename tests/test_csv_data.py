"""A user's own CSV: missing targets, labels to encode, text encodings, wrong paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.config.load import config_from_data
from dlrun.config.load import load_config
from dlrun.data.load import load_data
from dlrun.errors import ConfigError
from dlrun.errors import DataError
from tests.conftest import tiny_config

runner = CliRunner()


def table(tmp_path: Path, labels: list[str], header: str = "a,b,label", **kw: Any) -> Path:
    path = tmp_path / "table.csv"
    rows = [f"{i},{(i * 7) % 5},{label}" for i, label in enumerate(labels)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n", **kw)
    return path


def config(path: Path, task: str = "binary", units: int = 1, **data: Any) -> dict[str, Any]:
    activation = {"binary": "sigmoid", "multiclass": "softmax", "regression": None}[task]
    loss = {"binary": "binary_crossentropy", "multiclass": "sparse_categorical_crossentropy",
            "regression": "mse"}[task]  # fmt: skip
    return tiny_config(
        task=task, data={"dataset": "csv", "path": str(path), "target": "label", **data},
        preprocess=["standardize"], loss=loss, metrics=["mae"] if task == "regression" else [],
        model={"layers": [{"dense": 4}, {"dense": {"units": units, "activation": activation}}]},
    )  # fmt: skip


@pytest.mark.parametrize("marker", ["NaN", "", "?"])
def test_rows_without_a_target_are_an_error_naming_count_and_line(
    tmp_path: Path, marker: str
) -> None:
    labels = ["0", "1"] * 10
    labels[3] = labels[8] = marker
    with pytest.raises(DataError) as caught:
        load_data(config_from_data(config(table(tmp_path, labels))))
    assert str(caught.value) == (
        f"{tmp_path / 'table.csv'}: 2 rows have no value in the target column 'label' "
        "(first on line 5); fix them or set data.missing_target: drop"
    )


@pytest.mark.parametrize("missing_target", ["drop", "error"])
def test_a_target_column_without_values_is_named(tmp_path: Path, missing_target: str) -> None:
    path = table(tmp_path, [""] * 4)
    with pytest.raises(DataError) as caught:
        load_data(config_from_data(config(path, missing_target=missing_target)))
    assert str(caught.value) == (
        f"{path}: none of the 4 rows has a value in the target column 'label'; is data.target "
        "the right column?"
    )  # was: "holding out 0.2 of 0 samples leaves one side empty"


def test_missing_targets_are_dropped_when_asked(tmp_path: Path) -> None:
    labels = ["0", "1"] * 10
    labels[3] = labels[8] = "NaN"
    cfg = config(table(tmp_path, labels), missing_target="drop", test_fraction=0)
    data = load_data(config_from_data(cfg))
    assert data.class_names == ["0", "1"] and len(data.train) == 18
    assert set(data.train.y.tolist()) == {0, 1}


def test_a_regression_target_with_a_gap_is_an_error_not_a_divergence(tmp_path: Path) -> None:
    labels = [str(0.5 * i) for i in range(20)]
    labels[0] = "NA"
    with pytest.raises(DataError, match=r"1 rows have no value .* \(first on line 2\)"):
        cfg = config(table(tmp_path, labels), "regression", stratify=False)
        cfg["evaluation"] = {"validation": {"fraction": 0.2}}
        load_data(config_from_data(cfg))


def test_class_labels_are_encoded_from_the_labels_present(tmp_path: Path) -> None:
    data = load_data(
        config_from_data(
            config(table(tmp_path, ["1", "2", "3"] * 10), "multiclass", 3, test_fraction=0)
        )
    )
    assert data.class_names == ["1", "2", "3"]
    assert sorted(set(data.train.y.tolist())) == [0, 1, 2]
    numeric_order = ["10", "2", "2", "10", "9"] * 4  # by value, not as text
    data = load_data(
        config_from_data(config(table(tmp_path, numeric_order), "multiclass", 3, test_fraction=0))
    )
    assert data.class_names == ["2", "9", "10"] and data.train.y[:2].tolist() == [2, 0]


def test_a_third_label_in_a_binary_task_is_refused(tmp_path: Path, write_config: Any) -> None:
    cfg = config(table(tmp_path, ["0", "1", "2"] * 20))  # scored as 0/1, baselines on three
    for command in ("validate", "train"):
        result = runner.invoke(app, [command, str(write_config(cfg)), "--runs-dir", str(tmp_path)]
                               if command == "train" else [command, str(write_config(cfg))])  # fmt: skip
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert " ".join(result.output.split()).endswith(
            "the task takes 2 classes, but the target column 'label' holds 3 values ('0', '1', "
            "'2'); set data.target to the column of classes, or use task: multiclass"
        )  # the raw labels, before a stratified split counts them (it blamed rare classes)
    assert not any(tmp_path.glob("*/results.json"))  # refused before a run directory exists
    np.savez(tmp_path / "three.npz", x=np.random.default_rng(0).normal(size=(60, 2)),
             y=np.arange(60) % 3)  # fmt: skip
    npz = {**cfg, "data": {"dataset": "npz", "path": str(tmp_path / "three.npz")}}
    result = runner.invoke(app, ["validate", str(write_config(npz))])
    assert result.exit_code == 2 and result.output.strip().endswith(
        "task binary needs targets 0 and 1, but they hold 3 values (0, 1, 2); for more than "
        "two classes use task: multiclass with one softmax unit per class"
    )  # arrays as they are: the check of the first batch
    assert load_data(config_from_data(config(table(tmp_path, ["0", "1"] * 10)))).train.y.max() == 1


@pytest.mark.parametrize("body", ["", "\n", "\n\n"])
def test_a_csv_with_only_its_header_says_so(tmp_path: Path, body: str) -> None:
    path = tmp_path / "table.csv"
    path.write_text("a,b,label\n" + body)
    with pytest.raises(DataError) as caught:
        load_data(config_from_data(config(path)))
    assert str(caught.value) == f"{path}: no data rows, only the header line (a,b,label)"


def test_labels_already_zero_based_stay_as_they_are(tmp_path: Path) -> None:
    cfg = config(table(tmp_path, ["2", "0", "1"] * 10), "multiclass", 3, test_fraction=0)
    data = load_data(config_from_data(cfg))
    assert data.class_names == ["0", "1", "2"] and data.train.y[:3].tolist() == [2, 0, 1]


def test_one_two_three_labels_train_with_three_units(tmp_path: Path, write_config: Any) -> None:
    cfg = config(table(tmp_path, ["1", "2", "3"] * 20), "multiclass", 3)
    result = runner.invoke(app, ["train", str(write_config(cfg)), "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output


def test_a_latin1_file_names_the_line_and_the_setting(tmp_path: Path, write_config: Any) -> None:
    path = table(tmp_path, ["0", "1"] * 10, header="âge,b,label", encoding="latin-1")
    cfg = config(path)
    result = runner.invoke(app, ["train", str(write_config(cfg)), "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert (
        result.output.strip()
        .splitlines()[-1]
        .endswith(
            "table.csv, line 1: not valid utf-8 text (byte 0xe2); set data.encoding to the file's "
            "encoding, for example latin-1"
        )
    )
    assert "Traceback" not in result.output
    data = load_data(config_from_data(config(path, encoding="latin-1")))
    assert data.feature_names == ["âge", "b"]
    np.savez(tmp_path / "arrays.npz", x=np.zeros(3))  # no encoding makes this text
    with pytest.raises(DataError, match=r"arrays\.npz holds binary data, not CSV text"):
        load_data(config_from_data(config(tmp_path / "arrays.npz")))


def test_an_unknown_encoding_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown text encoding 'utf-9'"):
        config_from_data(config(table(tmp_path, ["0", "1"]), encoding="utf-9"))


def test_a_directory_as_the_csv_path_is_named_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"CSV path {tmp_path} is a directory; give the file"):
        load_data(config_from_data(config(tmp_path)))


def test_integer_labels_stay_int64(tmp_path: Path) -> None:
    data = load_data(config_from_data(config(table(tmp_path, ["0", "1"] * 10), test_fraction=0)))
    assert data.train.y.dtype == np.int64


def test_a_relative_data_path_is_read_from_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    table(project / "data", ["0", "1"] * 10)
    cfg = config(Path("data/table.csv"))
    (project / "exp.yaml").write_text(yaml.safe_dump(cfg))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(project / "exp.yaml")
    assert loaded.data.path == str(project / "data" / "table.csv")  # type: ignore[attr-defined]
    assert len(load_data(loaded).train) == 16
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", "../project/exp.yaml", "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    (run_dir,) = list(runs.iterdir())
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["data"]["path"] == str(project / "data" / "table.csv")
    absolute = config(project / "data" / "table.csv")  # absolute paths stay as written
    assert config_from_data(absolute).data.path == str(project / "data" / "table.csv")  # type: ignore[attr-defined]


def _npz_config(path: Path, preprocess: list[Any]) -> dict[str, Any]:
    return tiny_config(
        task="regression", loss="mse", preprocess=preprocess, metrics=["mae"],
        data={"dataset": "npz", "path": str(path), "test_fraction": 0.2},
        model={"layers": [{"dense": 1}]}, evaluation={"validation": {"fraction": 0.2}},
    )  # fmt: skip


def test_values_no_model_can_train_on_are_refused_when_loaded(
    tmp_path: Path, write_config: Any
) -> None:
    """They made the first loss NaN: a run directory, a 'diverged' run, and a learning rate
    blamed; validate said config OK."""
    rows = ["a,b,y", *(f"{i},{i % 3},{i % 2}" for i in range(30))]
    rows[4] = "1e300,1,0"  # beyond float32: infinite
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n")
    config = tiny_config(
        task="binary", loss="binary_crossentropy", preprocess=[], metrics=["accuracy"],
        data={"dataset": "csv", "path": str(tmp_path / "big.csv"), "target": "y"},
        model={"layers": [{"dense": {"units": 1, "activation": "sigmoid"}}]},
    )  # fmt: skip
    result = runner.invoke(app, ["validate", str(write_config(config))])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (
        "1 row holds values float32 cannot hold (first on line 5, column 'a': 1e+300)"
        in " ".join(result.output.split())
    )  # by its line in the file
    np.savez(tmp_path / "inf.npz", x=np.array([[1.0, 2.0], [3.0, np.inf]] * 10), y=np.ones(20))
    with pytest.raises(DataError, match=r"\d training rows hold infinite values in 'x' "
                       r"\(the first, inf, in column 1 of row \d+"):  # fmt: skip
        load_data(config_from_data(_npz_config(tmp_path / "inf.npz", [])))
    x = np.random.default_rng(0).normal(size=(50, 3))
    y = x.sum(axis=1)
    y[::10] = np.nan
    np.savez(tmp_path / "gaps.npz", x=x, y=y)
    with pytest.raises(DataError, match=r"\d training rows hold missing \(NaN\) values in 'y'.*"
                       "drop those rows"):  # fmt: skip
        load_data(config_from_data(_npz_config(tmp_path / "gaps.npz", [])))
    x[3, 1] = np.nan
    np.savez(tmp_path / "holes.npz", x=x, y=np.nan_to_num(y))
    with pytest.raises(DataError, match=r"missing \(NaN\) values in 'x'.*add an impute step"):
        load_data(config_from_data(_npz_config(tmp_path / "holes.npz", [])))
    filled = _npz_config(tmp_path / "holes.npz", [{"impute": "mean"}])
    assert len(load_data(config_from_data(filled)).train) == 40  # an impute step fills them
