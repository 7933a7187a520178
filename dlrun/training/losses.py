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
    one_hot_targets: ClassVar[bool] = False  # one-hot rows of class labels

    def __init__(self, config: StrictModel) -> None:
        self.config = config

    def required_activations(self) -> frozenset[str]:
        """The activations the model must end in for this loss (empty: any output)."""
        return self.fuses

    @abstractmethod
    def per_sample(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool
    ) -> torch.Tensor:
        """One loss value per sample (the first axis). ``fused`` means ``outputs`` are logits."""

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
        """Mean loss over the batch, as Keras reports it."""
        return self.per_sample(outputs, targets, fused).mean()

    def per_member(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool
    ) -> torch.Tensor:
        """Mean loss of each of K stacked batches, shape ``(K, batch, ...)`` -> ``(K,)``."""
        per_sample = self.per_sample(outputs.flatten(0, 1), targets.flatten(0, 1), fused)
        return per_sample.reshape(len(outputs), -1).mean(dim=1)


class ElementwiseLoss(Loss):
    """A loss computed element by element and averaged: the batch mean is one fused torch
    reduction (every row has as many elements, so the mean of row means is the plain mean)."""

    @abstractmethod
    def elements(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool, reduction: str
    ) -> torch.Tensor: ...

    def per_sample(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool
    ) -> torch.Tensor:
        return _per_row(self.elements(outputs, targets, fused, "none"))

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
        return self.elements(outputs, targets, fused, "mean")

    def per_member(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool
    ) -> torch.Tensor:
        return self.elements(outputs, targets, fused, "none").flatten(1).mean(dim=1)


def _per_row(values: torch.Tensor) -> torch.Tensor:
    """Average elementwise losses over every axis but the first (Keras's mean over the last)."""
    return values.reshape(len(values), -1).mean(dim=1)


LOSSES: Registry[type[Loss]] = Registry("loss")


@LOSSES.register("binary_crossentropy")
class BinaryCrossentropy(ElementwiseLoss):
    fuses = frozenset({"sigmoid"})
    classification = True

    class Config(StrictModel):
        any_output: bool = Field(
            default=False,
            description="score a last layer without sigmoid too, its outputs clipped to "
            "[1e-7, 1 - 1e-7] and read as probabilities, as Keras 2 did (DLwP listing 6.46); "
            "false refuses such a model",
        )

    config: Config

    def required_activations(self) -> frozenset[str]:
        return frozenset() if self.config.any_output else self.fuses

    def elements(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool, reduction: str
    ) -> torch.Tensor:
        if fused:
            return F.binary_cross_entropy_with_logits(outputs, targets, reduction=reduction)
        # Keras's formula itself: torch's binary_cross_entropy refuses targets outside [0, 1],
        # which an autoencoder of unscaled inputs has (Beginners ch. 8 scores word ids so)
        probs = outputs.clamp(_EPSILON, 1 - _EPSILON)
        elements = -(targets * probs.log() + (1 - targets) * (1 - probs).log())
        if reduction == "none":
            return elements
        return elements.mean() if reduction == "mean" else elements.sum()


@LOSSES.register("categorical_crossentropy")
class CategoricalCrossentropy(Loss):
    fuses = frozenset({"softmax"})
    classification = True
    one_hot_targets = True

    def per_sample(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool
    ) -> torch.Tensor:
        if fused:
            log_probs = F.log_softmax(outputs, dim=-1)
        else:
            probs = outputs / outputs.sum(dim=-1, keepdim=True)
            log_probs = probs.clamp(_EPSILON, 1 - _EPSILON).log()
        return -(targets * log_probs).sum(dim=-1)

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
        if fused:  # one fused kernel; class-probability targets give the same sum
            return F.cross_entropy(outputs, targets)
        return super().__call__(outputs, targets, fused)


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

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
        if fused:
            return F.cross_entropy(outputs, targets.reshape(-1).long())
        return super().__call__(outputs, targets, fused)


@LOSSES.register("mse")
class MeanSquaredError(ElementwiseLoss):
    def elements(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool, reduction: str
    ) -> torch.Tensor:
        return F.mse_loss(outputs, targets, reduction=reduction)


@LOSSES.register("mae")
class MeanAbsoluteError(ElementwiseLoss):
    def elements(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool, reduction: str
    ) -> torch.Tensor:
        return F.l1_loss(outputs, targets, reduction=reduction)


@LOSSES.register("huber")
class Huber(ElementwiseLoss):
    class Config(StrictModel):
        delta: Number = Field(default=1.0, gt=0)

    config: Config

    def elements(
        self, outputs: torch.Tensor, targets: torch.Tensor, fused: bool, reduction: str
    ) -> torch.Tensor:
        return F.huber_loss(outputs, targets, delta=self.config.delta, reduction=reduction)
