"""Keras's recurrent layers: simple_rnn, lstm and gru, on (steps, features) per sample.

Weights follow Keras: one kernel, one recurrent kernel and one bias per layer, gates in Keras's
order (LSTM i, f, c, o; GRU z, r, h), glorot_uniform kernels, orthogonal recurrent kernels, zero
biases with LSTM's ``unit_forget_bias``, and GRU's ``reset_after: true`` (Keras 2.3+ and 3, two
biases). The parameter counts are Keras's, e.g. LSTM(32) on 64 features: 12,416.

``dropout`` (inputs) and ``recurrent_dropout`` (the state fed back) use one mask per sequence,
the same at every step, and only in training; with ``recurrent_dropout`` each gate gets its own
masks, as Keras 3 does then (its ``implementation=1``).

The step loop below is the definition. When nothing needs it (Keras's default activations, no
recurrent dropout, no mask, not stacked under vmap), torch's fused kernels compute the same thing
much faster (cuDNN on a GPU); a test holds the two equal.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import Field
from pydantic import PositiveInt
from torch import nn
from torch.nn import functional

from dlrun.config.base import Number
from dlrun.config.base import StrictModel
from dlrun.models.activations import make_activation
from dlrun.models.initializers import INITIALIZERS
from dlrun.models.layers import LAYERS
from dlrun.models.layers import ActivationName
from dlrun.models.layers import BuiltLayer
from dlrun.models.layers import InitializerName
from dlrun.models.layers import Layer
from dlrun.models.layers import RegularizerConfig
from dlrun.models.layers import Shape
from dlrun.models.masking import MaskAware

State = tuple[torch.Tensor, ...]


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


def _function(name: str | None) -> nn.Module:
    return make_activation(name) or nn.Identity()


def _dropped(x: torch.Tensor, input_mask: torch.Tensor | None) -> torch.Tensor:
    """``x`` (batch, steps, features) times one input mask, the same at every step."""
    return x if input_mask is None else x * input_mask[0].unsqueeze(1)


class _Recurrent(MaskAware):
    """The shared loop; subclasses give the gates, the step and (optionally) a fused kernel."""

    gates: ClassVar[int]

    def __init__(self, features: int, cfg: RecurrentConfig, bias_shape: Shape) -> None:
        super().__init__()
        units, gates = cfg.units, self.gates
        self.kernel = nn.Parameter(torch.empty(gates * units, features))
        self.recurrent_kernel = nn.Parameter(torch.empty(gates * units, units))
        self.bias = nn.Parameter(torch.empty(bias_shape)) if cfg.use_bias else None
        self.units = units
        self.activation_name = cfg.activation
        self.activation = _function(cfg.activation)
        self.recurrent_activation_name = getattr(cfg, "recurrent_activation", None)
        self.recurrent_activation = _function(self.recurrent_activation_name)
        self.dropout = cfg.dropout
        self.recurrent_dropout = cfg.recurrent_dropout
        self.return_sequences = cfg.return_sequences
        self.go_backwards = cfg.go_backwards
        self.zero_output_for_mask = False  # bidirectional sets it, as Keras does

    def forward_masked(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.go_backwards:
            x = x.flip(1)
            mask = None if mask is None else mask.flip(1)
        per_gate = self.training and self.recurrent_dropout > 0
        input_mask = self._dropout_mask(x, x.shape[-1], self.dropout, per_gate)
        state_mask = self._dropout_mask(x, self.units, self.recurrent_dropout, True)
        outputs = None
        if mask is None and state_mask is None and not torch._C._functorch.is_batchedtensor(x):
            outputs = self.fused(_dropped(x, input_mask))
        if outputs is None:
            outputs = self.loop(x, input_mask, state_mask, mask)
        if self.return_sequences:
            return outputs, mask
        return outputs[:, -1], None

    def _dropout_mask(
        self, x: torch.Tensor, width: int, rate: float, per_gate: bool
    ) -> torch.Tensor | None:
        """``(gates or 1, batch, width)``: drawn once per sequence (Keras), training only."""
        if not self.training or rate == 0:
            return None
        ones = x.new_ones((self.gates if per_gate else 1, x.shape[0], width))
        return functional.dropout(ones, rate, training=True)

    def loop(
        self,
        x: torch.Tensor,
        input_mask: torch.Tensor | None,
        state_mask: torch.Tensor | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """Keras's step loop: masked steps keep the state and repeat (or zero) the output."""
        projected = self.project(x, input_mask)
        state: State = tuple(x.new_zeros(x.shape[0], self.units) for _ in self.state_names)
        previous = state[0]
        outputs = []
        for t in range(x.shape[1]):
            output, new_state = self.step(projected[:, t], state, state_mask)
            if mask is not None:
                keep = mask[:, t, None]
                new_state = tuple(
                    torch.where(keep, n, o) for n, o in zip(new_state, state, strict=True)
                )
                fill = torch.zeros_like(output) if self.zero_output_for_mask else previous
                output = torch.where(keep, output, fill)
            state, previous = new_state, output
            outputs.append(output)
        return torch.stack(outputs, dim=1)

    def project(self, x: torch.Tensor, input_mask: torch.Tensor | None) -> torch.Tensor:
        """Every step's inputs times the kernel (plus the input bias), at once."""
        if input_mask is None or input_mask.shape[0] == 1:
            projected = _dropped(x, input_mask) @ self.kernel.T
        else:  # one mask per gate
            kernel = self.kernel.view(self.gates, self.units, -1)
            projected = torch.einsum("btf,gbf,guf->btgu", x, input_mask, kernel).flatten(2)
        bias = self.input_bias()
        return projected if bias is None else projected + bias

    def recur(
        self, h: torch.Tensor, state_mask: torch.Tensor | None, first: int, last: int
    ) -> torch.Tensor:
        """The state times the recurrent kernel of gates ``first`` to ``last`` (exclusive)."""
        kernel = self.recurrent_kernel[first * self.units : last * self.units]
        if state_mask is None:
            return h @ kernel.T
        masked = h.unsqueeze(0) * state_mask[first:last]
        per_gate = kernel.view(last - first, self.units, self.units)
        return torch.einsum("gbv,guv->bgu", masked, per_gate).flatten(1)

    def input_bias(self) -> torch.Tensor | None:
        return self.bias

    state_names: ClassVar[tuple[str, ...]] = ("h",)

    def step(
        self, projected: torch.Tensor, state: State, state_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    def fused(self, x: torch.Tensor) -> torch.Tensor | None:
        """All outputs from torch's fused kernel, or ``None`` where it differs from Keras."""
        return None

    def _fused_params(
        self,
        kernel: torch.Tensor,
        recurrent: torch.Tensor,
        bias: torch.Tensor | None,
        recurrent_bias: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        if bias is None:
            return [kernel, recurrent]
        return [
            kernel,
            recurrent,
            bias,
            torch.zeros_like(bias) if recurrent_bias is None else recurrent_bias,
        ]

    def _keras_default(self) -> bool:
        return self.activation_name == "tanh" and self.recurrent_activation_name == "sigmoid"


class _SimpleRNN(_Recurrent):
    gates = 1

    def step(
        self, projected: torch.Tensor, state: State, state_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, State]:
        h = self.activation(projected + self.recur(state[0], state_mask, 0, 1))
        return h, (h,)

    def fused(self, x: torch.Tensor) -> torch.Tensor | None:
        kernel = {"tanh": torch.rnn_tanh, "relu": torch.rnn_relu}.get(self.activation_name or "")
        if kernel is None:
            return None
        params = self._fused_params(self.kernel, self.recurrent_kernel, self.bias)
        h0 = x.new_zeros(1, x.shape[0], self.units)
        out: torch.Tensor = kernel(
            x, h0, params, self.bias is not None, 1, 0.0, self.training, False, True
        )[0]
        return out


class _LSTM(_Recurrent):
    gates = 4
    state_names = ("h", "c")

    def step(
        self, projected: torch.Tensor, state: State, state_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, State]:
        h, c = state
        i, f, g, o = (projected + self.recur(h, state_mask, 0, 4)).chunk(4, dim=-1)
        ra = self.recurrent_activation
        c = ra(f) * c + ra(i) * self.activation(g)
        h = ra(o) * self.activation(c)
        return h, (h, c)

    def fused(self, x: torch.Tensor) -> torch.Tensor | None:
        if not self._keras_default():
            return None  # torch's gates are Keras's (i, f, g, o), but only tanh/sigmoid
        params = self._fused_params(self.kernel, self.recurrent_kernel, self.bias)
        zeros = x.new_zeros(1, x.shape[0], self.units)
        out: torch.Tensor = torch.lstm(
            x, (zeros, zeros), params, self.bias is not None, 1, 0.0, self.training, False, True
        )[0]
        return out


class _GRU(_Recurrent):
    gates = 3

    def __init__(self, features: int, cfg: GRUConfig, bias_shape: Shape) -> None:
        super().__init__(features, cfg, bias_shape)
        self.reset_after = cfg.reset_after

    def input_bias(self) -> torch.Tensor | None:
        if self.bias is None or not self.reset_after:
            return self.bias
        return self.bias[0]  # reset_after: (input bias, recurrent bias)

    def step(
        self, projected: torch.Tensor, state: State, state_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, State]:
        (h,) = state
        x_z, x_r, x_h = projected.chunk(3, dim=-1)
        ra = self.recurrent_activation
        if self.reset_after:  # the reset gate scales the state's product (Keras 3, cuDNN)
            inner = self.recur(h, state_mask, 0, 3)
            if self.bias is not None:
                inner = inner + self.bias[1]
            r_z, r_r, r_h = inner.chunk(3, dim=-1)
            z, r = ra(x_z + r_z), ra(x_r + r_r)
            candidate = self.activation(x_h + r * r_h)
        else:  # the reset gate scales the state before its product (Keras before 2.3)
            r_z, r_r = self.recur(h, state_mask, 0, 2).chunk(2, dim=-1)
            z, r = ra(x_z + r_z), ra(x_r + r_r)
            candidate = self.activation(x_h + self.recur(r * h, state_mask, 2, 3))
        h = z * h + (1 - z) * candidate
        return h, (h,)

    def fused(self, x: torch.Tensor) -> torch.Tensor | None:
        if not (self.reset_after and self._keras_default()):
            return None
        order = [1, 0, 2]  # Keras's gates (z, r, h) in torch's order (r, z, n)

        def torch_order(t: torch.Tensor) -> torch.Tensor:
            return t.view(3, self.units, *t.shape[1:])[order].flatten(0, 1)

        bias = None if self.bias is None else torch_order(self.bias[0])
        recurrent_bias = None if self.bias is None else torch_order(self.bias[1])
        params = self._fused_params(
            torch_order(self.kernel), torch_order(self.recurrent_kernel), bias, recurrent_bias
        )
        h0 = x.new_zeros(1, x.shape[0], self.units)
        out: torch.Tensor = torch.gru(
            x, h0, params, self.bias is not None, 1, 0.0, self.training, False, True
        )[0]
        return out


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
        module = self.module(input_shape[-1], c, self.bias_shape())
        if keras_init:
            self.keras_initialise(module)
        else:
            bound = 1 / math.sqrt(c.units)  # torch's recurrent-layer default
            for param in module.parameters():
                nn.init.uniform_(param, -bound, bound)
        penalties = [
            (param, reg)
            for param, reg in (
                ("kernel", c.kernel_regularizer),
                ("recurrent_kernel", c.recurrent_regularizer),
                ("bias", c.bias_regularizer if c.use_bias else None),
            )
            if reg is not None
        ]
        out = (input_shape[0], c.units) if c.return_sequences else (c.units,)
        return BuiltLayer(module, out, penalties)

    def bias_shape(self) -> Shape:
        return (self.module.gates * self.config.units,)

    def keras_initialise(self, module: _Recurrent) -> None:
        c = self.config
        INITIALIZERS.get(c.kernel_initializer)(module.kernel)
        INITIALIZERS.get(c.recurrent_initializer)(module.recurrent_kernel)
        if module.bias is not None:
            INITIALIZERS.get(c.bias_initializer)(module.bias)

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


@LAYERS.register("lstm")
class LSTM(Recurrent):
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
class GRU(Recurrent):
    """Keras ``GRU``; ``reset_after: false`` is the Keras 2.2 form with one bias."""

    keras_name = "GRU"
    module = _GRU
    Config = GRUConfig
    config: GRUConfig

    def bias_shape(self) -> Shape:
        gates = 3 * self.config.units
        return (2, gates) if self.config.reset_after else (gates,)
