"""Task steps: what one training batch and one evaluation mean for a kind of task.

The loop in :mod:`dlrun.training.loop` knows nothing about losses or targets; it calls a
:class:`TaskStep`. Supervised tasks share :class:`SupervisedStep`; autoencoders, VAEs, GANs or
language models register their own step with its own optimizers and losses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from dlrun.models.build import BuiltModel
from dlrun.registry import Registry
from dlrun.training.losses import Loss
from dlrun.training.metrics import Predictions
from dlrun.training.metrics import compute_metrics
from dlrun.training.optimizers import Optimizer


@dataclass(frozen=True)
class TensorData:
    """Inputs and targets already on the training device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)


class TaskStep(Protocol):
    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step; returns the detached loss and outputs for epoch metrics."""

    def epoch_logs(self, outputs: list[torch.Tensor], targets: torch.Tensor) -> dict[str, float]:
        """Metrics over an epoch's collected outputs, ``targets`` in the order presented."""

    def evaluate(self, data: TensorData, batch_size: int, prefix: str) -> dict[str, float]: ...
    def predict(self, x: torch.Tensor, batch_size: int) -> torch.Tensor: ...
    def learning_rate(self) -> float: ...
    def set_learning_rate(self, lr: float) -> None: ...
    def model_state(self) -> dict[str, torch.Tensor]: ...
    def load_model_state(self, state: dict[str, torch.Tensor]) -> None: ...


class SupervisedStep:
    """Inputs to targets with one loss and one optimizer: binary, multiclass, multilabel, regression."""

    def __init__(
        self, task: str, model: BuiltModel, loss: Loss, optimizer: Optimizer, metrics: list[str]
    ) -> None:
        self.task = task
        self.model = model
        self.loss = loss
        self.optimizer_spec = optimizer
        self.metrics = metrics
        self.params = [p for p in model.network.parameters() if p.requires_grad]
        self.optimizer = optimizer.create(self.params)
        self.fused = model.output_activation is not None
        self.needs_clip = any(
            v is not None for v in (optimizer.config.clipnorm, optimizer.config.clipvalue,
                                    optimizer.config.global_clipnorm)
        )  # fmt: skip

    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.network.train()
        outputs = self.model.network(x)
        loss = self.loss(outputs, y, self.fused)
        penalty = self.model.penalty()
        total = loss if penalty is None else loss + penalty  # Keras adds it to the training loss
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.needs_clip:
            self.optimizer_spec.clip(self.params)
        self.optimizer.step()
        return total.detach(), outputs.detach()

    def epoch_logs(self, outputs: list[torch.Tensor], targets: torch.Tensor) -> dict[str, float]:
        if not self.metrics:
            return {}
        probs = self.model.probabilities(torch.cat(outputs))
        return compute_metrics(self.metrics, Predictions(self.task, targets, probs))

    @torch.no_grad()
    def raw_outputs(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        self.model.network.eval()
        chunks = [self.model.network(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return torch.cat(chunks)

    def predict(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        return self.model.probabilities(self.raw_outputs(x, batch_size))

    def evaluate(self, data: TensorData, batch_size: int, prefix: str = "") -> dict[str, float]:
        return self.score(data, batch_size, prefix)[0]

    def score(
        self, data: TensorData, batch_size: int, prefix: str = ""
    ) -> tuple[dict[str, float], torch.Tensor]:
        """Loss and metrics on ``data`` plus the predictions behind them, from one forward pass."""
        outputs = self.raw_outputs(data.x, batch_size)
        logs = {f"{prefix}loss": float(self.loss(outputs, data.y, self.fused))}
        probs = self.model.probabilities(outputs)
        metrics = compute_metrics(self.metrics, Predictions(self.task, data.y, probs))
        logs.update({f"{prefix}{name}": value for name, value in metrics.items()})
        return logs, probs

    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def model_state(self) -> dict[str, torch.Tensor]:
        return self.model.network.state_dict()

    def load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        self.model.network.load_state_dict(state)


StepFactory = Callable[[str, BuiltModel, Loss, Optimizer, list[str]], SupervisedStep]
TASK_STEPS: Registry[StepFactory] = Registry("task")
for _task in ("binary", "multiclass", "multilabel", "regression"):
    TASK_STEPS.register(_task)(SupervisedStep)
