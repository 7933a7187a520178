"""What a learning-curve figure marks: the best epoch, the restored epoch and the smoothing.

These are plain data computed once from the config, the recorded rows and the epoch the fit
restored (``TrainState.restored_epoch``, recorded by early stopping when it puts weights back),
so the figure (:func:`dlrun.reporting.plots.learning_curves`) and report.md state the same epochs.
The figure process (:mod:`dlrun.reporting.figure_worker`) loads this module without torch, so
what :func:`curve_marks` needs from the config's registries is imported when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from dlrun.evaluation.aggregate import best_epoch
from dlrun.evaluation.aggregate import curve_reading

if TYPE_CHECKING:
    from dlrun.config.schema import ExperimentConfig

MARKERS_UP_TO = 30  # epochs; above this a marker per point only hides the line


@dataclass(frozen=True)
class CurveMarks:
    """Epochs to mark on one directory's learning curves (``None``: nothing to mark).

    Attributes:
        monitor: the protocol's monitor (``val_loss`` by default) that picks the best epoch.
        best_epoch: the epoch where ``monitor`` was best, as results.json reports it.
        best_value: the monitor's value there.
        restored_epoch: the epoch whose weights early stopping put back (``restore_best``).
        smoothing: the EMA factor the validation curves are drawn with, as DLwP 3.6.4 smooths
            its validation MAE: ``evaluation.curves.smoothing`` for curves of ``LONG_CURVE``
            epochs or more, else 0 (raw only). Training curves, averages over a whole epoch,
            are drawn raw.
        skip_first: epochs left out of the smoothed line (``evaluation.curves.skip_first``):
            the first epochs' large values would drag the average for many epochs after.
        final: the rows are a final retrain's (a K-fold run's top directory): no validation.
    """

    monitor: str | None = None
    best_epoch: int | None = None
    best_value: float | None = None
    restored_epoch: int | None = None
    smoothing: float = 0.0
    skip_first: int = 0
    final: bool = False


def shown_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The protocol's training (phase ``fit``), or the final retrain when that is all there is
    (a K-fold run's top directory)."""
    return [row for row in rows if row.get("phase", "fit") == "fit"] or rows


def curve_marks(
    cfg: ExperimentConfig, rows: list[dict[str, Any]], restored_epoch: int | None = None
) -> CurveMarks:
    """The marks for ``rows`` (one directory's metrics rows) trained under ``cfg``.

    ``restored_epoch`` is the fit's ``TrainState.restored_epoch``: the epoch whose weights
    early stopping put back, as it recorded when it did so.
    """
    from dlrun.evaluation.protocols import PROTOCOLS
    from dlrun.training.metrics import higher_is_better

    shown = shown_rows(rows)
    final = any(row.get("phase", "fit") != "fit" for row in shown)
    curves = PROTOCOLS.get(cfg.evaluation.protocol)(cfg.evaluation).curves
    validated = bool(shown) and any(key.startswith("val_") for key in shown[0])
    epochs = len(shown) if validated else 0
    smoothing, skip = curve_reading(float(curves.smoothing), curves.skip_first, epochs)
    monitor = cfg.evaluation.monitor
    if not shown or any(monitor not in row for row in shown):
        return CurveMarks(smoothing=smoothing, skip_first=skip, final=final)
    index, value = best_epoch([float(r[monitor]) for r in shown], higher_is_better(monitor))
    best = None if index is None else int(shown[index - 1]["epoch"])
    restored = None if final else restored_epoch  # a final retrain has no callbacks
    return CurveMarks(monitor, best, value, restored, smoothing, skip, final)
