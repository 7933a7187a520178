"""Keras's recurrent layers: simple_rnn, lstm and gru, on (steps, features) per sample.

Weights follow Keras: one kernel, one recurrent kernel and one bias per layer, gates in Keras's
order (LSTM i, f, c, o; GRU z, r, h), glorot_uniform kernels, orthogonal recurrent kernels, zero
biases with LSTM's ``unit_forget_bias``, and GRU's ``reset_after: true`` (Keras 2.3+ and 3, two
biases). The parameter counts are Keras's, e.g. LSTM(32) on 64 features: 12,416.

``dropout`` (inputs) and ``recurrent_dropout`` (the state fed back) use one mask per sequence,
the same at every step, and only in training; with ``recurrent_dropout`` each gate gets its own
masks, as Keras 3 does then (its ``implementation=1``).

The step loops in recurrent_cells.py are the definition. When nothing needs them (Keras's default
activations, no recurrent dropout, no mask, not stacked under vmap), torch's fused kernels
compute the same thing much faster (cuDNN on a GPU); a test holds the two equal.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import Field
from pydantic import PositiveInt
from torch import nn

from dlrun.config.base import Number
from dlrun.config.base import StrictModel
from dlrun.models.initializers import INITIALIZERS
from dlrun.models.initializers import init_kernel_bias
from dlrun.models.layers import LAYERS
from dlrun.models.layers import ActivationName
from dlrun.models.layers import BuiltLayer
from dlrun.models.layers import InitializerName
from dlrun.models.layers import Layer
from dlrun.models.layers import RegularizerConfig
from dlrun.models.layers import Shape
from dlrun.models.layers import penalties
from dlrun.models.recurrent_cells import _GRU
from dlrun.models.recurrent_cells import _LSTM
from dlrun.models.recurrent_cells import _Recurrent
from dlrun.models.recurrent_cells import _SimpleRNN


class RecurrentConfig(StrictModel):
    positional: ClassVar[str] = "units"
    units: PositiveInt
    activation: ActivationName | None = "tanh"
    use_bias: bool = True
    kernel_initializer: InitializerName = "glorot_uniform"
    recurrent_initializer: InitializerName = "orthogonal"
    bias_initializer: InitializerName = "zeros"
    kernel_regularizer: RegularizerConfig | None = None
    recurrent_regularizer: RegularizerConfig | None = None
    bias_regularizer: RegularizerConfig | None = None
    dropout: Number = Field(default=0.0, ge=0, lt=1)
    recurrent_dropout: Number = Field(default=0.0, ge=0, lt=1)
    return_sequences: bool = False
    go_backwards: bool = False


class GatedConfig(RecurrentConfig):
    recurrent_activation: ActivationName | None = "sigmoid"


class LSTMConfig(GatedConfig):
    unit_forget_bias: bool = True


class GRUConfig(GatedConfig):
    reset_after: bool = True


class Recurrent(Layer):
    """Builds a recurrent module: Keras's weight shapes and initialisers."""

    module: ClassVar[type[_Recurrent]]
    config: RecurrentConfig

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        if len(input_shape) != 2:
            raise ValueError(
                f"reads (steps, features) per sample, got {list(input_shape)}; add an "
                "embedding or reshape layer before it"
            )
        c = self.config
        module = self.module(input_shape[-1], c, self.bias_shape(), self.recurrent_activation())
        if keras_init:
            self.keras_initialise(module)
        else:
            bound = 1 / math.sqrt(c.units)  # torch's recurrent-layer default
            for param in module.parameters():
                nn.init.uniform_(param, -bound, bound)
        regularized = penalties(
            ("kernel", c.kernel_regularizer),
            ("recurrent_kernel", c.recurrent_regularizer),
            ("bias", c.bias_regularizer if c.use_bias else None),
        )
        out = (input_shape[0], c.units) if c.return_sequences else (c.units,)
        return BuiltLayer(module, out, regularized)

    def recurrent_activation(self) -> str | None:
        """The gates' activation; a simple RNN has no gates."""
        return None

    def bias_shape(self) -> Shape:
        return (self.module.gates * self.config.units,)

    def keras_initialise(self, module: _Recurrent) -> None:
        c = self.config
        INITIALIZERS.get(c.kernel_initializer)(module.kernel)
        init_kernel_bias(
            module.recurrent_kernel, module.bias, c.recurrent_initializer, c.bias_initializer
        )

    def reversed(self) -> Recurrent:
        """The same layer reading the sequence backwards (bidirectional's second half)."""
        flipped = self.config.model_copy(update={"go_backwards": not self.config.go_backwards})
        return type(self)(flipped)


@LAYERS.register("simple_rnn")
class SimpleRNN(Recurrent):
    """Keras ``SimpleRNN``: ``h = activation(x W + h U + b)``.

    Example (DLwP 6.2): ``- simple_rnn: {units: 32, return_sequences: true}``.
    """

    keras_name = "SimpleRNN"
    module = _SimpleRNN
    Config = RecurrentConfig


class _Gated(Recurrent):
    """LSTM and GRU: their gates have their own activation."""

    config: GatedConfig

    def recurrent_activation(self) -> str | None:
        return self.config.recurrent_activation


@LAYERS.register("lstm")
class LSTM(_Gated):
    """Keras ``LSTM``; ``unit_forget_bias`` starts the forget gate's bias at 1."""

    keras_name = "LSTM"
    module = _LSTM
    Config = LSTMConfig
    config: LSTMConfig

    def keras_initialise(self, module: _Recurrent) -> None:
        super().keras_initialise(module)
        if module.bias is not None and self.config.unit_forget_bias:
            with torch.no_grad():
                module.bias[self.config.units : 2 * self.config.units] = 1.0


@LAYERS.register("gru")
class GRU(_Gated):
    """Keras ``GRU``; ``reset_after: false`` is the Keras 2.2 form with one bias."""

    keras_name = "GRU"
    module = _GRU
    Config = GRUConfig
    config: GRUConfig

    def bias_shape(self) -> Shape:
        gates = 3 * self.config.units
        return (2, gates) if self.config.reset_after else (gates,)
