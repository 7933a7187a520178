"""The one loop against references: a hand-written PyTorch loop (golden losses), K-fold against
hold-outs run by hand, and the statuses a fit ends with."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.data.load import load_data
from dlrun.evaluation.fitting import FitHooks
from dlrun.evaluation.fitting import prepare_fold
from dlrun.evaluation.fitting import train_fold
from dlrun.evaluation.runner import plan_protocol
from dlrun.evaluation.scoring import evaluate_split
from dlrun.training.callbacks import CallbackList
from dlrun.training.status import RunStatus
from tests.conftest import tiny_config

SEED = 7


def _golden_config(path: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 3)).astype(np.float32)
    y = (x @ np.array([1.5, -2.0, 0.5], dtype=np.float32) + 0.3).astype(np.float32)
    np.savez(path, x=x, y=y)
    return tiny_config(
        seed=SEED, task="regression", loss="mse", metrics=[], preprocess=[],
        data={"dataset": "npz", "path": str(path), "test_fraction": 0},
        model={"layers": [{"dense": {"units": 4, "activation": "tanh"}}, {"dense": 1}]},
        optimizer={"name": "rmsprop", "lr": 0.01},
        train={"epochs": 6, "batch_size": 5, "progress": "none"},  # the last batch has 3 rows
        evaluation={"validation": None},
    )  # fmt: skip


def test_epoch_losses_equal_a_hand_written_pytorch_loop(tmp_path: Path) -> None:
    cfg = config_from_data(_golden_config(tmp_path / "tiny.npz"))
    result = run_experiment(cfg, tmp_path / "runs")
    ours = [float(r["loss"]) for r in csv.DictReader((result.run_dir / "metrics.csv").open())]

    data = load_data(cfg)
    x, y = torch.from_numpy(data.train.x), torch.from_numpy(data.train.y).reshape(-1, 1)
    start = prepare_fold(cfg, data.train, np.arange(len(x)), None, torch.device("cpu"), [], SEED)
    weights = start.task.model_state()["model"]  # the same initial weights, nothing else shared
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    net.load_state_dict({"0.weight": weights["0.linear.weight"], "0.bias": weights["0.linear.bias"],
                         "2.weight": weights["1.linear.weight"], "2.bias": weights["1.linear.bias"]})  # fmt: skip
    optimizer = torch.optim.RMSprop(net.parameters(), lr=0.01, alpha=0.9, eps=1e-7)
    generator = torch.Generator().manual_seed(SEED)
    theirs = []
    for _ in range(6):
        order, total = torch.randperm(len(x), generator=generator), 0.0
        for i in range(0, len(x), 5):
            index = order[i : i + 5]
            loss = F.mse_loss(net(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)  # Keras weights each batch by its size
        theirs.append(total / len(x))
    assert ours == pytest.approx(theirs, abs=1e-6)
    assert ours[-1] < ours[0]


def _fold_rows(path: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("phase", "epoch")} for row in rows]


def test_kfold_with_k_2_equals_two_hold_outs_run_by_hand(tmp_path: Path) -> None:
    evaluation = {"protocol": "kfold", "k": 2, "shuffle": False, "contiguous": True}
    preprocess = ["standardize", {"one_hot": {"num_classes": 3}}]  # iris rows come sorted by class
    cfg = config_from_data(tiny_config(evaluation=evaluation, preprocess=preprocess))
    kfold = run_experiment(cfg, tmp_path / "kfold")
    data = load_data(cfg)
    folds = plan_protocol(cfg, data).folds
    assert [len(f.val_idx) for f in folds if f.val_idx is not None] == [60, 60]
    for fold, summary in zip(folds, kfold.results["folds"], strict=True):
        by_hand = train_fold(cfg, data.train, fold.train_idx, fold.val_idx, cfg.train.epochs,
                             torch.device("cpu"), FitHooks(CallbackList([])), data.implied_steps,
                             fold.seed)  # fmt: skip
        assert by_hand.state.history == _fold_rows(kfold.run_dir / fold.name / "metrics.jsonl")
        assert fold.val_idx is not None
        scored = evaluate_split(by_hand, data.train.subset(fold.val_idx), "validation")
        assert {k: summary[k] for k in scored.metrics} == scored.metrics
    # the first fold is also exactly the hold-out that validates on the first 60 rows
    first_60 = tiny_config(evaluation={"validation": {"first": 60}}, preprocess=preprocess)
    holdout = run_experiment(config_from_data(first_60), tmp_path / "holdout")
    assert _fold_rows(holdout.run_dir / "metrics.jsonl") == _fold_rows(
        kfold.run_dir / "fold_01" / "metrics.jsonl"
    )


def test_early_stopping_ends_a_run_as_stopped_early_and_it_is_still_tested(tmp_path: Path) -> None:
    train = {"epochs": 60, "batch_size": 16, "progress": "none",
             "callbacks": [{"early_stopping": {"monitor": "val_loss", "patience": 0, "min_delta": 0.5}}]}  # fmt: skip
    result = run_experiment(config_from_data(tiny_config(train=train)), tmp_path)
    assert result.status is RunStatus.STOPPED_EARLY
    assert json.loads((result.run_dir / "status.json").read_text())["status"] == "stopped_early"
    assert result.results["epochs_run"] < 60 and "early stopping" in result.results["stop_reason"]
    assert result.results["test_split_reads"] == 1 and result.results["test"] is not None


def test_hold_out_validation_values_are_those_of_the_weights_early_stopping_kept(
    tmp_path: Path,
) -> None:
    stop = {"early_stopping": {"monitor": "val_loss", "patience": 3, "restore_best": True}}
    train = {"epochs": 60, "batch_size": 16, "progress": "none", "callbacks": [stop]}
    config = tiny_config(train=train, optimizer={"name": "adam", "lr": 0.2})  # overfits fast
    result = run_experiment(config_from_data(config), tmp_path)
    rows = [
        json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    validation = result.results["validation"]
    kept = rows[validation["best_epoch"] - 1]  # restored: the best val_loss's epoch
    assert len(rows) > validation["best_epoch"]  # the run went on past it
    assert validation["val_loss"] == pytest.approx(kept["val_loss"])  # not the last epoch's
    assert validation["val_loss"] != pytest.approx(rows[-1]["val_loss"])
    assert validation["epoch"] == validation["best_epoch"]  # the table says whose values
    report = (result.run_dir / "report.md").read_text()
    assert "| epoch | val_loss | val_accuracy | monitor | best_epoch |" in report
    plain = run_experiment(config_from_data(tiny_config()), tmp_path).results["validation"]
    assert plain["epoch"] == 3  # no weights restored: the last epoch's values


def test_seeding_a_run_warms_the_vector_math_on_every_thread() -> None:
    """Without one call of torch's vector math taken by every thread before training, about one
    process in five rounded RMSprop's first square roots differently (bench/repeatability.py)."""
    from dlrun.utils import seed_everything
    from dlrun.utils import warm_vector_math

    warm_vector_math.cache_clear()
    seed_everything(0)
    assert warm_vector_math.cache_info().currsize == 1
    seed_everything(1)
    assert warm_vector_math.cache_info().hits == 1  # once per process and thread count


@pytest.mark.slow
def test_fresh_processes_train_to_the_same_weights() -> None:
    """Six fresh processes, each warmed as a run is, end with identical weights (without the
    warm-up, 2 outcomes in 12 processes here)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    script = str(REPO / "bench" / "repeatability.py")
    outcomes = {
        subprocess.run([sys.executable, script, "--child", "warm"], capture_output=True,
                       text=True, check=True).stdout.strip()
        for _ in range(6)
    }  # fmt: skip
    assert len(outcomes) == 1, outcomes
