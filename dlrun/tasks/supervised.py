"""Supervised tasks: inputs ``x`` to targets ``y`` with one network, one loss and one optimizer.

Binary, multiclass, multilabel and regression share everything here and differ only in what
their classes declare: how outputs become class labels, which metrics, baselines, analyses and
prediction columns apply, and which loss/activation combinations make sense (DLwP table 4.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import numpy as np
import torch

from dlrun.data.base import Arrays
from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue
from dlrun.errors import DataError
from dlrun.models.build import build_model
from dlrun.models.build import last_activation
from dlrun.models.layers import Layer
from dlrun.tasks.base import StackedTask
from dlrun.tasks.base import StepResult
from dlrun.tasks.base import Task
from dlrun.training.losses import LOSSES
from dlrun.training.losses import Loss
from dlrun.training.metrics import Predictions
from dlrun.training.optimizers import OPTIMIZERS

if TYPE_CHECKING:
    from collections.abc import Callable

    from dlrun.config.schema import ExperimentConfig
    from dlrun.training.batches import Batch
    from dlrun.training.batches import Fields


@dataclass(frozen=True)
class TargetForm:
    """Targets as the loss reads them: class indices ``(N,)`` or float rows ``(N, k)``."""

    integer: bool

    def __call__(self, arrays: Arrays) -> Arrays:
        if "y" not in arrays:
            return arrays  # inputs only (prediction)
        y = np.asarray(arrays.y)
        if self.integer:
            return arrays.replace(y=y.astype(np.int64).reshape(-1))
        return arrays.replace(y=y.astype(np.float32).reshape(len(y), -1))


def needs_a_loss(cfg: ExperimentConfig) -> ConfigIssue:
    return ConfigIssue("loss", f"task {cfg.task.name} needs a loss (see DLwP table 4.1)")


def make_loss(cfg: ExperimentConfig) -> Loss:
    if cfg.loss is None:
        raise ConfigError([needs_a_loss(cfg)])
    return LOSSES.get(cfg.loss.name)(cfg.loss)


# Integer dtypes that reach the model as they are; uint8 and bool become float32 per batch
# (images), see dlrun/training/batches.py.
ID_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64)


def check_first_layer_input(name: str, layer: Layer, x: torch.Tensor) -> None:
    """Refuse inputs the first layer cannot read: sparse rows, or float values for ids."""
    sparse = x.layout == torch.sparse_csr
    if sparse and not layer.reads_sparse:
        raise DataError(
            f"the inputs are sparse multi-hot rows, which the first layer ({name}) cannot "
            "read; start the model with a dense layer, or set multi_hot: {dim: ..., "
            "sparse: false} to keep the 0/1 matrix"
        )
    if layer.reads_integers and not sparse and x.dtype not in ID_DTYPES:
        raise DataError(
            f"the first layer ({name}) reads integer token ids, but the inputs are {x.dtype} "
            "values; give it index sequences: tokenize text, then pad_sequences (and no rescale or "
            "standardize step before the model)"
        )
    limit = layer.id_limit()
    if limit is not None and not sparse and x.numel():
        low, high = int(x.min()), int(x.max())  # once, before training: not per batch
        if low < 0 or high >= limit:
            bad = high if high >= limit else low
            raise DataError(
                f"the inputs hold token id {bad}, outside the {name} layer's 0..{limit - 1}; "
                f"set input_dim: {high + 1}, or keep fewer words (tokenize num_words, or the "
                "dataset's num_words) and pad with a value of 0 or more"
            )


class SupervisedTask(Task):
    """The shared machinery; subclasses declare labels, checks and capabilities."""

    stackable = True
    target: ClassVar[str | None] = "y"
    prediction_column: ClassVar[str] = "prediction"  # predict's column (name_0, ... for several)

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        self.loss = make_loss(cfg)
        self.optimizer_spec = OPTIMIZERS.get(cfg.optimizer.name)(cfg.optimizer)

    @classmethod
    def stacked(cls, members: list[Task]) -> StackedTask:
        from dlrun.tasks.stacked import StackedSupervised  # it builds on this module

        folds = [m for m in members if isinstance(m, SupervisedTask)]
        if len(folds) != len(members):
            raise TypeError("only supervised fold tasks stack together")
        return StackedSupervised(folds)

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> list[ConfigIssue]:
        if cfg.loss is None:
            return [needs_a_loss(cfg)]
        return cls.check_model(cfg, LOSSES.get(cfg.loss.name), last_activation(cfg.model.layers))

    @classmethod
    def check_model(
        cls, cfg: ExperimentConfig, loss: type[Loss], final: str | None
    ) -> list[ConfigIssue]:
        """Contradictions between this task, the loss and the output activation."""
        return []

    def array_form(self) -> Callable[[Arrays], Arrays]:
        return TargetForm(integer=self.loss.integer_targets)

    def build(self, fields: Fields, device: torch.device) -> None:
        input_shape = fields["x"].shape
        wanted = self.cfg.model.input_shape
        if wanted is not None and tuple(wanted) != input_shape:
            issue = ConfigIssue(
                "model.input_shape",
                f"is {wanted} but the preprocessed data has shape {list(input_shape)} per "
                f"sample; set input_shape: {list(input_shape)}",
            )
            raise ConfigError([issue])
        keras_init = self.cfg.model.init == "keras"
        self.model = build_model(self.cfg.model.layers, input_shape, keras_init, self.loss.fuses)
        if fields["x"].sparse and self.model.layers:
            self.model.layers[0][1].read_sparse_rows(self.model.network[0])
        self.model.network.to(device)
        if "y" in fields and not self.loss.integer_targets:
            self.check_target_width(fields["y"].shape)
        self.params = [p for p in self.model.network.parameters() if p.requires_grad]
        self.fused = self.model.output_activation is not None
        first = self.model.layers[0][1] if self.model.layers else None
        self.float_inputs = first is None or not first.reads_integers
        self.models = {"model": self.model}
        if device.type == "meta":
            return  # a plan, never trained: an optimizer would only import torch's compiler (~1 s)
        self.optimizer = self.optimizer_spec.create(self.params)
        self.optimizers = {"model": self.optimizer}

    def check_target_width(self, target_shape: tuple[int, ...]) -> None:
        units = self.model.output_shape[-1]
        if len(target_shape) == 1 and target_shape[0] != units:
            raise self._output_error(
                f"the model outputs {units} values per sample but the targets have "
                f"{target_shape[0]}; set units: {target_shape[0]}"
            )

    def checks_every_row(self) -> bool:
        return bool(self.model.layers) and self.model.layers[0][1].id_limit() is not None

    def check_batch(self, batch: Batch) -> None:
        x = batch.get("x")
        if x is not None and self.model.layers:
            check_first_layer_input(*self.model.layers[0], x)
        units = self.model.output_shape[-1]
        y = batch.get("y")
        if self.loss.integer_targets and y is not None and len(y) and int(y.max()) >= units:
            raise self._output_error(
                f"the model outputs {units} values per sample but the targets hold label "
                f"{int(y.max())}, which needs {int(y.max()) + 1}; set units: {int(y.max()) + 1}"
            )

    def _output_error(self, message: str) -> ConfigError:
        """A problem with the output width, pointed at the last layer that sets ``units``."""
        path = f"model.layers[{len(self.model.layers) - 1}]"
        for index in range(len(self.model.layers) - 1, -1, -1):
            name, layer = self.model.layers[index]
            if "units" in type(layer.config).model_fields:
                path = f"model.layers[{index}].{name}.units"
                break
        return ConfigError([ConfigIssue(path, message)])

    def _mode(self, training: bool) -> None:
        """Switch train/eval mode only when it changes (setting it walks every module)."""
        if self.model.network.training is not training:
            self.model.network.train(training)

    def model_inputs(self, batch: Batch) -> torch.Tensor:
        """The batch's inputs as the first layer reads them: integers become float32 unless it
        reads ids, as Keras casts them (raw word ids into a dense layer, Beginners ch. 8)."""
        x = batch["x"]
        if self.float_inputs and x.layout == torch.strided and not x.is_floating_point():
            return x.float()
        return x

    def targets(self, batch: Batch) -> torch.Tensor:
        """What the outputs are scored against: the ``y`` array (an autoencoder's own inputs)."""
        return batch["y"]

    def train_step(self, batch: Batch) -> StepResult:
        self._mode(True)
        outputs = self.model.network(self.model_inputs(batch))
        y = self.targets(batch)
        total = self._penalized(self.data_loss(outputs, y))
        self.optimizer_spec.step(self.optimizer, self.params, total)
        kept = {"y_pred": outputs.detach(), "y_true": y} if self.cfg.metrics else {}
        return StepResult(total.detach(), len(outputs), kept)  # outputs only for epoch metrics

    @torch.no_grad()
    def eval_step(self, batch: Batch) -> StepResult:
        self._mode(False)
        outputs, kept = self.evaluated(batch)
        y = self.targets(batch)
        loss = self._penalized(self.data_loss(outputs, y))
        return StepResult(loss, len(outputs), {"y_pred": outputs, "y_true": y, **kept})

    def evaluated(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The network's outputs for an evaluation, and anything else the task keeps from the
        same pass for its predictions (an autoencoder's codes)."""
        return self.model.network(self.model_inputs(batch)), {}

    def data_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The configured loss of the batch: the mean over its samples, as Keras reports it."""
        return self.loss(outputs, targets, self.fused)

    def _penalized(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss plus what the layers add (weight penalties, a variational code's divergence),
        as Keras reports it in training and evaluation alike (so ``val_loss`` and a test loss
        of a regularised model match Keras's)."""
        penalty = self.model.take_penalty()
        return loss if penalty is None else loss + penalty

    @torch.no_grad()
    def predict_step(self, batch: Batch) -> torch.Tensor:
        self._mode(False)
        return self.model.probabilities(self.model.network(self.model_inputs(batch)))

    def predictions(self, results: list[StepResult]) -> Predictions | None:
        y_true = torch.cat([r.outputs["y_true"] for r in results])
        y_pred = self.model.probabilities(torch.cat([r.outputs["y_pred"] for r in results]))
        return self.label(y_true, y_pred)

    @classmethod
    def label(cls, y_true: torch.Tensor, y_pred: torch.Tensor) -> Predictions:
        """Predictions with the class labels behind them (none for regression)."""
        return Predictions(y_true, y_pred)

    def prediction_table(
        self, outputs: torch.Tensor, class_names: list[str] | None, threshold: float | None = None
    ) -> tuple[list[str], list[list[Any]]]:
        values = outputs.detach().cpu().reshape(len(outputs), -1).numpy()
        name = self.prediction_column
        header = (
            [name] if values.shape[1] == 1 else [f"{name}_{i}" for i in range(values.shape[1])]
        )
        return header, values.tolist()
