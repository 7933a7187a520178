"""Activation functions by their Keras names."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dlrun.registry import Registry

ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation")


class Keras2HardSigmoid(nn.Module):
    """Keras 2's ``hard_sigmoid``, ``clip(0.2 x + 0.5, 0, 1)``: the default gate activation of
    its LSTM and GRU, which the books' code ran. Keras 3 and torch use ``x / 6 + 0.5``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


_FACTORIES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "softsign": nn.Softsign,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "hard_sigmoid": nn.Hardsigmoid,
    "hard_sigmoid_keras2": Keras2HardSigmoid,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),  # Keras's default negative slope
    "softmax": lambda: nn.Softmax(dim=-1),
    "linear": nn.Identity,
}
for _name, _factory in _FACTORIES.items():
    ACTIVATIONS.register(_name)(_factory)


def make_activation(name: str | None) -> nn.Module | None:
    """A module for ``name``; ``None`` and ``linear`` mean no activation."""
    if name is None or name == "linear":
        return None
    return ACTIVATIONS.get(name)()
