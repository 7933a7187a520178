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

import dlrun.components  # noqa: F401  (fills the registries before the models are built)
from dlrun.config.base import StrictModel
from dlrun.config.entries import OneOfEntry
from dlrun.config.entries import one_of_entry
from dlrun.config.entries import tagged_union
from dlrun.data.base import DATASETS
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.evaluation.protocols import ProtocolConfig
from dlrun.models.layers import LAYERS
from dlrun.preprocess.steps import STEPS
from dlrun.registry import did_you_mean
from dlrun.sweep.space import SweepConfig
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
    EvaluationConfig = ProtocolConfig
else:
    LayerEntry = one_of_entry("LayerEntry", LAYERS)
    StepEntry = one_of_entry("StepEntry", STEPS)
    CallbackEntry = one_of_entry("CallbackEntry", CALLBACKS)
    DataConfig = tagged_union(DATASETS, "dataset")
    LossConfig = tagged_union(LOSSES, "name")
    OptimizerConfig = tagged_union(OPTIMIZERS, "name")
    EvaluationConfig = tagged_union(PROTOCOLS, "protocol", default="holdout")


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
    evaluation: EvaluationConfig = Field(default="holdout", validate_default=True)
    sweep: SweepConfig | None = Field(default=None, description="used by dlrun sweep only")

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
    def protocol_name(self) -> str:
        return str(getattr(self.evaluation, "protocol"))  # noqa: B009

    @property
    def dataset_name(self) -> str:
        return str(getattr(self.data, "dataset"))  # noqa: B009


def json_schema() -> dict[str, Any]:
    return ExperimentConfig.model_json_schema()
