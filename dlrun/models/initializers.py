"""Keras weight initialisers, so dlrun starts training where the books' Keras code starts.

Keras's ``*_normal`` variance-scaling initialisers draw from a normal truncated at two standard
deviations and correct the spread by 0.8796 so the variance is exact; we do the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from dlrun.registry import Registry

Initializer = Callable[[torch.Tensor], object]
INITIALIZERS: Registry[Initializer] = Registry("initializer")

_TRUNCATED_STD_CORRECTION = 0.87962566103423978


def _fans(tensor: torch.Tensor) -> tuple[int, int]:
    """Keras fan-in/fan-out for a torch weight laid out as (out, in, *kernel)."""
    receptive = math.prod(tensor.shape[2:]) if tensor.dim() > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _variance_scaling(scale: float, mode: str, distribution: str) -> Initializer:
    def init(tensor: torch.Tensor) -> None:
        fan_in, fan_out = _fans(tensor)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(1.0, fan)
        with torch.no_grad():
            if distribution == "uniform":
                limit = math.sqrt(3.0 * variance)
                tensor.uniform_(-limit, limit)
            else:
                std = math.sqrt(variance) / _TRUNCATED_STD_CORRECTION
                nn.init.trunc_normal_(tensor, 0.0, std, -2 * std, 2 * std)

    return init


for _name, _args in {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "normal"),
}.items():
    INITIALIZERS.register(_name)(_variance_scaling(*_args))

INITIALIZERS.register("zeros")(nn.init.zeros_)
INITIALIZERS.register("ones")(nn.init.ones_)
for _alias in ("random_normal", "normal"):  # Keras accepts both names
    INITIALIZERS.register(_alias)(lambda t: nn.init.normal_(t, 0.0, 0.05))
for _alias in ("random_uniform", "uniform"):  # "uniform": the Embedding default
    INITIALIZERS.register(_alias)(lambda t: nn.init.uniform_(t, -0.05, 0.05))
INITIALIZERS.register("orthogonal")(nn.init.orthogonal_)


def init_kernel_bias(
    weight: torch.Tensor, bias: torch.Tensor | None, kernel_name: str, bias_name: str
) -> None:
    """Keras's order: the kernel initialiser, then the bias one if the layer has a bias."""
    INITIALIZERS.get(kernel_name)(weight)
    if bias is not None:
        INITIALIZERS.get(bias_name)(bias)
