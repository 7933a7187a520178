"""Learning curves that read at a glance: a grid of panels, the best and restored epochs marked,
markers only on short curves, and DLwP's smoothing on long ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from typing import cast

import numpy as np
import pytest
from PIL import Image

from dlrun.config.load import config_from_data
from dlrun.evaluation.aggregate import LONG_CURVE
from dlrun.evaluation.aggregate import smooth
from dlrun.reporting import plots
from dlrun.reporting.curves import CurveMarks
from dlrun.reporting.curves import curve_marks
from dlrun.training.callbacks import CALLBACKS
from dlrun.training.callbacks import CallbackList
from dlrun.training.state import TrainState
from tests.conftest import tiny_config

EARLY = {"early_stopping": {"monitor": "val_loss", "patience": 2, "restore_best": True}}


def _rows(val_losses: list[float], phase: str = "fit") -> list[dict[str, Any]]:
    return [
        {"epoch": i + 1, "loss": 1.0 / (i + 1), "accuracy": 0.5, "val_loss": v,
         "val_accuracy": 0.5, "lr": 0.01, "phase": phase}
        for i, v in enumerate(val_losses)
    ]  # fmt: skip


def _cfg(callbacks: list[dict[str, Any]] | None = None, **evaluation: Any) -> Any:
    base = tiny_config()
    train = {**base["train"], "callbacks": callbacks or []}
    return config_from_data(tiny_config(train=train, evaluation=evaluation or base["evaluation"]))


class _Weights:
    """The two task methods early stopping calls to keep and put back weights."""

    def model_state(self) -> dict[str, Any]:
        return {}

    def load_model_state(self, state: dict[str, Any]) -> None:
        pass


def _fit_marks(cfg: Any, rows: list[dict[str, Any]]) -> Any:
    """The marks of a fit whose epochs logged ``rows``: the configured callbacks see each row as
    the training loop gives it to them, and ``curve_marks`` reads the epoch they restored."""
    entries = (entry.selected() for entry in cfg.train.callbacks)
    chain = CallbackList([CALLBACKS.get(name)(config) for name, config in entries])
    state = TrainState(cast(Any, _Weights()), epochs=len(rows), batches_per_epoch=0)
    chain.on_fit_start(state)
    for row in rows:
        if state.should_stop:
            break
        state.epoch = int(row["epoch"])
        chain.on_epoch_end(state, row)
    chain.on_fit_end(state)
    return curve_marks(cfg, rows, state.restored_epoch)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The matplotlib figures the plots module saves, kept for inspection."""
    figures: list[Any] = []
    save = plots._save

    def keep(fig: Any, target: Path) -> None:
        figures.append(fig)
        save(fig, target)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def test_best_epoch_follows_the_protocol_monitor_and_restore_is_what_early_stopping_did() -> None:
    rows = _rows([0.9, 0.5, 0.7, 0.8])  # best at 2, then two epochs without improvement
    marks = _fit_marks(_cfg([EARLY]), rows)
    assert (marks.monitor, marks.best_epoch, marks.best_value) == ("val_loss", 2, 0.5)
    assert marks.restored_epoch == 2 and marks.smoothing == 0.0  # short curve: raw
    assert _fit_marks(_cfg(), rows).restored_epoch is None  # nothing restores without it
    assert curve_marks(_cfg([EARLY]), rows).restored_epoch is None  # nor when none was recorded


def test_restore_if_stopped_restores_only_when_early_stopping_stopped_the_fit() -> None:
    only_if_stopped = {"early_stopping": {**EARLY["early_stopping"], "patience": 5,
                                          "restore_if": "stopped"}}  # fmt: skip
    assert _fit_marks(_cfg([only_if_stopped]), _rows([0.9, 0.5, 0.7])).restored_epoch is None
    stopped = _rows([0.9, 0.5, 0.7, 0.8, 0.8, 0.8, 0.8])
    assert _fit_marks(_cfg([only_if_stopped]), stopped).restored_epoch == 2


def test_restored_epoch_differs_from_best_when_early_stopping_watches_another_quantity() -> None:
    by_accuracy = {"early_stopping": {"monitor": "val_accuracy", "patience": 9,
                                      "restore_best": True, "min_delta": 0.05}}  # fmt: skip
    rows = _rows([0.9, 0.5, 0.7])
    for row, accuracy in zip(rows, [0.50, 0.54, 0.53], strict=True):
        row["val_accuracy"] = accuracy  # epoch 2 is within min_delta of epoch 1: no improvement
    marks = _fit_marks(_cfg([by_accuracy]), rows)
    assert (marks.best_epoch, marks.restored_epoch) == (2, 1)


def test_a_final_retrain_marks_no_restore_and_no_best_without_validation() -> None:
    final = [{k: v for k, v in row.items() if not k.startswith("val_")}
             for row in _rows([0.9, 0.5], phase="final")]  # fmt: skip
    assert curve_marks(_cfg([EARLY]), final, restored_epoch=2) == CurveMarks(final=True)
    long_final = [{"epoch": i, "loss": 1.0, "phase": "final"} for i in range(1, 2 * LONG_CURVE)]
    assert curve_marks(_cfg(), long_final).smoothing == 0.0  # a training curve is drawn raw


def test_smoothing_comes_from_the_protocol_for_long_curves_only() -> None:
    long = _rows(list(np.linspace(1, 0.1, LONG_CURVE)))
    assert curve_marks(_cfg(), long).smoothing == pytest.approx(0.9)  # holdout: DLwP default
    assert curve_marks(_cfg(), long[:-1]).smoothing == 0.0
    kfold: dict[str, Any] = {"protocol": "kfold", "k": 2, "curves": {"smoothing": 0.0}}
    assert curve_marks(_cfg(**kfold), long).smoothing == 0.0  # switched off in the config
    kfold["curves"] = {"smoothing": 0.6, "skip_first": 10}
    marks = curve_marks(_cfg(**kfold), long)
    assert marks.smoothing == pytest.approx(0.6) and marks.skip_first == 10


def test_panels_form_a_grid_not_a_strip() -> None:
    assert [plots.grid_shape(n) for n in (1, 2, 3, 4, 5, 7)] == [
        (1, 1), (1, 2), (2, 2), (2, 2), (2, 3), (3, 3),
    ]  # fmt: skip


def test_short_curves_have_markers_and_the_best_epoch_marked_in_every_panel(
    tmp_path: Path, captured: list[Any]
) -> None:
    rows = _rows([0.9, 0.5, 0.7, 0.8])
    for row in rows:
        row["balanced_accuracy"] = row["val_balanced_accuracy"] = 0.5
    marks = _fit_marks(_cfg([EARLY]), rows)
    plots.learning_curves(rows, marks, tmp_path / "curves.png")
    width, height = Image.open(tmp_path / "curves.png").size
    assert height > 0.55 * width  # 2 x 2, where the old strip was 2198 x 397
    (fig,) = captured
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert [ax.get_title() for ax in panels] == ["loss", "accuracy", "balanced_accuracy"]
    for ax in panels:
        curves = [
            line for line in ax.get_lines() if line.get_label() in ("training", "validation")
        ]
        assert len(curves) == 2 and all(line.get_marker() == "o" for line in curves)
        best = [line for line in ax.get_lines() if str(line.get_label()).startswith("best")]
        assert list(best[0].get_xdata()) == [2, 2]
        ticks = [tick for tick in ax.get_xticks() if 1 <= tick <= 4]
        assert ticks == [1, 2, 3, 4]  # whole epochs only, not 1.5 or 2.5
    legend = [ax for ax in fig.axes if ax.get_legend() is not None]
    assert len(legend) == 1 and not legend[0].axison  # one legend, in the spare cell
    texts = [t.get_text() for t in legend[0].get_legend().get_texts()]
    assert "best val_loss 0.5: epoch 2, weights restored" in texts


def test_long_curves_drop_markers_and_draw_the_moving_average(
    tmp_path: Path, captured: list[Any]
) -> None:
    rng = np.random.default_rng(0)
    rows = _rows(list(1 + rng.normal(0, 0.1, 2 * LONG_CURVE)))
    marks = CurveMarks("val_loss", 7, rows[6]["val_loss"], 40, 0.9, skip_first=10)
    plots.learning_curves(rows, marks, tmp_path / "curves.png")
    (fig,) = captured
    loss = fig.axes[0]
    lines = {str(line.get_label()): line for line in loss.get_lines()}
    smoothed = lines["validation, EMA 0.9"]
    assert smoothed.get_marker() in ("None", "", None)
    assert list(smoothed.get_xdata()) == list(range(11, 2 * LONG_CURVE + 1))  # DLwP's skip
    expected = smooth([r["val_loss"] for r in rows[10:]], 0.9)
    assert list(smoothed.get_ydata()) == pytest.approx(expected)
    assert lines["validation"].get_alpha() == 0.45  # the raw curve stays visible, faint
    assert lines["training"].get_alpha() is None  # an epoch's average: drawn raw
    assert lines["training"].get_marker() in ("None", "", None)
    assert list(lines["weights restored: epoch 40"].get_xdata()) == [40, 40]


@pytest.mark.parametrize(
    ("skip_first", "title"), [(0, "smoothed"), (10, "smoothed, first 10 epochs left out")]
)
def test_cv_curves_name_what_each_panel_draws(
    tmp_path: Path, captured: list[Any], skip_first: int, title: str
) -> None:
    """The left panel draws training and validation MAE, so its axis is "mae", not
    "val_mae"; a curve with no epochs skipped does not say "first 0 epochs left out"."""
    from dlrun.evaluation.aggregate import CrossValidation

    curve = list(np.linspace(3.0, 2.0, 2 * LONG_CURVE))
    smoothed = smooth(curve[skip_first:], 0.9)
    cv = CrossValidation({}, {"val_mae": curve, "mae": curve}, "val_mae", smoothed,
                         skip_first, len(curve), smoothed[-1], 0.9)  # fmt: skip
    plots.cv_curves(cv, "boston", tmp_path / "cv.png")
    (fig,) = captured
    left, right = fig.axes
    assert (left.get_ylabel(), right.get_ylabel()) == ("mae", "val_mae")
    assert right.get_title() == title
