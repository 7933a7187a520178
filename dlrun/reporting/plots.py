"""Matplotlib figures saved as PNG: pure functions from results to files.

Matplotlib is imported by the first figure, not with this module: commands and runs that draw
nothing (``validate``, a sweep's listing) do not pay its half second, and ``dlrun train`` draws
after printing its result (:mod:`dlrun.reporting.drawing`). Figures are made without pyplot:
a file needs no window manager or global figure list, and pyplot's import costs a fifth of a
second more.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from dlrun.evaluation.aggregate import LONG_CURVE
from dlrun.evaluation.aggregate import smooth
from dlrun.reporting.curves import MARKERS_UP_TO
from dlrun.reporting.curves import CurveMarks
from dlrun.reporting.curves import shown_rows
from dlrun.reporting.files import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from dlrun.evaluation.aggregate import CrossValidation


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _epoch_axis(ax: Any) -> None:
    """An x axis of epochs: whole-number ticks only (a short run would get 1.2, 1.4, ...)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Figure, target: Path) -> None:
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def grid_shape(panels: int) -> tuple[int, int]:
    """Rows and columns for ``panels`` panels: as square as possible, never wider than 3."""
    columns = min(3, max(1, math.ceil(math.sqrt(panels))))
    return math.ceil(panels / columns), columns


def curve_keys(rows: list[dict[str, Any]]) -> list[str]:
    """One panel per quantity: the loss and each metric (their ``val_`` twins share it), and
    the learning rate only when a scheduler changed it."""
    keys = [k for k in rows[0] if k not in ("phase", "epoch", "lr") and not k.startswith("val_")]
    if len({row.get("lr") for row in rows}) > 1:
        keys.append("lr")
    return keys


def learning_curves(rows: list[dict[str, Any]], marks: CurveMarks, target: Path) -> None:
    """A grid of panels, one per quantity, training and validation together in each.

    The best epoch by the protocol's monitor is marked in every panel, and the epoch whose
    weights early stopping restored when that differs. Up to ``MARKERS_UP_TO`` epochs each point
    has a marker; a long validation curve is drawn faint under its exponential moving average
    (``marks.smoothing``, as DLwP 3.6.4 smooths its 500-epoch validation MAE). One legend serves
    every panel: in the grid's spare cell when it has one.
    """
    shown = shown_rows(rows)
    keys = curve_keys(shown)
    epochs = [row["epoch"] for row in shown]
    n_rows, n_columns = grid_shape(len(keys))
    fig = _figure(5.2 * n_columns, 3.6 * n_rows)
    axes = fig.subplots(n_rows, n_columns, squeeze=False).flatten()
    style = {"marker": "o", "ms": 3} if len(epochs) <= MARKERS_UP_TO else {}
    for ax, key in zip(axes, keys, strict=False):
        training = [row.get(key, np.nan) for row in shown]
        ax.plot(epochs, training, "-", color="C0", label="training", **style)
        if f"val_{key}" in shown[0]:
            validation = [row.get(f"val_{key}", np.nan) for row in shown]
            _validation_curve(ax, epochs, validation, marks, style)
        _mark_epochs(ax, key, marks)
        _epoch_axis(ax)
        ax.set_title("learning rate" if key == "lr" else key)
        if key == "lr":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    spare = axes[len(keys) :]
    for ax in spare:
        ax.axis("off")
    handles, labels = axes[0].get_legend_handles_labels()
    (spare[0] if len(spare) else axes[0]).legend(
        handles, labels, loc="center" if len(spare) else "best", fontsize=9 if len(spare) else 8
    )
    fig.tight_layout()
    _save(fig, target)


def _validation_curve(ax: Any, epochs: list[int], values: list[float], marks: CurveMarks,
                      style: dict[str, Any]) -> None:  # fmt: skip
    """The raw validation curve, or for a long one the raw curve faint under its EMA."""
    if not marks.smoothing:
        ax.plot(epochs, values, "-", color="C1", label="validation", **style)
        return
    ax.plot(epochs, values, "-", color="C1", lw=0.8, alpha=0.45, label="validation")
    skip = marks.skip_first
    ax.plot(epochs[skip:], smooth(values[skip:], marks.smoothing), "-", color="C1", lw=2,
            label=f"validation, EMA {marks.smoothing:g}")  # fmt: skip


def _mark_epochs(ax: Any, key: str, marks: CurveMarks) -> None:
    """A dotted line at the best epoch (a star on the monitored curve), and a dash-dotted one at
    the restored epoch when early stopping restored a different one."""
    if marks.best_epoch is not None and marks.monitor is not None:
        restored = ", weights restored" if marks.restored_epoch == marks.best_epoch else ""
        label = f"best {marks.monitor} {marks.best_value:.4g}: epoch {marks.best_epoch}{restored}"
        ax.axvline(marks.best_epoch, color="k", ls=":", lw=1, label=label)
        if marks.monitor in (key, f"val_{key}"):
            ax.plot([marks.best_epoch], [marks.best_value], "*", color="k", ms=10)
    if marks.restored_epoch is not None and marks.restored_epoch != marks.best_epoch:
        ax.axvline(marks.restored_epoch, color="tab:red", ls="-.", lw=1,
                   label=f"weights restored: epoch {marks.restored_epoch}")  # fmt: skip


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


def roc_curve_plot(
    fpr: np.ndarray,
    tpr: np.ndarray,
    auc: float,
    points: list[tuple[str, float, float]],
    title: str,
    target: Path,
) -> None:
    """The ROC curve with chance's diagonal and each threshold's point (label, FPR, TPR)."""
    fig = _figure(5, 5)
    ax = fig.subplots()
    ax.plot(fpr, tpr, lw=1.5, label=f"ROC (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="chance")
    for (label, x, y), marker in zip(points, "osD^v", strict=False):
        ax.plot([x], [y], marker, ms=7, label=label)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, target)


SMALLEST_IMAGE = 8  # a flat sample of 8 x 8 values or more that is a square is drawn as one


def as_image(values: np.ndarray) -> np.ndarray:
    """One sample as a picture: kept as it is when it is one already ``(H, W)`` or ``(H, W, 1
    or 3)``; a flat one (a ``flatten`` step's) as a square of gray or RGB pixels when its size
    is one, from 8 x 8 up; anything else (a table row) as a one-row strip."""
    if values.ndim == 2 or (values.ndim == 3 and values.shape[-1] in (1, 3)):
        return values[..., 0] if values.ndim == 3 and values.shape[-1] == 1 else values
    flat = values.reshape(-1)
    for channels in (1, 3):
        side = math.isqrt(len(flat) // channels)
        if side >= SMALLEST_IMAGE and side * side * channels == len(flat):
            return flat.reshape((side, side) if channels == 1 else (side, side, 3))
    return flat.reshape(1, -1)


def reconstructions_plot(
    originals: np.ndarray, rebuilt: np.ndarray, title: str, target: Path
) -> None:
    """Inputs (top row) above their reconstructions (bottom row), each pair on the input's
    own scale: a stretch per image would make a faint reconstruction look sharp."""
    count = len(originals)
    fig = _figure(1.4 * count, 3.2)
    axes = fig.subplots(2, count, squeeze=False)
    for column in range(count):
        low, high = float(originals[column].min()), float(originals[column].max())
        for row, values in enumerate((originals[column], rebuilt[column])):
            picture = as_image(values)
            _show_on_scale(axes[row][column], picture, low, high,
                           aspect="auto" if picture.shape[0] == 1 else None)  # fmt: skip
    axes[0][0].set_ylabel("input")
    axes[1][0].set_ylabel("reconstruction")
    fig.suptitle(title)
    _save(fig, target)


def mosaic_plot(samples: np.ndarray, side: int, title: str, target: Path) -> None:
    """Image samples side by side in one picture, ``side`` per row, on one shared scale (a
    latent traversal reads as one image)."""
    pictures = [as_image(values) for values in samples]
    low, high = float(samples.min()), float(samples.max())
    rows = [np.concatenate(pictures[start : start + side], axis=1)
            for start in range(0, len(pictures), side)]  # fmt: skip
    fig = _figure(min(12, 0.5 * side + 1), min(12, 0.5 * len(rows) + 1))
    ax = fig.subplots()
    _show_on_scale(ax, np.concatenate(rows, axis=0), low, high)
    ax.set_title(title, fontsize=9)
    _save(fig, target)


def _show_on_scale(ax: Any, picture: np.ndarray, low: float, high: float, **options: Any) -> None:
    """``picture`` drawn with ``low`` black and ``high`` white (gray, or RGB stretched to the
    0..1 matplotlib reads floats as), without ticks."""
    if picture.ndim == 3:
        picture = np.clip((picture - low) / ((high - low) or 1), 0, 1)
    ax.imshow(picture, cmap="gray", vmin=low, vmax=high if high > low else low + 1, **options)
    ax.set_xticks([])
    ax.set_yticks([])


CLASS_COLOURS = 20  # up to this many label values get a colour and a legend entry each


def code_space_plot(
    points: np.ndarray,
    labels: np.ndarray | None,
    names: list[str] | None,
    axes: str,
    title: str,
    target: Path,
) -> None:
    """Each sample at its 2-D code, drawn in the samples' order (no class covers the others):
    a colour per label for up to 20 of them, else a colour scale of the label's value."""
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    fig = _figure(6, 5.5)
    ax = fig.subplots()
    values = None if labels is None or labels.shape[1] != 1 else labels[:, 0]
    if values is None:
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5)
    elif len(distinct := np.unique(values)) <= CLASS_COLOURS:
        cmap = colormaps["tab10" if len(distinct) <= 10 else "tab20"]
        index = np.searchsorted(distinct, values)
        ax.scatter(points[:, 0], points[:, 1], c=[cmap(i) for i in index], s=3, alpha=0.6)
        handles = [Line2D([], [], ls="", marker="o", color=cmap(i)) for i in range(len(distinct))]
        shown = [_class_name(v, names) for v in distinct]
        ax.legend(handles, shown, fontsize=8, loc="best")
    else:
        dots = ax.scatter(points[:, 0], points[:, 1], c=values, cmap="viridis", s=3, alpha=0.6)
        fig.colorbar(dots, ax=ax, label="label")
    ax.set_xlabel(f"{axes} 1")
    ax.set_ylabel(f"{axes} 2")
    ax.set_title(title)
    _save(fig, target)


def _class_name(value: float, names: list[str] | None) -> str:
    """A label's class name when it indexes the dataset's names, else the value."""
    whole = float(value).is_integer()
    if names and whole and 0 <= int(value) < len(names):
        return names[int(value)]
    return str(int(value)) if whole else f"{value:g}"


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
    label = f"smoothed (EMA {cv.smoothing:g})" if cv.smoothing else "as averaged (short curve)"
    right.plot(smoothed_epochs, cv.smoothed, "-", label=label)
    if cv.best_epoch is not None:
        right.axvline(cv.best_epoch, color="k", ls="--", lw=1, label=f"best epoch {cv.best_epoch}")
    if cv.smoothing:
        skipped = f", first {cv.skip_first} epochs left out" if cv.skip_first else ""
        right.set_title(f"smoothed{skipped}")
    else:
        short = len(raw) < LONG_CURVE
        right.set_title(f"under {LONG_CURVE} epochs: read unsmoothed" if short else "unsmoothed")
    left.set_ylabel(train_key if train_key in cv.curves else cv.monitor)  # both curves drawn
    right.set_ylabel(cv.monitor)
    for ax in (left, right):
        _epoch_axis(ax)
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
        _epoch_axis(ax)
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, target)


def optimization_history(
    points: list[tuple[int, float]], maximize: bool, objective: str, target: Path
) -> None:
    """A sweep's objective per trial and the best so far; ``points`` are (trial, value) with
    the trial numbered as its ``trial-NNNN`` folder."""
    trials = [trial for trial, _ in points]
    values = [value for _, value in points]
    best = list(np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values))
    fig = _figure(6.4, 4.0)
    ax = fig.subplots()
    ax.plot(trials, values, "o", ms=5, alpha=0.7, label=objective)
    ax.step(trials, best, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial (its trial-NNNN folder)")
    ax.set_ylabel(objective)
    ax.set_title(f"Optimization history ({'higher' if maximize else 'lower'} is better)")
    if len(trials) <= 20:
        ax.set_xticks(trials)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, target)
