"""What the books' code does, written as the books wrote it (issue 13).

Two sigmoid outputs with binary cross-entropy on one-hot targets (Beginners ch. 6), the metric
Keras calls ``accuracy`` for that loss, Keras's early-stopping restore rule, RMSprop's two
epsilon forms, and the ``source:`` section that ties a config to its book experiment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.errors import ConfigError
from dlrun.training.callbacks import EarlyStopping
from dlrun.training.metrics import METRICS
from dlrun.training.metrics import Predictions
from dlrun.training.optimizers import OPTIMIZERS
from tests.conftest import tiny_config
from tests.test_training import drive

SIGMOID_OUTPUTS = {
    "layers": [
        {"dense": {"units": 8, "activation": "relu"}},
        {"dense": {"units": 3, "activation": "sigmoid"}},
    ]
}


def test_binary_accuracy_scores_every_output_against_its_target() -> None:
    """Keras's binary accuracy: each output value on the right side of 0.5 counts once."""
    one_hot = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    outputs = torch.tensor([[0.9, 0.2], [0.6, 0.7], [0.4, 0.3]])
    binary = METRICS.get("binary_accuracy").compute
    # right values: 0.9, 0.2 | 0.7 | 0.3 -> 4 of 6; the largest output is right in all 3 rows
    assert binary(Predictions(one_hot, outputs)) == pytest.approx(4 / 6)
    labels = torch.tensor([0, 1, 0])  # the same targets as class indices
    assert binary(Predictions(labels, outputs)) == pytest.approx(4 / 6)
    single = torch.tensor([[0.2], [0.7], [0.51]])
    assert binary(Predictions(torch.tensor([[0.0], [0.0], [1.0]]), single)) == pytest.approx(2 / 3)
    accuracy = METRICS.get("accuracy").compute
    assert accuracy(Predictions(one_hot, outputs, labels, outputs.argmax(1))) == 1.0


def test_multiclass_trains_one_sigmoid_per_class_on_one_hot_targets(tmp_path: Path) -> None:
    data = tiny_config(
        model=SIGMOID_OUTPUTS,
        loss="binary_crossentropy",
        metrics=["binary_accuracy", "accuracy"],
        source={"book": "beginners", "experiment": "E18", "section": "ch. 6"},
        train={"epochs": 30, "batch_size": 16, "progress": "none"},
    )
    run = run_experiment(config_from_data(data), tmp_path).run_dir
    results = json.loads((run / "results.json").read_text())
    test = results["test"]
    assert 0.8 < test["accuracy"] <= 1.0
    assert test["binary_accuracy"] > 2 / 3  # more than the all-zero outputs' share
    assert results["source"] == "Deep Learning for Beginners, ch. 6, experiment E18"
    report = (run / "report.md").read_text()
    assert "- reproduces: Deep Learning for Beginners, ch. 6, experiment E18" in report
    assert "- binary_accuracy: Share of output values on the right side of 0.5" in report
    assert "what Keras reports as `accuracy` when the loss is binary cross-entropy" in report


def test_one_sigmoid_per_class_needs_one_hot_targets() -> None:
    data = tiny_config(
        model=SIGMOID_OUTPUTS, loss="binary_crossentropy", preprocess=["standardize"]
    )
    with pytest.raises(ConfigError, match=r"preprocess: binary_crossentropy scores each class's "
                       r"output on its own and needs one-hot targets: add '- one_hot'"):  # fmt: skip
        config_from_data(data)


def test_source_names_a_known_book() -> None:
    with pytest.raises(ConfigError, match=r"source\.book: .*'dlwp', 'beginners' or 'course'"):
        config_from_data(tiny_config(source={"book": "dlwp2", "experiment": "E1"}))


@pytest.mark.parametrize(("restore_if", "kept"), [("always", 0.75), ("stopped", 0.5)])
def test_early_stopping_restores_as_configured_when_the_fit_runs_out(
    restore_if: str, kept: float
) -> None:
    """Keras restores the best weights only when early stopping itself ends the fit."""
    config = EarlyStopping.Config.model_validate(
        {"monitor": "accuracy", "patience": 3, "restore_best": True, "restore_if": restore_if}
    )
    state = drive(EarlyStopping(config), [0.25, 0.75, 0.625, 0.5], key="accuracy")
    assert not state.should_stop
    assert float(state.task.model_state()["w"]) == kept


def test_early_stopping_that_stops_restores_in_both_modes() -> None:
    config = EarlyStopping.Config(
        monitor="accuracy", patience=2, restore_best=True, restore_if="stopped"
    )
    state = drive(EarlyStopping(config), [0.25, 0.75, 0.625, 0.5, 1.0], key="accuracy")
    assert state.should_stop and float(state.task.model_state()["w"]) == 0.75


def rmsprop_by_hand(
    grads: list[np.ndarray], lr: float, rho: float, eps: float, inside: bool, **extra: Any
) -> np.ndarray:
    """The update rules written out in numpy, from zero state, on the parameter w = 1."""
    momentum, centered = extra.get("momentum", 0.0), extra.get("centered", False)
    w, v, mean_g, buffer = np.ones(3), np.zeros(3), np.zeros(3), np.zeros(3)
    for g in grads:
        v = rho * v + (1 - rho) * g * g
        mean_g = rho * mean_g + (1 - rho) * g
        spread = v - mean_g**2 if centered else v
        scale = np.sqrt(spread + eps) if inside else np.sqrt(spread) + eps
        buffer = momentum * buffer + lr * g / scale
        w = w - buffer
    return w


@pytest.mark.parametrize("inside", [False, True])
@pytest.mark.parametrize("extra", [{}, {"momentum": 0.5, "centered": True}])
def test_rmsprop_epsilon_forms_match_the_hand_computation(
    inside: bool, extra: dict[str, Any]
) -> None:
    grads = [np.array([1e-3, -2e-4, 0.5]) * (k + 1) for k in range(5)]
    eps = 1e-3  # large enough that the two forms differ visibly
    section = {"name": "rmsprop", "lr": 0.01, "epsilon": eps, "epsilon_in_sqrt": inside, **extra}
    spec = OPTIMIZERS.get("rmsprop")(config_from_data(tiny_config(optimizer=section)).optimizer)
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = spec.create([w])
    for g in grads:
        w.grad = torch.tensor(g)
        optimizer.step()
    expected = rmsprop_by_hand(grads, 0.01, 0.9, eps, inside, **extra)
    np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-12)
    other = rmsprop_by_hand(grads, 0.01, 0.9, eps, not inside, **extra)
    assert np.abs(expected - other).max() > 1e-4  # the option changes the numbers
