"""Samples that are windows of one time series, kept as the series and each window's end row.

DLwP 6.3's Jena generator (L6.33) draws, for an end row ``i``, the rows
``i - lookback, i - lookback + step, ..., i - step`` as the inputs and the target column at row
``i + delay`` as the target. Materialised, the Jena windows take 240 times the table (2.7 GB of
training windows for a 23 MB series), so here a window is only its end row:

* :class:`WindowRows` is an integer array of end rows that remembers its series. It splits and
  subsets like any per-sample array; on the device it becomes a strided *view* of the series
  (:meth:`WindowRows.tensor`), so a batch is gathered by indexing the view, rows
  ``ends[:, None] - offsets[None, :]``, and nothing is copied per window.
* :class:`WindowTargets` holds the targets (real numbers, as every consumer of targets expects)
  and, per window, the last input value of the target column: the common-sense forecast.

Windows never reach across a split: ``time_split`` keeps a window in a range only when its
inputs and its target all lie inside it (:func:`samples_in`) and standardises the series with
the statistics of the training range only (:func:`fit_to_training_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from pydantic import Field
from pydantic import model_validator

from dlrun.config.base import StrictModel
from dlrun.data.base import Arrays
from dlrun.data.base import LoadedData
from dlrun.errors import DataError


class WindowConfig(StrictModel):
    """How samples are cut from a series (DLwP L6.34: lookback 1440, step 6, delay 144)."""

    lookback: int = Field(gt=0, description="rows a window reaches back from its end row")
    step: int = Field(default=1, gt=0, description="keep every step-th row (6 = one per hour)")
    delay: int = Field(default=0, ge=0, description="rows after the end row the target lies")
    standardize: bool = Field(
        default=True, description="scale every column by the training range's mean and std"
    )

    @model_validator(mode="after")
    def _step_fits(self) -> WindowConfig:
        if self.step > self.lookback:
            raise ValueError(f"step {self.step} is longer than lookback {self.lookback}")
        return self


@dataclass(frozen=True)
class Series:
    """One table in time order and the window shape cut from it.

    ``scale`` is the target column's standard deviation in its original units (``unit``) once
    the series is standardised, 1.0 before; ``placed`` says ``time_split`` has fitted it.
    """

    values: np.ndarray  # (rows, columns) float32
    lookback: int
    step: int
    delay: int
    target: int  # the target column
    unit: str
    standardize: bool = True
    scale: float = 1.0
    placed: bool = False

    @property
    def offsets(self) -> np.ndarray:
        """Rows before the end row, oldest first: the window's rows are ``end - offsets``."""
        return np.arange(self.lookback, 0, -self.step, dtype=np.int64)

    @property
    def last_offset(self) -> int:
        return int(self.offsets[-1])


class WindowRows(np.ndarray):
    """Windows of one :class:`Series`, stored as their end rows (int64, one per sample)."""

    series: Series

    def __new__(cls, ends: np.ndarray, series: Series) -> WindowRows:
        out = np.asarray(ends, dtype=np.int64).reshape(-1).view(cls)
        out.series = series
        return out

    def __array_finalize__(self, obj: Any) -> None:
        self.series = getattr(obj, "series", None)  # type: ignore[assignment]

    def __reduce__(self) -> Any:  # DataLoader workers may pickle the raw arrays
        return WindowRows, (self.ends, self.series)

    @property
    def ends(self) -> np.ndarray:
        return self.view(np.ndarray)

    def astype(self, *args: Any, **kwargs: Any) -> Any:
        raise DataError(
            "windows of a time series are standardised by time_split on the training range; "
            "remove the preprocess steps on x (the windows)"
        )

    @property
    def nbytes(self) -> int:
        """The end rows and the part of the series the windows read (what the device holds)."""
        if not len(self):
            return 0
        first, last = self._span()
        return int(self.ends.nbytes + (last - first + 1) * self.series.values[0].nbytes)

    def input_rows(self) -> np.ndarray:
        """``(windows, rows per window)``: the series rows each window reads, oldest first."""
        return self.ends[:, None] - self.series.offsets[None, :]

    def target_rows(self) -> np.ndarray:
        return self.ends + self.series.delay

    def dense(self) -> np.ndarray:
        """The windows themselves, ``(windows, rows per window, columns)`` float32."""
        return self.series.values[self.input_rows()]

    def targets(self) -> WindowTargets:
        s = self.series
        values = s.values[self.target_rows(), s.target]
        return WindowTargets(values, s.values[self.ends - s.last_offset, s.target], s)

    def within(self, start: int, stop: int) -> np.ndarray:
        """Indices of the windows whose inputs and target all lie in rows ``[start, stop)``."""
        s = self.series
        first = np.searchsorted(self.ends, start + s.lookback, side="left")
        last = np.searchsorted(self.ends, stop - s.delay, side="left")
        return np.arange(first, max(first, last))

    def tensor(self) -> torch.Tensor:
        """The windows as a tensor that shares the series rows: evenly spaced end rows (every
        split ``time_split`` makes) give a strided view, so gathering a batch copies only the
        batch; other end rows (a shuffled streamed batch) are copied out."""
        s = self.series
        if not s.placed:
            raise DataError(
                "windows of a time series need evaluation.protocol: time_split, which keeps "
                "each window inside its own range and standardises on the training range"
            )
        ends, columns, width = self.ends, s.values.shape[1], len(s.offsets)
        spacing = int(ends[1] - ends[0]) if len(ends) > 1 else 1
        if not len(ends) or spacing <= 0 or np.any(np.diff(ends) != spacing):
            return torch.from_numpy(np.ascontiguousarray(self.dense()))
        first, last = self._span()
        rows = torch.from_numpy(np.ascontiguousarray(s.values[first : last + 1]))
        return rows.as_strided(
            (len(ends), width, columns), (spacing * columns, s.step * columns, 1)
        )

    def _span(self) -> tuple[int, int]:
        """The first and last series rows the windows read."""
        return int(self.ends.min()) - self.series.lookback, int(self.ends.max()) - (
            self.series.last_offset
        )


class WindowTargets(np.ndarray):
    """Each window's target (float32), with ``current``, the value of the target column at the
    window's last input row: DLwP 6.3.3's forecast "the temperature 24 hours from now equals
    the temperature right now". Indexing keeps ``current`` aligned; other operations drop it."""

    current: np.ndarray | None
    series: Series | None

    def __new__(
        cls, values: np.ndarray, current: np.ndarray | None, series: Series | None
    ) -> WindowTargets:
        out = np.asarray(values, dtype=np.float32).view(cls)
        out.current = None if current is None else np.asarray(current, dtype=np.float32)
        out.series = series
        return out

    def __array_finalize__(self, obj: Any) -> None:
        self.current = None
        self.series = getattr(obj, "series", None)

    def __getitem__(self, index: Any) -> Any:
        out = super().__getitem__(index)
        if isinstance(out, WindowTargets) and self.current is not None:
            out.current = None if isinstance(index, tuple) else self.current[index]
        return out

    def __reduce__(self) -> Any:
        return WindowTargets, (self.view(np.ndarray), self.current, self.series)


def windowed(values: np.ndarray, target: int, unit: str, config: WindowConfig) -> Arrays:
    """Every window that fits in the table: ``x`` the windows, ``y`` their targets."""
    series = Series(np.ascontiguousarray(values, dtype=np.float32), config.lookback,
                    config.step, config.delay, target, unit, config.standardize)  # fmt: skip
    ends = np.arange(config.lookback, len(values) - config.delay, dtype=np.int64)
    if not len(ends):
        raise DataError(
            f"{len(values)} rows hold no window of lookback {config.lookback} and delay "
            f"{config.delay}"
        )
    windows = WindowRows(ends, series)
    return Arrays(windows, windows.targets())


def windows_of(arrays: Arrays) -> WindowRows | None:
    return next((a for a in arrays.fields.values() if isinstance(a, WindowRows)), None)


def time_rows(arrays: Arrays) -> int:
    """The time steps the samples come from: the series rows for windows, else the samples."""
    windows = windows_of(arrays)
    return len(arrays) if windows is None else len(windows.series.values)


def samples_in(arrays: Arrays, rows: np.ndarray) -> np.ndarray:
    """The samples lying wholly in the consecutive ``rows``: those rows for row samples; the
    windows whose inputs and target all fall inside them (boundary windows are dropped)."""
    windows = windows_of(arrays)
    if windows is None:
        return rows
    start, stop = int(rows[0]), int(rows[-1]) + 1
    inside = windows.within(start, stop)
    if not len(inside):
        s = windows.series
        raise DataError(
            f"time_split range [{start}, {stop}) holds no whole window: one needs "
            f"lookback {s.lookback} + delay {s.delay} + 1 rows"
        )
    return inside


def fit_to_training_rows(data: LoadedData, rows: np.ndarray) -> LoadedData:
    """Windowed data standardised with the mean and std of the training ``rows`` only (every
    column, so inputs and targets share units), and marked as placed by a time split."""
    windows = windows_of(data.train)
    if windows is None:
        return data
    series = windows.series
    placed = replace(series, placed=True)
    if series.standardize:
        training = series.values[int(rows[0]) : int(rows[-1]) + 1].astype(np.float64)
        mean, std = training.mean(axis=0), training.std(axis=0)
        std = np.where(std > 0, std, 1.0)  # a constant column stays finite
        values = ((series.values - mean) / std).astype(np.float32)
        placed = replace(placed, values=values, scale=float(std[series.target]))
    test = data.test_split._arrays if data.test_split is not None else None
    return data.with_splits(
        _on_series(data.train, placed), None if test is None else _on_series(test, placed)
    )


def _on_series(arrays: Arrays, series: Series) -> Arrays:
    windows = windows_of(arrays)
    if windows is None:
        return arrays
    moved = WindowRows(windows.ends, series)
    names = [name for name, a in arrays.fields.items() if isinstance(a, WindowRows)]
    return arrays.replace(**dict.fromkeys(names, moved), y=moved.targets())


def original_units(mae: float, targets: np.ndarray) -> dict[str, float]:
    """``{"mae in <unit>": ...}`` for targets a time split standardised (windows of a series):
    DLwP 6.3.3's "0.29 x temperature_std", i.e. 2.57 degrees C; empty for other targets."""
    series = targets.series if isinstance(targets, WindowTargets) else None
    if series is None or not series.standardize:
        return {}
    return {f"mae in {series.unit}": mae * series.scale}
