"""Spatial dropout: whole feature maps dropped, not single values (Keras SpatialDropout1D/2D).

Neighbouring steps or pixels of one channel are strongly correlated, so dropping single values
barely regularises a convolution; dropping a channel everywhere in a sample does (Tompson et al.
2015). Like ``dropout``, it only acts in training and scales the kept channels by
``1 / (1 - rate)``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional

from dlrun.models.layers import LAYERS
from dlrun.models.layers import BuiltLayer
from dlrun.models.layers import Layer
from dlrun.models.layers import RateConfig
from dlrun.models.layers import Shape
from dlrun.models.layers import StackedForward
from dlrun.models.layers import elementwise_stacked
from dlrun.models.spatial import check_rank


class _SpatialDropout(nn.Module):
    def __init__(self, rate: float, dims: int) -> None:
        super().__init__()
        self.rate = rate
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        # One draw per (sample, channel), the same at every step or pixel: Keras's noise_shape.
        noise_shape = (*x.shape[: x.dim() - self.dims - 1], *(1,) * self.dims, x.shape[-1])
        return x * functional.dropout(x.new_ones(noise_shape), self.rate, training=True)


class _SpatialDropoutLayer(Layer):
    dims: ClassVar[int]
    passes_activation_through = True
    carries_mask = True
    Config = RateConfig
    config: RateConfig

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        check_rank(input_shape, self.dims)
        return BuiltLayer(_SpatialDropout(self.config.rate, self.dims), input_shape)

    def stacked_forward(self, module: nn.Module, prefix: str) -> StackedForward:
        return elementwise_stacked(module, prefix)  # the noise shape counts from the end


@LAYERS.register("spatial_dropout1d")
class SpatialDropout1D(_SpatialDropoutLayer):
    """Drops whole channels of (steps, channels) inputs."""

    keras_name = "SpatialDropout1D"
    dims = 1


@LAYERS.register("spatial_dropout2d")
class SpatialDropout2D(_SpatialDropoutLayer):
    """Drops whole feature maps of (height, width, channels) inputs."""

    keras_name = "SpatialDropout2D"
    dims = 2
