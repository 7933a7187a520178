"""Train all K fold models at once as one vectorized model (``evaluation.parallel_folds``).

Small K-fold models are dominated by per-step overhead (Boston trains 4 x 100 epochs at batch
size 1). Here each dense layer carries a leading fold axis and runs as one batched matmul, so a
step costs about what one fold's step costs. Every fold keeps its own initialisation (built from
its seed exactly as sequential training does), its own preprocessing and its own data order; the
optimizers dlrun offers update each element independently, so one optimizer over the stacked
parameters is K independent optimizers. Results match sequential training within float
tolerance; dropout masks are drawn differently, so runs with dropout agree only statistically.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import Arrays
from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue
from dlrun.evaluation.fitting import FittedModel
from dlrun.evaluation.fitting import PreparedFold
from dlrun.evaluation.fitting import prepare_fold
from dlrun.evaluation.protocols import Fold
from dlrun.guards import training_active
from dlrun.models.activations import ACTIVATIONS
from dlrun.models.build import BuiltModel
from dlrun.models.build import weight_penalty
from dlrun.models.layers import RegularizerConfig
from dlrun.training.callbacks import Callback
from dlrun.training.loop import end_epoch
from dlrun.training.state import TrainState


def _linear(module: nn.Module) -> nn.Linear:
    linear = getattr(module, "linear", None)
    assert isinstance(linear, nn.Linear)
    return linear


def _is_dense(module: nn.Module) -> bool:
    return isinstance(getattr(module, "linear", None), nn.Linear)


class _StackedDense(nn.Module):
    """K dense layers as one: weight (K, out, in), bias (K, 1, out), input (K, batch, in)."""

    def __init__(self, linears: list[nn.Linear], activation: nn.Module | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([lin.weight.detach() for lin in linears]).clone())
        biases = [lin.bias.detach() for lin in linears if lin.bias is not None]
        self.bias = nn.Parameter(torch.stack(biases).unsqueeze(1).clone()) if biases else None
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.transpose(1, 2)
        y = torch.bmm(x, w) if self.bias is None else torch.baddbmm(self.bias, x, w)
        return y if self.activation is None else self.activation(y)

    def write_back(self, linears: list[nn.Linear]) -> None:
        with torch.no_grad():
            for k, linear in enumerate(linears):
                linear.weight.copy_(self.weight[k])
                if self.bias is not None and linear.bias is not None:
                    linear.bias.copy_(self.bias[k, 0])


def unsupported_layer(network: nn.Sequential) -> str | None:
    """The first layer that cannot take a leading fold axis (batch norm, flatten, reshape).

    Activations act per element (softmax over the last axis), so they pass unchanged.
    """
    per_sample = {nn.Dropout, nn.Identity} | {type(make()) for _, make in ACTIVATIONS.items()}
    for module in network:
        if not _is_dense(module) and type(module) not in per_sample:
            return type(module).__name__.strip("_")
    return None


class StackedNetwork(nn.Module):
    """The K fold networks fused layer by layer."""

    def __init__(self, models: list[BuiltModel]) -> None:
        super().__init__()
        self.models = models
        stacked: list[nn.Module] = []
        self.penalties: list[tuple[torch.Tensor, RegularizerConfig]] = []
        regs = {id(t): reg for t, reg in models[0].penalties}
        for index, module in enumerate(models[0].network):
            if not _is_dense(module):
                stacked.append(module)
                continue
            layer = _StackedDense(
                [_linear(m.network[index]) for m in models], getattr(module, "activation", None)
            )
            for name in ("weight", "bias"):
                reg = regs.get(id(getattr(_linear(module), name)))
                if reg is not None and getattr(layer, name) is not None:
                    self.penalties.append((getattr(layer, name), reg))
            stacked.append(layer)
        self.layers = nn.Sequential(*stacked)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def penalty(self) -> torch.Tensor | None:
        """Each fold's weight penalty, shape (K,); a fold's gradient only sees its own."""
        return weight_penalty(self.penalties, per_fold=True)

    def write_back(self) -> None:
        """Copy the stacked weights into the K fold models (for evaluation and checkpoints)."""
        for index, module in enumerate(self.layers):
            if isinstance(module, _StackedDense):
                module.write_back([_linear(m.network[index]) for m in self.models])


def parallel_blocker(cfg: ExperimentConfig, folds: list[Fold]) -> str | None:
    """Why these folds cannot train as one vectorized model, or ``None`` if they can."""
    batch = cfg.train.batch_size
    counts = {math.ceil(len(f.train_idx) / batch) for f in folds}
    if len(counts) > 1:
        return (
            f"the folds need different numbers of batches per epoch ({sorted(counts)}) "
            f"at batch size {batch}"
        )
    if cfg.train.callbacks:
        return "callbacks act on each fold separately"
    return None


def _stack_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """(K, n_max, ...) with short folds padded by repeating row 0 (masked out of the loss)."""
    n_max = max(len(t) for t in tensors)
    padded = []
    for t in tensors:
        if len(t) < n_max:
            t = torch.cat([t, t[:1].expand(n_max - len(t), *t.shape[1:])])
        padded.append(t)
    return torch.stack(padded)


def train_parallel(
    cfg: ExperimentConfig,
    train: Arrays,
    folds: list[Fold],
    device: torch.device,
    callbacks: list[Callback],
    progress: Callback,
    implied_steps: list[dict[str, Any]],
) -> list[FittedModel]:
    prepared = [
        prepare_fold(cfg, train, f.train_idx, f.val_idx, device, implied_steps, f.seed)
        for f in folds
    ]
    layer = unsupported_layer(prepared[0].model.network)
    if layer is not None:
        raise ConfigError([ConfigIssue(
            "evaluation.parallel_folds",
            f"parallel folds support dense, dropout and activation layers, not {layer}",
        )])  # fmt: skip
    network = StackedNetwork([p.model for p in prepared])
    states = [TrainState(p.step, cfg.train.epochs, 0) for p in prepared]
    _ParallelTrainer(cfg, prepared, network, states, callbacks, progress, folds).run()
    network.write_back()
    return [
        FittedModel(p.pipeline, p.model, p.step, state)
        for p, state in zip(prepared, states, strict=True)
    ]


class _ParallelTrainer:
    def __init__(
        self,
        cfg: ExperimentConfig,
        prepared: list[PreparedFold],
        network: StackedNetwork,
        states: list[TrainState],
        callbacks: list[Callback],
        progress: Callback,
        folds: list[Fold],
    ) -> None:
        self.cfg = cfg
        self.prepared = prepared
        self.network = network
        self.states = states
        self.callbacks = callbacks
        self.progress = progress
        self.sizes = [len(p.train) for p in prepared]
        self.x = _stack_padded([p.train.x for p in prepared])
        self.y = _stack_padded([p.train.y for p in prepared])
        self.generators = [torch.Generator().manual_seed(f.seed) for f in folds]
        first = prepared[0]
        spec = first.step.optimizer_spec
        self.optimizer = spec.create(list(network.parameters()))
        self.clip = (
            (lambda: spec.clip(list(network.parameters()))) if first.step.needs_clip else None
        )
        self.loss = first.step.loss
        self.fused = first.step.fused
        batch = cfg.train.batch_size
        self.batches = math.ceil(max(self.sizes) / batch)
        for state in states:
            state.batches_per_epoch = self.batches
        self.group = TrainState(first.step, cfg.train.epochs, self.batches)
        # The per-batch hook only feeds a live progress bar; skip its cost otherwise.
        self.live_progress = getattr(progress, "mode", "bar") == "bar"

    def run(self) -> None:
        for cb, state in zip(self.callbacks, self.states, strict=True):
            cb.on_fit_start(state)
        self.progress.on_fit_start(self.group)
        try:
            with training_active():
                while self.group.epoch < self.cfg.train.epochs and not self.group.should_stop:
                    self._epoch()
        except KeyboardInterrupt:
            for state in self.states:
                state.stop(
                    "interrupted", f"interrupted by the user during epoch {state.epoch + 1}"
                )
        for cb, state in zip(self.callbacks, self.states, strict=True):
            if state.status == "running":
                state.status = "completed"
            cb.on_fit_end(state)
        self.group.status = "completed"
        self.progress.on_fit_end(self.group)

    def _orders(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-fold sample order (K, n_max) and a mask of real (not padded) positions."""
        n_max = max(self.sizes)
        orders, masks = [], []
        for n, generator in zip(self.sizes, self.generators, strict=True):
            order = (
                torch.randperm(n, generator=generator)
                if self.cfg.train.shuffle
                else torch.arange(n)
            )
            orders.append(torch.cat([order, torch.zeros(n_max - n, dtype=order.dtype)]))
            masks.append(torch.arange(n_max) < n)
        device = self.x.device
        return torch.stack(orders).to(device), torch.stack(masks).to(device).float()

    def _epoch(self) -> None:
        for cb, state in zip(self.callbacks, self.states, strict=True):
            cb.on_epoch_start(state)
        self.progress.on_epoch_start(self.group)
        order, mask = self._orders()
        k = len(self.sizes)
        rows = torch.arange(k, device=order.device).unsqueeze(1)
        x, y = self.x[rows, order], self.y[rows, order]  # this epoch's order, gathered once
        ragged = len(set(self.sizes)) > 1  # only then do padded rows need masking
        batch = self.cfg.train.batch_size
        losses, outputs = [], []
        self.network.train()
        self.group.batch = 0
        self.group.loss_sum = torch.zeros((), device=order.device)
        for start in range(0, order.shape[1], batch):
            stop = start + batch
            out = self.network(x[:, start:stop])
            target = y[:, start:stop]
            per_sample = self.loss.per_sample(
                out.flatten(0, 1), target.flatten(0, 1), self.fused
            ).reshape(k, -1)
            if ragged:
                weight = mask[:, start:stop]
                fold_loss = (per_sample * weight).sum(dim=1) / weight.sum(dim=1)
            else:
                fold_loss = per_sample.mean(dim=1)
            penalty = self.network.penalty()
            if penalty is not None:
                fold_loss = fold_loss + penalty  # Keras adds it to the training loss
            self.optimizer.zero_grad(set_to_none=True)
            fold_loss.sum().backward()
            if self.clip is not None:
                self.clip()
            self.optimizer.step()
            losses.append(fold_loss.detach())
            outputs.append(out.detach())
            self.group.batch += 1
            if self.live_progress:
                self.group.loss_sum += losses[-1].mean()
                self.progress.on_batch_end(self.group)
        loss_sum = torch.stack(losses).sum(dim=0)
        self._end_epoch(order, torch.cat(outputs, dim=1), loss_sum)

    def _end_epoch(
        self, order: torch.Tensor, outputs: torch.Tensor, loss_sum: torch.Tensor
    ) -> None:
        self.network.write_back()
        all_logs = []
        for k, (prepared, state, cb) in enumerate(
            zip(self.prepared, self.states, self.callbacks, strict=True)
        ):
            n = self.sizes[k]
            logs = {"loss": float(loss_sum[k]) / self.batches}
            fold_order = order[k, :n]
            logs.update(prepared.step.epoch_logs([outputs[k, :n]], prepared.train.y[fold_order]))
            if prepared.val is not None and len(prepared.val):
                logs.update(
                    prepared.step.evaluate(prepared.val, self.cfg.train.batch_size, "val_")
                )
            end_epoch(prepared.step, state, logs, cb)
            all_logs.append(logs)
            if state.should_stop:
                self.group.stop(state.status, state.stop_reason or "")
        mean_logs = {key: float(np.mean([logs[key] for logs in all_logs])) for key in all_logs[0]}
        self.group.epoch += 1
        self.progress.on_epoch_end(self.group, mean_logs)
