"""Callbacks: optional side effects at fixed points of the training loop.

Five hooks with no-op defaults. Callbacks reset their runtime state in ``on_fit_start`` so one
instance can serve several fits (folds, final retrain), and save it with ``state_dict`` so a
resumed fit continues exactly where it stopped. The registered ones are configurable from YAML
under ``train.callbacks``.
"""

from __future__ import annotations

import copy
import math
from typing import Any
from typing import ClassVar
from typing import Literal

import torch
from pydantic import Field

from dlrun.config.base import Number
from dlrun.config.base import StrictModel
from dlrun.registry import Registry
from dlrun.training.metrics import higher_is_better
from dlrun.training.state import TrainState
from dlrun.training.status import RunStatus


class Callback:
    Config: ClassVar[type[StrictModel]] = StrictModel

    def __init__(self, config: StrictModel | None = None) -> None:
        self.config = config

    def on_fit_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def on_batch_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What this callback has learned during the fit (called after ``on_epoch_end``)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (called after ``on_fit_start`` when a fit resumes)."""


class CallbackList(Callback):
    """Fans every hook out to its callbacks, in order."""

    def __init__(self, callbacks: list[Callback]) -> None:
        super().__init__()
        self.callbacks = callbacks

    def on_fit_start(self, state: TrainState) -> None:
        for cb in self.callbacks:
            cb.on_fit_start(state)

    def on_epoch_start(self, state: TrainState) -> None:
        for cb in self.callbacks:
            cb.on_epoch_start(state)

    def on_batch_end(self, state: TrainState) -> None:
        for cb in self.callbacks:
            cb.on_batch_end(state)

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(state, logs)

    def on_fit_end(self, state: TrainState) -> None:
        for cb in self.callbacks:
            cb.on_fit_end(state)

    def _keys(self) -> list[str]:
        """A stable name per callback (its class, numbered when repeated), so a resumed run
        whose chain differs (no sweep reporter, another progress display) still matches."""
        seen: dict[str, int] = {}
        keys = []
        for cb in self.callbacks:
            name = type(cb).__name__
            seen[name] = seen.get(name, 0) + 1
            keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
        return keys

    def state_dict(self) -> dict[str, Any]:
        states = {
            key: cb.state_dict() for key, cb in zip(self._keys(), self.callbacks, strict=True)
        }
        return {key: state for key, state in states.items() if state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, cb in zip(self._keys(), self.callbacks, strict=True):
            if key in state:
                cb.load_state_dict(state[key])


CALLBACKS: Registry[type[Callback]] = Registry("callback")


class MonitorConfig(StrictModel):
    monitor: str = "val_loss"
    min_delta: Number = Field(default=0.0, ge=0)


class _Monitor:
    """Tracks the best value of a monitored quantity; direction comes from the metric registry."""

    def __init__(self, monitor: str, min_delta: float) -> None:
        self.monitor = monitor
        self.min_delta = min_delta
        self.higher = higher_is_better(monitor)
        self.best = -math.inf if self.higher else math.inf

    def improved(self, logs: dict[str, float]) -> bool:
        value = logs[self.monitor]
        better = (
            value > self.best + self.min_delta
            if self.higher
            else value < self.best - self.min_delta
        )
        if better:
            self.best = value
        return better


@CALLBACKS.register("early_stopping")
class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``restore_best`` puts back the weights of the best epoch when the fit ends; with
    ``restore_if: stopped`` only when this callback stopped it, as Keras 2 and tf.keras do
    (the books' code), so a fit that runs all its epochs keeps its last weights. The epoch
    put back is recorded as ``state.restored_epoch``, which the learning curves mark.
    """

    class Config(MonitorConfig):
        patience: int = Field(default=0, ge=0)
        restore_best: bool = False
        restore_if: Literal["always", "stopped"] = "always"

    config: Config

    def on_fit_start(self, state: TrainState) -> None:
        self.tracker = _Monitor(self.config.monitor, self.config.min_delta)
        self.wait = 0
        self.best_epoch = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.stopped = False

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        if self.tracker.improved(logs):
            self.wait = 0
            self.best_epoch = state.epoch
            if self.config.restore_best:
                self.best_weights = copy.deepcopy(state.task.model_state())
            return
        self.wait += 1
        if self.wait >= self.config.patience:
            self.stopped = True
            state.stop(
                RunStatus.STOPPED_EARLY,
                f"early stopping: {self.config.monitor} did not improve for "
                f"{self.wait} epochs (best {self.tracker.best:.4g} at epoch {self.best_epoch})",
            )

    def on_fit_end(self, state: TrainState) -> None:
        wanted = self.stopped or self.config.restore_if == "always"
        if self.best_weights is not None and wanted:
            state.task.load_model_state(self.best_weights)
            state.restored_epoch = self.best_epoch

    def state_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "best": self.tracker.best, "best_epoch": self.best_epoch,
                "best_weights": self.best_weights, "stopped": self.stopped}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait, self.tracker.best = state["wait"], state["best"]
        self.best_epoch, self.best_weights = state["best_epoch"], state["best_weights"]
        self.stopped = state.get("stopped", False)


@CALLBACKS.register("reduce_lr_on_plateau")
class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement."""

    class Config(MonitorConfig):
        factor: Number = Field(default=0.1, gt=0, lt=1)
        patience: int = Field(default=10, ge=0)
        min_delta: Number = Field(default=1e-4, ge=0)
        cooldown: int = Field(default=0, ge=0)
        min_lr: Number = Field(default=0.0, ge=0)

    config: Config

    def on_fit_start(self, state: TrainState) -> None:
        self.tracker = _Monitor(self.config.monitor, self.config.min_delta)
        self.wait = 0
        self.cooldown_left = 0

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self.tracker.improved(logs):
            self.wait = 0
            return
        if self.cooldown_left > 0:
            return
        self.wait += 1
        if self.wait >= self.config.patience:
            lr = state.task.learning_rate()
            new_lr = max(lr * self.config.factor, self.config.min_lr)
            if new_lr < lr:
                state.task.set_learning_rate(new_lr)
            self.cooldown_left = self.config.cooldown
            self.wait = 0

    def state_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "best": self.tracker.best, "cooldown_left": self.cooldown_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait, self.tracker.best = state["wait"], state["best"]
        self.cooldown_left = state["cooldown_left"]


@CALLBACKS.register("checkpoint")
class Checkpoint(Callback):
    """Write ``checkpoint_best.pt`` when ``monitor`` improves, or ``checkpoint_last.pt`` every epoch."""

    class Config(MonitorConfig):
        positional: ClassVar[str] = "save"
        save: Literal["best", "last"] = "best"

    config: Config

    def on_fit_start(self, state: TrainState) -> None:
        self.tracker = _Monitor(self.config.monitor, self.config.min_delta)

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        if state.save_checkpoint is None:
            return
        if self.config.save == "last" or self.tracker.improved(logs):
            state.save_checkpoint(f"checkpoint_{self.config.save}.pt", state)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.tracker.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.best = state["best"]
