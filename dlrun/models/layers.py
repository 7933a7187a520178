"""The layer registry: each YAML layer name maps to a class with a typed ``Config``.

Shapes in YAML and in summaries are channels-last and exclude the batch axis, as in Keras.
A layer's ``build`` receives the input shape and returns the module plus its output shape, so the
builder can infer every shape and the summary can print Keras's table.
"""

from __future__ import annotations

import math
from abc import ABC
from abc import abstractmethod
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Annotated
from typing import Any
from typing import ClassVar
from typing import Protocol
from typing import runtime_checkable

import torch
from pydantic import AfterValidator
from pydantic import Field
from pydantic import PositiveInt
from pydantic import model_validator
from torch import nn

from dlrun.config.base import Number
from dlrun.config.base import StrictModel
from dlrun.data.sparse import sparse_linear
from dlrun.models.activations import ACTIVATIONS
from dlrun.models.activations import make_activation
from dlrun.models.initializers import INITIALIZERS
from dlrun.models.initializers import init_kernel_bias
from dlrun.registry import Registry
from dlrun.registry import did_you_mean

Shape = tuple[int, ...]


class RegularizerConfig(StrictModel):
    """Weight penalty ``l1 * sum|w| + l2 * sum(w**2)``, part of every loss reported (training,
    validation and test), as in Keras."""

    l1: Number = Field(default=0.0, ge=0)
    l2: Number = Field(default=0.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _keras_names(cls, data: Any) -> Any:
        """Accept Keras's shorthand names with its default factor of 0.01."""
        shorthand = {"l1": {"l1": 0.01}, "l2": {"l2": 0.01}, "l1_l2": {"l1": 0.01, "l2": 0.01}}
        if isinstance(data, str) and data in shorthand:
            return shorthand[data]
        return data


def penalties(
    *pairs: tuple[str, RegularizerConfig | None],
) -> list[tuple[str, RegularizerConfig]]:
    """A built layer's weight penalties: ``(parameter name, regularizer)`` for each one set
    (give ``None`` for a bias the layer does not have)."""
    return [(name, reg) for name, reg in pairs if reg is not None]


@dataclass
class BuiltLayer:
    module: nn.Module
    output_shape: Shape
    penalties: list[tuple[str, RegularizerConfig]] = field(default_factory=list)  # by param name
    non_trainable_params: int = 0


@runtime_checkable
class AddsLoss(Protocol):
    """A module that adds a term to the loss of the forward it just ran (Keras's ``add_loss``),
    found among a network's modules by :func:`dlrun.models.build.build_model`."""

    def take_added_loss(self) -> torch.Tensor | None:
        """The term, once; ``None`` when no forward has run since."""


StackedForward = Callable[[torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]
"""A layer run for K models at once: input ``(K, batch, ...)`` and the K-stacked parameters
(named as in the single model's network), output ``(K, batch, ...)``."""


class Layer(ABC):
    """A registered layer type. ``Config`` is its complete parameter list."""

    Config: ClassVar[type[StrictModel]]
    keras_name: ClassVar[str]
    # Dropout, flatten and reshape leave the previous layer's activation as the output's one.
    passes_activation_through: ClassVar[bool] = False
    # Can be the first layer on sparse multi-hot rows (a CSR batch); dense only, so far.
    reads_sparse: ClassVar[bool] = False
    # Reads integer ids (token indices), not float features: an embedding.
    reads_integers: ClassVar[bool] = False
    # Hands a sequence mask (embedding mask_zero) on to the next layer, as Keras's
    # ``supports_masking`` layers do; see dlrun/models/masking.py.
    carries_mask: ClassVar[bool] = False
    # Its output is a draw from a distribution the layer learns (a variational code), which
    # a VAE's code layer must be; it may not be wrapped (its draw is per sample).
    draws_code: ClassVar[bool] = False

    def __init__(self, config: StrictModel) -> None:
        self.config = config

    @abstractmethod
    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        """Create the module for ``input_shape``.

        ``strip_activation`` asks the output layer to leave out its activation because the loss
        applies it in fused, numerically stable logit form.
        """

    def activation(self) -> str | None:
        """The activation this layer ends with, if any (used for task/loss checks)."""
        return None

    def read_sparse_rows(self, module: nn.Module) -> None:
        """Ready ``module`` (this layer, built, first in the model) for sparse rows: a layer
        that ``reads_sparse`` may lay out its weights for it. Values never change."""
        return None

    def id_limit(self) -> int | None:
        """For a layer that ``reads_integers``: ids must lie in ``0 .. id_limit() - 1``."""
        return None

    # Parallel folds run K copies of a model at once. ``vmappable`` layers work under
    # torch.func.vmap (those updating buffers in place, such as batch norm, do not);
    # ``stacked_forward`` gives a faster direct form where one exists (batched matmul).
    vmappable: ClassVar[bool] = True

    def stacked_forward(self, module: nn.Module, prefix: str) -> StackedForward | None:
        """``module`` (this layer, built) for K stacked models, or ``None`` to use vmap."""
        return None


def elementwise_stacked(module: nn.Module, prefix: str) -> StackedForward:
    """Layers acting per element run unchanged on a leading fold axis."""
    return lambda x, params: module(x)


LAYERS: Registry[type[Layer]] = Registry("layer")


def _known(registry: Registry[Any]) -> Callable[[str], str]:
    """A field validator: the name must be registered. A ``ValueError`` (not the registry's
    own error) lets the config report it with its key path and line, beside every other
    problem in the file."""

    def check(name: str) -> str:
        if name not in registry:
            hint = did_you_mean(name, registry.names())
            raise ValueError(
                f"unknown {registry.kind} '{name}'{hint}; known: {', '.join(registry.names())}"
            )
        return name

    return check


ActivationName = Annotated[str, AfterValidator(_known(ACTIVATIONS))]
InitializerName = Annotated[str, AfterValidator(_known(INITIALIZERS))]


class _DenseModule(nn.Module):
    """A dense layer: its ``linear`` part, then its activation. The forward runs the parts'
    own forwards, so hooks registered on ``linear`` or ``activation`` are not run."""

    def __init__(self, linear: nn.Linear, activation: nn.Module | None) -> None:
        super().__init__()
        self.linear = linear
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The parts' own forwards, not their module calls: each call's hook checks cost a few
        # microseconds, a tenth of a step of the small book networks.
        weight, bias = self.linear.weight, self.linear.bias
        if x.layout == torch.sparse_csr:  # multi-hot rows: sum the weight columns they pick
            y = sparse_linear(x, weight, bias)
        else:
            y = nn.functional.linear(x, weight, bias)
        return y if self.activation is None else self.activation.forward(y)


@LAYERS.register("dense")
class Dense(Layer):
    keras_name = "Dense"
    reads_sparse = True
    carries_mask = True

    class Config(StrictModel):
        positional: ClassVar[str] = "units"
        units: int = Field(gt=0)
        activation: ActivationName | None = None
        use_bias: bool = True
        kernel_initializer: InitializerName = "glorot_uniform"
        bias_initializer: InitializerName = "zeros"
        kernel_regularizer: RegularizerConfig | None = None
        bias_regularizer: RegularizerConfig | None = None

    config: Config

    def activation(self) -> str | None:
        return self.config.activation

    def read_sparse_rows(self, module: nn.Module) -> None:
        """Keep the weight as Keras keeps its kernel, ``(inputs, units)`` in memory (``weight``
        its transposed view, the same values): the bag sum then reads and writes whole kernel
        rows with no transposed copy either way, a quarter faster an IMDB epoch. Dense inputs
        keep torch's layout, whose matmuls measured a few percent faster on MNIST."""
        assert isinstance(module, _DenseModule)
        weight = module.linear.weight
        weight.data = weight.data.t().contiguous().t()

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        cfg = self.config
        linear = nn.Linear(input_shape[-1], cfg.units, bias=cfg.use_bias)
        if keras_init:
            init_kernel_bias(
                linear.weight, linear.bias, cfg.kernel_initializer, cfg.bias_initializer
            )
        act = None if strip_activation else make_activation(cfg.activation)
        regularized = penalties(
            ("linear.weight", cfg.kernel_regularizer),
            ("linear.bias", cfg.bias_regularizer if cfg.use_bias else None),
        )
        return BuiltLayer(_DenseModule(linear, act), (*input_shape[:-1], cfg.units), regularized)

    def stacked_forward(self, module: nn.Module, prefix: str) -> StackedForward:
        """K dense layers as one batched matmul: weight (K, out, in), input (K, batch, in)."""
        assert isinstance(module, _DenseModule)
        activation = module.activation
        weight_name, bias_name = f"{prefix}linear.weight", f"{prefix}linear.bias"
        has_bias = module.linear.bias is not None

        def forward(x: torch.Tensor, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
            w = params[weight_name].transpose(1, 2)
            rows = x if x.dim() == 3 else x.reshape(x.shape[0], -1, x.shape[-1])  # (K, n, in)
            y = torch.baddbmm(params[bias_name].unsqueeze(1), rows, w) if has_bias else rows.bmm(w)
            y = y if x.dim() == 3 else y.reshape(*x.shape[:-1], y.shape[-1])
            return y if activation is None else activation(y)

        return forward


class RateConfig(StrictModel):
    """A dropout rate, which may be written bare: ``- dropout: 0.5``."""

    positional: ClassVar[str] = "rate"
    rate: Number = Field(ge=0, lt=1)


@LAYERS.register("dropout")
class Dropout(Layer):
    keras_name = "Dropout"
    passes_activation_through = True
    carries_mask = True
    Config = RateConfig
    config: RateConfig

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        return BuiltLayer(nn.Dropout(self.config.rate), input_shape)

    def stacked_forward(self, module: nn.Module, prefix: str) -> StackedForward:
        return elementwise_stacked(module, prefix)


class _ChannelsLastBatchNorm(nn.Module):
    """BatchNorm over the last axis, as Keras's ``axis=-1``."""

    def __init__(self, norm: nn.BatchNorm1d) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return self.norm(x)
        moved = x.movedim(-1, 1)
        flat = moved.reshape(moved.shape[0], moved.shape[1], -1)
        return self.norm(flat).reshape(moved.shape).movedim(1, -1)


@LAYERS.register("batchnorm")
class BatchNorm(Layer):
    """Keras defaults: momentum 0.99 (torch's 0.01), epsilon 1e-3."""

    keras_name = "BatchNormalization"
    vmappable = False  # updates its moving statistics in place

    class Config(StrictModel):
        momentum: Number = Field(default=0.99, gt=0, lt=1)
        epsilon: Number = Field(default=1e-3, gt=0)

    config: Config

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        features = input_shape[-1]
        norm = nn.BatchNorm1d(features, eps=self.config.epsilon, momentum=1 - self.config.momentum)
        # Keras counts the moving mean and variance as non-trainable parameters.
        return BuiltLayer(
            _ChannelsLastBatchNorm(norm), input_shape, non_trainable_params=2 * features
        )


@LAYERS.register("activation")
class Activation(Layer):
    keras_name = "Activation"
    carries_mask = True

    class Config(StrictModel):
        positional: ClassVar[str] = "activation"
        activation: ActivationName

    config: Config

    def activation(self) -> str | None:
        return self.config.activation

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        act = None if strip_activation else make_activation(self.config.activation)
        return BuiltLayer(act or nn.Identity(), input_shape)

    def stacked_forward(self, module: nn.Module, prefix: str) -> StackedForward:
        return elementwise_stacked(module, prefix)


@LAYERS.register("leaky_relu")
class LeakyReLU(Layer):
    """``max(x, negative_slope * x)``; Keras's layer default slope is 0.3 (the ``leaky_relu``
    activation function's is 0.2)."""

    keras_name = "LeakyReLU"
    carries_mask = True

    class Config(StrictModel):
        positional: ClassVar[str] = "negative_slope"
        negative_slope: Number = Field(default=0.3, ge=0)

    config: Config

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        return BuiltLayer(nn.LeakyReLU(self.config.negative_slope), input_shape)

    def stacked_forward(self, module: nn.Module, prefix: str) -> StackedForward:
        return elementwise_stacked(module, prefix)


@LAYERS.register("flatten")
class Flatten(Layer):
    keras_name = "Flatten"
    passes_activation_through = True

    class Config(StrictModel):
        pass

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        return BuiltLayer(nn.Flatten(start_dim=1), (math.prod(input_shape),))


class _Reshape(nn.Module):
    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


@LAYERS.register("reshape")
class Reshape(Layer):
    keras_name = "Reshape"
    passes_activation_through = True

    class Config(StrictModel):
        positional: ClassVar[str] = "target_shape"
        target_shape: list[PositiveInt] = Field(min_length=1)

    config: Config

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        shape = tuple(self.config.target_shape)
        if math.prod(shape) != math.prod(input_shape):
            raise ValueError(f"cannot reshape {list(input_shape)} into {list(shape)}")
        return BuiltLayer(_Reshape(shape), shape)


class _RepeatVector(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-2).expand(*x.shape[:-1], self.n, x.shape[-1])


@LAYERS.register("repeat_vector")
class RepeatVector(Layer):
    """``(features,)`` to ``(n, features)``: one vector fed to every step of a recurrent
    decoder (DLwP's sequence-to-sequence models)."""

    keras_name = "RepeatVector"

    class Config(StrictModel):
        positional: ClassVar[str] = "n"
        n: PositiveInt

    config: Config

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        if len(input_shape) != 1:
            raise ValueError(f"reads one vector per sample, got {list(input_shape)}")
        return BuiltLayer(_RepeatVector(self.config.n), (self.config.n, input_shape[0]))

    def stacked_forward(self, module: nn.Module, prefix: str) -> StackedForward:
        return elementwise_stacked(module, prefix)
