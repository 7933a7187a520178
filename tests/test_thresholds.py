"""The ROC curve and Youden's threshold equal scikit-learn's; a binary run chooses its
threshold on the validation split, applies it to the test split, and reports both."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.config.schema import ExperimentConfig
from dlrun.data.load import load_data
from dlrun.errors import RunError
from dlrun.evaluation.scoring import Evaluation
from dlrun.evaluation.thresholds import ThresholdRule
from dlrun.evaluation.thresholds import binary_scores
from dlrun.evaluation.thresholds import roc_curve
from dlrun.evaluation.thresholds import score_labels
from dlrun.evaluation.thresholds import validation_row
from dlrun.evaluation.thresholds import youden_threshold
from dlrun.reporting.analyses import Scored
from dlrun.reporting.analyses import roc
from dlrun.reporting.rundir import RunDirectory
from dlrun.reuse import predict_file
from dlrun.tasks.classic import Binary
from dlrun.training.metrics import Predictions
from tests.conftest import tiny_config


def _case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes with scores rounded to one or two decimals, so many of them tie."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    positive = rng.integers(0, 2, n).astype(bool)
    positive[:2] = [True, False]
    scores = np.round(rng.random(n) * positive + rng.random(n), int(rng.integers(1, 3)))
    return positive, scores


def _youden(positive: np.ndarray, scores: np.ndarray) -> float:
    """Beginners ch. 13's rule on scikit-learn's curve, less its ``inf`` point (which calls
    nothing positive, and would win only for a model worse than chance)."""
    fpr, tpr, thresholds = skm.roc_curve(positive, scores)
    return float(thresholds[1 + np.argmax((tpr - fpr)[1:])])


@pytest.mark.parametrize("seed", range(30))
def test_curve_and_youden_threshold_equal_scikit_learn(seed: int) -> None:
    positive, scores = _case(seed)
    fpr, tpr, thresholds = skm.roc_curve(positive, scores)
    curve = roc_curve(positive, scores)
    np.testing.assert_allclose(curve.fpr, fpr, rtol=1e-12)
    np.testing.assert_allclose(curve.tpr, tpr, rtol=1e-12)
    np.testing.assert_array_equal(curve.thresholds, thresholds)
    threshold = youden_threshold(curve)
    assert threshold == _youden(positive, scores)
    if (tpr - fpr).max() > 0:  # better than chance somewhere: the book's argmax, unchanged
        assert threshold == thresholds[np.argmax(tpr - fpr)]
    called = scores >= threshold
    scored = score_labels(positive, called, threshold, ThresholdRule.YOUDEN, "test", True)
    np.testing.assert_array_equal(scored.matrix, skm.confusion_matrix(positive, called))
    assert scored.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(positive, called))
    best = 1 + np.argmax((tpr - fpr)[1:])
    assert (scored.fpr, scored.tpr) == pytest.approx((fpr[best], tpr[best]))  # its curve point


@pytest.mark.parametrize("scores", [[0.5, 0.5, 0.5, 0.5], [0.2, 0.9, 0.2, 0.9]])
def test_curves_of_one_or_two_distinct_scores(scores: list[float]) -> None:
    """A model whose outputs collapsed to one value has a curve too (it raised IndexError)."""
    positive, values = np.array([True, False, True, False]), np.array(scores)
    fpr, tpr, thresholds = skm.roc_curve(positive, values)
    curve = roc_curve(positive, values)
    np.testing.assert_allclose(curve.fpr, fpr)
    np.testing.assert_allclose(curve.tpr, tpr)
    np.testing.assert_array_equal(curve.thresholds, thresholds)
    assert youden_threshold(curve) == _youden(positive, values)
    assert np.isfinite(youden_threshold(curve))  # never the inf point


def test_scores_of_one_output_all_finite_with_both_classes() -> None:
    true = torch.tensor([0.0, 1.0, 1.0])
    sigmoid = Binary.label(true[:, None], torch.tensor([[0.2], [0.7], [0.4]]))
    positive, scores = binary_scores(sigmoid) or (None, None)
    assert positive is not None and positive.tolist() == [False, True, True]
    assert scores is not None and scores.tolist() == pytest.approx([0.2, 0.7, 0.4])
    nan = Binary.label(true[:, None], torch.tensor([[0.2], [float("nan")], [0.4]]))
    assert binary_scores(nan) is None  # no curve, as the roc_auc metric is NaN
    three = Predictions(true, torch.ones(3, 3), true.long(), true.long())
    assert binary_scores(three) is None
    one_class = Binary.label(torch.ones(3, 1), torch.tensor([[0.2], [0.7], [0.4]]))
    assert binary_scores(one_class) is None  # no curve without both classes


def _evaluation(split: str, positive: np.ndarray, scores: np.ndarray) -> Evaluation:
    y_true = torch.tensor(positive, dtype=torch.float32)[:, None]
    predictions = Binary.label(y_true, torch.tensor(scores, dtype=torch.float32)[:, None])
    return Evaluation(split, {"roc_auc": 0.5}, predictions, len(positive))


def test_threshold_is_chosen_on_validation_and_applied_to_test(tmp_path: Path) -> None:
    val_positive, val_scores = _case(1)
    test_positive, test_scores = _case(2)
    validation = _evaluation("validation", val_positive, val_scores)
    test = _evaluation("test", test_positive, test_scores)
    written = roc(RunDirectory(tmp_path), Scored("title", test, None, validation))
    assert written.files == ["roc_curve.png", "roc_curve.csv", "thresholds.json"]
    assert (tmp_path / "roc_curve.png").read_bytes()[:4] == b"\x89PNG"
    rows = json.loads((tmp_path / "thresholds.json").read_text())["thresholds"]
    assert [(r["rule"], r["chosen_on"], r["in_sample"]) for r in rows] == [
        ("fixed", "", False),
        ("youden", "validation", False),
        ("youden", "test", True),
    ]
    assert validation_row(tmp_path) == rows[1]
    float32 = np.float32  # the scores as the model's outputs hold them
    chosen = _youden(val_positive, val_scores.astype(float32))
    assert rows[1]["threshold"] == chosen
    called = test_scores.astype(float32) >= chosen
    assert rows[1]["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(test_positive, called)
    )
    tn, fp, fn, tp = skm.confusion_matrix(test_positive, called).ravel()
    assert [rows[1][k] for k in ("tn", "fp", "fn", "tp")] == [tn, fp, fn, tp]
    at_half = skm.balanced_accuracy_score(test_positive, test_scores.astype(float32) > 0.5)
    assert rows[0]["balanced_accuracy"] == pytest.approx(at_half)  # the run's own labels
    with (tmp_path / "roc_curve.csv").open() as f:
        curve = list(csv.DictReader(f))
    _, tpr, _ = skm.roc_curve(test_positive, test_scores.astype(float32))
    assert [float(r["tpr"]) for r in curve] == pytest.approx(tpr.tolist())


def test_no_curve_for_a_split_of_one_class(tmp_path: Path) -> None:
    only = _evaluation("test", np.ones(5, dtype=bool), np.linspace(0, 1, 5))
    assert roc(RunDirectory(tmp_path), Scored("title", only, None)).files == []
    assert not list(tmp_path.iterdir())


def _binary_config() -> ExperimentConfig:
    return config_from_data(tiny_config(
        task="binary", data={"dataset": "breast_cancer"}, preprocess=["standardize"],
        loss="binary_crossentropy", metrics=["accuracy", "roc_auc"],
        model={"layers": [{"dense": 8}, {"dense": {"units": 1, "activation": "sigmoid"}}]},
        train={"epochs": 3, "batch_size": 32, "progress": "none"},
        evaluation={"validation": {"count": 100}},
    ))  # fmt: skip


def test_binary_run_reports_its_thresholds(tmp_path: Path) -> None:
    result = run_experiment(_binary_config(), tmp_path)
    run = result.run_dir
    saved = json.loads((run / "thresholds.json").read_text())
    assert saved["split"] == "test" and saved["samples"] == result.results["data"]["sizes"]["test"]
    assert saved["roc_auc"] == pytest.approx(result.results["test"]["roc_auc"], abs=1e-9)
    chosen_on = [row["chosen_on"] for row in saved["thresholds"]]
    assert chosen_on == ["", "validation", "test"]
    for row in saved["thresholds"]:
        assert row["tn"] + row["fp"] + row["fn"] + row["tp"] == saved["samples"]
    with (run / "roc_curve.csv").open() as f:
        curve = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    best = max(curve, key=lambda r: r["tpr"] - r["fpr"])  # the first of equals, as argmax
    assert saved["thresholds"][2]["threshold"] == pytest.approx(best["threshold"])
    report = (run / "report.md").read_text()
    section = report.split("## ROC curve and decision thresholds")[1].split("\n## ")[0]
    assert "![roc curve](roc_curve.png)" in section
    assert "| 0.5 | fixed (above 0.5) | - |" in section
    assert "| Youden's J (max TPR - FPR) | validation |" in section
    assert "chosen on the test split itself has seen the answers" in section
    assert "No threshold was chosen on a validation split" not in section


def test_a_retrained_model_says_why_it_has_no_validation_threshold(tmp_path: Path) -> None:
    """A model retrained on all the non-test data has no validation split of its own: the
    report says so rather than leaving the row out silently, and predict refuses it."""
    cfg = _binary_config().model_dump(mode="json", exclude_none=True)
    cfg["evaluation"]["final"] = {"epochs": 2}
    run = run_experiment(config_from_data(cfg), tmp_path).run_dir
    rows = json.loads((run / "thresholds.json").read_text())["thresholds"]
    assert [row["chosen_on"] for row in rows] == ["", "test"]
    assert validation_row(run) is None
    assert "No threshold was chosen on a validation split" in (run / "report.md").read_text()
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 30)))
    with pytest.raises(RunError, match=r"chose no threshold on a validation split"):
        predict_file(run, tmp_path / "x.npz", tmp_path / "out.csv", threshold="validation")


def test_predict_applies_the_threshold_chosen_on_validation(tmp_path: Path) -> None:
    run = run_experiment(_binary_config(), tmp_path).run_dir
    data = load_data(_binary_config())
    inputs = tmp_path / "inputs.csv"
    rows = data.train.x[:40].tolist()
    inputs.write_text("\n".join([",".join(data.feature_names or [])]
                                + [",".join(map(repr, row)) for row in rows]) + "\n")  # fmt: skip
    chosen = next(row["threshold"] for row in json.loads((run / "thresholds.json").read_text())
                  ["thresholds"] if row["chosen_on"] == "validation")  # fmt: skip
    for given, cut in (("validation", chosen), ("0.3", 0.3), ("0", 0.0), ("1.5", 1.5)):
        assert predict_file(run, inputs, tmp_path / "out.csv", threshold=given) == 40
        with (tmp_path / "out.csv").open() as f:
            predicted = list(csv.DictReader(f))
        expected = ["benign" if float(r["probability"]) >= cut else "malignant" for r in predicted]
        assert [r["prediction"] for r in predicted] == expected
    assert {r["prediction"] for r in predicted} == {"malignant"}  # 1.5: nothing is positive
    with pytest.raises(RunError, match=r"--threshold half: give a number, or 'validation'"):
        predict_file(run, inputs, tmp_path / "out.csv", threshold="half")
    (run / "thresholds.json").unlink()
    with pytest.raises(RunError, match=r"chose no threshold on a validation split"):
        predict_file(run, inputs, tmp_path / "out.csv", threshold="validation")


def test_threshold_is_refused_for_a_task_without_one(tmp_path: Path) -> None:
    cfg = config_from_data(tiny_config(train={"epochs": 1, "progress": "none"}))  # iris
    run = run_experiment(cfg, tmp_path).run_dir
    np.savez(tmp_path / "x.npz", x=np.ones((2, 4)))
    with pytest.raises(RunError, match=r"--threshold applies to runs whose labels come from one "
                       r"score \(task binary\); .* is a multiclass run"):  # fmt: skip
        predict_file(run, tmp_path / "x.npz", tmp_path / "out.csv", threshold="0.5")
