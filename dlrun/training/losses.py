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


class Loss(ABC):
    Config: ClassVar[type[StrictModel]] = StrictModel
    fuses: ClassVar[frozenset[str]] = frozenset()
    classification: ClassVar[bool] = False

    def __init__(self, config: StrictModel) -> None:
        self.config = config

    @abstractmethod
    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
        """Mean loss over the batch. ``fused`` means ``outputs`` are logits."""


LOSSES: Registry[type[Loss]] = Registry("loss")


@LOSSES.register("binary_crossentropy")
class BinaryCrossentropy(Loss):
    fuses = frozenset({"sigmoid"})
    classification = True

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
        if fused:
            return F.binary_cross_entropy_with_logits(outputs, targets)
        return F.binary_cross_entropy(outputs.clamp(_EPSILON, 1 - _EPSILON), targets)


@LOSSES.register("categorical_crossentropy")
class CategoricalCrossentropy(Loss):
    fuses = frozenset({"softmax"})
    classification = True

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
        if fused:
            log_probs = F.log_softmax(outputs, dim=-1)
        else:
            probs = outputs / outputs.sum(dim=-1, keepdim=True)
            log_probs = probs.clamp(_EPSILON, 1 - _EPSILON).log()
        return -(targets * log_probs).sum(dim=-1).mean()


@LOSSES.register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(Loss):
    fuses = frozenset({"softmax"})
    classification = True

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
        labels = targets.reshape(-1).long()
        if fused:
            return F.cross_entropy(outputs, labels)
        return F.nll_loss(outputs.clamp(_EPSILON, 1 - _EPSILON).log(), labels)


@LOSSES.register("mse")
class MeanSquaredError(Loss):
    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
        return F.mse_loss(outputs, targets)


@LOSSES.register("mae")
class MeanAbsoluteError(Loss):
    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
        return F.l1_loss(outputs, targets)


@LOSSES.register("huber")
class Huber(Loss):
    class Config(StrictModel):
        delta: Number = Field(default=1.0, gt=0)

    config: Config

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
        return F.huber_loss(outputs, targets, delta=self.config.delta)
