"""Matplotlib figures saved as PNG: pure functions from results to files.

Matplotlib is imported by the first figure, not with this module: commands and runs that draw
nothing (``validate``, a sweep's listing) do not pay its half second, and ``dlrun train`` draws
after printing its result (:mod:`dlrun.reporting.drawing`). Figures are made without pyplot:
a file needs no window manager or global figure list, and pyplot's import costs a fifth of a
second more.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from dlrun.reporting.files import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from dlrun.evaluation.aggregate import CrossValidation


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _save(fig: Figure, target: Path) -> None:
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def learning_curves(rows: list[dict[str, Any]], target: Path) -> None:
    """One panel per quantity (loss and each metric), training vs validation, per epoch.

    Shows the protocol's training (phase ``fit``), or the final retrain when that is all the
    directory recorded (a K-fold run's top level).
    """
    fit_rows = [row for row in rows if row.get("phase", "fit") == "fit"] or rows
    keys = [
        k for k in fit_rows[0] if k not in ("phase", "epoch", "lr") and not k.startswith("val_")
    ]
    fig = _figure(5 * len(keys), 3.6)
    axes = fig.subplots(1, len(keys), squeeze=False)
    epochs = [row["epoch"] for row in fit_rows]
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(epochs, [row[key] for row in fit_rows], "o-", ms=3, label=f"training {key}")
        if f"val_{key}" in fit_rows[0]:
            ax.plot(
                epochs,
                [row[f"val_{key}"] for row in fit_rows],
                "s-",
                ms=3,
                label=f"validation {key}",
            )
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, target)


def confusion_matrix_plot(matrix: np.ndarray, labels: list[str], title: str, target: Path) -> None:
    size = max(4.0, 0.5 * len(labels) + 2)
    fig = _figure(size, size)
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        color = "white" if value > threshold else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=color, fontsize=8)
    _save(fig, target)


def predicted_vs_true(y_true: np.ndarray, y_pred: np.ndarray, title: str, target: Path) -> None:
    fig = _figure(5, 5)
    ax = fig.subplots()
    ax.scatter(y_true, y_pred, s=10, alpha=0.6)
    low = float(min(y_true.min(), y_pred.min()))
    high = float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], "k--", lw=1, label="perfect prediction")
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    ax.legend()
    _save(fig, target)


def cv_curves(cv: CrossValidation, title: str, target: Path) -> None:
    """The fold-averaged monitor per epoch, raw and smoothed, with the suggested best epoch."""
    raw = cv.curves.get(cv.monitor, [])
    train_key = cv.monitor.removeprefix("val_")
    fig = _figure(11, 3.8)
    left, right = fig.subplots(1, 2)
    epochs = list(range(1, len(raw) + 1))
    left.plot(epochs, raw, "-", label=f"validation {train_key} (mean over folds)")
    if train_key in cv.curves:
        left.plot(epochs, cv.curves[train_key], "-", alpha=0.7, label=f"training {train_key}")
    left.set_title(f"{title}: averaged")
    smoothed_epochs = list(range(cv.skip_first + 1, cv.skip_first + len(cv.smoothed) + 1))
    right.plot(smoothed_epochs, cv.smoothed, "-", label="smoothed (EMA)")
    if cv.best_epoch is not None:
        right.axvline(cv.best_epoch, color="k", ls="--", lw=1, label=f"best epoch {cv.best_epoch}")
    right.set_title(f"smoothed, first {cv.skip_first} epochs left out")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.set_ylabel(cv.monitor)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, target)


def compare_curves(runs: dict[str, list[dict[str, Any]]], keys: list[str], target: Path) -> None:
    """Overlay per-epoch curves of several runs, one panel per key (e.g. val_loss, loss)."""
    fig = _figure(5.5 * len(keys), 3.8)
    axes = fig.subplots(1, len(keys), squeeze=False)
    markers = "os^vD<>xP*"
    for ax, key in zip(axes[0], keys, strict=True):
        for index, (name, rows) in enumerate(runs.items()):
            points = [(row["epoch"], row[key]) for row in rows if key in row]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker=markers[index % len(markers)], ms=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, target)
