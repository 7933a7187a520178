"""Data from the user's own files: CSV tables and NumPy ``.npz`` archives."""

from __future__ import annotations

import codecs
import csv
import zipfile
from pathlib import Path
from typing import Any
from typing import Literal

import numpy as np
from pydantic import Field
from pydantic import field_validator

from dlrun.config.base import FilePath
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import DatasetConfig
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.base import SplitConfig
from dlrun.data.base import existing_file
from dlrun.data.base import split_off_test
from dlrun.errors import ConfigIssue
from dlrun.errors import DataError
from dlrun.preprocess.categorical import category_codes

Column = str | int
MISSING_MARKERS = ("", "?", "NA", "NaN", "nan")


def read_npz_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive of plain (not object) arrays. A file that is not a
    zip archive at all is named as such: numpy would answer that it holds pickled data."""
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path} is not an .npz archive (a zip file of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as an .npz archive: {exc}") from None


class CsvConfig(SplitConfig):
    path: FilePath
    target: Column | None = Field(default=None, description="the target column; leave it out "
                                  "for a task that reads no targets (autoencoder, vae)")  # fmt: skip
    features: list[Column] | None = None
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    header: bool = True
    missing_values: list[str] = list(MISSING_MARKERS)
    missing: Literal["error", "drop", "mean", "median", "constant"] = "error"
    missing_target: Literal["error", "drop"] = "error"
    categorical: list[Column] | Literal["auto"] | None = Field(
        default=None, description="text-valued feature columns to encode, or auto (every one)"
    )
    categorical_encoding: Literal["one_hot", "ordinal"] = "one_hot"
    fill_value: float = 0.0
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"unknown text encoding '{value}' (for example utf-8, latin-1, cp1252)"
            ) from None
        return value


def read_table(
    path: str, delimiter: str, header: bool, encoding: str = "utf-8"
) -> tuple[list[str], list[list[str]]]:
    """Column names (``col0``... without a header) and the rows as strings."""
    opened = existing_file(path, "CSV")
    # utf-8-sig also drops the byte-order mark some spreadsheet programs write first
    text_encoding = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    try:
        with opened.open(newline="", encoding=text_encoding) as handle:
            rows = [row for row in csv.reader(handle, delimiter=delimiter) if row]
    except UnicodeDecodeError:
        raise DataError(_decoding_error(path, opened.read_bytes(), encoding)) from None
    if not rows:
        raise DataError(f"CSV file is empty: {path}")
    names = (
        [name.strip() for name in rows[0]] if header else [f"col{i}" for i in range(len(rows[0]))]
    )
    body = rows[1:] if header else rows
    if not body:
        raise DataError(f"{path}: no data rows, only the header line ({','.join(names)})")
    for number, row in enumerate(body, start=2 if header else 1):
        if len(row) != len(names):
            raise DataError(f"{path}, line {number}: {len(row)} fields, expected {len(names)}")
    return names, body


def _decoding_error(path: str, raw: bytes, encoding: str) -> str:
    """Where a file stops being ``encoding`` text, and the setting that fixes it; a file of
    binary data (NUL bytes: an archive, an .npz, an image) is no text in any encoding."""
    if b"\0" in raw[:4096]:
        return (f"{path} holds binary data, not CSV text (a zip, gzip or .npz file?); give the "
                "CSV itself, or the dataset that reads this format")  # fmt: skip
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return (
            f"{path}, line {line}: not valid {encoding} text (byte 0x{raw[exc.start]:02x}); "
            "set data.encoding to the file's encoding, for example latin-1"
        )
    return f"{path}: not valid {encoding} text; set data.encoding to the file's encoding"


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
        bad = [v for v in stripped[present] if not is_number(v)]
        raise DataError(
            f"{path}: column '{name}' is not numeric ({len(bad)} of {len(stripped)} values are "
            f"not numbers, first '{bad[0]}'); fix them, list such markers in "
            "data.missing_values, encode the column with data.categorical (a list of columns, "
            "or auto) or leave it out with data.features"
        ) from None
    return out


def _number_name(value: float, whole: bool) -> str:
    """A numeric class label as its name: ``3`` rather than ``3.0`` for whole numbers."""
    return str(int(value)) if whole else str(value)


def _category_listing(name: str, vocabulary: list[str], shown: int = 8) -> str:
    """``sex (2 values: female, male)``: the encoded features a report names."""
    values = ", ".join(vocabulary[:shown]) + (", ..." if len(vocabulary) > shown else "")
    return f"{name} ({len(vocabulary)} values: {values})"


def _numeric_column(values: np.ndarray, missing: list[str]) -> bool:
    cells = np.char.strip(values.astype(str))
    return all(is_number(cell) for cell in cells if cell not in missing)


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@DATASETS.register("csv")
class CsvSource(DataSource):
    """A CSV table: one target column (none for a task that reads no targets), features as
    listed or all other columns."""

    Config = CsvConfig
    config: CsvConfig

    @classmethod
    def check_config(cls, config: DatasetConfig, reads_targets: bool) -> list[ConfigIssue]:
        assert isinstance(config, CsvConfig)
        if config.target is None and reads_targets:
            return [ConfigIssue("data.target", "the task learns targets: set it to the column "
                                "that holds them (only autoencoder and vae need none)")]  # fmt: skip
        return []

    def load(self, context: LoadContext) -> LoadedData:
        cfg = self.config
        names, rows = read_table(cfg.path, cfg.delimiter, cfg.header, cfg.encoding)
        table = np.array(rows, dtype=object)
        target = None if cfg.target is None else _column_index(names, cfg.target, cfg.path)
        if target is not None:
            table = self._rows_with_targets(table, target, names[target])
        columns = (
            [_column_index(names, c, cfg.path) for c in cfg.features]
            if cfg.features is not None
            else [i for i in range(len(names)) if i != target]
        )
        vocabularies = self._vocabularies(table, names, columns)
        x = np.stack(
            [
                category_codes(table[:, i], vocabularies[i], cfg.missing_values)
                if i in vocabularies
                else to_numeric(table[:, i], cfg.missing_values, names[i], cfg.path)
                for i in columns
            ],
            axis=1,
        )
        self._refuse_too_large(x, [names[i] for i in columns])
        y, class_names = (None, None) if target is None else (
            self._targets(table[:, target], names[target], context)
        )  # fmt: skip
        x, y, steps = self._handle_missing(x, y)
        description = f"{cfg.path}: {len(x)} rows, {len(columns)} features" + (
            "" if target is None else f", target '{names[target]}'"
        )
        if vocabularies:
            steps = [self._encoding_step(columns, vocabularies), *steps]
            coded = "; ".join(_category_listing(names[i], v) for i, v in vocabularies.items())
            description += f"; {cfg.categorical_encoding} encoded from the training rows: {coded}"
        train, test = split_off_test(x.astype(np.float32), y, cfg, context)
        return LoadedData(
            train, test, description, [names[i] for i in columns], class_names, steps
        )

    def _targets(
        self, column: np.ndarray, name: str, context: LoadContext
    ) -> tuple[np.ndarray, list[str] | None]:
        """Numbers for regression; for classification, labels 0..K-1 with the class names.

        Labels that already are 0..K-1 stay as they are; any others (1/2/3, "yes"/"no", 0/5)
        are encoded in sorted order (numeric order for numbers) and keep their names.
        """
        values = np.char.strip(column.astype(str))
        if not context.class_labels:
            return to_numeric(values, [], name, self.config.path).astype(np.float32), None
        if all(is_number(v) for v in values):
            numbers = values.astype(np.float64)
            classes, labels = np.unique(numbers, return_inverse=True)
            whole = bool(np.all(classes == np.round(classes)))
            names = [_number_name(c, whole) for c in classes]
        else:
            classes, labels = np.unique(values, return_inverse=True)
            names = [str(c) for c in classes]
        limit = context.max_classes
        if limit is not None and len(names) > limit:  # before any split counts them
            shown = ", ".join(repr(n) for n in names[:6]) + (", ..." if len(names) > 6 else "")
            raise DataError(
                f"{self.config.path}: the task takes {limit} classes, but the target column "
                f"'{name}' holds {len(names)} values ({shown}); set data.target to the column "
                "of classes, or use task: multiclass"
            )
        return labels.astype(np.int64), names

    def _vocabularies(
        self, table: np.ndarray, names: list[str], columns: list[int]
    ) -> dict[int, list[str]]:
        """Each categorical feature column's distinct values (sorted), by column index."""
        cfg = self.config
        if cfg.categorical is None:
            return {}
        if cfg.categorical == "auto":
            chosen = [i for i in columns if not _numeric_column(table[:, i], cfg.missing_values)]
        else:
            chosen = [_column_index(names, c, cfg.path) for c in cfg.categorical]
            outside = [names[i] for i in chosen if i not in columns]
            if outside:
                raise DataError(
                    f"{cfg.path}: categorical column(s) {', '.join(outside)} are not features"
                )
        vocabularies = {}
        for i in chosen:
            cells = np.char.strip(table[:, i].astype(str))
            vocabularies[i] = sorted(set(cells.tolist()) - set(cfg.missing_values))
        return vocabularies

    def _encoding_step(
        self, columns: list[int], vocabularies: dict[int, list[str]]
    ) -> dict[str, Any]:
        """The implied step that encodes the coded columns (fitted on training rows only)."""
        coded = [position for position, i in enumerate(columns) if i in vocabularies]
        return {"categorical": {"columns": coded,
                                "categories": [vocabularies[i] for i in columns if i in vocabularies],
                                "encoding": self.config.categorical_encoding}}  # fmt: skip

    def _rows_with_targets(self, table: np.ndarray, target: int, name: str) -> np.ndarray:
        """The rows that have a target value; rows without one are an error unless dropped."""
        cfg = self.config
        missing = np.isin(np.char.strip(table[:, target].astype(str)), cfg.missing_values)
        if not missing.any():
            return table
        if missing.all():
            raise DataError(f"{cfg.path}: none of the {len(table)} rows has a value in the "
                            f"target column '{name}'; is data.target the right column?")  # fmt: skip
        if cfg.missing_target == "drop":
            return table[~missing]
        first = int(np.argmax(missing)) + (2 if cfg.header else 1)
        raise DataError(
            f"{cfg.path}: {int(missing.sum())} rows have no value in the target column '{name}' "
            f"(first on line {first}); fix them or set data.missing_target: drop"
        )

    def _refuse_too_large(self, x: np.ndarray, names: list[str]) -> None:
        """Values float32 cannot hold (inf, or beyond about 3.4e38) by their line in the file;
        the check when the data is loaded finds them too, but by their row after the split."""
        cfg = self.config
        with np.errstate(invalid="ignore"):
            too_large = np.abs(x) > np.finfo(np.float32).max
        rows = np.flatnonzero(too_large.any(axis=1))
        if not len(rows):
            return
        column = int(np.argmax(too_large[rows[0]]))
        line = int(rows[0]) + (2 if cfg.header else 1)
        raise DataError(
            f"{cfg.path}: {len(rows)} row{'s hold' if len(rows) > 1 else ' holds'} values "
            f"float32 cannot hold (first on line {line}, column '{names[column]}': "
            f"{x[rows[0], column]:g}); fix or drop them"
        )

    def _handle_missing(
        self, x: np.ndarray, y: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, list[dict[str, Any]]]:
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
            return x[~missing_rows], None if y is None else y[~missing_rows], []
        # Fill values must come from training rows only, so imputing is a preprocessing step.
        params: dict[str, Any] = {"strategy": cfg.missing}
        if cfg.missing == "constant":
            params["fill_value"] = cfg.fill_value
        return x, y, [{"impute": params}]


class NpzConfig(SplitConfig):
    path: FilePath
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
        arrays = read_npz_arrays(existing_file(cfg.path, "npz"))
        split_keys = [
            f"{cfg.x_key}_train",
            f"{cfg.y_key}_train",
            f"{cfg.x_key}_test",
            f"{cfg.y_key}_test",
        ]
        # a task that reads no targets (an autoencoder) takes an archive of inputs only
        needed = [0, 1, 2, 3] if context.reads_targets else [0, 2]
        if all(split_keys[i] in arrays for i in needed):
            x_tr, y_tr, x_te, y_te = (arrays.get(key) for key in split_keys)
            assert x_tr is not None and x_te is not None
            description = f"{cfg.path}: {len(x_tr)} train / {len(x_te)} test rows (official split)"
            return LoadedData(Arrays(x_tr, y_tr), Arrays(x_te, y_te), description)
        if split_keys[0] in arrays:  # an official split, incomplete
            missing = [split_keys[i] for i in needed if split_keys[i] not in arrays]
            raise DataError(f"{cfg.path} has '{split_keys[0]}' but no {', '.join(missing)} (it "
                            f"has: {', '.join(arrays)}); set data.x_key / data.y_key")  # fmt: skip
        for key in (cfg.x_key, cfg.y_key) if context.reads_targets else (cfg.x_key,):
            if key not in arrays:
                raise DataError(
                    f"{cfg.path} has no array '{key}' (it has: {', '.join(arrays)}); set "
                    "data.x_key / data.y_key"
                )
        x, y = arrays[cfg.x_key], arrays.get(cfg.y_key)
        if y is not None and len(x) != len(y):
            raise DataError(
                f"{cfg.path}: {len(x)} samples in '{cfg.x_key}' but {len(y)} in '{cfg.y_key}'"
            )
        train, test = split_off_test(x, y, cfg, context)
        return LoadedData(train, test, f"{cfg.path}: {len(x)} rows")
