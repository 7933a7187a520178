"""report.md reads well on its own: setup, model, metrics, the run's figures inline with their
tables (per-class scores, residuals), baselines with their test, and the history."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.evaluation.analysis import ClassScores
from dlrun.evaluation.analysis import analyse_classification
from dlrun.reporting.curves import CurveMarks
from dlrun.reporting.markdown import ReportExtras
from dlrun.reporting.markdown import render_report
from dlrun.training.metrics import Predictions
from tests.conftest import tiny_config

RESULTS: dict[str, Any] = {
    "name": "unit", "status": "completed", "source": "Deep Learning with Python, experiment E1",
    "metric_meanings": {"accuracy": "share of right predictions"}, "task": "multiclass",
    "protocol": "holdout", "seed": 0, "data": {"description": "iris", "sizes": {"train": 96}},
    "loss": "categorical_crossentropy", "optimizer": "adam", "epochs": 3, "batch_size": 16,
    "device": "cpu", "duration_s": 1.0,
    "evaluation": {"split": "test", "metrics": {"accuracy": 0.9}},
}  # fmt: skip


def class_scores(labels: list[str], true: Any, pred: Any) -> list[ClassScores]:
    """The per-class rows the confusion-matrix analysis gives report.md for these labels."""
    true, pred = torch.as_tensor(true), torch.as_tensor(pred)
    scores = torch.nn.functional.one_hot(pred, len(labels)).float()  # the model's outputs
    predictions = Predictions(true.float(), scores, true, pred)
    return analyse_classification(predictions, labels).class_scores


def matrix_labels(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted labels with this confusion matrix (rows: true, columns: predicted)."""
    cells = [(i, j) for (i, j), n in np.ndenumerate(matrix) for _ in range(n)]
    true, pred = zip(*cells, strict=True)
    return np.array(true), np.array(pred)


def test_class_scores_equal_scikit_learns_report() -> None:
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(0)
    true, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    pred[:5] = 0  # class 3 is never predicted in some draws; here one class stays rare
    scores = class_scores(["a", "b", "c", "d"], true, pred)
    precision, recall, f1, support = precision_recall_fscore_support(true, pred, zero_division=0)
    assert [s.precision for s in scores] == pytest.approx(precision)
    assert [s.recall for s in scores] == pytest.approx(recall)
    assert [s.f1 for s in scores] == pytest.approx(f1)
    assert [s.support for s in scores] == list(support)
    never = class_scores(["x", "y"], *matrix_labels(np.array([[3, 0], [2, 0]])))[1]  # y: never
    assert (never.precision, never.recall, never.f1, never.support) == (0.0, 0.0, 0.0, 2)


def test_figures_are_embedded_with_relative_paths_and_their_tables() -> None:
    files = ["checkpoint.pt", "confusion_matrix.png", "cv_curves.png", "extra_plot.png",
             "learning_curves.png", "predictions.png", "report.md"]  # fmt: skip
    extras = ReportExtras(
        CurveMarks("val_loss", 2, 0.25, 2, 0.0),
        class_scores(["setosa", "virginica"], *matrix_labels(np.array([[5, 1], [0, 4]]))),
        {"mean": 0.1, "std": 1.5, "median_abs": 0.9, "max_abs": 4.0},
    )
    text = render_report(RESULTS, [], "", files, extras)
    images = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", text)
    assert images == [("learning curves", "learning_curves.png"),
                      ("cv curves", "cv_curves.png"),
                      ("confusion matrix", "confusion_matrix.png"),
                      ("predictions", "predictions.png"),
                      ("extra plot", "extra_plot.png")]  # fmt: skip
    assert "Best epoch by val_loss: 2 (0.2500), the dotted line." in text
    assert "Early stopping restored the weights of epoch 2" in text
    assert "| label | precision | recall | f1 | support |" in text
    assert "| setosa | 1.0000 | 0.8333 | 0.9091 | 6 |" in text
    assert "| virginica | 0.8000 | 1.0000 | 0.8889 | 4 |" in text
    assert "| 0.1000 | 1.5000 | 0.9000 | 4.0000 |" in text  # residuals under their figure
    # kept from before: where the experiment comes from and what each metric means
    assert "- reproduces: Deep Learning with Python, experiment E1" in text
    assert "- accuracy: share of right predictions" in text
    order = [text.index(h) for h in ("## Setup", "## Final metrics", "## Learning curves",
                                     "## Confusion matrix", "## Files")]  # fmt: skip
    assert order == sorted(order)


def test_a_kfold_report_says_its_curves_are_the_final_retrains() -> None:
    results = {**RESULTS, "folds": [{"fold": "fold_01"}, {"fold": "fold_02"}]}
    extras = ReportExtras(CurveMarks(smoothing=0.9, skip_first=10, final=True))
    text = render_report(results, [], "", ["learning_curves.png"], extras)
    assert "drawn faint under its exponential moving average from epoch 11 (factor 0.9" in text
    assert ("These are the final retrain's curves, on training and validation data together, "
            "so without a validation curve; each fold's are in its own report: "
            "[fold_01](fold_01/report.md), [fold_02](fold_02/report.md).") in text  # fmt: skip


def test_a_report_without_figures_has_no_figure_sections() -> None:
    text = render_report(RESULTS, [], "", ["results.json", "report.md"])
    assert "![" not in text and "## Learning curves" not in text


def test_a_long_history_is_folded_away() -> None:
    history = [{"epoch": i, "loss": 1.0, "phase": "fit"} for i in range(1, 41)]
    text = render_report(RESULTS, history, "", ["report.md"])
    assert "<details><summary>40 rows" in text and "</details>" in text
    assert "<details>" not in render_report(RESULTS, history[:5], "", ["report.md"])


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    train = {**tiny_config()["train"], "epochs": 12,
             "callbacks": [{"early_stopping": {"monitor": "val_loss", "patience": 2,
                                               "restore_best": True}}]}  # fmt: skip
    cfg = config_from_data(tiny_config(train=train, metrics=["accuracy", "balanced_accuracy"]))
    return run_experiment(cfg, tmp_path_factory.mktemp("runs")).run_dir


def test_a_run_report_shows_its_pictures_and_per_class_table(iris_run: Path) -> None:
    text = (iris_run / "report.md").read_text()
    for name in ("learning_curves.png", "confusion_matrix.png"):
        assert f"![{name[:-4].replace('_', ' ')}]({name})" in text
        assert (iris_run / name).is_file()
    assert "Input: (None, 4)" in text and "Total params: 67 (trainable 67)" in text
    assert "- sizes: train 96, validation 24, test 30" in text
    scores = scores_of_matrix(iris_run / "confusion_matrix.csv")
    assert [s.label for s in scores] == ["setosa", "versicolor", "virginica"]
    assert sum(s.support for s in scores) == 30
    report = (iris_run / "classification_report.txt").read_text()
    for score in scores:  # the same numbers as scikit-learn's text report
        row = f"{score.label} {score.precision:.4f} {score.recall:.4f} {score.f1:.4f} {score.support}"
        assert row in " ".join(report.split())
        assert f"| {score.label} | {score.precision:.4f} | {score.recall:.4f} |" in text
    assert "beats the strongest baseline" in text or "no better than" in text


def test_the_run_learning_curves_are_a_grid_marking_the_best_epoch(iris_run: Path) -> None:
    width, height = Image.open(iris_run / "learning_curves.png").size
    assert height > 0.55 * width and width < 1400  # 2 x 2 panels, not a 2198 x 397 strip
    text = (iris_run / "report.md").read_text()
    assert re.search(r"Best epoch by val_loss: \d+ \(\d\.\d{4}\), the dotted line\.", text)


def scores_of_matrix(path: Path) -> list[ClassScores]:
    """Scikit-learn's per-class scores for the confusion matrix a run wrote (its CSV)."""
    from sklearn.metrics import precision_recall_fscore_support

    header, *rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    labels = [row[0] for row in rows]
    assert labels == header[1:]
    true, pred = matrix_labels(np.array([[int(v) for v in row[1:]] for row in rows]))
    columns = precision_recall_fscore_support(
        true, pred, labels=list(range(len(labels))), zero_division=0
    )
    return [
        ClassScores(label, float(p), float(r), float(f), int(n))
        for label, p, r, f, n in zip(labels, *columns, strict=True)
    ]


@pytest.mark.parametrize(
    ("task", "meaning"),
    [
        ("binary", "the share that belong to it, for the positive class 'benign' only"),
        ("multiclass", "the share that belong to it, computed per class, then averaged over"),
        ("multilabel", "the share that belong to it, computed per label, then averaged over"),
    ],
)
def test_precision_says_how_the_task_combines_class_scores(task: str, meaning: str) -> None:
    """A binary run's precision is its positive class's (scikit-learn's average='binary'),
    not an average over the classes, as the report used to say for every task."""
    from dlrun.reporting.results import metric_meanings

    meanings = metric_meanings(task, ["precision", "accuracy"], ["malignant", "benign"])
    assert meaning in meanings["precision"]
    assert "averaged" not in meanings["accuracy"] and "positive" not in meanings["accuracy"]


def test_small_rates_keep_their_figures_and_the_status_reads_as_words() -> None:
    """A learning rate of 3e-05 printed as 0.0000 in the history table; the setup line left
    the rate out; an early stop opened the report with the raw token stopped_early."""
    results = {**RESULTS, "status": "stopped_early", "stop_reason": "val_loss did not improve",
               "learning_rate": 3e-05}  # fmt: skip
    history = [{"epoch": 1, "loss": 0.5, "lr": 3e-05, "phase": "fit"}]
    text = render_report(results, history, "", ["report.md"])
    assert "| 1 | 0.5000 | 3e-05 |" in text
    assert "optimizer: adam (learning rate 3e-05);" in text
    assert "> **Run stopped early**: val_loss did not improve" in text
