"""The task interface: what a training step, an evaluation and a prediction mean.

A task is the one place that knows a kind of model. It owns its named sub-models, their
optimizers and losses, and says which metrics, analyses, baselines and prediction columns apply
to it. The training loop, the fold runner, checkpoints, scoring, reports, ``eval``/``predict``
and sweeps talk to this interface only, so a new kind of model (an autoencoder, a GAN) is one
registered class::

    @TASKS.register("autoencoder")
    class Autoencoder(Task):
        def build(self, fields, device): ...      # models and optimizers for these inputs
        def train_step(self, batch): ...          # one update -> StepResult
        def eval_step(self, batch): ...           # loss and outputs, no update
        def predict_step(self, batch): ...        # what `dlrun predict` writes

A task is made in two stages: ``Task(cfg)`` reads the config (losses, metrics), and
:meth:`Task.build` creates the models once the shapes of the preprocessed inputs are known.
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from functools import cache
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import torch
from pydantic import model_serializer

from dlrun.config.base import StrictModel
from dlrun.config.entries import tagged_config
from dlrun.errors import ConfigIssue
from dlrun.registry import Registry
from dlrun.training import eager
from dlrun.training.metrics import METRICS
from dlrun.training.metrics import Averaging
from dlrun.training.metrics import MetricKind
from dlrun.training.metrics import Predictions
from dlrun.training.metrics import compute_metrics

if TYPE_CHECKING:
    from dlrun.config.schema import ExperimentConfig
    from dlrun.data.base import Arrays
    from dlrun.models.build import BuiltModel
    from dlrun.training.batches import Batch
    from dlrun.training.batches import Fields


class TaskSection(StrictModel):
    """The ``task:`` section: a registered task's name and its parameters, if it has any."""

    name: str

    @model_serializer(mode="wrap")
    def _bare_name(self, handler: Callable[[Any], Any]) -> Any:
        """A task without parameters is written back as its bare name (``task: binary``)."""
        dumped = handler(self)
        return dumped["name"] if set(dumped) == {"name"} else dumped

    @classmethod
    def resolve(cls, data: Any) -> type[TaskSection] | None:
        """The registered task's config model for the mapping ``data`` (for error hints)."""
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str) or name not in TASKS:
            return None
        return task_config_model(TASKS.get(name), name)


@dataclass
class StepResult:
    """What one batch gave: its loss (detached, for logs), its size and outputs for metrics."""

    loss: torch.Tensor
    size: int
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)


def unchanged(arrays: Arrays) -> Arrays:
    return arrays


class Task(ABC):
    """A kind of model. Capabilities are class attributes, read before anything is built."""

    Config: ClassVar[type[StrictModel]] = StrictModel  # parameters under ``task:``
    inputs: ClassVar[tuple[str, ...]] = ("x",)  # arrays the models read (predict, leak checks)
    target: ClassVar[str | None] = None  # the array of targets baselines are scored on
    class_labels: ClassVar[bool] = False  # targets are classes: labels encoded, class analyses
    single_label: ClassVar[bool] = False  # one class per sample: stratified splits, one_hot
    max_classes: ClassVar[int | None] = None  # binary: 2, refused beyond on the raw labels
    metric_kinds: ClassVar[frozenset[MetricKind]] = frozenset()
    baselines: ClassVar[tuple[str, ...]] = ()  # names in evaluation.baselines.BASELINES
    analyses: ClassVar[tuple[str, ...]] = ()  # names in reporting.analyses.ANALYSES
    # Labels come from one score against a threshold, which ``prediction_table`` can be given
    # (``dlrun predict --threshold``); other tasks ignore it.
    decision_threshold: ClassVar[bool] = False
    stackable: ClassVar[bool] = False  # ``stacked`` can train K built copies as one

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg = cfg
        # The task's own parameters; a subclass declares ``config: Config`` for its type.
        self.config: StrictModel = cfg.task
        self.models: dict[str, BuiltModel] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> list[ConfigIssue]:
        """Problems with ``cfg`` that only this task can see (run with the other checks)."""
        return []

    @classmethod
    def loss_description(cls, cfg: ExperimentConfig) -> str | None:
        """The loss as report.md states it (``None``: the task defines its own)."""
        return cfg.loss.name if cfg.loss is not None else None

    @classmethod
    def stacked(cls, members: list[Task]) -> StackedTask:
        """K built copies of this task (one per fold) as one task the loop trains at once
        (``evaluation.parallel_folds``); only for ``stackable`` tasks."""
        raise TypeError(f"{cls.__name__} cannot be stacked")

    @classmethod
    def supports_metric(cls, name: str) -> bool:
        return METRICS.get(name).kind in cls.metric_kinds

    def array_form(self) -> Callable[[Arrays], Arrays]:
        """How the preprocessed arrays become what the steps read (targets as labels or rows,
        unused arrays dropped). Picklable, because DataLoader workers apply it too."""
        return unchanged

    @abstractmethod
    def build(self, fields: Fields, device: torch.device) -> None:
        """Create the sub-models and optimizers for inputs shaped like ``fields``.

        Initialisation draws from torch's global generator, which the caller has seeded. On
        the ``meta`` device the task is only a plan (shapes and sizes for the checks before
        training) and may leave out its optimizers.
        """

    def check_batch(self, batch: Batch) -> None:
        """A look at the training data before training (all of it when it is in memory, the
        first batch when streamed): raise :class:`DataError` for values the models cannot take."""
        return None

    # How the task's labels combine per-class scores (its predictions carry it), and what a
    # mean runs over: ("class", "classes") or ("label", "labels"); None without class scores
    class_averaging: ClassVar[Averaging | None] = None
    averaged_over: ClassVar[tuple[str, str]] = ("class", "classes")

    @classmethod
    def averaging(cls, class_names: list[str] | None) -> str | None:
        """How precision, recall and F1 combine per-class scores, in words for the report
        ("for the positive class 'diabetes' only")."""
        if cls.class_averaging is Averaging.BINARY:
            positive = class_names[1] if class_names and len(class_names) > 1 else "1"
            return f"for the positive class '{positive}' only"
        if cls.class_averaging is Averaging.MACRO:
            one, many = cls.averaged_over
            return f"computed per {one}, then averaged over the {many}"
        return None

    def checks_every_row(self) -> bool:
        """Whether :meth:`check_batch` must see every training row before the run starts, not
        a sample: a value the built models cannot take may sit in any row (a token id beyond
        an embedding's table), and finding it only when a fold is prepared leaves a failed
        run behind."""
        return False

    @abstractmethod
    def train_step(self, batch: Batch) -> StepResult:
        """One optimisation step on ``batch``."""

    @abstractmethod
    def eval_step(self, batch: Batch) -> StepResult:
        """Loss and outputs on ``batch`` without changing the models."""

    @abstractmethod
    def predict_step(self, batch: Batch) -> torch.Tensor:
        """The values ``dlrun predict`` writes for ``batch`` (one row per sample)."""

    def predictions(self, results: list[StepResult]) -> Predictions | None:
        """Targets and outputs behind an epoch or an evaluation, for metrics and analyses."""
        return None

    def scored_predictions(self, results: list[StepResult]) -> Predictions | None:
        """The predictions a scored split's analyses read: :meth:`predictions`, plus what only
        those analyses need, made once per scored split and not every epoch (a VAE's samples)."""
        return self.predictions(results)

    def epoch_logs(self, results: list[StepResult], prefix: str = "") -> dict[str, float]:
        """Loss (the sample-weighted mean of batch losses, as Keras reports it) and metrics."""
        logs = {"loss": mean_loss(results), **self.metrics(results)}
        return {f"{prefix}{key}": value for key, value in logs.items()}

    def metrics(self, results: list[StepResult]) -> dict[str, float]:
        predictions = self.predictions(results) if self.cfg.metrics else None
        return compute_metrics(list(self.cfg.metrics), predictions) if predictions else {}

    def prediction_table(
        self, outputs: torch.Tensor, class_names: list[str] | None, threshold: float | None = None
    ) -> tuple[list[str], list[list[Any]]]:
        """Header and rows for ``dlrun predict``: one column per output value by default."""
        values = outputs.detach().cpu().reshape(len(outputs), -1).tolist()
        width = len(values[0]) if values else 0
        return [f"output_{i}" for i in range(width)], values

    def learning_rate(self) -> float:
        first = next(iter(self.optimizers.values()))
        return float(first.param_groups[0]["lr"])

    def set_learning_rate(self, lr: float) -> None:
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr

    def model_state(self) -> dict[str, Any]:
        return {name: model.network.state_dict() for name, model in self.models.items()}

    def load_model_state(self, state: dict[str, Any]) -> None:
        for name, model in self.models.items():
            model.network.load_state_dict(state[name])

    def state_dict(self) -> dict[str, Any]:
        """Everything training changes: weights and optimizer states (with learning rates)."""
        optimizers = {name: eager.state_of(opt) for name, opt in self.optimizers.items()}
        return {"models": self.model_state(), "optimizers": optimizers}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_model_state(state["models"])
        for name, optimizer in self.optimizers.items():
            eager.load_state(optimizer, state["optimizers"][name])

    @property
    def total_params(self) -> int:
        return sum(model.total_params for model in self.models.values())


class StackedTask(Task):
    """K fold tasks as one: batches of shape ``(K, batch, ...)`` with a ``MASK`` of real rows.

    ``epoch_logs`` computes every fold's own logs and keeps them for :meth:`take_fold_logs`;
    it returns their mean (what a progress bar for the whole stack shows).
    """

    members: list[Task]

    @abstractmethod
    def take_fold_logs(self) -> list[dict[str, float]]:
        """Each fold's logs since the last call (training and validation)."""

    @abstractmethod
    def write_back(self) -> None:
        """Copy each fold's slice of the stacked weights into its own models."""


def mean_loss(results: list[StepResult]) -> float:
    if not results:
        return float("nan")
    losses = torch.stack([r.loss.float() for r in results])
    sizes = torch.tensor([r.size for r in results], dtype=losses.dtype, device=losses.device)
    return float((losses * sizes).sum() / sizes.sum())


TASKS: Registry[type[Task]] = Registry("task")


@cache
def task_config_model(task: type[Task], name: str) -> type[TaskSection]:
    """The task's parameters with ``name`` fixed, as the ``task:`` section validates them."""
    title = f"{task.__name__}TaskConfig"
    model: type[TaskSection] = tagged_config(task.Config, TaskSection, "name", name, title)
    return model
