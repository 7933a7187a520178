"""Datasets shipped by Keras as one .npz file, split the way ``keras.datasets`` splits them."""

from __future__ import annotations

import zipfile

import numpy as np
from pydantic import Field

from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import DatasetConfig
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.download import Resource
from dlrun.data.locate import locate
from dlrun.errors import DataError

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
BOSTON_FEATURES = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX",
                   "PTRATIO", "B", "LSTAT"]  # fmt: skip


def read_npz(path: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise DataError(f"{path} lacks the arrays {missing} (has {archive.files})")
            return {k: archive[k] for k in keys}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def keras_shuffle_split(
    x: np.ndarray, y: np.ndarray, seed: int, test_fraction: float
) -> tuple[Arrays, Arrays]:
    """Shuffle with ``RandomState(seed)``, then the first ``1 - test_fraction`` rows train."""
    order = np.arange(len(x))
    np.random.RandomState(seed).shuffle(order)
    x, y = x[order], y[order]
    cut = int(len(x) * (1 - test_fraction))
    return Arrays(x[:cut], y[:cut]), Arrays(x[cut:], y[cut:])


@DATASETS.register("boston_housing")
class BostonHousing(DataSource):
    """506 Boston suburbs, 13 features, median home value in $1,000s (DLwP 3.6).

    Keras shuffles with seed 113 and keeps the first 80% (404 rows) for training.
    """

    class Config(DatasetConfig):
        path: str | None = None
        test_split: float = Field(default=0.2, ge=0, lt=1)
        split_seed: int = 113

    config: Config
    resources = (
        Resource("boston_housing.npz", KERAS_ORIGIN + "boston_housing.npz",
                 "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5", 57026),
    )  # fmt: skip

    def load(self, context: LoadContext) -> LoadedData:
        c = self.config
        path = locate("boston_housing", self.resources[0], c.path)
        arrays = read_npz(str(path), ("x", "y"))
        train, test = keras_shuffle_split(
            arrays["x"].astype(np.float32), arrays["y"].astype(np.float32), c.split_seed,
            c.test_split,
        )  # fmt: skip
        description = f"Boston housing ({len(train)} train / {len(test)} test, Keras split)"
        return LoadedData(train, test, description, BOSTON_FEATURES)
