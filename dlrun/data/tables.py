"""Book datasets that are small tables: Pima diabetes, UCI heart disease, Jena climate.

Pima and heart are read through the CSV source (same parsing, same missing-value handling);
Jena is the zipped weather CSV of DLwP 6.3, kept in time order for ``time_split``.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field
from pydantic import model_validator

from dlrun.config.base import FilePath
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.base import SplitConfig
from dlrun.data.download import Resource
from dlrun.data.files import CsvConfig
from dlrun.data.files import CsvSource
from dlrun.data.locate import locate
from dlrun.data.windows import WindowConfig
from dlrun.data.windows import windowed
from dlrun.errors import DataError

PIMA_FEATURES = ["Pregnancies", "Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI",
                 "DiabetesPedigreeFunction", "Age"]  # fmt: skip
HEART_FEATURES = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang",
                  "oldpeak", "slope", "ca", "thal"]  # fmt: skip


def has_header(path: Path) -> bool:
    """True when the first field of the first line is not a number."""
    with path.open(encoding="utf-8-sig") as handle:
        first = handle.readline().split(",")[0].strip()
    try:
        float(first)
    except ValueError:
        return True
    return False


class TableConfig(SplitConfig):
    path: FilePath | None = None
    missing: Literal["error", "drop", "mean", "median"] = "mean"


@DATASETS.register("pima")
class Pima(DataSource):
    """768 Pima women, 8 clinical features, diabetes within five years (500 no / 268 yes)."""

    Config = TableConfig
    config: TableConfig
    resources = (
        Resource("pima-indians-diabetes.data.csv",
                 "https://raw.githubusercontent.com/jbrownlee/Datasets/master/"
                 "pima-indians-diabetes.data.csv", None, 23278),
    )  # fmt: skip

    def load(self, context: LoadContext) -> LoadedData:
        path = locate("pima", self.resources[0], self.config.path)
        return _csv_table(path, 8, self.config, context, [*PIMA_FEATURES, "Outcome"],
                          ["no diabetes", "diabetes"])  # fmt: skip


@DATASETS.register("heart")
class Heart(DataSource):
    """303 Cleveland heart-disease patients, 13 features; '?' marks missing values.

    The target is the diagnosis 0-4; ``binarize: true`` turns it into disease yes/no as Deep
    Learning for Beginners ch. 3 does.
    """

    class Config(TableConfig):
        binarize: bool = False

    config: Config
    resources = (
        Resource("processed.cleveland.data",
                 "https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease/"
                 "processed.cleveland.data", None, 18461),
    )  # fmt: skip

    def load(self, context: LoadContext) -> LoadedData:
        binarize = self.config.binarize
        if context.max_classes is not None and context.max_classes < 5 and not binarize:
            raise DataError(f"the heart diagnosis has 5 values (0-4), more than the task's "
                            f"{context.max_classes} classes; set data.binarize: true for disease "
                            "yes/no (as Deep Learning for Beginners ch. 3), or use task: "
                            "multiclass")  # fmt: skip
        path = locate("heart", self.resources[0], self.config.path)
        names = ["no disease", "disease"] if binarize else [str(i) for i in range(5)]
        return _csv_table(path, 13, self.config, context, [*HEART_FEATURES, "num"], names,
                          binarize)  # fmt: skip


def _csv_table(
    path: Path,
    target: int,
    config: TableConfig,
    context: LoadContext,
    columns: list[str],
    classes: list[str],
    binarize: bool = False,
) -> LoadedData:
    """The table at ``path`` under its dataset's ``columns`` names (the files have no header
    line, or another one), the target column ``target`` among them."""
    csv_config = CsvConfig(path=str(path), target=target, header=has_header(path),
                           missing=config.missing, test_fraction=config.test_fraction,
                           stratify=config.stratify)  # fmt: skip
    source = _BinarizedCsv(csv_config) if binarize else CsvSource(csv_config)
    loaded = source.load(context)
    features = columns[:target] + columns[target + 1 :]
    rows = len(loaded.train) + (len(loaded.test_split) if loaded.test_split is not None else 0)
    described = f"{path}: {rows} rows, {len(features)} features, target '{columns[target]}'"
    return loaded.renamed(features, classes, described)


class _BinarizedCsv(CsvSource):
    """The CSV source with every positive label mapped to 1."""

    def _targets(
        self, column: np.ndarray, name: str, context: LoadContext
    ) -> tuple[np.ndarray, list[str] | None]:
        labels, _ = super()._targets(column, name, replace(context, max_classes=None))
        return (labels > 0).astype(np.int64), ["0", "1"]  # two classes, whatever the task


@DATASETS.register("jena_climate")
class JenaClimate(DataSource):
    """Jena weather station 2009-2016: 14 quantities every 10 minutes, 420,551 rows (DLwP 6.3).

    Rows stay in time order; the target is one column (temperature by default) and the features
    are all 14 (or the listed ones). Use it with ``evaluation.protocol: time_split``. With
    ``windows:`` each sample is a window of past rows and the target a later row's value, as
    DLwP's generator (L6.33) draws them (:mod:`dlrun.data.windows`).
    """

    class Config(SplitConfig):
        path: FilePath | None = None
        target: str = "T (degC)"
        features: list[str] | None = None
        test_fraction: float = Field(default=0.0, ge=0, lt=1)
        windows: WindowConfig | None = Field(
            default=None, description="cut windows of past rows (lookback, step, delay)"
        )

        @model_validator(mode="after")
        def _test_range_from_time_split(self) -> JenaClimate.Config:
            if self.windows is not None and self.test_fraction:
                raise ValueError(
                    "windows take their test range from evaluation.test; set test_fraction: 0"
                )
            return self

    config: Config
    resources = (
        Resource("jena_climate_2009_2016.csv.zip",
                 "https://s3.amazonaws.com/keras-datasets/jena_climate_2009_2016.csv.zip",
                 None, 13565642),
    )  # fmt: skip

    def load(self, context: LoadContext) -> LoadedData:
        c = self.config
        path = locate("jena_climate", self.resources[0], c.path)
        header, values = read_jena(path)
        missing = [n for n in [c.target, *(c.features or [])] if n not in header]
        if missing:
            raise DataError(f"{path}: no columns {missing}; columns: {', '.join(header)}")
        chosen = c.features or header
        description = f"Jena climate, {len(values)} rows in time order, target {c.target}"
        if c.windows is not None:
            if c.target not in chosen:
                raise DataError(f"data.features must include the target {c.target!r} for windows")
            w = c.windows
            table = values[:, [header.index(n) for n in chosen]]
            samples = windowed(table, list(chosen).index(c.target), c.target, w)
            description += (f"; windows of {w.lookback} rows every {w.step} "
                             f"({len(samples)} windows), target {w.delay} rows ahead")  # fmt: skip
            return LoadedData(samples, None, description, list(chosen))
        x = values[:, [header.index(n) for n in chosen]]
        y = values[:, header.index(c.target)]
        if c.test_fraction:
            cut = int(len(x) * (1 - c.test_fraction))  # the last rows, never shuffled
            train, test = Arrays(x[:cut], y[:cut]), Arrays(x[cut:], y[cut:])
        else:
            train, test = Arrays(x, y), None
        return LoadedData(train, test, description, list(chosen))


def read_jena(path: Path) -> tuple[list[str], np.ndarray]:
    """Column names (without 'Date Time') and a float32 array, from the zip or the plain CSV."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.endswith(".csv"))
                text = archive.read(name).decode("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
    except (OSError, StopIteration, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path}: {exc or 'no CSV inside'}") from None
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip().strip('"') for h in rows[0]]
    try:
        values = np.array([row[1:] for row in rows[1:] if row], dtype=np.float32)
    except ValueError as exc:
        raise DataError(f"{path}: not numeric ({exc})") from None
    return header[1:], values
