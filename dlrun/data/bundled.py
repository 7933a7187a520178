"""Small datasets shipped inside scikit-learn: usable offline, handy for first runs."""

from __future__ import annotations

import importlib

import numpy as np

from dlrun.data.base import DATASETS
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.base import SplitConfig
from dlrun.data.base import split_off_test


def _bundled(name: str, loader: str, description: str, classes: bool) -> None:
    """Register ``sklearn.datasets.<loader>`` as ``name`` (scikit-learn is imported on load:
    its import takes about a second that validating a config need not pay)."""

    class Bundled(DataSource):
        Config = SplitConfig
        config: SplitConfig

        def load(self, context: LoadContext) -> LoadedData:
            bunch = getattr(importlib.import_module("sklearn.datasets"), loader)()
            x = np.asarray(bunch.data, dtype=np.float32)
            y = np.asarray(bunch.target, dtype=np.int64 if classes else np.float32)
            train, test = split_off_test(x, y, self.config, context)
            class_names = [str(c) for c in bunch.target_names] if classes else None
            features = [str(f) for f in getattr(bunch, "feature_names", [])] or None
            return LoadedData(train, test, description, features, class_names)

    Bundled.__name__ = Bundled.__qualname__ = f"Bundled_{name}"
    Bundled.__doc__ = f"{description} (bundled with scikit-learn, no download)."
    DATASETS.register(name)(Bundled)


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
