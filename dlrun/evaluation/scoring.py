"""Score a fitted model on one split of raw arrays."""

from __future__ import annotations

from dataclasses import dataclass

from dlrun.data.base import Arrays
from dlrun.data.windows import original_units
from dlrun.evaluation.fitting import FittedModel
from dlrun.training.loop import collect
from dlrun.training.metrics import Predictions


@dataclass
class Evaluation:
    """One scored split: its metrics and, for the task's analyses, the predictions behind them."""

    split: str  # "test" or "validation"
    metrics: dict[str, float]
    predictions: Predictions | None
    size: int


def evaluate_split(fitted: FittedModel, arrays: Arrays, split: str) -> Evaluation:
    """Apply the model's own preprocessing to ``arrays``; loss and metrics in one pass."""
    source = fitted.sources(arrays)
    fitted.sources.check(source)  # ids the training data never held, say
    results = collect(fitted.task, source)
    metrics = fitted.task.epoch_logs(results)
    target = fitted.task.target
    if "mae" in metrics and target is not None and target in arrays:
        metrics.update(original_units(metrics["mae"], arrays[target]))  # windows of a series
    return Evaluation(split, metrics, fitted.task.scored_predictions(results), len(arrays))
