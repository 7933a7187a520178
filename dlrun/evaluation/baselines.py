"""Trivial baselines every result is reported against: models that ignore the inputs.

A model that does not beat them has learned nothing useful (DLwP 4.5.5, "statistical power").
A task names the baselines that apply to it (:attr:`dlrun.tasks.base.Task.baselines`); all are
fitted on training targets only.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlrun.data.windows import WindowTargets
from dlrun.data.windows import original_units
from dlrun.registry import Registry

SHUFFLES = 20  # averaged shuffled-label draws; one draw is what DLwP 3.5 reports


@dataclass(frozen=True)
class Targets:
    """Raw training and evaluation targets; ``time_ordered`` rows follow each other in time.

    ``preceding`` holds the targets just before the evaluation range when those are not the
    training ones (the validation range sits between training and test in a time split).
    """

    train: np.ndarray
    eval: np.ndarray
    seed: int
    time_ordered: bool = False
    preceding: np.ndarray | None = None

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        return (
            self.train.reshape(-1).astype(np.int64),
            self.eval.reshape(-1).astype(np.int64),
        )

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        train = self.train.astype(np.float64).reshape(len(self.train), -1)
        return train, self.eval.astype(np.float64).reshape(len(self.eval), -1)


@dataclass(frozen=True)
class Baseline:
    score: Callable[[Targets], dict[str, float]]
    time_series_only: bool = False  # only meaningful when rows follow each other in time
    # Per-row predictions for the evaluation targets, ``(N, outputs)``, where a baseline has them
    # (the value predictors): the significance test compares errors row by row.
    predict: Callable[[Targets], np.ndarray] | None = None


BASELINES: Registry[Baseline] = Registry("baseline")


def baseline(
    name: str, time_series_only: bool = False
) -> Callable[[Callable[[Targets], dict[str, float]]], Callable[[Targets], dict[str, float]]]:
    def decorator(
        fn: Callable[[Targets], dict[str, float]],
    ) -> Callable[[Targets], dict[str, float]]:
        BASELINES.register(name)(Baseline(fn, time_series_only))
        return fn

    return decorator


@baseline("majority class")
def majority_class(t: Targets) -> dict[str, float]:
    train, target = t.labels()
    values, counts = np.unique(train, return_counts=True)
    return {"accuracy": float((target == values[np.argmax(counts)]).mean())}


@baseline("random guessing")
def random_guessing(t: Targets) -> dict[str, float]:
    """Expected accuracy of a uniform guess among the classes seen in training."""
    return {"accuracy": float(1 / len(np.unique(t.labels()[0])))}


@baseline("shuffled labels")
def shuffled_labels(t: Targets) -> dict[str, float]:
    """Accuracy of the evaluation labels against a shuffled copy of themselves (DLwP 3.5)."""
    target = t.labels()[1]
    rng = np.random.default_rng(t.seed)
    hits = [float((rng.permutation(target) == target).mean()) for _ in range(SHUFFLES)]
    return {"accuracy": float(np.mean(hits))}


@baseline("most frequent value per label")
def most_frequent_per_label(t: Targets) -> dict[str, float]:
    rate = t.train.mean(axis=0) > 0.5
    return {"accuracy": float((t.eval == rate).mean())}


def value_baseline(
    name: str, time_series_only: bool = False
) -> Callable[[Callable[[Targets], np.ndarray]], Callable[[Targets], np.ndarray]]:
    """Register a predictor of values, scored by its MAE and MSE on the evaluation targets."""

    def decorator(predict: Callable[[Targets], np.ndarray]) -> Callable[[Targets], np.ndarray]:
        def score(t: Targets) -> dict[str, float]:
            errors = predict(t) - t.values()[1]
            scores = {"mae": float(np.abs(errors).mean()), "mse": float(np.square(errors).mean())}
            return {**scores, **original_units(scores["mae"], t.eval)}

        BASELINES.register(name)(Baseline(score, time_series_only, predict))
        return predict

    return decorator


@value_baseline("mean predictor")
def mean_predictor(t: Targets) -> np.ndarray:
    train, target = t.values()
    return np.broadcast_to(train.mean(axis=0), target.shape)


@value_baseline("median predictor")
def median_predictor(t: Targets) -> np.ndarray:
    train, target = t.values()
    return np.broadcast_to(np.median(train, axis=0), target.shape)


@value_baseline("last value (common sense)", time_series_only=True)
def last_value(t: Targets) -> np.ndarray:
    """Predict each target as the last value seen before it (DLwP 6.3.3): for windows of a
    series, the target column at the window's last input row ("the temperature 24 hours from
    now equals the temperature right now"); for rows, the target of the row before."""
    train, target = t.values()
    current = t.eval.current if isinstance(t.eval, WindowTargets) else None
    if current is not None:
        return current.astype(np.float64).reshape(target.shape)
    if t.preceding is not None and len(t.preceding):
        train = t.preceding.astype(np.float64).reshape(len(t.preceding), -1)
    return np.concatenate([train[-1:], target[:-1]])


def score_baselines(names: Sequence[str], targets: Targets) -> list[dict[str, Any]]:
    """The named baselines that apply to these targets, as ``{"name": ..., metric: value}``."""
    if len(targets.eval) == 0 or len(targets.train) == 0:
        return []
    specs = [(name, BASELINES.get(name)) for name in names]
    return [
        {"name": name, **spec.score(targets)}
        for name, spec in specs
        if targets.time_ordered or not spec.time_series_only
    ]


def average_baselines(per_fold: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each baseline's metrics averaged over folds, for comparison with cross-validated means."""
    names = list(dict.fromkeys(row["name"] for rows in per_fold for row in rows))
    averaged = []
    for name in names:
        rows = [row for rows in per_fold for row in rows if row["name"] == name]
        keys = [k for k in rows[0] if k != "name"]
        averaged.append({"name": name, **{k: float(np.mean([r[k] for r in rows])) for k in keys}})
    return averaged
