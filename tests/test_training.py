from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.tasks.classic import Binary
from dlrun.training.callbacks import Callback
from dlrun.training.callbacks import EarlyStopping
from dlrun.training.callbacks import ReduceLROnPlateau
from dlrun.training.losses import LOSSES
from dlrun.training.metrics import METRICS
from dlrun.training.metrics import Predictions
from dlrun.training.state import TrainState
from tests.conftest import tiny_config


class ScriptedTask:
    """Stands in for a model so callbacks can be driven by scripted values."""

    def __init__(self) -> None:
        self.weights = {"w": torch.zeros(1)}
        self.lr = 0.1

    def learning_rate(self) -> float:
        return self.lr

    def set_learning_rate(self, lr: float) -> None:
        self.lr = lr

    def model_state(self) -> dict[str, torch.Tensor]:
        return self.weights

    def load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        self.weights = state


def drive(callback: Callback, values: list[float], key: str = "val_loss") -> TrainState:
    step = ScriptedTask()
    state = TrainState(step, epochs=len(values), batches_per_epoch=1)  # type: ignore[arg-type]
    callback.on_fit_start(state)
    for value in values:
        step.weights = {"w": torch.tensor([value])}
        state.epoch += 1
        callback.on_epoch_end(state, {key: value})
        if state.should_stop:
            break
    callback.on_fit_end(state)
    return state


def test_early_stopping_waits_patience_epochs_and_restores_best() -> None:
    cb = EarlyStopping(EarlyStopping.Config(patience=2, restore_best=True))
    state = drive(cb, [1.0, 0.5, 0.6, 0.7, 0.4])
    assert state.epoch == 4 and state.should_stop
    assert "did not improve for 2 epochs (best 0.5 at epoch 2)" in (state.stop_reason or "")
    assert float(state.task.model_state()["w"]) == 0.5


def test_early_stopping_on_a_metric_that_should_rise() -> None:
    cb = EarlyStopping(EarlyStopping.Config(monitor="val_accuracy", patience=1))
    state = drive(cb, [0.5, 0.7, 0.6, 0.9], key="val_accuracy")
    assert state.epoch == 3


def test_reduce_lr_on_plateau_multiplies_by_factor() -> None:
    cb = ReduceLROnPlateau(ReduceLROnPlateau.Config(patience=1, factor=0.5))
    state = drive(cb, [1.0, 1.0, 1.0, 1.0])
    assert state.task.learning_rate() == pytest.approx(0.1 * 0.5**3)


def test_fused_cross_entropy_equals_keras_probability_form() -> None:
    logits = torch.randn(6, 4)
    onehot = torch.eye(4)[torch.tensor([0, 1, 2, 3, 0, 1])]
    cce = LOSSES.get("categorical_crossentropy")(None)  # type: ignore[arg-type]
    assert torch.allclose(
        cce(logits, onehot, True), cce(logits.softmax(1), onehot, False), atol=1e-5
    )
    bce = LOSSES.get("binary_crossentropy")(None)  # type: ignore[arg-type]
    targets = torch.tensor([[1.0], [0.0], [1.0]])
    z = torch.tensor([[0.3], [-1.2], [2.0]])
    assert torch.allclose(bce(z, targets, True), bce(z.sigmoid(), targets, False), atol=1e-6)


def test_metrics_match_scikit_learn_definitions() -> None:
    y = torch.tensor([[1.0], [0.0], [1.0], [1.0], [0.0]])
    p = torch.tensor([[0.9], [0.6], [0.4], [0.8], [0.1]])
    pred = Binary.label(y, p)
    values = {
        name: METRICS.get(name).compute(pred)
        for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "ber")
    }
    assert values["accuracy"] == pytest.approx(0.6)
    assert values["precision"] == pytest.approx(2 / 3)
    assert values["recall"] == pytest.approx(2 / 3)
    assert values["roc_auc"] == pytest.approx(5 / 6)
    assert values["ber"] == pytest.approx(1 - (2 / 3 + 1 / 2) / 2)
    reg = Predictions(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1.5], [2.0], [2.0]]))
    assert METRICS.get("mae").compute(reg) == pytest.approx(0.5)
    assert METRICS.get("rmse").compute(reg) == pytest.approx(np.sqrt(1.25 / 3))
    assert METRICS.get("r2").compute(reg) == pytest.approx(1 - 1.25 / 2)


def test_cpu_runs_repeat_bit_for_bit(tmp_path: Path) -> None:
    cfg = config_from_data(tiny_config())
    first = run_experiment(cfg, tmp_path / "a")
    second = run_experiment(cfg, tmp_path / "b")
    a = (first.run_dir / "metrics.csv").read_text()
    b = (second.run_dir / "metrics.csv").read_text()
    assert a == b
    assert first.results["test"] == second.results["test"]


def _diverging(**overrides: Any) -> dict[str, Any]:
    """A regression whose learning rate makes the loss NaN in the first epoch."""
    return tiny_config(
        **{
            "task": "regression",
            "data": {"dataset": "diabetes"},
            "preprocess": [],
            "loss": "mse",
            "metrics": ["mae"],
            "optimizer": {"name": "sgd", "lr": 1e6},
            "model": {"layers": [{"dense": 16}, {"dense": 1}]},
            "train": {"epochs": 20, "batch_size": 32, "progress": "none"},
            **overrides,
        }
    )


def test_nan_loss_stops_the_run_cleanly(tmp_path: Path) -> None:
    cfg = config_from_data(_diverging(evaluation={"validation": {"fraction": 0.2}}))
    result = run_experiment(cfg, tmp_path)
    assert result.status == "diverged"
    assert "the training loss became" in result.results["stop_reason"]
    assert result.results["epochs_run"] < 20
    assert "Run diverged" in (result.run_dir / "report.md").read_text()

    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    files = [*result.run_dir.glob("**/*.json"), *result.run_dir.glob("**/*.jsonl")]
    for file in files:  # strict JSON throughout, as JavaScript's parser reads it
        for text in (
            file.read_text().splitlines() if file.suffix == ".jsonl" else [file.read_text()]
        ):
            json.loads(text, parse_constant=refuse)
    last = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["loss"] is None  # the loss that diverged, written as null


def test_a_fold_that_diverges_is_named_and_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from typer.testing import CliRunner

    from dlrun import cli_common
    from dlrun.cli import app

    config = _diverging(
        train={"epochs": 20, "batch_size": 32}, evaluation={"protocol": "kfold", "k": 3}
    )
    (tmp_path / "kfold.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setattr(cli_common.errors, "width", 40)  # a narrow terminal
    result = CliRunner().invoke(
        app, ["train", str(tmp_path / "kfold.yaml"), "--runs-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == 1
    reason = "fold 1/3: the training loss became nan in epoch 1"
    assert result.output.count("the training loss became nan") == 1  # not also by the progress
    assert f"error: {reason}; try a lower learning rate\n" in result.output  # one line
    run_dir = next((tmp_path / "runs").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["stop_reason"] == reason
    assert results["folds"] == [{"fold": "fold_01", "status": "diverged", "epochs_run": 1}]
    assert "[fold_01/report.md](fold_01/report.md)" in (run_dir / "report.md").read_text()


def test_final_retrain_uses_train_plus_validation(tmp_path: Path) -> None:
    cfg = config_from_data(
        tiny_config(evaluation={"validation": {"first": 30}, "final": {"epochs": 2}})
    )
    result = run_experiment(cfg, tmp_path)
    rows = (result.run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("phase,epoch,loss")
    assert [r.split(",")[0] for r in rows[1:]] == ["fit"] * 3 + ["final"] * 2
    assert result.results["data"]["sizes"] == {"train": 90, "validation": 30, "test": 30}
    assert result.results["evaluation"]["split"] == "test"


def test_regression_run_writes_predictions_plot_and_residuals(tmp_path: Path) -> None:
    cfg = config_from_data(
        tiny_config(
            task="regression",
            data={"dataset": "diabetes"},
            preprocess=["standardize"],
            loss="mse",
            metrics=["mae", "r2"],
            model={"layers": [{"dense": 16}, {"dense": 1}]},
            optimizer={"name": "rmsprop", "lr": 0.05},
            train={"epochs": 5, "batch_size": 16, "progress": "none"},
            evaluation={"validation": {"count": 60}},
        )
    )
    result = run_experiment(cfg, tmp_path)
    residuals = json.loads((result.run_dir / "residuals.json").read_text())
    assert set(residuals) == {"mean", "std", "median_abs", "max_abs"}
    assert (result.run_dir / "predictions.png").read_bytes()[:4] == b"\x89PNG"
    assert result.results["baseline"]["name"] == "mean predictor"
    assert result.results["test"]["mae"] < result.results["baseline"]["mae"]
    assert not (result.run_dir / "confusion_matrix.png").exists()


@pytest.mark.parametrize("parallel", [False, True])
def test_integer_features_reach_a_dense_layer_as_floats(tmp_path: Path, parallel: bool) -> None:
    """Keras casts integer inputs (raw word ids, Beginners ch. 8) for a dense layer; before, the
    first batch ended in a traceback (``mat1 and mat2 must have the same dtype``), also when
    the folds train stacked."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, size=(120, 4))
    np.savez(tmp_path / "ints.npz", x=x, y=(x.sum(axis=1) > 100).astype(np.int64))
    cfg = tiny_config(
        task="binary", loss="binary_crossentropy", preprocess=[], metrics=["accuracy"],
        data={"dataset": "npz", "path": str(tmp_path / "ints.npz"), "test_fraction": 0},
        model={"layers": [{"dense": 4}, {"dense": {"units": 1, "activation": "sigmoid"}}]},
        evaluation={"protocol": "kfold", "k": 2, "parallel_folds": parallel},
    )  # fmt: skip
    result = run_experiment(config_from_data(cfg), tmp_path / "runs")
    assert result.results["status"] == "completed"
    assert np.isfinite(result.results["cross_validation"]["metrics"]["loss"]["mean"])
