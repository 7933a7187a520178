"""Parallel folds: K fold models trained at once as one stacked task, by the one training loop.

Small K-fold models are dominated by per-step overhead (Boston trains 4 x 100 epochs at batch
size 1). Here the K models' parameters are stacked on a leading fold axis
(``torch.func.stack_module_state``) and every batch carries K fold batches, so a step costs
about what one fold's step costs. Layers with a direct stacked form (dense: one batched matmul)
use it; any other network runs under ``torch.func.vmap`` over ``functional_call``.

Each fold keeps its own initialisation (built from its seed exactly as sequential training
does), its own preprocessing, its own data order, history, status, metric files and TensorBoard
run: :class:`FoldFanOut` hands every fold its share of each epoch. The optimizers dlrun offers
update each element independently, so one optimizer over the stacked parameters is K
independent optimizers (norm clipping, which would mix folds, is refused by the config check).
Results match sequential training within float tolerance; dropout masks are drawn differently.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.func import functional_call
from torch.func import stack_module_state
from torch.func import vmap

from dlrun.models.build import BuiltModel
from dlrun.models.build import weight_penalty
from dlrun.tasks.base import StepResult
from dlrun.tasks.base import Task
from dlrun.tasks.supervised import SupervisedTask
from dlrun.training.batches import Batch
from dlrun.training.batches import BatchSource
from dlrun.training.batches import Chunk
from dlrun.training.batches import Fields
from dlrun.training.batches import InMemorySource
from dlrun.training.callbacks import Callback
from dlrun.training.loop import end_epoch
from dlrun.training.metrics import compute_metrics
from dlrun.training.state import TrainState
from dlrun.training.status import RunStatus

MASK = "_mask"  # (K, batch): 1 for real rows, 0 for padding that evens out unequal folds


def unstackable_layer(model: BuiltModel) -> str | None:
    """The first layer that cannot run for K models at once, as the user wrote it."""
    for index, (name, layer) in enumerate(model.layers):
        if not layer.vmappable:
            return f"{name} (model.layers[{index}])"
    return None


class StackedNetwork:
    """The K members' parameters with a leading fold axis, and a forward pass over them."""

    def __init__(self, members: list[BuiltModel], use_vmap: bool = False) -> None:
        self.members = members
        self.base = members[0].network  # structure (and dropout modules) for the forward pass
        params, buffers = stack_module_state([m.network for m in members])
        self.params: dict[str, torch.Tensor] = params
        self.buffers: dict[str, torch.Tensor] = buffers
        direct = [
            layer.stacked_forward(module, f"{index}.")
            for index, ((_, layer), module) in enumerate(zip(members[0].layers, self.base, strict=True))
        ]  # fmt: skip
        self.direct = None if use_vmap or any(f is None for f in direct) else direct
        self.vmapped = vmap(self._member_forward, randomness="different")

    def _member_forward(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        out: torch.Tensor = functional_call(self.base, (params, buffers), (x,))
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (K, batch, ...) -> (K, batch, ...)."""
        if self.direct is None:
            return self.vmapped(self.params, self.buffers, x)
        for forward in self.direct:
            assert forward is not None
            x = forward(x, self.params)
        return x

    def train(self, mode: bool = True) -> None:
        if self.base.training is not mode:  # setting it walks every module
            self.base.train(mode)

    def write_back(self) -> None:
        """Copy each fold's slice into its own model (for evaluation, checkpoints, reports)."""
        with torch.no_grad():
            for k, member in enumerate(self.members):
                state = {name: t[k] for name, t in {**self.params, **self.buffers}.items()}
                member.network.load_state_dict(state)


class StackedTask(Task):
    """K supervised fold tasks as one: one loss per fold, summed, so each gets its own gradient."""

    def __init__(self, members: list[SupervisedTask], use_vmap: bool = False) -> None:
        super().__init__(members[0].cfg)
        self.members = members
        first = members[0]
        self.network = StackedNetwork([m.model for m in members], use_vmap)
        self.loss, self.fused, self.spec = first.loss, first.fused, first.optimizer_spec
        self.penalties = first.model.penalties
        self.params = list(self.network.params.values())
        self.optimizer = self.spec.create(self.params)
        self.optimizers = {"model": self.optimizer}
        self.pending: list[dict[str, float]] = [{} for _ in members]

    def build(self, fields: Fields, device: torch.device) -> None:
        raise TypeError("a stacked task is built from built fold tasks")

    def _fold_losses(self, batch: Batch, outputs: torch.Tensor) -> torch.Tensor:
        k = len(self.members)
        per_sample = self.loss.per_sample(
            outputs.flatten(0, 1), batch["y"].flatten(0, 1), self.fused
        ).reshape(k, -1)
        mask = batch[MASK]
        return (per_sample * mask).sum(dim=1) / mask.sum(dim=1)

    def train_step(self, batch: Batch) -> StepResult:
        self.network.train()
        outputs = self.network(batch["x"])
        fold_loss = self._fold_losses(batch, outputs)
        penalty = weight_penalty(self.network.params, self.penalties, per_fold=True)
        if penalty is not None:
            fold_loss = fold_loss + penalty  # Keras adds it to the training loss
        self.spec.step(self.optimizer, self.params, fold_loss.sum())
        return self._result(batch, outputs.detach(), fold_loss.detach())

    def eval_step(self, batch: Batch) -> StepResult:
        self.network.train(False)
        with torch.no_grad():
            outputs = self.network(batch["x"])
            return self._result(batch, outputs, self._fold_losses(batch, outputs))

    def _result(self, batch: Batch, outputs: torch.Tensor, fold_loss: torch.Tensor) -> StepResult:
        kept = {"y_pred": outputs, "y_true": batch["y"], MASK: batch[MASK], "loss": fold_loss}
        return StepResult(fold_loss.mean(), outputs.shape[1], kept)

    def predict_step(self, batch: Batch) -> torch.Tensor:
        raise TypeError("predict with a fold's own model")

    def epoch_logs(self, results: list[StepResult], prefix: str = "") -> dict[str, float]:
        """Each fold's loss and metrics (kept for :class:`FoldFanOut`); returns their mean."""
        per_fold = []
        for k, member in enumerate(self.members):
            mask = torch.cat([r.outputs[MASK][k] for r in results]).bool()
            rows = torch.stack([r.outputs[MASK][k].sum() for r in results])
            losses = torch.stack([r.outputs["loss"][k] for r in results])
            logs = {"loss": float((losses * rows).sum() / rows.sum())}
            if self.cfg.metrics:
                y_true = torch.cat([r.outputs["y_true"][k] for r in results])[mask]
                logits = torch.cat([r.outputs["y_pred"][k] for r in results])[mask]
                predictions = member.label(y_true, member.model.probabilities(logits))
                logs.update(compute_metrics(list(self.cfg.metrics), predictions))
            prefixed = {f"{prefix}{key}": value for key, value in logs.items()}
            self.pending[k].update(prefixed)
            per_fold.append(prefixed)
        return {key: float(np.mean([logs[key] for logs in per_fold])) for key in per_fold[0]}

    def take_fold_logs(self) -> list[dict[str, float]]:
        taken, self.pending = self.pending, [{} for _ in self.members]
        return taken

    def model_state(self) -> dict[str, Any]:
        return {"stack": {**self.network.params, **self.network.buffers}}

    def load_model_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, tensor in {**self.network.params, **self.network.buffers}.items():
                tensor.copy_(state["stack"][name])


class StackedSource(BatchSource):
    """K in-memory fold sources as one: batches of shape (K, batch, ...) plus a row mask.

    Each fold draws its own order from its own generator, exactly as it would alone; the K
    orders are gathered once per epoch and sliced into batches, so padding (repeating row 0 of a
    shorter fold, masked out of every loss and metric) only ever fills the last batch.
    """

    def __init__(self, members: list[InMemorySource]) -> None:
        first = members[0]
        size = max(m.size for m in members)
        super().__init__(size, first.batch_size, first.device, device_steps=first.device_steps)
        self.members = members
        self.tensors = {
            name: _stack_padded([m.tensors[name] for m in members]) for name in first.tensors
        }

    @property
    def batches_per_epoch(self) -> int:
        return max(m.batches_per_epoch for m in self.members)

    def epoch(self) -> Iterator[Batch]:
        n_max = self.size
        orders, masks = [], []
        for member in self.members:
            order = member.next_order()
            member.epoch_index += 1
            orders.append(torch.cat([order, order.new_zeros(n_max - len(order))]))
            masks.append(torch.arange(n_max) < len(order))
        order = torch.stack(orders).to(self.device)
        mask = torch.stack(masks).to(self.device, torch.float32)
        rows = torch.arange(len(self.members), device=self.device).unsqueeze(1)
        gathered = {name: t[rows, order] for name, t in self.tensors.items()}
        for start in range(0, n_max, self.batch_size):
            stop = start + self.batch_size
            batch = {name: t[:, start:stop] for name, t in gathered.items()}
            batch = self._finish(batch, None)
            batch[MASK] = mask[:, start:stop]
            yield batch

    def _fetch(self, chunks: list[Chunk]) -> Iterator[Batch]:
        for chunk in chunks:
            index = chunk if isinstance(chunk, slice) else chunk.to(self.device)
            yield {name: t[:, index] for name, t in self.tensors.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"members": [m.state_dict() for m in self.members]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for member, saved in zip(self.members, state["members"], strict=True):
            member.load_state_dict(saved)


def _stack_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """(K, n_max, ...) with short folds padded by repeating their row 0."""
    n_max = max(len(t) for t in tensors)
    padded = [torch.cat([t, t[:1].expand(n_max - len(t), *t.shape[1:])]) for t in tensors]
    return torch.stack(padded)


class FoldFanOut(Callback):
    """Gives every fold its own epoch: logs, history, status and callbacks (metric files,
    TensorBoard run), as if it had been trained alone."""

    def __init__(
        self, task: StackedTask, states: list[TrainState], callbacks: list[Callback]
    ) -> None:
        super().__init__()
        self.task, self.states, self.callbacks = task, states, callbacks

    def on_fit_start(self, state: TrainState) -> None:
        for callback, fold in zip(self.callbacks, self.states, strict=True):
            callback.on_fit_start(fold)

    def on_epoch_start(self, state: TrainState) -> None:
        for callback, fold in zip(self.callbacks, self.states, strict=True):
            callback.on_epoch_start(fold)

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        self.task.network.write_back()
        fold_logs = self.task.take_fold_logs()
        for member, fold, callback, own in zip(
            self.task.members, self.states, self.callbacks, fold_logs, strict=True
        ):
            end_epoch(member, fold, own, callback)
            if fold.should_stop:
                state.stop(fold.status, fold.stop_reason or "")

    def on_fit_end(self, state: TrainState) -> None:
        self.task.network.write_back()
        for callback, fold in zip(self.callbacks, self.states, strict=True):
            if fold.status is RunStatus.RUNNING:
                fold.status = state.status if state.status.halted else RunStatus.COMPLETED
                fold.stop_reason = fold.stop_reason or state.stop_reason
            callback.on_fit_end(fold)

    def state_dict(self) -> dict[str, Any]:
        folds = [{"epoch": s.epoch, "history": s.history} for s in self.states]
        return {"folds": folds, "callbacks": [cb.state_dict() for cb in self.callbacks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for fold, saved, callback, saved_callback in zip(
            self.states, state["folds"], self.callbacks, state["callbacks"], strict=True
        ):
            fold.epoch = fold.resumed_from = int(saved["epoch"])
            fold.history = list(saved["history"])
            callback.load_state_dict(saved_callback)
