"""The step loops behind dlrun's recurrent layers (dlrun/models/recurrent.py): Keras's gate
order and dropout masks, with torch's fused kernels where they compute the same thing."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional

from dlrun.models.activations import make_activation
from dlrun.models.layers import Shape
from dlrun.models.masking import MaskAware

if TYPE_CHECKING:
    from dlrun.models.recurrent import GRUConfig
    from dlrun.models.recurrent import RecurrentConfig

State = tuple[torch.Tensor, ...]

# The fused kernels take the Keras-laid-out weights (the GRU's reordered per call); cuDNN copies
# them into its own flat buffer at every call, a few kilobytes for the books' layers, and warns
# that it does so.
warnings.filterwarnings(
    "ignore",
    "RNN module weights are not part of single contiguous chunk",
    UserWarning,
    r"dlrun\.models\.recurrent_cells",
)


def _function(name: str | None) -> nn.Module:
    return make_activation(name) or nn.Identity()


def _dropped(x: torch.Tensor, input_mask: torch.Tensor | None) -> torch.Tensor:
    """``x`` (batch, steps, features) times one input mask, the same at every step."""
    return x if input_mask is None else x * input_mask[0].unsqueeze(1)


class _Recurrent(MaskAware):
    """The shared loop; subclasses give the gates, the step and (optionally) a fused kernel."""

    gates: ClassVar[int]

    def __init__(
        self,
        features: int,
        cfg: RecurrentConfig,
        bias_shape: Shape,
        recurrent_activation: str | None,
    ) -> None:
        super().__init__()
        units, gates = cfg.units, self.gates
        self.kernel = nn.Parameter(torch.empty(gates * units, features))
        self.recurrent_kernel = nn.Parameter(torch.empty(gates * units, units))
        self.bias = nn.Parameter(torch.empty(bias_shape)) if cfg.use_bias else None
        self.units = units
        self.activation_name = cfg.activation
        self.activation = _function(cfg.activation)
        self.recurrent_activation_name = recurrent_activation
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
        # one view per step: indexing projected[:, t] instead would make each step's backward
        # write its gradient into a zero tensor of the whole sequence (3.7x slower at 500 steps)
        steps = self.project(x, input_mask).unbind(1)
        state: State = tuple(x.new_zeros(x.shape[0], self.units) for _ in self.state_names)
        previous = state[0]
        outputs = []
        for t, projected in enumerate(steps):
            output, new_state = self.step(projected, state, state_mask)
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
        second = torch.zeros_like(bias) if recurrent_bias is None else recurrent_bias
        return [kernel, recurrent, bias, second]

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

    def __init__(
        self,
        features: int,
        cfg: GRUConfig,
        bias_shape: Shape,
        recurrent_activation: str | None,
    ) -> None:
        super().__init__(features, cfg, bias_shape, recurrent_activation)
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
