"""Parallel folds: K fold models trained at once as one stacked task, by the one training loop.

Small K-fold models are dominated by per-step overhead (Boston trains 4 x 100 epochs at batch
size 1). The task stacks its K fold copies into one (:meth:`dlrun.tasks.base.Task.stacked`),
:class:`StackedSource` hands out K fold batches at once, and :class:`FoldFanOut` gives every
fold its own share of each epoch, so a step costs about what one fold's step costs while each
fold keeps its own initialisation, preprocessing, data order, history, status, metric files
and TensorBoard run. Results match sequential training within float tolerance; dropout masks
are drawn differently.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from dlrun.tasks.base import StackedTask
from dlrun.training.batches import MASK
from dlrun.training.batches import Batch
from dlrun.training.batches import BatchSource
from dlrun.training.batches import Chunk
from dlrun.training.batches import InMemorySource
from dlrun.training.batches import chunks_on_device
from dlrun.training.callbacks import Callback
from dlrun.training.loop import end_epoch
from dlrun.training.state import TrainState
from dlrun.training.status import RunStatus


class StackedSource(BatchSource):
    """K in-memory fold sources as one: batches of shape (K, batch, ...) plus a row mask.

    Each fold draws its own order from its own generator, exactly as it would alone; the K
    orders are gathered once per epoch and sliced into batches, so padding (repeating row 0 of a
    shorter fold, masked out of every loss and metric) only ever fills the last batch, and only
    batches that hold padding carry the mask.
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
        smallest = min(m.size for m in self.members)
        for start in range(0, n_max, self.batch_size):
            stop = start + self.batch_size
            batch = {name: t[:, start:stop] for name, t in gathered.items()}
            batch = self._finish(batch, None)
            if stop > smallest:  # some fold has run out of rows here
                batch[MASK] = mask[:, start:stop]
            yield batch

    def _fetch(self, chunks: list[Chunk]) -> Iterator[Batch]:
        for index in chunks_on_device(chunks, self.device):
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
        self.task.write_back()
        fold_logs = self.task.take_fold_logs()
        for index, (member, fold, callback, own) in enumerate(
            zip(self.task.members, self.states, self.callbacks, fold_logs, strict=True)
        ):
            end_epoch(member, fold, own, callback)
            if fold.should_stop and not state.should_stop:
                state.stop(fold.status, f"fold {index + 1}: {fold.stop_reason}")

    def on_fit_end(self, state: TrainState) -> None:
        """Each fold ends with its own status; a fold that was fine when another one halted
        the stack says so, instead of taking that fold's status."""
        self.task.write_back()
        halted = [f"fold {i + 1} {s.status}" for i, s in enumerate(self.states) if s.should_stop]
        for callback, fold in zip(self.callbacks, self.states, strict=True):
            if fold.status is RunStatus.RUNNING and not state.status.halted:
                fold.status = RunStatus.COMPLETED
            elif fold.status is RunStatus.RUNNING and not halted:  # interrupted or pruned
                fold.stop(state.status, state.stop_reason or "")
            elif fold.status is RunStatus.RUNNING:
                reason = f"stopped because {halted[0]}; stacked folds train together"
                fold.stop(RunStatus.INTERRUPTED, reason)
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
