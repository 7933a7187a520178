"""parallel_folds: K fold models stacked into one task, driven by the one loop, give the\nsequential results, whichever stacked form (batched matmul or vmap) runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.data.load import load_data
from dlrun.errors import ConfigError
from dlrun.evaluation.fitting import FitHooks
from dlrun.evaluation.fitting import train_fold
from dlrun.evaluation.folds import train_stacked
from dlrun.evaluation.outcome import FoldOutcome
from dlrun.evaluation.protocols import Fold
from dlrun.evaluation.runner import plan_protocol
from dlrun.tasks.base import StackedTask
from dlrun.tasks.base import Task
from dlrun.tasks.stacked import StackedSupervised
from dlrun.tasks.supervised import SupervisedTask
from dlrun.training.callbacks import Callback
from dlrun.training.callbacks import CallbackList
from dlrun.training.snapshots import Snapshots
from tests.conftest import tiny_config


def _regression(n_samples: int, batch_size: int, parallel: bool, **changes: Any) -> dict[str, Any]:
    config = tiny_config(
        task="regression", loss="mse", metrics=["mae"], preprocess=["standardize"],
        data={"dataset": "regression", "n_samples": n_samples, "n_features": 5, "noise": 5.0,
              "test_fraction": 0.2},
        model={"layers": [
            # a penalty large enough to show in every loss, validation ones included
            {"dense": {"units": 16, "activation": "relu", "kernel_regularizer": {"l2": 1.0}}},
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
        [
            json.loads(line)
            for line in (run_dir / f"fold_0{i}/metrics.jsonl").read_text().splitlines()
        ]
        for i in range(1, 5)
    ]


@pytest.mark.parametrize(
    ("n_samples", "batch_size"),
    [(100, 8), (102, 16)],  # equal folds (80 rows -> 60 each); ragged folds (81 -> 60/61)
    ids=["equal-folds", "ragged-last-batch"],
)
def test_parallel_folds_reproduce_sequential_training(
    tmp_path: Path, n_samples: int, batch_size: int
) -> None:
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
    for seq_rows, par_rows in zip(
        _fold_histories(sequential.run_dir), _fold_histories(parallel_run.run_dir), strict=True
    ):
        for key in ("loss", "mae", "val_loss", "val_mae"):
            assert [r[key] for r in par_rows] == pytest.approx(
                [r[key] for r in seq_rows], rel=1e-4
            )


def test_parallel_folds_fall_back_when_folds_need_different_batch_counts(tmp_path: Path) -> None:
    cfg = config_from_data(_regression(102, 1, True))  # 60 vs 61 single-sample batches
    result = run_experiment(cfg, tmp_path)
    assert result.results["parallel_folds"] is False
    assert any("different numbers of batches per epoch" in w for w in result.results["warnings"])
    assert len(result.results["cross_validation"]["metrics"]["mae"]["values"]) == 4


def test_parallel_folds_name_the_layer_they_cannot_stack() -> None:
    config = _regression(100, 8, True)
    config["model"] = {"layers": [{"dense": 8}, {"batchnorm": {}}, {"dense": 1}]}
    with pytest.raises(
        ConfigError, match=r"model\.layers\[1\]\.batchnorm: parallel folds cannot stack batchnorm"
    ):
        config_from_data(config)  # refused before any data is read


class QuietRecording:
    """Records nothing: for driving the stacked training directly."""

    def hooks(self, fold: Fold | None, phase: str, progress: bool = True) -> FitHooks:
        return FitHooks(CallbackList([]))

    def snapshots(self, fold: Fold | None, phase: str) -> Snapshots | None:
        return None

    def progress(self, label: str) -> Callback:
        return Callback()

    def fold_finished(self, outcome: FoldOutcome) -> None:
        return None


def _stacked_histories(
    config: dict[str, Any], folds: list[Fold], use_vmap: bool
) -> list[list[dict[str, float]]]:
    cfg = config_from_data(config)
    data = load_data(cfg)

    def stack(members: list[Task]) -> StackedTask:
        return StackedSupervised([m for m in members if isinstance(m, SupervisedTask)], use_vmap)

    stacked = train_stacked(cfg, data, folds, torch.device("cpu"), QuietRecording(), stack)
    assert not isinstance(stacked, str)
    fitted, _ = stacked
    return [f.state.history for f in fitted]


def test_each_stacked_fold_keeps_its_own_initialisation_and_order() -> None:
    """Same data in the same order for every fold: only the fold seed (initialisation) tells
    them apart, so equal seeds must train identically and different seeds differently."""
    config = _regression(100, 8, True)
    config["train"]["shuffle"] = False
    index = np.arange(60)
    same = _stacked_histories(
        config, [Fold("a", "a", index, index[:20], 3), Fold("b", "b", index, index[:20], 3)], False
    )
    assert same[0] == same[1]
    other = _stacked_histories(
        config, [Fold("a", "a", index, index[:20], 3), Fold("b", "b", index, index[:20], 4)], False
    )
    assert other[0][0]["loss"] != other[1][0]["loss"]
    assert other[0] == same[0]  # fold a trains exactly as before, whatever its neighbour does


@pytest.mark.parametrize(
    "layers",
    [[{"dense": {"units": 16, "activation": "relu", "kernel_regularizer": {"l2": 0.001}}}, {"dense": 1}],
     [{"reshape": [5, 1]}, {"flatten": {}}, {"dense": {"units": 8, "activation": "tanh"}}, {"dense": 1}]],
    ids=["dense-batched-matmul", "reshape-flatten-only-vmap"],
)  # fmt: skip
def test_vmap_and_batched_matmul_stacks_train_like_the_folds_alone(
    layers: list[dict[str, Any]],
) -> None:
    config = _regression(100, 8, True)
    config["model"] = {"layers": layers}
    cfg = config_from_data(config)
    data = load_data(cfg)
    folds = plan_protocol(cfg, data).folds
    alone = [
        train_fold(cfg, data.train, f.train_idx, f.val_idx, 3, torch.device("cpu"),
                   FitHooks(CallbackList([])), data.implied_steps, f.seed).state.history
        for f in folds
    ]  # fmt: skip
    for use_vmap in (False, True):
        stacked = _stacked_histories(config, folds, use_vmap)
        for fold_alone, fold_stacked in zip(alone, stacked, strict=True):
            for key in ("loss", "mae", "val_loss", "val_mae"):
                assert [r[key] for r in fold_stacked] == pytest.approx(
                    [r[key] for r in fold_alone], rel=1e-5
                )


def test_a_fold_whose_last_validation_batch_is_empty_scores_like_alone(tmp_path: Path) -> None:
    """k=3 over 80 rows: validation parts of 27, 27 and 26 rows at batch size 2, so the third
    fold has nothing in the stack's last validation batch."""
    runs = {}
    for parallel in (False, True):
        config = _regression(
            100, 2, parallel, evaluation={"protocol": "kfold", "k": 3, "parallel_folds": parallel}
        )
        config["train"]["epochs"] = 2
        runs[parallel] = run_experiment(config_from_data(config), tmp_path / str(parallel))
    assert runs[True].results["parallel_folds"] is True
    stacked = runs[True].results["cross_validation"]["metrics"]
    assert all(np.isfinite(stacked["loss"]["values"]))
    assert stacked["loss"]["values"] == pytest.approx(
        runs[False].results["cross_validation"]["metrics"]["loss"]["values"], rel=1e-4
    )


def test_a_fold_that_diverges_halts_the_stack_and_the_others_say_why(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    y = x.sum(axis=1)
    y[5] = 1e30  # in fold 1's validation part: folds 2 and 3 train on it and overflow
    np.savez(tmp_path / "data.npz", x=x, y=y)
    config = _regression(100, 4, True, evaluation={"protocol": "kfold", "k": 3, "shuffle": False, "contiguous": True, "parallel_folds": True},
                         data={"dataset": "npz", "path": str(tmp_path / "data.npz"), "test_fraction": 0}, preprocess=[])  # fmt: skip
    result = run_experiment(config_from_data(config), tmp_path / "runs")
    assert result.status.value == "diverged" and result.results["parallel_folds"] is True
    statuses = [
        json.loads((result.run_dir / f"fold_0{i}" / "status.json").read_text()) for i in (1, 2, 3)
    ]
    assert [s["status"] for s in statuses] == ["interrupted", "diverged", "diverged"]
    assert statuses[0]["reason"] == "stopped because fold 2 diverged; stacked folds train together"
    folds = [(f["fold"], f["status"]) for f in result.results["folds"]]
    assert folds == [("fold_01", "interrupted"), ("fold_02", "diverged"), ("fold_03", "diverged")]
