"""The dataset contract: a registered source turns its typed config into arrays.

Every source returns the training part and, where one exists, a test part: the dataset's
official split, or a seeded (optionally stratified) fraction for sources without one.
"""

from __future__ import annotations

import hashlib
from abc import ABC
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import InitVar
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any
from typing import ClassVar
from typing import Literal

import numpy as np
from pydantic import Field

from dlrun.config.base import StrictModel
from dlrun.data.download import Resource
from dlrun.errors import ConfigIssue
from dlrun.errors import DataError
from dlrun.errors import DataNotHere
from dlrun.errors import DlrunError
from dlrun.evaluation.splits import seeded_split
from dlrun.guards import is_training
from dlrun.preprocess.augment import AugmentConfig
from dlrun.registry import Registry


class Unusable(str, Enum):
    """Values no model can train on: they make the first loss NaN."""

    INFINITE = "infinite"
    MISSING = "missing (NaN)"

    def __str__(self) -> str:  # messages show the value
        return self.value


@dataclass(frozen=True)
class NonFinite:
    """Unusable values found in one array."""

    array: str
    kind: Unusable
    rows: int  # how many rows hold one
    first_row: int  # its index in the part's rows (after any test split was drawn)
    column: int | None  # where in that row, for arrays of several columns
    value: float


def nonfinite(arrays: Arrays, target: str | None, filled: set[str]) -> NonFinite | None:
    """The first float array holding an infinite value, or a NaN where none may be: in the
    ``target``, or in an input array no imputation step ``filled``."""
    for name, array in arrays.fields.items():
        if array.dtype.kind != "f":
            continue
        checks = [(Unusable.INFINITE, np.isinf(array))]
        if name == target or name not in filled:
            checks.append((Unusable.MISSING, np.isnan(array)))
        for kind, bad in checks:
            per_row = bad.reshape(len(array), -1)
            rows = np.flatnonzero(per_row.any(axis=1))
            if len(rows):
                first = int(rows[0])
                column = int(np.flatnonzero(per_row[first])[0]) if per_row.shape[1] > 1 else None
                value = float(array.reshape(len(array), -1)[first, column or 0])
                return NonFinite(name, kind, len(rows), first, column, value)
    return None


class Arrays:
    """Named per-sample arrays of one length, each keeping its dtype.

    Most data has ``x`` (inputs) and ``y`` (targets); data with several inputs adds its own names
    (``question``, ``text``, ...). Preprocessing steps and tasks pick the names they use.
    """

    __slots__ = ("fields",)
    fields: dict[str, np.ndarray]

    def __init__(
        self, x: np.ndarray | None = None, y: np.ndarray | None = None, **named: np.ndarray
    ) -> None:
        fields = {k: v for k, v in (("x", x), ("y", y)) if v is not None}
        fields.update(named)
        if len({len(v) for v in fields.values()}) > 1:
            sizes = ", ".join(f"{k} {len(v)}" for k, v in fields.items())
            raise DataError(f"the data's arrays have different lengths ({sizes})")
        object.__setattr__(self, "fields", fields)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Arrays is immutable; use replace()")

    def __getstate__(self) -> dict[str, np.ndarray]:
        return self.fields

    def __setstate__(self, fields: dict[str, np.ndarray]) -> None:
        """Unpickling sets the fields once, as ``__init__`` does (DataLoader workers started by
        spawn, as a sweep's worker processes start theirs, receive their arrays pickled)."""
        object.__setattr__(self, "fields", fields)

    def __len__(self) -> int:
        return len(next(iter(self.fields.values()))) if self.fields else 0

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.fields[name]
        except KeyError:
            have = ", ".join(self.fields) or "nothing"
            raise DataError(f"the data has no array named '{name}' (it has {have})") from None

    @property
    def x(self) -> np.ndarray:
        return self["x"]

    @property
    def y(self) -> np.ndarray:
        return self["y"]

    def names(self) -> list[str]:
        return list(self.fields)

    def subset(self, index: np.ndarray) -> Arrays:
        return Arrays(**{k: v[index] for k, v in self.fields.items()})

    def replace(self, **changes: np.ndarray | None) -> Arrays:
        """A copy with arrays replaced, added, or (given ``None``) removed."""
        fields = {**self.fields, **changes}
        return Arrays(**{k: v for k, v in fields.items() if v is not None})


def _row_bytes(x: np.ndarray) -> list[bytes]:
    if x.dtype == object:
        return [np.asarray(row).tobytes() for row in x]
    return [row.tobytes() for row in np.ascontiguousarray(x).reshape(len(x), -1)]


def row_hashes(arrays: Arrays, names: Sequence[str]) -> np.ndarray:
    """A 64-bit fingerprint per sample of the ``names`` arrays (a model's inputs), for finding
    exact duplicate samples across splits."""
    columns = [_row_bytes(arrays[name]) for name in names]
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(b"".join(parts), digest_size=8).digest(), "little",
                        signed=True) for parts in zip(*columns, strict=True)),
        dtype=np.int64,
        count=len(arrays),
    )  # fmt: skip


class SealedSplitError(DlrunError):
    """Raised when code tries to read test rows before the final evaluation."""


class SealedSplit:
    """The test split. Its size and row fingerprints are public; its rows are not.

    :meth:`unseal` hands the arrays out, but never while a model is training (see
    :mod:`dlrun.guards`), and it counts reads so a run can prove it scored the test split once.
    """

    __test__ = False  # not a pytest class

    def __init__(self, arrays: Arrays) -> None:
        self._arrays = arrays
        self.reads = 0

    def __len__(self) -> int:
        return len(self._arrays)

    def row_hashes(self, names: Sequence[str]) -> np.ndarray:
        return row_hashes(self._arrays, names)

    def nonfinite(self, target: str | None, filled: set[str]) -> NonFinite | None:
        """:func:`nonfinite` of the sealed rows: a check of values, never a score, so not a
        read."""
        return nonfinite(self._arrays, target, filled)

    def unseal(self) -> Arrays:
        if is_training():
            raise SealedSplitError(
                "the test split cannot be read while a model is training; "
                "it opens only for the final evaluation"
            )
        self.reads += 1
        return self._arrays

    @property
    def x(self) -> np.ndarray:
        raise SealedSplitError("test rows are sealed; call unseal() for the final evaluation")

    y = x


@dataclass(frozen=True)
class LoadedData:
    """Raw arrays before preprocessing. The test part, when one exists, is sealed."""

    train: Arrays
    test: InitVar[Arrays | None]
    description: str
    feature_names: list[str] | None = None
    class_names: list[str] | None = None
    # Preprocessing steps the source asks for, e.g. imputing values a CSV marked missing.
    implied_steps: list[dict[str, Any]] = field(default_factory=list)
    # Inputs of word ids: the words behind them, so that the source's ``encode_texts`` can
    # turn new texts into the same ids (``dlrun predict`` on a text file).
    vocabulary: list[str] | None = None
    test_split: SealedSplit | None = field(init=False, default=None)

    def __post_init__(self, test: Arrays | None) -> None:
        sealed = SealedSplit(test) if test is not None and len(test) else None
        object.__setattr__(self, "test_split", sealed)

    def renamed(
        self, feature_names: list[str], class_names: list[str] | None, description: str
    ) -> LoadedData:
        """The same arrays under the dataset's own feature and class names and description."""
        test = self.test_split._arrays if self.test_split is not None else None
        return replace(self, feature_names=feature_names, class_names=class_names, test=test,
                       description=description)  # fmt: skip

    def fingerprint(self) -> str:
        """Every row of every array, in order, as 16 hex digits: another file, a reordered or
        edited one, gives another split and another fingerprint (a run records it, so that
        ``eval`` and ``--resume`` never score or continue on other rows than it trained on)."""
        digest = hashlib.sha256()
        names = list(self.train.fields)
        digest.update(row_hashes(self.train, names).tobytes())
        if self.test_split is not None:
            digest.update(self.test_split.row_hashes(names).tobytes())
        return digest.hexdigest()[:16]

    def with_splits(self, train: Arrays, test: Arrays | None) -> LoadedData:
        """The same dataset with new training and test parts (e.g. a chronological test range)."""
        return replace(self, train=train, test=test)


@dataclass(frozen=True)
class LoadContext:
    """What a source may know of the experiment: its seed, whether the targets are classes
    (labels are encoded only then), whether each sample has one (test splits are stratified
    only then) and whether the rows are kept in time order (no test split is drawn at random
    then)."""

    seed: int
    class_labels: bool
    single_label: bool = False
    time_ordered: bool = False
    max_classes: int | None = None  # the task's limit (binary: 2), checked on the raw labels
    reads_targets: bool = True  # an autoencoder does not: a source may hand over inputs only


class DatasetConfig(StrictModel):
    """Settings every dataset takes, whatever its source."""

    in_memory: Literal["auto"] | bool = Field(
        default="auto",
        description="keep the preprocessed data in (device) memory, or stream batches from a "
        "DataLoader; auto streams when the estimated size exceeds a quarter of the memory",
    )
    workers: int = Field(
        default=2, ge=0, description="DataLoader worker processes when the data is streamed"
    )
    augment: AugmentConfig | None = Field(
        default=None,
        description="random image transforms for training batches only (Keras "
        "ImageDataGenerator arguments); never applied to validation or test data",
    )


class DataSection(DatasetConfig):
    """The ``data:`` section as the rest of dlrun sees it: a registered source's config."""

    dataset: str


class SplitConfig(DatasetConfig):
    """For sources without an official test split: how much to hold out as the test set."""

    test_fraction: float = Field(default=0.2, ge=0, lt=1)
    stratify: bool = True


class DataSource(ABC):
    Config: ClassVar[type[DatasetConfig]]
    # The canonical files a source reads (downloadable ones); empty for bundled or generated data.
    resources: ClassVar[tuple[Resource, ...]] = ()

    def __init__(self, config: DatasetConfig) -> None:
        self.config = config

    @abstractmethod
    def load(self, context: LoadContext) -> LoadedData:
        """Read the data; raise :class:`DataError` with a fix for anything the user can mend."""

    @classmethod
    def check_config(cls, config: DatasetConfig, reads_targets: bool) -> list[ConfigIssue]:
        """Problems of ``config`` (this source's section) that need no data: a task that
        ``reads_targets`` needs somewhere to read them from."""
        return []

    def encode_texts(self, texts: np.ndarray, vocabulary: list[str]) -> np.ndarray:
        """New texts as this source's inputs, indexed by the ``vocabulary`` its ``load`` gave
        (sources of word ids override this; ``predict`` calls it only for them)."""
        raise DataError(f"dataset {type(self).__name__} does not turn texts into its inputs")


DATASETS: Registry[type[DataSource]] = Registry("dataset")


def split_off_test(
    x: np.ndarray, y: np.ndarray | None, split: SplitConfig, context: LoadContext
) -> tuple[Arrays, Arrays | None]:
    """Seeded test split; stratified on the labels for classification tasks when asked.
    ``y`` is ``None`` for inputs without targets (an autoencoder's)."""
    if split.test_fraction == 0:
        return Arrays(x, y), None
    if context.time_ordered:
        raise DataError(
            f"the rows are kept in time order, but data.test_fraction ({split.test_fraction:g}) "
            "draws test rows at random from the whole series, so the model would train on rows "
            "from after them; set data.test_fraction: 0 and carve the last rows with "
            "evaluation.test"
        )
    stratify = y if split.stratify and context.single_label else None
    try:
        train_idx, test_idx = seeded_split(len(x), split.test_fraction, context.seed, stratify)
    except DataError as exc:
        raise DataError(f"cannot split off a test set: {exc}") from None
    if y is None:
        return Arrays(x[train_idx]), Arrays(x[test_idx])
    return Arrays(x[train_idx], y[train_idx]), Arrays(x[test_idx], y[test_idx])


def existing_file(path: str, what: str) -> Path:
    """``path`` as a Path, or a one-line error naming the missing file."""
    resolved = Path(path).expanduser()
    if resolved.is_dir():
        raise DataError(f"{what} path {path} is a directory; give the file inside it")
    if not resolved.is_file():
        raise DataNotHere(f"{what} file not found: {path} (looked in {resolved.resolve().parent})")
    return resolved
