"""``dlrun predict`` input formats and ``dlrun eval`` of K-fold runs (issue 14, items 1 and 8)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rich.console import Console
from sklearn.datasets import load_iris
from typer.testing import CliRunner

from dlrun.api import run_experiment
from dlrun.cli import app
from dlrun.config.load import load_config
from dlrun.data.base import SealedSplit
from dlrun.errors import DataError
from dlrun.errors import RunError
from dlrun.reporting.rundir import RunDirectory
from dlrun.reuse import evaluate_run
from dlrun.reuse import predict_file
from dlrun.training.status import RunStatus
from tests.conftest import tiny_config

runner = CliRunner()
IRIS = load_iris()
FEATURES = [str(name) for name in IRIS.feature_names]
PICKED = [0, 60, 120, 10, 90]  # classes mixed, none near a class boundary
ROWS = IRIS.data[PICKED]


def train(tmp: Path, **changes: Any) -> Path:
    config = tmp / "exp.yaml"
    config.write_text(yaml.safe_dump(tiny_config(**changes), sort_keys=False))
    result = run_experiment(load_config(config, []), tmp / "runs", Console(file=io.StringIO()))
    assert result.status is RunStatus.COMPLETED
    return result.run_dir


@pytest.fixture(scope="module")
def holdout_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("holdout"), train={"epochs": 20, "batch_size": 16})


def write_csv(path: Path, header: list[str] | None, rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def predictions(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def reference(run: Path, tmp: Path) -> list[dict[str, str]]:
    """Predictions for ROWS given as an .npz array in training column order."""
    np.savez(tmp / "ref.npz", x=ROWS)
    assert predict_file(run, tmp / "ref.npz", tmp / "ref.csv") == len(ROWS)
    return predictions(tmp / "ref.csv")


def invoke_predict(run: Path, source: Path, out: Path, *extra: str) -> Any:
    args = ["predict", str(run), "--input", str(source), "--output", str(out), *extra]
    return runner.invoke(app, args, terminal_width=400)


def test_headerless_csv_is_refused_naming_the_expected_header(
    holdout_run: Path, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "x.csv", None, ROWS.tolist())
    out = tmp_path / "p.csv"
    result = invoke_predict(holdout_run, source, out)
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.strip() == (
        f"error: {source}: the first row is not a header naming the training features; "
        f"expected a header row with {', '.join(FEATURES)} (any order, other columns "
        "ignored), or pass --no-header to read the columns by position"
    )
    assert not out.exists()


def test_header_columns_are_matched_by_name_in_any_order(
    holdout_run: Path, tmp_path: Path
) -> None:
    order = [3, 1, 0, 2]
    header = ["species", *(FEATURES[i] for i in order), "note"]
    rows = [["?", *(row[i] for i in order), "x"] for row in ROWS.tolist()]
    out = tmp_path / "p.csv"
    result = invoke_predict(holdout_run, write_csv(tmp_path / "x.csv", header, rows), out)
    assert result.exit_code == 0, result.output
    assert f"wrote 5 predictions to {out}" in result.output
    assert predictions(out) == reference(holdout_run, tmp_path)
    classes = [row["prediction"] for row in predictions(out)]
    assert classes == [str(IRIS.target_names[IRIS.target[i]]) for i in PICKED]


def test_no_header_reads_columns_by_position(holdout_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    source = write_csv(tmp_path / "x.csv", None, ROWS.tolist())
    result = invoke_predict(holdout_run, source, out, "--no-header")
    assert result.exit_code == 0, result.output
    assert f"wrote 5 predictions to {out}" in result.output
    assert predictions(out) == reference(holdout_run, tmp_path)


@pytest.mark.parametrize(
    ("header", "columns", "extra", "message"),
    [
        (None, 3, ["--no-header"], "{src}: 3 columns, but the model was trained on 4 features; "
         "with --no-header the columns must be exactly {names}, in this order"),
        (FEATURES, 4, ["--no-header"], "{src}: the first row is a header; drop --no-header"),
        (FEATURES[:3], 3, [], "{src}: the header lacks training feature(s) petal width (cm); "
         "expected {names} (any order, other columns ignored)"),
    ],
)  # fmt: skip
def test_csv_that_does_not_fit_the_features_is_refused(
    holdout_run: Path,
    tmp_path: Path,
    header: list[str] | None,
    columns: int,
    extra: list[str],
    message: str,
) -> None:
    source = write_csv(tmp_path / "x.csv", header, ROWS[:, :columns].tolist())
    result = invoke_predict(holdout_run, source, tmp_path / "p.csv", *extra)
    assert result.exit_code == 2
    expected = message.format(src=source, names=", ".join(FEATURES))
    assert result.output.strip() == f"error: {expected}"


def test_missing_or_text_values_are_refused_with_their_row(
    holdout_run: Path, tmp_path: Path
) -> None:
    rows: list[list[Any]] = ROWS.tolist()
    rows[2][1] = "NA"
    source = write_csv(tmp_path / "x.csv", FEATURES, rows)
    with pytest.raises(DataError, match=r"1 of 5 rows give no finite prediction \(first: data "
                       r"row 3\); missing values are filled only when"):  # fmt: skip
        predict_file(holdout_run, source, tmp_path / "p.csv")
    rows[2][1] = "abc"
    write_csv(source, FEATURES, rows)
    with pytest.raises(
        DataError, match=r"x\.csv, line 4: column 'sepal width \(cm\)' holds 'abc'"
    ):
        predict_file(holdout_run, source, tmp_path / "p.csv")


def test_npz_input_is_array_x_or_the_only_array(holdout_run: Path, tmp_path: Path) -> None:
    expected = reference(holdout_run, tmp_path)
    np.savez(tmp_path / "one.npz", features=ROWS)
    assert predict_file(holdout_run, tmp_path / "one.npz", tmp_path / "p.csv") == 5
    assert predictions(tmp_path / "p.csv") == expected
    np.savez(tmp_path / "two.npz", a=ROWS, b=ROWS)
    with pytest.raises(DataError, match="holds arrays a, b; predict reads the array named 'x'"):
        predict_file(holdout_run, tmp_path / "two.npz", tmp_path / "p.csv")
    np.savez(tmp_path / "narrow.npz", x=ROWS[:, :3])
    with pytest.raises(DataError, match="array has 3 columns, but the model was trained on 4"):
        predict_file(holdout_run, tmp_path / "narrow.npz", tmp_path / "p.csv")
    (tmp_path / "text.npz").write_text("1,2,3,4\n")  # not a zip at all
    with pytest.raises(DataError, match=r"text\.npz is not an \.npz archive \(a zip file of "):
        predict_file(holdout_run, tmp_path / "text.npz", tmp_path / "p.csv")
    np.savez(tmp_path / "objects.npz", x=np.array([[1], [1, 2]], dtype=object))
    with pytest.raises(DataError, match=r"cannot read .*objects\.npz as an \.npz archive: Object"):
        predict_file(holdout_run, tmp_path / "objects.npz", tmp_path / "p.csv")
    same = invoke_predict(holdout_run, tmp_path / "one.npz", tmp_path / "one.npz")
    assert same.exit_code == 2 and "is the input file; name another file" in same.output
    folder = invoke_predict(holdout_run, tmp_path, tmp_path / "p.csv")
    assert folder.exit_code == 2 and f"input {tmp_path} is a directory" in folder.output
    null = invoke_predict(holdout_run, Path(os.devnull), tmp_path / "p.csv")
    assert null.exit_code == 2 and "is not a regular file" in null.output  # not "not found"
    for name, x, said in [("strings", np.full((3, 4), "abc"), "holds <U3 values, not numbers"),
                          ("empty", np.zeros((0, 4)), "has shape [0, 4]; predict reads one row"),
                          ("flat", np.zeros(4), "has shape [4]; predict reads one row")]:  # fmt: skip
        np.savez(tmp_path / f"{name}.npz", x=x)  # each was a traceback
        result = invoke_predict(holdout_run, tmp_path / f"{name}.npz", tmp_path / "p.csv")
        assert result.exit_code == 2 and said in result.output, result.output
        assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def kfold_final_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    evaluation = {"protocol": "kfold", "k": 2, "final": {"epochs": 2}}
    return train(tmp_path_factory.mktemp("kfold"), evaluation=evaluation)


def test_eval_of_kfold_run_scores_each_fold_and_the_final_model(kfold_final_run: Path) -> None:
    results = json.loads((kfold_final_run / "results.json").read_text())
    scored = evaluate_run(kfold_final_run)
    assert [name for name, _ in scored.folds] == ["fold_01", "fold_02"]
    for metric, summary in results["cross_validation"]["metrics"].items():
        again = [evaluation.metrics[metric] for _, evaluation in scored.folds]
        np.testing.assert_allclose(again, summary["values"], rtol=1e-6)
    assert all(e.split == "validation" and e.size == 60 for _, e in scored.folds)
    assert scored.test is not None and scored.test.size == 30
    assert scored.test.metrics["accuracy"] == pytest.approx(results["test"]["accuracy"])
    assert scored.notes == []
    result = runner.invoke(app, ["eval", str(kfold_final_run)], terminal_width=400)
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())  # a title longer than the terminal wraps at spaces
    assert f"{kfold_final_run}: validation metrics per fold" in words
    assert f"{kfold_final_run}: test metrics" in words
    assert f"{results['test']['accuracy']:.4f}" in result.output
    for value in results["cross_validation"]["metrics"]["accuracy"]["values"]:
        assert f"{value:.4f}" in result.output


def test_eval_of_kfold_run_without_final_keeps_the_test_split_sealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluation = {"protocol": "kfold", "k": 2, "parallel_folds": True}
    run = train(tmp_path, evaluation=evaluation)
    results = json.loads((run / "results.json").read_text())
    assert not (run / "checkpoint.pt").exists()

    def sealed(self: SealedSplit) -> Any:
        raise AssertionError("eval read the test split of a run without a final model")

    monkeypatch.setattr(SealedSplit, "unseal", sealed)
    scored = evaluate_run(run)
    again = [e.metrics["loss"] for _, e in scored.folds]
    np.testing.assert_allclose(
        again, results["cross_validation"]["metrics"]["loss"]["values"], rtol=1e-6
    )
    assert scored.test is None
    note = "test split not scored: the run has no final model (evaluation.final trains one)"
    assert scored.notes == [note]
    result = runner.invoke(app, ["eval", str(run)], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert note in result.output and "no checkpoint" not in result.output
    np.savez(tmp_path / "rows.npz", x=ROWS)  # predict: no final model, and it says so
    with pytest.raises(RunError, match=r"has a model per fold and no final model "
                       r"\(evaluation\.final trains one\); predict with a fold's: dlrun predict "
                       r".*fold_01$"):  # fmt: skip
        predict_file(run, tmp_path / "rows.npz", tmp_path / "p.csv")
    assert predict_file(run / "fold_01", tmp_path / "rows.npz", tmp_path / "p.csv") == 5
    with pytest.raises(RunError, match=r"fold_02 is one fold of the run .*; eval that run, which "
                       r"scores every fold's model on its validation part"):  # fmt: skip
        evaluate_run(run / "fold_02")  # was: "fold_01/checkpoint.pt is missing"


def test_eval_of_halted_kfold_run_stays_sealed(kfold_final_run: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(kfold_final_run, tmp_path / "halted"))
    RunDirectory(copy).set_status(RunStatus.INTERRUPTED, "KeyboardInterrupt")
    with pytest.raises(RunError, match="ended as interrupted, so eval does not use it; "
                       "continue it with dlrun train --resume first"):  # fmt: skip
        evaluate_run(copy)
    np.savez(tmp_path / "rows.npz", x=ROWS)  # nor does predict use its half-trained model
    with pytest.raises(RunError, match="ended as interrupted, so predict does not use it"):
        predict_file(copy, tmp_path / "rows.npz", tmp_path / "p.csv")
    RunDirectory(copy).set_status(RunStatus.RUNNING)  # killed: status.json says running
    with pytest.raises(RunError, match=r"is incomplete \(still training, or killed\), so eval"):
        evaluate_run(copy)


def test_eval_of_kfold_run_missing_a_fold_model_says_so(
    kfold_final_run: Path, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(kfold_final_run, tmp_path / "changed"))
    (copy / "fold_02" / "checkpoint.pt").unlink()
    with pytest.raises(RunError, match=r"finished but fold_02/checkpoint\.pt is missing"):
        evaluate_run(copy)
