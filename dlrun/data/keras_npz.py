"""Datasets shipped by Keras as one .npz file, split the way ``keras.datasets`` splits them."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
from pydantic import Field

from dlrun.config.base import FilePath
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import DatasetConfig
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.download import Resource
from dlrun.data.locate import locate
from dlrun.data.safe_pickle import RefusedGlobal
from dlrun.data.safe_pickle import load_restricted
from dlrun.errors import DataError

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# The same x (506, 13) and y (506,) float64 arrays in their original row order, re-saved by a
# newer NumPy (other .npy headers and zip dates); the dlrun development mirror holds this copy.
BOSTON_RESAVED = (
    "9a38dd3bf92f3c2809445778cc12336e985c0faf67eb64379f6809dca11ef4bc",
    "the Keras arrays re-saved by a newer NumPy: other .npy headers and zip dates",
)
BOSTON_FEATURES = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX",
                   "PTRATIO", "B", "LSTAT"]  # fmt: skip


def _npy_member(archive: zipfile.ZipFile, key: str, path: str) -> np.ndarray:
    """One ``.npy`` member: plain arrays through NumPy, object arrays (Keras's index lists)
    through the restricted unpickler, since ``np.load(allow_pickle=True)`` would run whatever
    callable a tampered pickle names."""
    with archive.open(f"{key}.npy") as handle:
        read_header = _HEADER_READERS.get(np.lib.format.read_magic(handle))
        if read_header is not None:  # (version 3.0 headers only add UTF-8 field names)
            shape, _, dtype = read_header(handle)
            if dtype.hasobject:
                try:  # latin1: what NumPy prescribes for arrays pickled by Python 2 (Keras's)
                    array = load_restricted(handle, encoding="latin1")
                except RefusedGlobal as exc:
                    raise DataError(
                        f"{path}: array '{key}' holds pickled code ({exc.target}), not data; "
                        "refusing to load it. Replace the file with a canonical copy "
                        "(dlrun datasets info shows its URL)"
                    ) from None
                if not isinstance(array, np.ndarray) or array.shape != shape:
                    raise DataError(f"{path}: array '{key}' does not match its header")
                return array
    with archive.open(f"{key}.npy") as handle:
        return np.lib.format.read_array(handle, allow_pickle=False)


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
# What a damaged file raises while its header, zip structure or pickle is parsed.
_DAMAGED = (OSError, ValueError, zipfile.BadZipFile, EOFError, pickle.UnpicklingError,
            TypeError, AttributeError, IndexError, KeyError)  # fmt: skip


def read_npz(path: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of an ``.npz`` file (object arrays too), never running its code."""
    try:
        with zipfile.ZipFile(path) as archive:
            present = [n.removesuffix(".npy") for n in archive.namelist() if n.endswith(".npy")]
            missing = [k for k in keys if k not in present]
            if missing:
                raise DataError(f"{path} lacks the arrays {missing} (has {present})")
            return {k: _npy_member(archive, k, path) for k in keys}
    except _DAMAGED as exc:
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
        path: FilePath | None = None
        test_split: float = Field(default=0.2, ge=0, lt=1)
        split_seed: int = 113

    config: Config
    resources = (
        Resource("boston_housing.npz", KERAS_ORIGIN + "boston_housing.npz",
                 "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5", 57026,
                 repackagings=(BOSTON_RESAVED,)),
    )  # fmt: skip

    def load(self, context: LoadContext) -> LoadedData:
        c = self.config
        path = locate("boston_housing", self.resources[0], c.path)
        arrays = read_npz(str(path), ("x", "y"))
        if len(arrays["x"]) != len(arrays["y"]):  # pairs would be mismatched, or run out
            raise DataError(f"{path}: {len(arrays['x'])} rows in 'x' but {len(arrays['y'])} "
                            "in 'y'; each row needs its target")  # fmt: skip
        train, test = keras_shuffle_split(
            arrays["x"].astype(np.float32), arrays["y"].astype(np.float32), c.split_seed,
            c.test_split,
        )  # fmt: skip
        description = f"Boston housing ({len(train)} train / {len(test)} test, Keras split)"
        return LoadedData(train, test, description, BOSTON_FEATURES)
