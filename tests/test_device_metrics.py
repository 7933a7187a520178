"""Epoch metrics in torch equal scikit-learn's, which stays only as the reference here.

Random seeded inputs cover binary, multiclass and multilabel labels, classes absent from the
predictions or the targets (zero_division=0), tied scores for ROC AUC and the cases where ROC AUC
is undefined (NaN).
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from dlrun.tasks.classic import Binary
from dlrun.tasks.classic import Multiclass
from dlrun.tasks.classic import Multilabel
from dlrun.training.metrics import METRICS
from dlrun.training.metrics import Averaging
from dlrun.training.metrics import Predictions
from dlrun.training.ranking import roc_auc_columns

SEEDS = range(12)
AVERAGED = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}


def ours(name: str, p: Predictions) -> float:
    value = METRICS.get(name).compute(p)
    assert isinstance(value, float)
    return value


def same(value: float, expected: float) -> None:
    assert value == pytest.approx(float(expected), abs=1e-6, nan_ok=True)


def sklearn_roc_auc(p: Predictions) -> float:
    """What dlrun computed before the metrics moved to torch, with scikit-learn on the host."""
    y, scores = p.host_labels()[0], p.y_pred.float().numpy()
    if p.several_labels:
        return float(skm.roc_auc_score(y, scores, average="macro"))
    present = np.unique(y)
    if len(present) < 2:
        return math.nan
    if scores.ndim == 1 or scores.shape[1] == 1:
        return float(skm.roc_auc_score(y, scores.reshape(-1)))
    if scores.shape[1] != len(present):
        return math.nan
    scores = scores / scores.sum(axis=1, keepdims=True)
    if scores.shape[1] == 2:
        return float(skm.roc_auc_score(y, scores[:, 1]))
    return float(skm.roc_auc_score(y, scores, multi_class="ovr", average="macro"))


def multiclass(rng: np.random.Generator, classes: int, rows: int, pool: int = 0) -> Predictions:
    """Softmax-like rows; with ``pool`` they repeat from that many distinct rows (tied scores)."""
    scores = rng.random((pool or rows, classes)).astype(np.float32) ** 3
    if pool:
        scores = scores[rng.integers(0, pool, rows)]
    y = rng.integers(0, classes, rows)
    return Multiclass.label(torch.tensor(y), torch.tensor(scores))


def binary(rng: np.random.Generator, rows: int, decimals: int = 2) -> Predictions:
    y = (rng.random(rows) < rng.uniform(0.1, 0.9)).astype(np.float32)
    scores = np.round(np.clip(0.4 * y + 0.8 * rng.random(rows) - 0.1, 0, 1), decimals)
    return Binary.label(
        torch.tensor(y[:, None]), torch.tensor(scores[:, None], dtype=torch.float32)
    )


def multilabel(rng: np.random.Generator, rows: int, labels: int) -> Predictions:
    y = (rng.random((rows, labels)) < rng.uniform(0.05, 0.6, labels)).astype(np.float32)
    scores = np.round(np.clip(0.4 * y + 0.8 * rng.random((rows, labels)) - 0.1, 0, 1), 1)
    return Multilabel.label(torch.tensor(y), torch.tensor(scores, dtype=torch.float32))


def check_label_metrics(p: Predictions) -> None:
    y, yhat = p.host_labels()
    for name, score in AVERAGED.items():
        same(ours(name, p), score(y, yhat, average=p.averaging, zero_division=0))
    if not p.several_labels:
        with warnings.catch_warnings():  # "y_pred contains classes not in y_true"
            warnings.simplefilter("ignore")
            expected = skm.balanced_accuracy_score(y, yhat)
        same(ours("balanced_accuracy", p), expected)
        same(ours("ber", p), 1 - expected)
    same(ours("roc_auc", p), sklearn_roc_auc(p))


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_metrics_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    check_label_metrics(binary(rng, int(rng.integers(5, 400)), decimals=int(seed % 3) + 1))


@pytest.mark.parametrize("seed", SEEDS)
def test_multiclass_metrics_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    classes = int(rng.integers(3, 12))
    pool = int(rng.integers(4, 30)) if seed % 2 else 0
    check_label_metrics(multiclass(rng, classes, int(rng.integers(30, 500)), pool))


@pytest.mark.parametrize("seed", SEEDS)
def test_multilabel_metrics_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    p = multilabel(rng, int(rng.integers(20, 300)), int(rng.integers(2, 8)))
    if seed % 2:  # a label never true: zero_division for it, and ROC AUC undefined
        true = p.labels()[0].clone()
        true[:, 0] = 0
        p = Predictions(true.float(), p.y_pred, true, p.labels()[1], p.averaging)
    assert p.several_labels
    check_label_metrics(p)


@pytest.mark.parametrize("seed", SEEDS)
def test_classes_missing_from_predictions_or_targets(seed: int) -> None:
    """Label sets with gaps: macro averages over the classes seen, zero_division gives 0."""
    rng = np.random.default_rng(300 + seed)
    rows = int(rng.integers(5, 60))
    y = rng.choice([0, 2, 5], rows)
    yhat = rng.choice([0, 1, 2, 6], rows) if seed % 2 else np.zeros(rows, dtype=np.int64)
    p = Predictions(torch.tensor(y), torch.rand(rows, 7), torch.tensor(y), torch.tensor(yhat))
    check_label_metrics(p)


def test_binary_zero_division_cases() -> None:
    zeros, ones = torch.zeros(6, dtype=torch.long), torch.ones(6, dtype=torch.long)
    for true, pred in ((zeros, zeros), (zeros, ones), (ones, zeros), (ones, ones)):
        p = Predictions(true.float(), pred.float(), true, pred, averaging=Averaging.BINARY)
        check_label_metrics(p)
    nothing = Predictions(zeros.float(), zeros.float(), zeros, zeros, averaging=Averaging.BINARY)
    assert ours("precision", nothing) == ours("recall", nothing) == ours("f1", nothing) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_two_softmax_units_score_the_second_class(seed: int) -> None:
    p = multiclass(np.random.default_rng(400 + seed), 2, 120, pool=int(seed % 3) * 10)
    same(ours("roc_auc", p), sklearn_roc_auc(p))


def test_unnormalised_scores_are_renormalised_before_one_vs_rest() -> None:
    rng = np.random.default_rng(7)
    p = multiclass(rng, 4, 200, pool=25)
    scaled = Predictions(p.y_true, p.y_pred * torch.rand(200, 1) * 5, *p.labels())
    same(ours("roc_auc", scaled), sklearn_roc_auc(scaled))
    assert ours("roc_auc", scaled) != pytest.approx(ours("roc_auc", p), abs=1e-6)


def test_roc_auc_is_nan_where_undefined() -> None:
    rng = np.random.default_rng(8)
    cases = {
        "one class, one sigmoid": Binary.label(torch.ones(9, 1), torch.rand(9, 1)),
        "one class, softmax": Multiclass.label(torch.full((9,), 2), torch.rand(9, 4)),
        "a class missing": Multiclass.label(
            torch.tensor(rng.integers(0, 3, 50)), torch.rand(50, 4)
        ),
        "more classes than units": Multiclass.label(torch.arange(30) % 3, torch.rand(30, 2)),
        "one label constant": Multilabel.label(
            torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]]), torch.rand(3, 2)
        ),
    }
    for name, p in cases.items():
        assert math.isnan(sklearn_roc_auc(p)), name
        assert math.isnan(ours("roc_auc", p)), name
    three_classes_one_column = Predictions(
        torch.arange(30) % 3, torch.rand(30, 1), torch.arange(30) % 3, torch.zeros(30).long()
    )
    assert math.isnan(ours("roc_auc", three_classes_one_column))  # scikit-learn raised here


def test_rank_auc_counts_ties_as_half() -> None:
    scores = torch.tensor([[0.3, 1.0], [0.3, 1.0], [0.3, 1.0], [0.9, 1.0]])
    positive = torch.tensor([[False, False], [True, True], [True, False], [True, True]])
    # column 0: the tied positives win half of each pair with the tied negative, 0.9 wins it
    assert roc_auc_columns(scores, positive).tolist() == pytest.approx([(0.5 * 2 + 1) / 3, 0.5])
    with_nan = roc_auc_columns(torch.tensor([[0.1], [math.nan]]), torch.tensor([[False], [True]]))
    assert math.isnan(with_nan.item())


def test_large_inputs_keep_scikit_learn_precision() -> None:
    """Rank sums past float32's exact integers (2**24) stay exact: they are int64."""
    rng = np.random.default_rng(9)
    p = binary(rng, 30_000, decimals=3)
    same(ours("roc_auc", p), sklearn_roc_auc(p))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_values_equal_cpu_values() -> None:
    rng = np.random.default_rng(10)
    for p in (binary(rng, 500), multiclass(rng, 6, 500, pool=40), multilabel(rng, 300, 5)):
        true, pred = p.labels()
        moved = Predictions(
            p.y_true.cuda(), p.y_pred.cuda(), true.cuda(), pred.cuda(), averaging=p.averaging
        )
        for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
            same(ours(name, moved), ours(name, p))
        if not p.several_labels:
            same(ours("balanced_accuracy", moved), ours("balanced_accuracy", p))


def test_metrics_module_does_not_import_scikit_learn() -> None:
    code = "import sys, dlrun.training.metrics; print('sklearn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
