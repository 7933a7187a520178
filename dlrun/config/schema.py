"""The experiment config: one frozen, typed object built at the CLI boundary.

Component parameters (layers, preprocessing steps, datasets, losses, optimizers, callbacks,
protocols) come from the registries, so registering a component is all it takes to make it
configurable. Each single-choice section (``data``, ``loss``, ``optimizer``, ``evaluation``) is
typed as its section base class, which every registered config really inherits; the ``task``
section is checked against the task registry when a config is read, so a task registered by
user code after import is configurable too.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import TYPE_CHECKING
from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import Field
from pydantic import GetJsonSchemaHandler
from pydantic import PositiveInt
from pydantic import PrivateAttr
from pydantic import SerializeAsAny
from pydantic import ValidatorFunctionWrapHandler
from pydantic import WrapValidator
from pydantic import field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

import dlrun.components  # noqa: F401  (fills the registries before the models are built)
from dlrun.config.base import StrictModel
from dlrun.config.entries import OneOfEntry
from dlrun.config.entries import one_of_entry
from dlrun.config.entries import tagged_union
from dlrun.config.messages import ConfigOrigin
from dlrun.data.base import DATASETS
from dlrun.data.base import DataSection
from dlrun.errors import RegistryError
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.evaluation.protocols import EvaluationSection
from dlrun.models.layers import LAYERS
from dlrun.preprocess.steps import STEPS
from dlrun.registry import did_you_mean
from dlrun.sweep.space import SweepConfig
from dlrun.tasks.base import TASKS
from dlrun.tasks.base import TaskSection
from dlrun.tasks.base import task_config_model
from dlrun.training.callbacks import CALLBACKS
from dlrun.training.losses import LOSSES
from dlrun.training.losses import LossSection
from dlrun.training.metrics import METRICS
from dlrun.training.optimizers import OPTIMIZERS
from dlrun.training.optimizers import OptimizerSection

if TYPE_CHECKING:
    LayerEntry = OneOfEntry
    StepEntry = OneOfEntry
    CallbackEntry = OneOfEntry
    DataConfig = DataSection
    LossConfig = LossSection
    OptimizerConfig = OptimizerSection
    EvaluationConfig = EvaluationSection
else:
    LayerEntry = one_of_entry("LayerEntry", LAYERS)
    StepEntry = one_of_entry("StepEntry", STEPS)
    CallbackEntry = one_of_entry("CallbackEntry", CALLBACKS)
    DataConfig = tagged_union(DATASETS, "dataset", DataSection)
    LossConfig = tagged_union(LOSSES, "name", LossSection)
    OptimizerConfig = tagged_union(OPTIMIZERS, "name", OptimizerSection)
    EvaluationConfig = tagged_union(PROTOCOLS, "protocol", EvaluationSection, default="holdout")


def _registered_task(data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """``task: binary`` or ``task: {name: vae, latent_dim: 2}``, looked up when validated."""
    if isinstance(data, TaskSection):
        return data
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ValueError(f"give a task name, one of: {', '.join(TASKS.names())}")
    try:
        task = TASKS.get(data["name"])
    except RegistryError as exc:
        raise ValueError(str(exc)) from None
    return task_config_model(task, data["name"]).model_validate(data)


class _TaskJsonSchema:
    """The tasks registered when the schema is printed, by name or as a mapping."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        names = {"enum": TASKS.names()}
        mapping = {"type": "object", "properties": {"name": names}, "required": ["name"]}
        return {"anyOf": [{"type": "string", **names}, mapping]}


TaskConfig = Annotated[
    SerializeAsAny[TaskSection], WrapValidator(_registered_task), _TaskJsonSchema()
]


class ModelConfig(StrictModel):
    layers: list[LayerEntry] = Field(min_length=1)
    input_shape: list[PositiveInt] | None = Field(
        default=None,
        min_length=1,
        description="per-sample input shape; lets `dlrun validate --no-data` skip the data",
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
    checkpoint_every: int | Literal["auto"] = Field(
        default="auto",
        description="epochs between resume states (dlrun train --resume); auto: after an "
        "epoch unless writing would take over 2% of the time (a few saves a second at most)",
    )

    @field_validator("checkpoint_every", mode="before")
    @classmethod
    def _positive_or_auto(cls, value: Any) -> Any:
        if value == "auto" or (
            isinstance(value, int) and not isinstance(value, bool) and value > 0
        ):
            return value
        raise ValueError(f"expected a positive number of epochs or 'auto', got {value!r}")

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError(f"expected auto, cpu, cuda, cuda:N or mps, got '{value}'")
        return value


class Book(Enum):
    """The books and course whose experiments the shipped configs reproduce (``../shared/spec``)."""

    DLWP = "dlwp"
    BEGINNERS = "beginners"
    COURSE = "course"

    @property
    def title(self) -> str:
        return _BOOK_TITLES[self]


_BOOK_TITLES = {
    Book.DLWP: "Deep Learning with Python (1st ed.)",
    Book.BEGINNERS: "Deep Learning for Beginners",
    Book.COURSE: "Module II course slides",
}


class SourceConfig(StrictModel):
    """The book experiment a config reproduces, so a result can be held against its number."""

    book: Annotated[Book, Field(strict=False)]  # written as its value: ``book: dlwp``
    experiment: str = Field(pattern=r"^[A-Za-z0-9-]+$", description="its row id in the spec")
    section: str = Field(default="", description="where the book runs it, e.g. '3.4.4'")

    def citation(self) -> str:
        where = f", {self.section}" if self.section else ""
        return f"{self.book.title}{where}, experiment {self.experiment}"


class ExperimentConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    source: SourceConfig | None = Field(
        default=None, description="the book experiment this config reproduces"
    )
    # numpy takes seeds below 2**32; below 2**31 leaves room for the seeds derived per fold
    seed: int = Field(default=0, ge=0, lt=2**31, description="0 .. 2**31 - 1")
    task: TaskConfig
    data: DataConfig
    preprocess: list[StepEntry] = []
    model: ModelConfig
    loss: LossConfig | None = Field(default=None, description="required by supervised tasks")
    optimizer: OptimizerConfig = Field(default="rmsprop", validate_default=True)
    metrics: list[str] = []
    train: TrainConfig = TrainConfig()
    evaluation: EvaluationConfig = Field(default="holdout", validate_default=True)
    sweep: SweepConfig | None = Field(default=None, description="used by dlrun sweep only")
    _origin: ConfigOrigin = PrivateAttr(default_factory=ConfigOrigin)

    @property
    def one_hot_labels(self) -> bool:
        """True when a preprocessing step turns the class labels into one-hot rows."""
        return any(STEPS.get(entry.selected()[0]).encodes_labels for entry in self.preprocess)

    @property
    def origin(self) -> ConfigOrigin:
        """The file and lines this config was read from (for errors found after loading)."""
        return self._origin

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


def json_schema() -> dict[str, Any]:
    return ExperimentConfig.model_json_schema()
