"""K supervised fold tasks trained at once as one task (``evaluation.parallel_folds``).

Every batch carries K fold batches, shape ``(K, batch, ...)``, with a mask of real rows (folds
of unequal size are padded). Each fold's loss is its own masked mean plus its own weight
penalty (in evaluation too, as Keras reports it); their sum is minimised, so each fold's
parameters get exactly their own gradient, and since dlrun's optimizers update element by
element, one optimizer over the stacked parameters is K independent ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dlrun.models.build import weight_penalty
from dlrun.models.stacked import StackedNetwork
from dlrun.tasks.base import StackedTask
from dlrun.tasks.base import StepResult
from dlrun.tasks.supervised import SupervisedTask
from dlrun.training.batches import MASK
from dlrun.training.batches import Batch
from dlrun.training.batches import Fields


class StackedSupervised(StackedTask):
    """K supervised fold tasks as one: one loss per fold, summed, so each gets its own gradient."""

    def __init__(self, members: list[SupervisedTask], use_vmap: bool = False) -> None:
        super().__init__(members[0].cfg)
        self.folds = members
        self.members = list(members)
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
        """Each fold's mean loss over its real rows, with its weight penalty."""
        if MASK not in batch:  # no padding in this batch
            return self._penalized(self.loss.per_member(outputs, batch["y"], self.fused))
        k = len(self.members)
        per_sample = self.loss.per_sample(
            outputs.flatten(0, 1), batch["y"].flatten(0, 1), self.fused
        ).reshape(k, -1)
        mask = batch[MASK]
        # a fold's last validation batch may hold no rows when folds differ in size: its
        # loss there (the penalty alone) weighs nothing in the epoch's mean
        return self._penalized((per_sample * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1))

    def _penalized(self, fold_loss: torch.Tensor) -> torch.Tensor:
        """Each fold's loss plus its own weight penalty, in training and evaluation (Keras)."""
        penalty = weight_penalty(self.network.params, self.penalties, per_fold=True)
        return fold_loss if penalty is None else fold_loss + penalty

    def train_step(self, batch: Batch) -> StepResult:
        self.network.train()
        outputs = self.network(self.folds[0].model_inputs(batch))
        fold_loss = self._fold_losses(batch, outputs)
        self.spec.step(self.optimizer, self.params, fold_loss.sum())
        return self._result(batch, outputs.detach(), fold_loss.detach())

    def eval_step(self, batch: Batch) -> StepResult:
        self.network.train(False)
        with torch.no_grad():
            outputs = self.network(self.folds[0].model_inputs(batch))
            return self._result(batch, outputs, self._fold_losses(batch, outputs))

    def _result(self, batch: Batch, outputs: torch.Tensor, fold_loss: torch.Tensor) -> StepResult:
        kept = {"y_pred": outputs, "y_true": batch["y"], "loss": fold_loss}
        if MASK in batch:
            kept[MASK] = batch[MASK]
        return StepResult(fold_loss.mean(), outputs.shape[1], kept)

    def predict_step(self, batch: Batch) -> torch.Tensor:
        raise TypeError("predict with a fold's own model")

    def epoch_logs(self, results: list[StepResult], prefix: str = "") -> dict[str, float]:
        """Each fold's logs, computed by the fold's own task from its real rows (kept for
        :meth:`take_fold_logs`); returns their mean."""
        per_fold = []
        for k, (fold, own) in enumerate(zip(self.folds, _fold_epochs(results), strict=True)):
            logs = fold.epoch_logs([own], prefix)
            self.pending[k].update(logs)
            per_fold.append(logs)
        return {key: float(np.mean([logs[key] for logs in per_fold])) for key in per_fold[0]}

    def take_fold_logs(self) -> list[dict[str, float]]:
        taken, self.pending = self.pending, [{} for _ in self.members]
        return taken

    def write_back(self) -> None:
        self.network.write_back()

    def model_state(self) -> dict[str, Any]:
        return {"stack": {**self.network.params, **self.network.buffers}}

    def load_model_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, tensor in {**self.network.params, **self.network.buffers}.items():
                tensor.copy_(state["stack"][name])


def _fold_epochs(results: list[StepResult]) -> list[StepResult]:
    """Each fold's whole epoch as one result: its row-weighted loss and its real rows."""
    losses = torch.stack([r.outputs["loss"] for r in results])  # (batches, K)
    k = losses.shape[1]
    outputs = {key: torch.cat([r.outputs[key] for r in results], dim=1)
               for key in ("y_pred", "y_true")}  # fmt: skip
    if not any(MASK in r.outputs for r in results):  # equal folds: every row is real
        sizes = torch.tensor([float(r.size) for r in results], device=losses.device)
        loss = (losses * sizes.unsqueeze(1)).sum(dim=0) / sizes.sum()
        n = int(sizes.sum())
        return [
            StepResult(loss[i], n, {key: v[i] for key, v in outputs.items()}) for i in range(k)
        ]
    masks = [r.outputs.get(MASK, torch.ones(k, r.size, device=losses.device)) for r in results]
    rows = torch.stack([mask.sum(dim=1) for mask in masks])  # (batches, K)
    loss = (losses * rows).sum(dim=0) / rows.sum(dim=0)
    real = torch.cat(masks, dim=1).bool()  # (K, rows)
    return [
        StepResult(loss[i], int(real[i].sum()), {key: v[i][real[i]] for key, v in outputs.items()})
        for i in range(k)
    ]
