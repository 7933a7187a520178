"""Synthetic datasets: generated from a seed (scikit-learn generators and the two spirals), or
written out from the config (numbers as binary digits).

scikit-learn's generators are imported when one runs: its import takes seconds, and the two
spirals and the linear data do not need it.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field
from pydantic import NonNegativeInt
from pydantic import model_validator

from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import DatasetConfig
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.base import SplitConfig
from dlrun.data.base import split_off_test


class GeneratorConfig(SplitConfig):
    n_samples: int = Field(default=1000, gt=1)
    random_state: int | None = None  # None: the experiment's seed


class _Generator(DataSource):
    config: GeneratorConfig

    def generate(self, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def load(self, context: LoadContext) -> LoadedData:
        seed = self.config.random_state if self.config.random_state is not None else context.seed
        x, y = self.generate(seed)
        train, test = split_off_test(x.astype(np.float32), y, self.config, context)
        return LoadedData(train, test, f"{type(self).__name__} (seed {seed}), {len(x)} samples")


@DATASETS.register("classification")
class Classification(_Generator):
    """Gaussian clusters per class with informative, redundant and noise features
    (scikit-learn's ``make_classification``)."""

    class Config(GeneratorConfig):
        n_features: int = Field(default=20, gt=0)
        n_informative: int = Field(default=2, gt=0)
        n_redundant: int = Field(default=2, ge=0)
        n_classes: int = Field(default=2, gt=1)
        n_clusters_per_class: int = Field(default=2, gt=0)
        class_sep: float = Field(default=1.0, gt=0)
        flip_y: float = Field(default=0.01, ge=0, le=1)

    config: Config

    def generate(self, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import make_classification

        c = self.config
        x, y = make_classification(
            n_samples=c.n_samples, n_features=c.n_features, n_informative=c.n_informative,
            n_redundant=c.n_redundant, n_classes=c.n_classes,
            n_clusters_per_class=c.n_clusters_per_class, class_sep=c.class_sep,
            flip_y=c.flip_y, random_state=rng_seed,
        )  # fmt: skip
        return x, y.astype(np.int64)


@DATASETS.register("regression")
class Regression(_Generator):
    """A random linear target of the features, plus optional Gaussian noise (scikit-learn's
    ``make_regression``)."""

    class Config(GeneratorConfig):
        n_features: int = Field(default=10, gt=0)
        n_informative: int = Field(default=10, gt=0)
        noise: float = Field(default=0.0, ge=0)

    config: Config

    def generate(self, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import make_regression

        c = self.config
        x, y = make_regression(
            n_samples=c.n_samples, n_features=c.n_features, n_informative=c.n_informative,
            noise=c.noise, random_state=rng_seed,
        )  # fmt: skip
        return x, y.astype(np.float32)


@DATASETS.register("linear")
class Linear(_Generator):
    """One feature drawn uniformly from ``[low, high)``; target ``weight * x + bias`` plus
    Gaussian noise (Deep Learning for Beginners ch. 4)."""

    class Config(GeneratorConfig):
        low: float = -2.0
        high: float = 2.0
        weight: float = 0.5
        bias: float = 1.0
        noise: float = Field(default=1.0, ge=0, description="standard deviation")

    config: Config

    def generate(self, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        rng = np.random.default_rng(rng_seed)
        x = rng.uniform(c.low, c.high, size=(c.n_samples, 1))
        y = c.weight * x[:, 0] + c.bias + rng.normal(0, c.noise, size=c.n_samples)
        return x, y.astype(np.float32)


@DATASETS.register("moons")
class Moons(_Generator):
    """Two interleaving half circles in 2-D, two classes (scikit-learn's ``make_moons``)."""

    class Config(GeneratorConfig):
        noise: float = Field(default=0.1, ge=0)

    config: Config

    def generate(self, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import make_moons

        x, y = make_moons(self.config.n_samples, noise=self.config.noise, random_state=rng_seed)
        return x, y.astype(np.int64)


def two_spirals(n_points: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals, ``n_points`` per class (Deep Learning for Beginners ch. 6).

    The angle grows with the square root of a uniform draw up to 780 degrees; uniform noise is
    added to each coordinate and the second class is the first mirrored through the origin.
    Labels are 0/1 (the book uses -1/+1).
    """
    rng = np.random.RandomState(seed)
    angle = np.sqrt(rng.rand(n_points, 1)) * 780 * (2 * np.pi) / 360
    x1 = -np.cos(angle) * angle + rng.rand(n_points, 1) * noise
    y1 = np.sin(angle) * angle + rng.rand(n_points, 1) * noise
    first = np.hstack((x1, y1))
    x = np.vstack((first, -first))
    y = np.hstack((np.zeros(n_points), np.ones(n_points))).astype(np.int64)
    return x, y


@DATASETS.register("spirals")
class Spirals(_Generator):
    """Two interleaved 2-D spirals, one per class, ``n_points`` each (Deep Learning for
    Beginners ch. 6)."""

    class Config(SplitConfig):
        n_points: int = Field(default=300, gt=0, description="points per class")
        noise: float = Field(default=0.5, ge=0)
        random_state: int | None = 1  # the book seeds NumPy with 1

    config: Config  # type: ignore[assignment]

    def generate(self, rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
        return two_spirals(self.config.n_points, self.config.noise, rng_seed)


@DATASETS.register("bits")
class Bits(DataSource):
    """Whole numbers as rows of their binary digits, most significant first (Deep Learning for
    Beginners ch. 7 trains an autoencoder on 39 = 00100111 alone and tests it on 216). The
    numbers themselves are the labels."""

    class Config(DatasetConfig):
        train: list[NonNegativeInt] = Field(min_length=1, description="the numbers to train on")
        test: list[NonNegativeInt] = Field(default_factory=list, description="the numbers to "
                                           "test on")  # fmt: skip
        width: int = Field(default=8, ge=1, le=62, description="binary digits per number")

        @model_validator(mode="after")
        def _fit_the_width(self) -> Bits.Config:
            too_big = [n for n in (*self.train, *self.test) if n >= 2**self.width]
            if too_big:
                raise ValueError(f"{too_big[0]} does not fit in {self.width} binary digits "
                                 f"(0 to {2**self.width - 1}); raise width")  # fmt: skip
            return self

    config: Config

    def load(self, context: LoadContext) -> LoadedData:
        width = self.config.width
        train, test = (self._rows(numbers) for numbers in (self.config.train, self.config.test))
        shown = ", ".join(f"{n} = {n:0{width}b}" for n in self.config.train[:3])
        more = ", ..." if len(self.config.train) > 3 else ""
        description = f"{width}-digit binary numbers: {shown}{more}"
        return LoadedData(train, test if len(test) else None, description)

    def _rows(self, numbers: list[int]) -> Arrays:
        shifts = np.arange(self.config.width - 1, -1, -1)
        values = np.asarray(numbers, dtype=np.int64)
        return Arrays(((values[:, None] >> shifts) & 1).astype(np.float32), values)
