"""Autoencoders (Beginners ch. 7, 8 and 13): a network trained to give back its own inputs
through a narrow layer, the code.

The layers run as one network, so training is the supervised step with the preprocessed inputs
as the targets. ``task.code_layer`` names the layer whose outputs are the code: what the
book's ``encoder.predict`` gives, what ``dlrun predict`` writes and what the code-space figure
shows, coloured by the dataset's labels when it has them (they are never trained on).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING
from typing import Annotated
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import nn

from dlrun.config.base import StrictModel
from dlrun.data.base import Arrays
from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue
from dlrun.tasks.base import TASKS
from dlrun.tasks.base import StepResult
from dlrun.tasks.supervised import SupervisedTask
from dlrun.training.metrics import MetricKind
from dlrun.training.metrics import Predictions
from dlrun.training.metrics import Reconstructions

if TYPE_CHECKING:
    from collections.abc import Callable

    from dlrun.config.schema import ExperimentConfig
    from dlrun.training.batches import Batch
    from dlrun.training.batches import Fields
    from dlrun.training.losses import Loss


class Shown(str, Enum):
    """Which samples of a scored split reconstructions.png draws."""

    FIRST = "first"
    PER_CLASS = "per_class"


LABEL = "label"  # the dataset's targets, kept to colour the code space
MOST_SHOWN = 20  # samples reconstructions.png shows at most with shown: per_class


@dataclass(frozen=True)
class LabelsAside:
    """The arrays an autoencoder reads: its inputs, and the dataset's targets (if any) moved
    aside as ``label``, which no step trains on. Picklable, for DataLoader workers."""

    def __call__(self, arrays: Arrays) -> Arrays:
        if "y" not in arrays:
            return arrays
        return arrays.replace(y=None, **{LABEL: np.asarray(arrays.y)})


@TASKS.register("autoencoder")
class Autoencoder(SupervisedTask):
    """Inputs reconstructed through ``model.layers[code_layer]``."""

    class Config(StrictModel):
        code_layer: int = Field(ge=0, description="the index in model.layers of the code")
        shown: Annotated[Shown, Field(strict=False)] = Field(  # written as its value
            default=Shown.FIRST,
            description="the samples reconstructions.png shows: the scored split's first 8 "
            "(Beginners ch. 7), or its first of each label (ch. 13) when the labels are up to "
            "20 classes (whole numbers, one per sample), else the first 8",
        )

    config: Config
    # no targets of the dataset's: nothing for baselines or stratified splits
    target: ClassVar[str | None] = None
    stackable = False
    metric_kinds = frozenset({MetricKind.ERRORS})
    analyses: ClassVar[tuple[str, ...]] = ("reconstructions", "code_space")
    prediction_column = "code"  # predict writes codes: predict_step gives them

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> list[ConfigIssue]:
        issues = super().check_config(cfg)
        layers = len(cfg.model.layers)
        assert isinstance(cfg.task, cls.Config)  # the task section validated as this Config
        code_layer = cfg.task.code_layer
        if code_layer >= layers - 1:
            issues.append(ConfigIssue("task.code_layer", f"is {code_layer}, but the code must "
                                      "come before the last layer, which gives the "
                                      f"reconstruction (model.layers holds {layers})"))  # fmt: skip
        return issues

    @classmethod
    def check_model(
        cls, cfg: ExperimentConfig, loss: type[Loss], final: str | None
    ) -> list[ConfigIssue]:
        if loss.integer_targets:
            return [ConfigIssue("loss", f"{cfg.loss.name if cfg.loss else 'the loss'} scores "
                                "class labels; an autoencoder's targets are its inputs (use "
                                "binary_crossentropy or mse)")]  # fmt: skip
        return []

    def array_form(self) -> Callable[[Arrays], Arrays]:
        return LabelsAside()

    def targets(self, batch: Batch) -> torch.Tensor:
        x = batch["x"]
        if x.layout == torch.sparse_csr:  # multi-hot rows kept as indices: the loss reads 0/1
            x = x.to_dense()
        return x if x.is_floating_point() else x.float()

    def build(self, fields: Fields, device: torch.device) -> None:
        super().build(fields, device)
        if type(self.model.network) is not nn.Sequential:
            raise ConfigError([ConfigIssue("model.layers", "an autoencoder cannot carry a "
                                           "sequence mask (embedding mask_zero) through its "
                                           "code; set mask_zero: false")])  # fmt: skip
        wanted = fields["x"].shape
        if self.model.output_shape != wanted:
            raise self._output_error(
                f"the model outputs shape {list(self.model.output_shape)} per sample, but an "
                f"autoencoder gives back its inputs, shaped {list(wanted)}"
            )

    def evaluated(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One pass through the encoder, then the decoder: the code comes with the outputs."""
        decoded_from, code = self.encode(self.model_inputs(batch))
        kept = {"code": code, **({LABEL: batch[LABEL]} if LABEL in batch else {})}
        return self.decode(decoded_from), kept

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """In evaluation mode (dropout off): the code layer's outputs, which the decoder reads,
        and each sample's code as reported (the same, unless the code is drawn)."""
        self._mode(False)
        code = self.model.network[: self.config.code_layer + 1](x)
        return code, code

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """The layers after the code: the reconstruction's outputs (logits, if fused)."""
        return self.model.network[self.config.code_layer + 1 :](code)

    @torch.no_grad()
    def predict_step(self, batch: Batch) -> torch.Tensor:
        return self.encode(self.model_inputs(batch))[1]

    def scored_predictions(self, results: list[StepResult]) -> Predictions | None:
        """With ``shown: per_class``, the first sample of each label is the one drawn."""
        rebuilt = super().scored_predictions(results)
        if self.config.shown is Shown.FIRST or not isinstance(rebuilt, Reconstructions):
            return rebuilt
        first = _first_of_each_class(rebuilt.classes)
        return rebuilt if first is None else dataclasses.replace(rebuilt, shown=first)

    def predictions(self, results: list[StepResult]) -> Predictions | None:
        """Reconstructions; an evaluation's (not a training epoch's) with codes and labels."""
        plain = super().predictions(results)
        assert plain is not None
        return Reconstructions(plain.y_true, plain.y_pred, codes=_joined(results, "code"),
                               classes=_joined(results, LABEL))  # fmt: skip


def _first_of_each_class(labels: torch.Tensor | None) -> tuple[int, ...] | None:
    """The index of each class's first sample, in the classes' order; ``None`` unless the
    labels are classes: one whole number per sample, at most ``MOST_SHOWN`` of them."""
    if labels is None or math.prod(labels.shape[1:]) != 1:
        return None
    values = labels.reshape(-1).cpu().double().numpy()
    classes, first = np.unique(values, return_index=True)
    if len(classes) > MOST_SHOWN or not np.all(classes == np.round(classes)):
        return None
    return tuple(int(i) for i in first)


def _joined(results: list[StepResult], key: str) -> torch.Tensor | None:
    """The batches' ``key`` outputs end to end, or ``None`` where the steps kept none."""
    if not results or any(key not in r.outputs for r in results):
        return None
    return torch.cat([r.outputs[key] for r in results])
