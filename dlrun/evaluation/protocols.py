"""Evaluation protocols: how the non-test data is split into training and validation parts.

Each protocol registers a typed ``Config`` (the ``evaluation:`` section, tagged by ``protocol``)
and plans its folds. Training, aggregation and the final test live in
:mod:`dlrun.evaluation.runner`, shared by all protocols.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar
from typing import Literal

import numpy as np
from pydantic import Field
from pydantic import field_validator
from pydantic import model_validator

from dlrun.config.base import Number
from dlrun.config.base import StrictModel
from dlrun.data.base import Arrays
from dlrun.data.base import LoadedData
from dlrun.data.windows import fit_to_training_rows
from dlrun.data.windows import samples_in
from dlrun.data.windows import time_rows
from dlrun.errors import DataError
from dlrun.evaluation import splits
from dlrun.registry import Registry

if TYPE_CHECKING:
    from dlrun.tasks.base import Task


class ValidationConfig(StrictModel):
    """Exactly one of: a ``fraction`` of the training data, a ``count`` of samples drawn at
    random, the ``first`` N samples in file order (as DLwP takes the first 10,000 reviews), or
    the ``last_fraction`` of them in file order (what Keras's ``validation_split`` takes)."""

    fraction: Number | None = Field(default=None, gt=0, lt=1)
    count: int | None = Field(default=None, gt=0)
    first: int | None = Field(default=None, gt=0)
    last_fraction: Number | None = Field(default=None, gt=0, lt=1)
    stratify: bool = False

    @model_validator(mode="before")
    @classmethod
    def _not_a_bare_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value
        if value >= 1:  # a number of rows
            raise ValueError(
                f"say which rows: {{count: {value}}} draws them at random, {{first: {value}}} "
                "takes the first ones in file order (as DLwP takes 10,000 reviews)"
            )
        raise ValueError(
            f"say which rows: {{fraction: {value}}} draws them at random, {{last_fraction: "
            f"{value}}} takes the last ones in file order (Keras's validation_split)"
        )

    @model_validator(mode="after")
    def _one_size(self) -> ValidationConfig:
        sizes = {"fraction": self.fraction, "count": self.count, "first": self.first,
                 "last_fraction": self.last_fraction}  # fmt: skip
        given = [name for name, size in sizes.items() if size is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of fraction, count, first or last_fraction")
        in_order = self.first is not None or self.last_fraction is not None
        if in_order and self.stratify:
            raise ValueError(f"{given[0]} takes samples in file order; it cannot be stratified")
        return self


class FinalConfig(StrictModel):
    """Retrain from scratch on all non-test data, then evaluate the test split once.

    ``epochs: best`` takes the epoch where the (smoothed, fold-averaged) validation monitor was
    best, the DLwP pattern of choosing the epoch count on validation data.
    """

    retrain: Literal["train+val"] = "train+val"
    epochs: int | Literal["best"]

    @field_validator("epochs")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value <= 0:
            raise ValueError("epochs must be positive (or 'best')")
        return value


class CurveConfig(StrictModel):
    """How validation curves are smoothed (DLwP L3.31): for drawing long learning curves, and
    for K-fold's best epoch on the fold-averaged curve."""

    smoothing: Number = Field(default=0.9, ge=0, lt=1, description="EMA factor; 0 = raw")
    # DLwP L3.31 leaves out the first 10 epochs: an EMA started at epoch 1's value (far above
    # the rest) lags behind for about 1 / (1 - smoothing) epochs and delays the best epoch
    skip_first: int = Field(default=10, ge=0, description="epochs left out of the smoothed curve")


class ProtocolConfig(StrictModel):
    final: FinalConfig | None = None
    monitor: str = Field(default="val_loss", description="chooses the best epoch")
    curves: CurveConfig = CurveConfig()

    @property
    def has_validation(self) -> bool:
        return True


class EvaluationSection(ProtocolConfig):
    """The ``evaluation:`` section as the rest of dlrun sees it: a registered protocol's config."""

    protocol: str


@dataclass(frozen=True)
class Fold:
    """One training/validation split. ``name`` is its sub-directory ('' = the run itself)."""

    name: str
    label: str
    train_idx: np.ndarray
    val_idx: np.ndarray | None
    seed: int


class Protocol:
    """Plans the folds of one evaluation protocol; capabilities say how its results are read."""

    Config: ClassVar[type[ProtocolConfig]]
    time_ordered: ClassVar[bool] = False  # rows follow in time: the last-value baseline applies
    single_split: ClassVar[bool] = False  # one model per run: a sweep may prune it per epoch

    def __init__(self, config: ProtocolConfig) -> None:
        self.config = config

    def prepare(self, data: LoadedData) -> LoadedData:
        """The data the folds are planned on; time_split carves its test range here."""
        return data

    def folds(self, train: Arrays, task: type[Task], seed: int) -> list[Fold]:
        raise NotImplementedError

    @property
    def parallel_folds(self) -> bool:
        """Whether the folds are to be trained at once as one stacked model."""
        return False

    @property
    def curves(self) -> CurveConfig:
        """How validation curves are smoothed: long curves are drawn so, and K-fold picks its
        best epoch on the smoothed fold average."""
        return self.config.curves

    def stratify_key(self) -> str | None:
        """The config key that asks for stratified splits, if any (they need class labels)."""
        return None

    def warnings(self) -> list[str]:
        """What the run should say about the planned splits (after :meth:`prepare`)."""
        return []

    def layout(self, folds: int) -> str:
        """How the run's ``folds`` fits are said (``4 folds``; ``3 folds x 2 repeats``)."""
        return f"{folds} folds"


PROTOCOLS: Registry[type[Protocol]] = Registry("protocol")


@PROTOCOLS.register("holdout")
class Holdout(Protocol):
    class Config(ProtocolConfig):
        validation: ValidationConfig | None = ValidationConfig(fraction=0.2)

        @property
        def has_validation(self) -> bool:
            return self.validation is not None

    config: Config
    single_split = True

    def stratify_key(self) -> str | None:
        v = self.config.validation
        return "evaluation.validation.stratify" if v is not None and v.stratify else None

    def folds(self, train: Arrays, task: type[Task], seed: int) -> list[Fold]:
        n = len(train)
        v = self.config.validation
        if v is None:
            return [Fold("", "", np.arange(n), None, seed)]
        labels = train.y if v.stratify else np.zeros(n)
        train_idx, val_idx = splits.holdout_indices(
            n, labels, seed, v.fraction, v.count, v.first, v.stratify, v.last_fraction
        )
        return [Fold("", "", train_idx, val_idx, seed)]


class KFoldConfig(ProtocolConfig):
    k: int = Field(default=5, ge=2)
    shuffle: bool = True
    stratify: bool | None = Field(
        default=None, description="stratify on the labels; default: yes for classification"
    )
    contiguous: bool = Field(
        default=False, description="unshuffled slices of len//k rows, exactly as DLwP L3.27"
    )
    parallel_folds: bool = Field(
        default=False, description="train all folds at once as one vectorized model"
    )

    @model_validator(mode="after")
    def _contiguous_alone(self) -> KFoldConfig:
        if self.contiguous and (self.shuffle or self.stratify):
            raise ValueError(
                "contiguous folds are unshuffled slices; set shuffle: false and leave stratify out"
            )
        return self


def _kfold_pairs(
    config: KFoldConfig, train: Arrays, task: type[Task], seed: int
) -> list[splits.IndexPair]:
    n = len(train)
    if config.contiguous:
        return splits.contiguous_folds(n, config.k)
    stratify = config.stratify if config.stratify is not None else task.single_label
    if stratify and not task.single_label:
        raise DataError("stratified folds need one class label per sample; this task has none")
    labels = train.y if stratify else np.zeros(n)
    return splits.kfold_indices(n, labels, config.k, config.shuffle, stratify, seed)


class KFoldBase(Protocol):
    """What K-fold and iterated K-fold share: parallel folds, curve smoothing, stratification."""

    config: KFoldConfig

    @property
    def parallel_folds(self) -> bool:
        return self.config.parallel_folds

    def stratify_key(self) -> str | None:
        return "evaluation.stratify" if self.config.stratify else None


def _numbered(prefix: str, index: int, count: int) -> str:
    """``fold_01``: numbered from 1, padded to the width of ``count`` (at least two digits), so
    names sort in order (``fold_009`` before ``fold_100``)."""
    return f"{prefix}_{index + 1:0{max(2, len(str(count)))}d}"


@PROTOCOLS.register("kfold")
class KFoldProtocol(KFoldBase):
    Config = KFoldConfig

    def folds(self, train: Arrays, task: type[Task], seed: int) -> list[Fold]:
        pairs = _kfold_pairs(self.config, train, task, seed)
        k = len(pairs)
        return [
            Fold(_numbered("fold", i, k), f"fold {i + 1}/{k}", tr, va, seed + i)
            for i, (tr, va) in enumerate(pairs)
        ]


@PROTOCOLS.register("iterated_kfold")
class IteratedKFold(KFoldBase):
    """P repetitions of K-fold, reshuffled each time: P x K models (DLwP 4.2.1)."""

    class Config(KFoldConfig):
        repeats: int = Field(default=3, ge=2)

        @field_validator("contiguous")
        @classmethod
        def _not_contiguous(cls, value: bool) -> bool:
            """Said before the contiguous check, whose advice (shuffle: false) is refused here."""
            if value:
                raise ValueError("iterated K-fold reshuffles for every repetition, and "
                                 "contiguous folds are fixed slices; for those use protocol: "
                                 "kfold")  # fmt: skip
            return value

        @model_validator(mode="after")
        def _reshuffles(self) -> IteratedKFold.Config:
            if not self.shuffle:
                raise ValueError("iterated K-fold reshuffles for every repetition; shuffle: false")
            return self

    config: Config

    def layout(self, folds: int) -> str:
        repeats = self.config.repeats
        return f"{folds // repeats} folds x {repeats} repeats"

    def folds(self, train: Arrays, task: type[Task], seed: int) -> list[Fold]:
        folds: list[Fold] = []
        p = self.config.repeats
        for r in range(p):
            pairs = _kfold_pairs(self.config, train, task, seed + 1000 * r)
            k = len(pairs)
            for i, (tr, va) in enumerate(pairs):
                name = f"{_numbered('repeat', r, p)}/{_numbered('fold', i, k)}"
                label = f"repeat {r + 1}/{p} fold {i + 1}/{k}"
                folds.append(Fold(name, label, tr, va, seed + len(folds)))
        return folds


Span = Number | list[int | None]


@PROTOCOLS.register("time_split")
class TimeSplit(Protocol):
    """Chronological train/validation/test ranges; nothing is shuffled across them (DLwP 6.3)."""

    class Config(ProtocolConfig):
        train: Span = Field(description="fraction, or [start, end) row range")
        validation: Span | None = None
        test: Span | None = None
        shuffle: bool = False

        @field_validator("train", "validation", "test")
        @classmethod
        def _span(cls, value: Span | None) -> Span | None:
            if isinstance(value, list) and len(value) != 2:
                raise ValueError("a row range is [start, end] (end null = the last row)")
            if isinstance(value, float) and not 0 < value <= 1:
                raise ValueError("a fraction lies in (0, 1]")
            return value

        @model_validator(mode="after")
        def _fractions_fit(self) -> TimeSplit.Config:
            fractions = [s for s in (self.train, self.validation, self.test)
                         if isinstance(s, float | int)]  # fmt: skip
            if sum(fractions) > 1 + 1e-9:
                shown = " + ".join(f"{f:g}" for f in fractions)
                raise ValueError(
                    f"the fractions add up to more than the rows there are ({shown} = "
                    f"{sum(fractions):g}); make them add up to at most 1"
                )
            return self

        @field_validator("shuffle")
        @classmethod
        def _no_shuffle(cls, value: bool) -> bool:
            if value:
                raise ValueError(
                    "time_split cannot shuffle rows across its ranges: the model would train on "
                    "rows from after the ones it is validated and tested on (a temporal leak); "
                    "train.shuffle still shuffles batches inside the training range"
                )
            return value

        @property
        def has_validation(self) -> bool:
            return self.validation is not None

    config: Config
    time_ordered = True
    single_split = True
    planned: tuple[np.ndarray, np.ndarray | None] | None = None
    unused: int = 0  # time rows after the last part, when the parts are fractions

    def prepare(self, data: LoadedData) -> LoadedData:
        """Carve the ranges in time rows; windowed series are fitted to the training range and
        keep only the windows lying wholly inside each range (:mod:`dlrun.data.windows`)."""
        c = self.config
        if c.test is not None and data.test_split is not None:
            raise DataError(
                "evaluation.test carves a test range but the dataset has a test split of its "
                "own; leave evaluation.test out to test on that one"
            )
        spans = [c.train, c.validation, c.test]
        rows = time_rows(data.train)
        train_rows, val_rows, test_rows = splits.time_ranges(rows, spans)
        assert train_rows is not None
        given = [span for span in spans if span is not None]
        fractions = all(isinstance(span, float | int) for span in given)
        self.unused = 0  # rows the fractions leave out on purpose, not by rounding
        if fractions and sum(given) < 1 - 1e-9:  # type: ignore[arg-type]
            self.unused = rows - sum(len(part) for part in (train_rows, val_rows, test_rows)
                                     if part is not None)  # fmt: skip
        data = fit_to_training_rows(data, train_rows)
        train = data.train
        val_idx = None if val_rows is None else samples_in(train, val_rows)
        self.planned = (samples_in(train, train_rows), val_idx)
        if test_rows is None:
            return data
        # sample numbers stay valid: the kept part is the samples before the test range
        keep = samples_in(train, np.arange(int(test_rows[0])))
        return data.with_splits(train.subset(keep), train.subset(samples_in(train, test_rows)))

    def warnings(self) -> list[str]:
        if not self.unused:
            return []
        return [f"the time_split fractions leave the last {self.unused} rows to no part; "
                "raise evaluation.train, validation or test to use them"]  # fmt: skip

    def folds(self, train: Arrays, task: type[Task], seed: int) -> list[Fold]:
        c = self.config
        if self.planned is None:
            train_idx, val_idx = splits.time_ranges(len(train), [c.train, c.validation])
        else:
            train_idx, val_idx = self.planned
        assert train_idx is not None
        return [Fold("", "", train_idx, val_idx, seed)]
