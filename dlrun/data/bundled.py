"""Small datasets shipped inside scikit-learn: usable offline, handy for first runs.

The first load reads them through scikit-learn and keeps the arrays and names in dlrun's cache
(one ``.npz`` per dataset and scikit-learn version); later runs read that file and skip
scikit-learn's import, more than a second of a small run on a small machine.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version
from typing import NamedTuple

import numpy as np

from dlrun.data.base import DATASETS
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.base import SplitConfig
from dlrun.data.base import split_off_test
from dlrun.data.derived import cached_arrays
from dlrun.data.download import cache_root


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
    """The dataset from dlrun's cache, or from scikit-learn (then cached)."""
    path = (
        cache_root() / "bundled" / f"{name}-v{CACHE_FORMAT}-sklearn-{version('scikit-learn')}.npz"
    )

    def read() -> dict[str, np.ndarray]:
        bunch = getattr(importlib.import_module("sklearn.datasets"), loader)()
        return {
            "x": np.asarray(bunch.data, dtype=np.float32),
            "y": np.asarray(bunch.target, dtype=np.int64 if classes else np.float32),
            "features": np.array([str(f) for f in getattr(bunch, "feature_names", [])], str),
            "classes": np.array([str(c) for c in bunch.target_names] if classes else [], str),
        }

    arrays = cached_arrays(path, ("x", "y", "features", "classes"), read)
    names = [list(map(str, arrays[key])) or None for key in ("features", "classes")]
    return Table(arrays["x"], arrays["y"], *names)


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
