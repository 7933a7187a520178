"""Matplotlib figures saved as PNG: pure functions from results to files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from dlrun.reporting.files import atomic_path


def _save(fig: Any, target: Path) -> None:
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def learning_curves(rows: list[dict[str, Any]], target: Path) -> None:
    """One panel per quantity (loss and each metric), training vs validation, per epoch."""
    fit_rows = [row for row in rows if row.get("phase", "fit") == "fit"]
    keys = [
        k for k in fit_rows[0] if k not in ("phase", "epoch", "lr") and not k.startswith("val_")
    ]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
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
    fig, ax = plt.subplots(figsize=(size, size))
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
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(y_true, y_pred, s=10, alpha=0.6)
    low = float(min(y_true.min(), y_pred.min()))
    high = float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], "k--", lw=1, label="perfect prediction")
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    ax.legend()
    _save(fig, target)
