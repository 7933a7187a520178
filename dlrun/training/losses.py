"""Loss registry with Keras names.

Cross-entropies declare the output activation they fuse: when the network ends in that
activation, the builder strips it and the loss works on logits, which is numerically stable
(Keras clips probabilities at 1e-7 instead; the values agree away from saturation).
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from dlrun.config.base import Number
from dlrun.config.base import StrictModel
from dlrun.registry import Registry

_EPSILON = 1e-7  # Keras backend epsilon, used when probabilities (not logits) are given


class LossSection(StrictModel):
    """The ``loss:`` section as the rest of dlrun sees it: a registered loss's config."""

    name: str


class Loss(ABC):
    Config: ClassVar[type[StrictModel]] = StrictModel
    fuses: ClassVar[frozenset[str]] = frozenset()
    classification: ClassVar[bool] = False
    integer_targets: ClassVar[bool] = False  # class indices instead of float target rows

    def __init__(self, config: StrictModel) -> None:
        self.config = config

    @abstractmethod
    def per_sample(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool
    ) -> torch.Tensor:
        """One loss value per sample (the first axis). ``fused`` means ``outputs`` are logits."""

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
        """Mean loss over the batch, as Keras reports it."""
        return self.per_sample(outputs, targets, fused).mean()


def _per_row(values: torch.Tensor) -> torch.Tensor:
    """Average elementwise losses over every axis but the first (Keras's mean over the last)."""
    return values.reshape(len(values), -1).mean(dim=1)


LOSSES: Registry[type[Loss]] = Registry("loss")


@LOSSES.register("binary_crossentropy")
class BinaryCrossentropy(Loss):
    fuses = frozenset({"sigmoid"})
    classification = True

    def per_sample(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool
    ) -> torch.Tensor:
        if fused:
            return _per_row(F.binary_cross_entropy_with_logits(outputs, targets, reduction="none"))
        probs = outputs.clamp(_EPSILON, 1 - _EPSILON)
        return _per_row(F.binary_cross_entropy(probs, targets, reduction="none"))


@LOSSES.register("categorical_crossentropy")
class CategoricalCrossentropy(Loss):
    fuses = frozenset({"softmax"})
    classification = True

    def per_sample(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool
    ) -> torch.Tensor:
        if fused:
            log_probs = F.log_softmax(outputs, dim=-1)
        else:
            probs = outputs / outputs.sum(dim=-1, keepdim=True)
            log_probs = probs.clamp(_EPSILON, 1 - _EPSILON).log()
        return -(targets * log_probs).sum(dim=-1)


@LOSSES.register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(Loss):
    fuses = frozenset({"softmax"})
    classification = True
    integer_targets = True

    def per_sample(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool
    ) -> torch.Tensor:
        labels = targets.reshape(-1).long()
        if fused:
            return F.cross_entropy(outputs, labels, reduction="none")
        log_probs = outputs.clamp(_EPSILON, 1 - _EPSILON).log()
        return F.nll_loss(log_probs, labels, reduction="none")


@LOSSES.register("mse")
class MeanSquaredError(Loss):
    def per_sample(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool
    ) -> torch.Tensor:
        return _per_row(F.mse_loss(outputs, targets, reduction="none"))


@LOSSES.register("mae")
class MeanAbsoluteError(Loss):
    def per_sample(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool
    ) -> torch.Tensor:
        return _per_row(F.l1_loss(outputs, targets, reduction="none"))


@LOSSES.register("huber")
class Huber(Loss):
    class Config(StrictModel):
        delta: Number = Field(default=1.0, gt=0)

    config: Config

    def per_sample(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool
    ) -> torch.Tensor:
        return _per_row(F.huber_loss(outputs, targets, delta=self.config.delta, reduction="none"))
