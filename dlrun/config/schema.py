"""The experiment config: one frozen, typed object built at the CLI boundary.

Component parameters (layers, preprocessing steps, datasets, losses, optimizers, callbacks) come
from the registries, so registering a component is all it takes to make it configurable.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

from pydantic import Field
from pydantic import field_validator
from pydantic import model_validator

import dlrun.components  # noqa: F401  (fills the registries before the models are built)
from dlrun.config.base import Number
from dlrun.config.base import StrictModel
from dlrun.config.entries import OneOfEntry
from dlrun.config.entries import one_of_entry
from dlrun.config.entries import tagged_union
from dlrun.data.base import DATASETS
from dlrun.models.layers import LAYERS
from dlrun.preprocess.steps import STEPS
from dlrun.registry import did_you_mean
from dlrun.training.callbacks import CALLBACKS
from dlrun.training.losses import LOSSES
from dlrun.training.metrics import METRICS
from dlrun.training.optimizers import OPTIMIZERS

Task = Literal["binary", "multiclass", "multilabel", "regression"]

if TYPE_CHECKING:
    LayerEntry = OneOfEntry
    StepEntry = OneOfEntry
    CallbackEntry = OneOfEntry
    DataConfig = StrictModel
    LossConfig = StrictModel
    OptimizerConfig = StrictModel
else:
    LayerEntry = one_of_entry("LayerEntry", LAYERS)
    StepEntry = one_of_entry("StepEntry", STEPS)
    CallbackEntry = one_of_entry("CallbackEntry", CALLBACKS)
    DataConfig = tagged_union(DATASETS, "dataset")
    LossConfig = tagged_union(LOSSES, "name")
    OptimizerConfig = tagged_union(OPTIMIZERS, "name")


class ModelConfig(StrictModel):
    layers: list[LayerEntry] = Field(min_length=1)
    input_shape: list[int] | None = Field(
        default=None, description="per-sample input shape; lets `dlrun validate` skip the data"
    )
    init: Literal["keras", "torch"] = "keras"


class TrainConfig(StrictModel):
    epochs: int = Field(default=10, gt=0)
    batch_size: int = Field(default=32, gt=0)
    shuffle: bool = True
    device: str = Field(
        default="auto", description="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps"
    )
    callbacks: list[CallbackEntry] = []
    progress: Literal["auto", "bar", "plain", "none"] = "auto"

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError(f"expected auto, cpu, cuda, cuda:N or mps, got '{value}'")
        return value


class ValidationConfig(StrictModel):
    """Exactly one of: a ``fraction`` of the training data, a ``count`` of samples drawn at
    random, or the ``first`` N samples in file order (as DLwP takes the first 10,000 reviews)."""

    fraction: Number | None = Field(default=None, gt=0, lt=1)
    count: int | None = Field(default=None, gt=0)
    first: int | None = Field(default=None, gt=0)
    stratify: bool = False

    @model_validator(mode="after")
    def _one_size(self) -> ValidationConfig:
        given = [n for n in ("fraction", "count", "first") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of fraction, count or first")
        if self.first is not None and self.stratify:
            raise ValueError("first takes samples in file order; it cannot be stratified")
        return self


class FinalConfig(StrictModel):
    """Retrain from scratch on training + validation data before the one test evaluation."""

    retrain: Literal["train+val"] = "train+val"
    epochs: int = Field(gt=0)


class EvaluationConfig(StrictModel):
    protocol: Literal["holdout"] = "holdout"
    validation: ValidationConfig | None = ValidationConfig(fraction=0.2)
    final: FinalConfig | None = None


class ExperimentConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    seed: int = 0
    task: Task
    data: DataConfig
    preprocess: list[StepEntry] = []
    model: ModelConfig
    loss: LossConfig
    optimizer: OptimizerConfig = Field(default="rmsprop", validate_default=True)
    metrics: list[str] = []
    train: TrainConfig = TrainConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in METRICS:
                hint = did_you_mean(name, METRICS.names())
                raise ValueError(
                    f"unknown metric '{name}'{hint}; known: {', '.join(METRICS.names())}"
                )
        if len(set(names)) != len(names):
            raise ValueError("a metric is listed twice")
        return names

    @property
    def loss_name(self) -> str:
        return str(getattr(self.loss, "name"))  # noqa: B009 - set by the tagged union

    @property
    def optimizer_name(self) -> str:
        return str(getattr(self.optimizer, "name"))  # noqa: B009

    @property
    def dataset_name(self) -> str:
        return str(getattr(self.data, "dataset"))  # noqa: B009


def json_schema() -> dict[str, Any]:
    return ExperimentConfig.model_json_schema()
