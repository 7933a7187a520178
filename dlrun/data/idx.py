"""MNIST-family datasets from the four canonical IDX files (``*-ubyte.gz``).

Files are looked up in ``data.path`` (a directory) or in each ``DLRUN_DATA_PATH`` directory
under ``<dataset>/``. Downloading into a cache arrives with the datasets issue; until then a
missing file is a one-line error that says where to put it.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any
from typing import ClassVar

import numpy as np

from dlrun.config.base import StrictModel
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.locate import find_file
from dlrun.errors import DataError

_DTYPES: dict[int, Any] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: Path) -> np.ndarray:
    """Parse one (optionally gzipped) IDX file into an array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = raw[4 + 4 * ndim :]
    if len(body) != expected:
        raise DataError(
            f"{path} is truncated or damaged: {len(body)} data bytes, expected {expected}"
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


class IdxConfig(StrictModel):
    path: str | None = None


class _IdxDataset(DataSource):
    Config = IdxConfig
    config: IdxConfig
    files: ClassVar[tuple[str, str, str, str]]
    description: ClassVar[str]
    class_names: ClassVar[list[str]]
    name: ClassVar[str]

    def load(self, context: LoadContext) -> LoadedData:
        arrays = [read_idx(find_file(self.name, f, self.config.path)) for f in self.files]
        x_train, y_train, x_test, y_test = arrays
        train = Arrays(x_train, y_train.astype(np.int64))
        test = Arrays(x_test, y_test.astype(np.int64))
        return LoadedData(train, test, self.description, None, self.class_names)


_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@DATASETS.register("mnist")
class Mnist(_IdxDataset):
    name = "mnist"
    files = _MNIST_FILES
    description = "MNIST handwritten digits, 60,000 train / 10,000 test, 28x28 uint8"
    class_names = [str(i) for i in range(10)]


@DATASETS.register("fashion_mnist")
class FashionMnist(_IdxDataset):
    name = "fashion_mnist"
    files = _MNIST_FILES
    description = "Fashion-MNIST clothing images, 60,000 train / 10,000 test, 28x28 uint8"
    class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
