"""CIFAR-10 and CIFAR-100 from the python-pickle tarballs, channels-last uint8 images.

The batches are pickles; they are read with :mod:`dlrun.data.safe_pickle`, which only rebuilds
plain containers and numpy arrays, so a planted file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import ClassVar
from typing import Literal

import numpy as np

from dlrun.config.base import FilePath
from dlrun.data.archives import safe_extract
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import DatasetConfig
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.download import Resource
from dlrun.data.download import cache_root
from dlrun.data.locate import locate
from dlrun.data.safe_pickle import load_restricted
from dlrun.errors import DataError

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]  # fmt: skip


def read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) and labels from one pickled batch."""
    try:
        with path.open("rb") as handle:
            batch = load_restricted(handle, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key.encode()], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, EOFError, ValueError) as exc:
        raise DataError(f"cannot read CIFAR batch {path}: {exc}") from None
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


class _Cifar(DataSource):
    name: ClassVar[str]
    folder: ClassVar[str]
    train_batches: ClassVar[list[str]]
    test_batch: ClassVar[str]

    class Config(DatasetConfig):
        path: FilePath | None = None

    config: Config

    def label_key(self) -> str:
        return "labels"

    def class_names(self) -> list[str] | None:
        return None

    def load(self, context: LoadContext) -> LoadedData:
        explicit = Path(self.config.path).expanduser() if self.config.path else None
        if explicit is not None and (explicit / self.folder).is_dir():
            root = explicit  # an extracted copy given directly
        else:
            archive = locate(self.name, self.resources[0], self.config.path)
            root = safe_extract(archive, cache_root() / self.name / "extracted")
        folder = root / self.folder
        parts = [read_batch(folder / name, self.label_key()) for name in self.train_batches]
        x_test, y_test = read_batch(folder / self.test_batch, self.label_key())
        train = Arrays(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        )
        description = f"{self.name}: {len(train)} train / {len(x_test)} test, 32x32x3 uint8"
        return LoadedData(train, Arrays(x_test, y_test), description, None, self.class_names())


@DATASETS.register("cifar10")
class Cifar10(_Cifar):
    """60,000 32x32 colour images in 10 classes: 50,000 train / 10,000 test."""

    name = "cifar10"
    folder = "cifar-10-batches-py"
    train_batches = [f"data_batch_{i}" for i in range(1, 6)]
    test_batch = "test_batch"
    resources = (
        Resource("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                 "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", 170498071),
    )  # fmt: skip

    def class_names(self) -> list[str] | None:
        return CIFAR10_CLASSES


@DATASETS.register("cifar100")
class Cifar100(_Cifar):
    """60,000 32x32 colour images in 100 fine (or 20 coarse) classes: 50,000 / 10,000."""

    class Config(DatasetConfig):
        path: FilePath | None = None
        label_mode: Literal["fine", "coarse"] = "fine"

    config: Config  # type: ignore[assignment]
    name = "cifar100"
    folder = "cifar-100-python"
    train_batches = ["train"]
    test_batch = "test"
    resources = (
        Resource("cifar-100-python.tar.gz",
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7", 169001437),
    )  # fmt: skip

    def label_key(self) -> str:
        return f"{self.config.label_mode}_labels"
