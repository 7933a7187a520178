"""Text-valued feature columns: encoded from the training rows, no manual step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.config.load import config_from_data
from dlrun.data.load import load_data
from dlrun.errors import DataError
from dlrun.preprocess.categorical import Categorical
from tests.conftest import tiny_config

runner = CliRunner()
PAIN = ["typical", "atypical", "non-anginal", "asymptomatic"]


def heart_like(path: Path, rows: int = 120) -> Path:
    """A raw table as a user downloads it: text categories, '?' for unknown values."""
    rng = np.random.default_rng(0)
    lines = ["age,sex,chest pain,chol,thal,disease"]
    for i in range(rows):
        pain = int(rng.integers(4))
        sick = pain == 3 or (pain == 2 and i % 3 == 0)
        chol = "?" if i % 17 == 5 else str(int(rng.integers(150, 300)))
        thal = "?" if i % 23 == 7 else ["normal", "fixed", "reversible"][i % 3]
        lines.append(f"{40 + i % 30},{'male' if i % 2 else 'female'},{PAIN[pain]},{chol},"
                     f"{thal},{'yes' if sick else 'no'}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def heart_config(path: Path, **data: Any) -> dict[str, Any]:
    return tiny_config(
        task="binary",
        data={"dataset": "csv", "path": str(path), "target": "disease", "categorical": "auto",
              "missing": "mean", "test_fraction": 0.2, **data},
        preprocess=["standardize"], loss="binary_crossentropy", metrics=["accuracy"],
        model={"layers": [{"dense": {"units": 8, "activation": "relu"}},
                          {"dense": {"units": 1, "activation": "sigmoid"}}]},
        optimizer={"name": "adam", "lr": 0.05},
        train={"epochs": 30, "batch_size": 16, "progress": "none"},
        evaluation={"protocol": "kfold", "k": 3, "final": {"epochs": 30}},
    )  # fmt: skip


def test_a_raw_table_with_text_columns_trains_with_stratified_kfold(
    tmp_path: Path, write_config: Any
) -> None:
    path = heart_like(tmp_path / "heart.csv")
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["train", str(write_config(heart_config(path))),
                                 "--runs-dir", str(runs)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_dir,) = list(runs.iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["cross_validation"]["metrics"]["accuracy"]["mean"] > 0.8  # chest pain decides
    assert "one_hot encoded from the training rows: sex (2 values: female, male); chest pain " \
        "(4 values: asymptomatic, atypical, non-anginal, typical); thal (3 values: fixed, " \
        "normal, reversible)" in (run_dir / "report.md").read_text()  # fmt: skip
    new = tmp_path / "new.csv"
    new.write_text("disease,thal,chol,chest pain,sex,age\n"
                   "?,normal,200,asymptomatic,male,50\n"
                   "?,fixed,?,typical,female,61\n"
                   "?,unheard-of,210,typical,female,45\n")  # fmt: skip
    out = tmp_path / "predictions.csv"
    predicted = runner.invoke(app, ["predict", str(run_dir), "-i", str(new), "-o", str(out)])
    assert predicted.exit_code == 0, predicted.output
    rows = out.read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["prediction", "yes", "no", "no"]  # pain decides
    np.savez(tmp_path / "coded.npz", x=np.zeros((2, 5)))  # codes an npz cannot say as trained
    refused = runner.invoke(app, ["predict", str(run_dir), "-i", str(tmp_path / "coded.npz"),
                                  "-o", str(out)], terminal_width=400)  # fmt: skip
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "this run codes text columns (sex, chest pain, thal), which an .npz cannot hold as " \
        "trained; give the inputs as a CSV with a header row" in refused.output  # fmt: skip


def test_categories_are_learned_from_the_training_rows_only() -> None:
    step = Categorical(Categorical.Config(columns=[1], categories=[["a", "b", "c"]]))
    train = np.array([[1.0, 0], [2.0, 2], [3.0, -1]])  # category 'b' (code 1) only elsewhere
    step.fit(train)
    np.testing.assert_array_equal(
        step.transform(np.array([[5.0, 0], [6.0, 1], [7.0, 2], [8.0, -1]])),
        [[5, 1, 0], [6, 0, 0], [7, 0, 1], [8, 0, 0]],  # unseen 'b' and missing: all zeros
    )
    ordinal = Categorical(
        Categorical.Config(columns=[0], categories=[["a", "b", "c"]], encoding="ordinal")
    ).fit(np.array([[2.0], [0.0]]))
    np.testing.assert_array_equal(
        ordinal.transform(np.array([[0.0], [1.0], [2.0], [-1.0]]))[:, 0], [0, -1, 1, -1]
    )


def test_listed_categorical_columns_must_be_features(tmp_path: Path) -> None:
    path = heart_like(tmp_path / "heart.csv")
    with pytest.raises(DataError, match="categorical column"):
        load_data(config_from_data(heart_config(path, categorical=["sex"], features=["age"])))


def test_a_text_column_without_data_categorical_names_the_setting(tmp_path: Path) -> None:
    path = heart_like(tmp_path / "heart.csv")
    with pytest.raises(DataError, match=r"column 'sex' is not numeric \(\d+ of \d+ values are "
                       r"not numbers, first '\w+'\); .* encode the column with data.categorical"):  # fmt: skip
        load_data(config_from_data(heart_config(path, categorical=None)))
