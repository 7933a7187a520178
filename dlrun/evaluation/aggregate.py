"""Cross-validation aggregates: per-metric mean/std over folds, fold-averaged learning curves,
their exponential smoothing, and the epoch they suggest for the final model (DLwP 3.6.4).

Plain NumPy, no torch: the figure process (:mod:`dlrun.reporting.figure_worker`) loads these.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MetricSummary:
    mean: float
    std: float  # population std (numpy's default), as the books report it
    values: list[float]


LONG_CURVE = 50  # epochs; from here on a curve is smoothed to be read (DLwP 3.6.4, 500 epochs)


@dataclass(frozen=True)
class CrossValidation:
    metrics: dict[str, MetricSummary]
    curves: dict[str, list[float]]  # per history key, the per-epoch mean over folds
    monitor: str
    smoothed: list[float]  # the monitor's averaged curve, smoothed, from epoch skip_first + 1
    skip_first: int
    best_epoch: int | None
    best_value: float | None  # on the smoothed curve
    smoothing: float = 0.0  # the EMA factor behind ``smoothed`` (0: the raw average)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": {k: vars(v) for k, v in self.metrics.items()},
            "monitor": self.monitor,
            "smoothing": self.smoothing,
            "best_epoch": self.best_epoch,
            "best_smoothed_value": self.best_value,
        }


def summarize(per_fold: list[dict[str, float]]) -> dict[str, MetricSummary]:
    keys = list(dict.fromkeys(k for row in per_fold for k in row))
    summary = {}
    for key in keys:
        values = [float(row[key]) for row in per_fold if key in row]
        summary[key] = MetricSummary(float(np.mean(values)), float(np.std(values)), values)
    return summary


def undefined_warnings(metrics: dict[str, MetricSummary]) -> list[str]:
    """Metrics some fold could not score (NaN: r2 on one sample or on equal targets, ROC AUC on
    one class), which leaves their mean and std NaN too: named, with how many folds."""
    found = []
    for name, summary in metrics.items():
        undefined = int(np.isnan(summary.values).sum()) if summary.values else 0
        if undefined:
            found.append(
                f"{name} is undefined on {undefined} of {len(summary.values)} folds (too few "
                "validation samples, or all of one target value or class), so its mean and "
                "std are NaN; use larger folds or another metric"
            )
    return found


def average_curves(histories: list[list[dict[str, float]]]) -> dict[str, list[float]]:
    """Mean over folds per epoch; folds that stopped early count only for epochs they ran."""
    length = max((len(h) for h in histories), default=0)
    keys = list(dict.fromkeys(k for h in histories for row in h for k in row))
    curves = {}
    for key in keys:
        table = np.full((len(histories), length), np.nan)
        for i, history in enumerate(histories):
            for j, row in enumerate(history):
                if key in row:
                    table[i, j] = row[key]
        with warnings.catch_warnings():  # an epoch no fold could score stays NaN, silently
            warnings.simplefilter("ignore", RuntimeWarning)
            curves[key] = [float(v) for v in np.nanmean(table, axis=0)]
    return curves


def smooth(points: list[float], factor: float) -> list[float]:
    """Exponential moving average: each point is ``previous * factor + point * (1 - factor)``."""
    smoothed: list[float] = []
    for point in points:
        smoothed.append(smoothed[-1] * factor + point * (1 - factor) if smoothed else point)
    return smoothed


def best_epoch(
    points: list[float], higher: bool, offset: int = 0
) -> tuple[int | None, float | None]:
    """1-based epoch of the best point (``offset`` epochs were left out before ``points``)."""
    finite = [(i, v) for i, v in enumerate(points) if np.isfinite(v)]
    if not finite:
        return None, None
    index, value = (max if higher else min)(finite, key=lambda item: item[1])
    return index + 1 + offset, value


def curve_reading(smoothing: float, skip_first: int, epochs: int) -> tuple[float, int]:
    """How a validation curve of ``epochs`` is read and drawn: its EMA factor and the epochs
    left out before it, as configured from :data:`LONG_CURVE` epochs on, else as it is."""
    if epochs < LONG_CURVE:
        return 0.0, 0
    return float(smoothing), skip_first if skip_first < epochs else 0


def cross_validate(
    per_fold: list[dict[str, float]],
    histories: list[list[dict[str, float]]],
    monitor: str,
    higher: bool,
    smoothing: float,
    skip_first: int,
) -> CrossValidation:
    """``higher``: whether a larger ``monitor`` is better (it picks the best epoch).

    A curve of :data:`LONG_CURVE` epochs or more is smoothed before its best epoch is read,
    as DLwP 3.6.4 reads its 500-epoch curve; a shorter one is read as it is, since a moving
    average of a few points stays near the first ones (3 epochs would pick epoch 1). Only the
    epochs every fold trained are read: after a fold stopped early the average is over fewer
    folds, and at the end over one, whose epoch would be taken for the folds' best.
    """
    curves = average_curves(histories)
    shared = min((len(h) for h in histories if h), default=0)
    raw = curves.get(monitor, [])[:shared]
    factor, skip = curve_reading(smoothing, skip_first, len(raw))
    smoothed = smooth(raw[skip:], factor)
    epoch, value = best_epoch(smoothed, higher, offset=skip)
    return CrossValidation(
        summarize(per_fold), curves, monitor, smoothed, skip, epoch, value, factor
    )
