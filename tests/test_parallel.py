"""parallel_folds: K fold models trained as one vectorized model give the sequential results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.errors import ConfigError
from tests.conftest import tiny_config


def _regression(n_samples: int, batch_size: int, parallel: bool, **changes: Any) -> dict[str, Any]:
    config = tiny_config(
        task="regression", loss="mse", metrics=["mae"], preprocess=["standardize"],
        data={"dataset": "regression", "n_samples": n_samples, "n_features": 5, "noise": 5.0,
              "test_fraction": 0.2},
        model={"layers": [
            {"dense": {"units": 16, "activation": "relu", "kernel_regularizer": {"l2": 0.001}}},
            {"dense": {"units": 8, "activation": "tanh"}},
            {"dense": 1},
        ]},
        optimizer={"name": "rmsprop", "lr": 0.01},
        train={"epochs": 3, "batch_size": batch_size, "progress": "none"},
        evaluation={"protocol": "kfold", "k": 4, "parallel_folds": parallel},
    )  # fmt: skip
    config.update(changes)
    return config


def _fold_histories(run_dir: Path) -> list[list[dict[str, float]]]:
    return [
        [json.loads(line) for line in (run_dir / f"fold_0{i}/metrics.jsonl").read_text().splitlines()]
        for i in range(1, 5)
    ]


@pytest.mark.parametrize(
    ("n_samples", "batch_size"),
    [(100, 8), (102, 16)],  # equal folds (80 rows -> 60 each); ragged folds (81 -> 60/61)
    ids=["equal-folds", "ragged-last-batch"],
)
def test_parallel_folds_reproduce_sequential_training(tmp_path: Path, n_samples: int, batch_size: int) -> None:
    runs = {}
    for parallel in (False, True):
        cfg = config_from_data(_regression(n_samples, batch_size, parallel))
        result = run_experiment(cfg, tmp_path / str(parallel))
        assert result.results["parallel_folds"] is parallel
        runs[parallel] = result
    sequential, parallel_run = runs[False], runs[True]
    seq_cv = sequential.results["cross_validation"]["metrics"]
    par_cv = parallel_run.results["cross_validation"]["metrics"]
    assert par_cv["mae"]["values"] == pytest.approx(seq_cv["mae"]["values"], rel=1e-4)
    for seq_rows, par_rows in zip(_fold_histories(sequential.run_dir), _fold_histories(parallel_run.run_dir), strict=True):
        for key in ("loss", "mae", "val_loss", "val_mae"):
            assert [r[key] for r in par_rows] == pytest.approx([r[key] for r in seq_rows], rel=1e-4)


def test_parallel_folds_fall_back_when_folds_need_different_batch_counts(tmp_path: Path) -> None:
    cfg = config_from_data(_regression(102, 1, True))  # 60 vs 61 single-sample batches
    result = run_experiment(cfg, tmp_path)
    assert result.results["parallel_folds"] is False
    assert any("different numbers of batches per epoch" in w for w in result.results["warnings"])
    assert len(result.results["cross_validation"]["metrics"]["mae"]["values"]) == 4


def test_parallel_folds_name_the_layer_they_cannot_stack(tmp_path: Path) -> None:
    config = _regression(100, 8, True)
    config["model"] = {"layers": [{"dense": 8}, {"batchnorm": {}}, {"dense": 1}]}
    with pytest.raises(ConfigError, match=r"cannot stack batchnorm \(model.layers\[1\]\)"):
        run_experiment(config_from_data(config), tmp_path)


def test_parallel_folds_keep_each_folds_own_initialisation(tmp_path: Path) -> None:
    result = run_experiment(config_from_data(_regression(100, 8, True)), tmp_path)
    first_epoch_losses = [rows[0]["loss"] for rows in _fold_histories(result.run_dir)]
    assert len(set(np.round(first_epoch_losses, 6))) == 4
