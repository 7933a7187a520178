"""Small datasets shipped inside scikit-learn: usable offline, handy for first runs.

The first load reads them through scikit-learn and keeps the arrays and names in dlrun's cache
(one ``.npz`` per dataset and scikit-learn version); later runs read that file and skip
scikit-learn's import, more than a second of a small run on a small machine.
"""

from __future__ import annotations

import contextlib
import importlib
from importlib.metadata import version
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dlrun.data.base import DATASETS
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.base import SplitConfig
from dlrun.data.base import split_off_test
from dlrun.data.download import cache_root
from dlrun.reporting.files import atomic_path


def _bundled(name: str, loader: str, description: str, classes: bool) -> None:
    """Register ``sklearn.datasets.<loader>`` as ``name``: read on load, from dlrun's cache when
    it holds the table (:func:`cached_table`), so neither validating a config nor a later run
    pays scikit-learn's import."""

    class Bundled(DataSource):
        Config = SplitConfig
        config: SplitConfig

        def load(self, context: LoadContext) -> LoadedData:
            table = cached_table(name, loader, classes)
            train, test = split_off_test(table.x, table.y, self.config, context)
            return LoadedData(train, test, description, table.features, table.classes)

    Bundled.__name__ = Bundled.__qualname__ = f"Bundled_{name}"
    Bundled.__doc__ = f"{description} (bundled with scikit-learn, no download)."
    DATASETS.register(name)(Bundled)


CACHE_FORMAT = 1  # raise when what is stored (or its dtypes) changes, so old files are not read


class Table(NamedTuple):
    x: np.ndarray
    y: np.ndarray
    features: list[str] | None
    classes: list[str] | None


def cached_table(name: str, loader: str, classes: bool) -> Table:
    """The dataset from dlrun's cache, or from scikit-learn (then cached; a cache that cannot
    be written or read is skipped, never an error)."""
    path = (
        cache_root() / "bundled" / f"{name}-v{CACHE_FORMAT}-sklearn-{version('scikit-learn')}.npz"
    )
    with contextlib.suppress(Exception), np.load(path) as saved:  # absent or damaged: read again
        names = [list(map(str, saved[key])) or None for key in ("features", "classes")]
        return Table(saved["x"], saved["y"], *names)
    bunch = getattr(importlib.import_module("sklearn.datasets"), loader)()
    table = Table(
        np.asarray(bunch.data, dtype=np.float32),
        np.asarray(bunch.target, dtype=np.int64 if classes else np.float32),
        [str(f) for f in getattr(bunch, "feature_names", [])] or None,
        [str(c) for c in bunch.target_names] if classes else None,
    )
    with contextlib.suppress(OSError):
        _save(table, path)
    return table


def _save(table: Table, path: Path) -> None:
    with atomic_path(path, durable=False) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, x=table.x, y=table.y, features=np.array(table.features or [], dtype=str),
                 classes=np.array(table.classes or [], dtype=str))  # fmt: skip


_bundled("digits", "load_digits", "8x8 handwritten digits, 1,797 samples, 10 classes", True)
_bundled("iris", "load_iris", "Iris flowers, 150 samples, 4 features, 3 classes", True)
_bundled("wine", "load_wine", "Wine cultivars, 178 samples, 13 features, 3 classes", True)
_bundled(
    "breast_cancer",
    "load_breast_cancer",
    "Wisconsin breast cancer, 569 samples, 30 features, 2 classes",
    True,
)
_bundled("diabetes", "load_diabetes", "Diabetes progression, 442 samples, 10 features", False)
