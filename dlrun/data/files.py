"""Data from the user's own files: CSV tables and NumPy ``.npz`` archives."""

from __future__ import annotations

import csv
import zipfile
from typing import Any
from typing import Literal

import numpy as np
from pydantic import Field

from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.base import SplitConfig
from dlrun.data.base import existing_file
from dlrun.data.base import split_off_test
from dlrun.errors import DataError

Column = str | int
MISSING_MARKERS = ("", "?", "NA", "NaN", "nan")


class CsvConfig(SplitConfig):
    path: str
    target: Column
    features: list[Column] | None = None
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    header: bool = True
    missing_values: list[str] = list(MISSING_MARKERS)
    missing: Literal["error", "drop", "mean", "median", "constant"] = "error"
    fill_value: float = 0.0


def read_table(path: str, delimiter: str, header: bool) -> tuple[list[str], list[list[str]]]:
    """Column names (``col0``... without a header) and the rows as strings."""
    with existing_file(path, "CSV").open(newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle, delimiter=delimiter) if row]
    if not rows:
        raise DataError(f"CSV file is empty: {path}")
    names = (
        [name.strip() for name in rows[0]] if header else [f"col{i}" for i in range(len(rows[0]))]
    )
    body = rows[1:] if header else rows
    for number, row in enumerate(body, start=2 if header else 1):
        if len(row) != len(names):
            raise DataError(f"{path}, line {number}: {len(row)} fields, expected {len(names)}")
    return names, body


def _column_index(names: list[str], column: Column, path: str) -> int:
    if isinstance(column, int):
        if not -len(names) <= column < len(names):
            raise DataError(f"{path}: column {column} does not exist ({len(names)} columns)")
        return column % len(names)
    if column not in names:
        raise DataError(f"{path}: no column named '{column}'; columns: {', '.join(names)}")
    return names.index(column)


def to_numeric(values: np.ndarray, missing: list[str], name: str, path: str) -> np.ndarray:
    """Parse one string column to float, with missing markers as NaN."""
    stripped = np.char.strip(values.astype(str))
    out = np.full(len(stripped), np.nan)
    present = ~np.isin(stripped, missing)
    try:
        out[present] = stripped[present].astype(np.float64)
    except ValueError:
        bad = next(v for v in stripped[present] if not _is_float(v))
        raise DataError(
            f"{path}: column '{name}' is not numeric (value '{bad}'); leave it out with "
            "data.features or encode it first"
        ) from None
    return out


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@DATASETS.register("csv")
class CsvSource(DataSource):
    """A CSV table: one target column, features as listed or all other columns."""

    Config = CsvConfig
    config: CsvConfig

    def load(self, context: LoadContext) -> LoadedData:
        cfg = self.config
        names, rows = read_table(cfg.path, cfg.delimiter, cfg.header)
        table = np.array(rows, dtype=object)
        target = _column_index(names, cfg.target, cfg.path)
        columns = (
            [_column_index(names, c, cfg.path) for c in cfg.features]
            if cfg.features is not None
            else [i for i in range(len(names)) if i != target]
        )
        x = np.stack(
            [to_numeric(table[:, i], cfg.missing_values, names[i], cfg.path) for i in columns],
            axis=1,
        )
        y, class_names = self._targets(table[:, target], names[target], context)
        x, y, steps = self._handle_missing(x, y)
        train, test = split_off_test(x.astype(np.float32), y, cfg, context)
        description = (
            f"{cfg.path}: {len(x)} rows, {len(columns)} features, target '{names[target]}'"
        )
        return LoadedData(
            train, test, description, [names[i] for i in columns], class_names, steps
        )

    def _targets(
        self, column: np.ndarray, name: str, context: LoadContext
    ) -> tuple[np.ndarray, list[str] | None]:
        values = np.char.strip(column.astype(str))
        if not context.class_labels:
            return to_numeric(values, [], name, self.config.path).astype(np.float32), None
        if all(_is_float(v) for v in values):
            numbers = values.astype(np.float64)
            if np.all(numbers == np.round(numbers)) and numbers.min() >= 0:
                labels = numbers.astype(np.int64)
                return labels, [str(c) for c in range(int(labels.max()) + 1)]
        classes, labels = np.unique(values, return_inverse=True)
        return labels.astype(np.int64), [str(c) for c in classes]

    def _handle_missing(
        self, x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
        cfg = self.config
        missing_rows = np.isnan(x).any(axis=1)
        if not missing_rows.any():
            return x, y, []
        if cfg.missing == "error":
            first = int(np.argmax(missing_rows)) + (2 if cfg.header else 1)
            raise DataError(
                f"{cfg.path}: {int(missing_rows.sum())} rows have missing values (first on line "
                f"{first}); set data.missing to drop, mean, median or constant"
            )
        if cfg.missing == "drop":
            return x[~missing_rows], y[~missing_rows], []
        # Fill values must come from training rows only, so imputing is a preprocessing step.
        params: dict[str, Any] = {"strategy": cfg.missing}
        if cfg.missing == "constant":
            params["fill_value"] = cfg.fill_value
        return x, y, [{"impute": params}]


class NpzConfig(SplitConfig):
    path: str
    x_key: str = "x"
    y_key: str = "y"


@DATASETS.register("npz")
class NpzSource(DataSource):
    """Arrays from an ``.npz`` archive: ``x``/``y``, or ``x_train``/``y_train``/``x_test``/``y_test``
    for an official split (the key names are configurable)."""

    Config = NpzConfig
    config: NpzConfig

    def load(self, context: LoadContext) -> LoadedData:
        cfg = self.config
        path = existing_file(cfg.path, "npz")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"cannot read {cfg.path} as an .npz archive: {exc}") from None
        split_keys = [
            f"{cfg.x_key}_train",
            f"{cfg.y_key}_train",
            f"{cfg.x_key}_test",
            f"{cfg.y_key}_test",
        ]
        if all(key in arrays for key in split_keys):
            x_tr, y_tr, x_te, y_te = (arrays[key] for key in split_keys)
            description = f"{cfg.path}: {len(x_tr)} train / {len(x_te)} test rows (official split)"
            return LoadedData(Arrays(x_tr, y_tr), Arrays(x_te, y_te), description)
        for key in (cfg.x_key, cfg.y_key):
            if key not in arrays:
                raise DataError(
                    f"{cfg.path} has no array '{key}' (it has: {', '.join(arrays)}); set "
                    "data.x_key / data.y_key"
                )
        x, y = arrays[cfg.x_key], arrays[cfg.y_key]
        if len(x) != len(y):
            raise DataError(
                f"{cfg.path}: {len(x)} samples in '{cfg.x_key}' but {len(y)} in '{cfg.y_key}'"
            )
        train, test = split_off_test(x, y, cfg, context)
        return LoadedData(train, test, f"{cfg.path}: {len(x)} rows")
