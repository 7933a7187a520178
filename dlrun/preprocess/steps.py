"""The registered preprocessing steps."""

from __future__ import annotations

from typing import ClassVar
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from pydantic import model_validator

from dlrun.config.base import Number
from dlrun.data.ragged import Ragged
from dlrun.data.sparse import IndexRows
from dlrun.errors import DataError
from dlrun.preprocess.base import Step
from dlrun.preprocess.base import StepConfig
from dlrun.registry import Registry

STEPS: Registry[type[Step]] = Registry("preprocessing step")


def not_text(step: str) -> DataError:
    return DataError(f"{step} acts on index sequences, but the inputs are text; add tokenize "
                     f"before {step}")  # fmt: skip


def index_sequence(row: object, step: str) -> np.ndarray:
    """One sample as an int64 index array, or a one-line error saying what it holds instead:
    text, a sample that is not one sequence of numbers (an image, a single number, nested
    lists), booleans, a missing value (NaN, which a cast would turn into an arbitrary index),
    or a number that is not whole or lies outside int64 (a cast would wrap it)."""
    if isinstance(row, str):
        raise not_text(step)
    try:
        values = np.asarray(row)
        if values.dtype == object:  # Python numbers: let numpy pick one type for them all
            values = np.asarray(values.tolist())
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{step} acts on one index sequence of numbers per sample; a sample "
                        f"here is {_shown(row)}") from None  # fmt: skip
    if values.ndim != 1:
        what = "one number" if values.ndim == 0 else f"an array of shape {values.shape}"
        raise DataError(f"{step} acts on one index sequence per sample; a sample here is {what}")
    if values.dtype.kind in "US":
        raise not_text(step)
    if values.dtype.kind not in "iuf":
        raise DataError(f"{step} acts on index sequences of whole numbers; got {_kind(values)}")
    if values.dtype.kind == "f":
        bad = values[~(np.isfinite(values) & (values == np.floor(values)))]
        if len(bad):
            what = "a missing value (NaN)" if np.isnan(bad[0]) else repr(bad[0].item())
            raise DataError(f"{step} acts on index sequences of whole numbers; got {what}")
        _refuse_beyond_int64(values[(values < -(2.0**63)) | (values >= 2.0**63)], step)
    elif values.dtype.kind == "u":  # uint64 may not fit int64; other integers always do
        _refuse_beyond_int64(values[values > np.iinfo(np.int64).max], step)
    return values.astype(np.int64, copy=False)


def _refuse_beyond_int64(bad: np.ndarray, step: str) -> None:
    """A cast would wrap these values into made-up indices."""
    if len(bad):
        raise DataError(f"{step}: index {bad[0].item()!r} lies outside the int64 range")


def _kind(values: np.ndarray) -> str:
    return "booleans" if values.dtype.kind == "b" else f"{values.dtype} values"


def _shown(row: object) -> str:
    text = repr(row)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _as_float(data: np.ndarray) -> np.ndarray:
    if isinstance(data, IndexRows):  # a numeric step after a sparse multi_hot sees the matrix
        return data.dense()
    if data.dtype == object:
        raise DataError("this step needs numeric arrays; ragged sequences need multi_hot first")
    return data.astype(np.float32, copy=False)


@STEPS.register("standardize")
class Standardize(Step):
    """Subtract the training mean and divide by the training standard deviation, per feature."""

    fitted_attributes = ("mean_", "scale_")
    mean_: np.ndarray
    scale_: np.ndarray

    def _fit(self, data: np.ndarray) -> None:
        values = _as_float(data).astype(np.float64)
        self.mean_ = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)  # constant features stay finite

    def _transform(self, data: np.ndarray) -> np.ndarray:
        return ((_as_float(data) - self.mean_) / self.scale_).astype(np.float32)


@STEPS.register("minmax")
class MinMax(Step):
    """Scale each feature linearly so the training range maps onto ``feature_range``."""

    class Config(StepConfig):
        feature_range: list[float] = Field(default=[0.0, 1.0], min_length=2, max_length=2)

    config: Config
    fitted_attributes = ("min_", "range_")
    min_: np.ndarray
    range_: np.ndarray

    def _fit(self, data: np.ndarray) -> None:
        values = _as_float(data).astype(np.float64)
        self.min_ = np.nanmin(values, axis=0)
        span = np.nanmax(values, axis=0) - self.min_
        self.range_ = np.where(span > 0, span, 1.0)

    def _transform(self, data: np.ndarray) -> np.ndarray:
        low, high = self.config.feature_range
        unit = (_as_float(data) - self.min_) / self.range_
        return (unit * (high - low) + low).astype(np.float32)


@STEPS.register("rescale")
class Rescale(Step):
    """Multiply by ``scale`` and add ``offset`` (Keras ``Rescaling``); e.g. ``scale: 1/255``."""

    class Config(StepConfig):
        positional: ClassVar[str] = "scale"
        scale: Number
        offset: Number = 0.0

    config: Config
    elementwise = True

    def _transform(self, data: np.ndarray) -> np.ndarray:
        return (_as_float(data) * self.config.scale + self.config.offset).astype(np.float32)

    def torch_transform(self, data: torch.Tensor) -> torch.Tensor:
        # two float32 operations, exactly as the host path rounds them
        return data.to(torch.float32) * self.config.scale + self.config.offset


@STEPS.register("binarize")
class Binarize(Step):
    """1.0 where a value exceeds ``threshold``, else 0.0."""

    class Config(StepConfig):
        positional: ClassVar[str] = "threshold"
        threshold: Number = 0.0

    config: Config
    elementwise = True

    def _transform(self, data: np.ndarray) -> np.ndarray:
        return (_as_float(data) > self.config.threshold).astype(np.float32)

    def torch_transform(self, data: torch.Tensor) -> torch.Tensor:
        return (data.to(torch.float32) > self.config.threshold).to(torch.float32)


@STEPS.register("flatten")
class Flatten(Step):
    """Flatten every sample to one vector, e.g. 28x28 images to 784 features."""

    def _transform(self, data: np.ndarray) -> np.ndarray:
        return data.reshape(len(data), -1)


@STEPS.register("reshape")
class Reshape(Step):
    """Give every sample the shape ``shape`` (batch axis excluded)."""

    class Config(StepConfig):
        positional: ClassVar[str] = "shape"
        shape: list[int] = Field(min_length=1)

    config: Config

    def _transform(self, data: np.ndarray) -> np.ndarray:
        try:
            return data.reshape(len(data), *self.config.shape)
        except ValueError:
            raise DataError(
                f"reshape: samples of shape {list(data.shape[1:])} cannot become {self.config.shape}"
            ) from None


@STEPS.register("multi_hot")
class MultiHot(Step):
    """Index sequences to ``dim``-wide 0/1 vectors (DLwP 3.4 ``vectorize_sequences``).

    Indices at or above ``dim`` are ignored, as words outside a ``num_words`` vocabulary are;
    negative ones are refused. The vectors are kept sparse by default (each row's indices, a
    CSR tensor on the device): a dense layer reading them computes the same product with IMDB's
    training set 38x lighter in memory (:mod:`dlrun.data.sparse`); ``sparse: false`` stores the
    0/1 matrix itself.
    """

    class Config(StepConfig):
        positional: ClassVar[str] = "dim"
        dim: int = Field(gt=0)
        sparse: bool = True

    config: Config

    @property
    def makes_sparse_rows(self) -> bool:
        return self.config.sparse

    def _transform(self, data: np.ndarray) -> np.ndarray:
        dim = self.config.dim
        sequences = Ragged.from_arrays([index_sequence(row, "multi_hot") for row in data])
        if len(sequences.values) and (low := int(sequences.values.min())) < 0:
            raise DataError(f"multi_hot acts on indices from 0 (word ranks); got {low}")
        hot = IndexRows(sequences.distinct(dim).rows(np.int64), dim)
        return hot if self.config.sparse else hot.dense()


@STEPS.register("one_hot")
class OneHot(Step):
    """Integer class labels to one-hot rows (Keras ``to_categorical``).

    The number of classes is ``num_classes`` or, if unset, the largest training label plus one.
    """

    class Config(StepConfig):
        num_classes: int | None = Field(default=None, gt=1)

    config: Config
    applies_to = "y"
    encodes_labels = True
    fitted_attributes = ("num_classes_",)
    num_classes_: np.ndarray

    def _fit(self, data: np.ndarray) -> None:
        labels = self._labels(data)
        inferred = int(labels.max()) + 1 if len(labels) else 0
        self.num_classes_ = np.array(self.config.num_classes or inferred)

    def _labels(self, data: np.ndarray) -> np.ndarray:
        labels = np.asarray(data).reshape(-1)
        if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
            raise DataError("one_hot needs integer class labels; the targets are not integers")
        return labels.astype(np.int64)

    def _transform(self, data: np.ndarray) -> np.ndarray:
        labels = self._labels(data)
        count = int(self.num_classes_)
        if len(labels) and (labels.min() < 0 or labels.max() >= count):
            raise DataError(f"one_hot: label {int(labels.max())} is outside 0..{count - 1}")
        return np.eye(count, dtype=np.float32)[labels]


@STEPS.register("impute")
class Impute(Step):
    """Fill missing values (NaN) with the training mean, median, or a constant."""

    fills_missing = True

    class Config(StepConfig):
        positional: ClassVar[str] = "strategy"
        strategy: Literal["mean", "median", "constant"] = "mean"
        fill_value: Number = 0.0

        @model_validator(mode="after")
        def _fill_only_for_constant(self) -> Impute.Config:
            if self.fill_value != 0.0 and self.strategy != "constant":
                raise ValueError("fill_value is only used with strategy: constant")
            return self

    config: Config
    fitted_attributes = ("fill_",)
    fill_: np.ndarray

    def _fit(self, data: np.ndarray) -> None:
        values = _as_float(data).astype(np.float64)
        if self.config.strategy == "constant":
            self.fill_ = np.full(values.shape[1:], self.config.fill_value)
        else:
            reduce = np.nanmean if self.config.strategy == "mean" else np.nanmedian
            self.fill_ = np.nan_to_num(reduce(values, axis=0))

    def _transform(self, data: np.ndarray) -> np.ndarray:
        values = _as_float(data).copy()
        mask = np.isnan(values)
        values[mask] = np.broadcast_to(self.fill_, values.shape)[mask]
        return values
