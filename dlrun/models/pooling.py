"""Pooling and upsampling layers with Keras's arguments, on channels-last inputs.

``padding: same`` pads as Keras does (extra row at the end, dlrun/models/spatial.py). Padded
positions never win a max and are left out of an average (Keras and TensorFlow divide by the
number of real values under the window), also when the padding is uneven.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar
from typing import Literal

import torch
from torch import nn
from torch.nn import functional

from dlrun.config.base import StrictModel
from dlrun.models.layers import LAYERS
from dlrun.models.layers import BuiltLayer
from dlrun.models.layers import Layer
from dlrun.models.layers import Shape
from dlrun.models.masking import MaskAware
from dlrun.models.spatial import Padding
from dlrun.models.spatial import Pads
from dlrun.models.spatial import Size
from dlrun.models.spatial import check_rank
from dlrun.models.spatial import pad
from dlrun.models.spatial import per_axis
from dlrun.models.spatial import to_channels_first
from dlrun.models.spatial import to_channels_last
from dlrun.models.spatial import window_output
from dlrun.models.spatial import window_pads

PoolFn = Callable[..., torch.Tensor]
_MAX: dict[int, PoolFn] = {1: functional.max_pool1d, 2: functional.max_pool2d}
_AVERAGE: dict[int, PoolFn] = {1: functional.avg_pool1d, 2: functional.avg_pool2d}


class PoolConfig(StrictModel):
    positional: ClassVar[str] = "pool_size"
    pool_size: Size = 2
    strides: Size | None = None  # Keras: the pool size
    padding: Padding = "valid"


class _MaxPool(nn.Module):
    def __init__(self, pool: PoolFn, size: Shape, strides: Shape, pads: Pads) -> None:
        super().__init__()
        self.pool, self.size, self.strides, self.pads = pool, size, strides, pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = pad(to_channels_first(x), self.pads, value=float("-inf"))
        return to_channels_last(self.pool(y, self.size, self.strides))


class _AveragePool(_MaxPool):
    """The mean over the real values under each window: pooled sums over pooled counts."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(pad(to_channels_first(x), self.pads), self.size, self.strides)
        if any(side for axis in self.pads for side in axis):
            ones = x.new_ones((1, 1, *x.shape[1:-1]))
            y = y / self.pool(pad(ones, self.pads), self.size, self.strides)
        return to_channels_last(y)


class _Pooling(Layer):
    dims: ClassVar[int]
    module: ClassVar[type[_MaxPool]]
    functions: ClassVar[dict[int, PoolFn]]
    Config = PoolConfig
    config: PoolConfig

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        check_rank(input_shape, self.dims)
        c = self.config
        size = per_axis(c.pool_size, self.dims, "pool_size")
        strides = size if c.strides is None else per_axis(c.strides, self.dims, "strides")
        lengths = input_shape[:-1]
        ones = (1,) * self.dims
        pads = window_pads(lengths, size, strides, ones, c.padding)
        out = window_output(lengths, size, strides, ones, pads)
        module = self.module(self.functions[self.dims], size, strides, pads)
        return BuiltLayer(module, (*out, input_shape[-1]))


@LAYERS.register("max_pooling1d")
class MaxPooling1D(_Pooling):
    keras_name = "MaxPooling1D"
    dims, module, functions = 1, _MaxPool, _MAX


@LAYERS.register("max_pooling2d")
class MaxPooling2D(_Pooling):
    """Example (DLwP 5.1): ``- max_pooling2d: 2``."""

    keras_name = "MaxPooling2D"
    dims, module, functions = 2, _MaxPool, _MAX


@LAYERS.register("average_pooling1d")
class AveragePooling1D(_Pooling):
    keras_name = "AveragePooling1D"
    dims, module, functions = 1, _AveragePool, _AVERAGE


@LAYERS.register("average_pooling2d")
class AveragePooling2D(_Pooling):
    keras_name = "AveragePooling2D"
    dims, module, functions = 2, _AveragePool, _AVERAGE


class _GlobalPool(MaskAware):
    """Reduce every spatial axis; a 1-d average leaves masked steps out (Keras)."""

    def __init__(self, dims: int, average: bool) -> None:
        super().__init__()
        self.axes = tuple(range(1, dims + 1))
        self.average = average

    def forward_masked(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.average:
            return x.amax(dim=self.axes), None
        if mask is None:
            return x.mean(dim=self.axes), None
        weights = mask.unsqueeze(-1).to(x.dtype)
        return (x * weights).sum(dim=1) / weights.sum(dim=1), None


class _GlobalPooling(Layer):
    dims: ClassVar[int]
    average: ClassVar[bool]

    class Config(StrictModel):
        pass

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        check_rank(input_shape, self.dims)
        return BuiltLayer(_GlobalPool(self.dims, self.average), (input_shape[-1],))


@LAYERS.register("global_max_pooling1d")
class GlobalMaxPooling1D(_GlobalPooling):
    keras_name = "GlobalMaxPooling1D"
    dims, average = 1, False


@LAYERS.register("global_max_pooling2d")
class GlobalMaxPooling2D(_GlobalPooling):
    keras_name = "GlobalMaxPooling2D"
    dims, average = 2, False


@LAYERS.register("global_average_pooling1d")
class GlobalAveragePooling1D(_GlobalPooling):
    keras_name = "GlobalAveragePooling1D"
    dims, average = 1, True


@LAYERS.register("global_average_pooling2d")
class GlobalAveragePooling2D(_GlobalPooling):
    keras_name = "GlobalAveragePooling2D"
    dims, average = 2, True


_ALIGN_CORNERS = {"nearest": None, "bilinear": False}  # bilinear: half-pixel centres (TF 2)


class _UpSample(nn.Module):
    def __init__(self, size: Shape, mode: str) -> None:
        super().__init__()
        self.size, self.mode = size, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = functional.interpolate(
            to_channels_first(x),
            scale_factor=self.size,
            mode=self.mode,
            align_corners=_ALIGN_CORNERS[self.mode],
        )
        return to_channels_last(y)


@LAYERS.register("upsampling2d")
class UpSampling2D(Layer):
    """Keras ``UpSampling2D``: each row and column repeated ``size`` times (``nearest``) or
    interpolated (``bilinear``, half-pixel centres as Keras/TensorFlow 2)."""

    keras_name = "UpSampling2D"

    class Config(StrictModel):
        positional: ClassVar[str] = "size"
        size: Size = 2
        interpolation: Literal["nearest", "bilinear"] = "nearest"

    config: Config

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        check_rank(input_shape, 2)
        size = per_axis(self.config.size, 2, "size")
        out = (input_shape[0] * size[0], input_shape[1] * size[1], input_shape[2])
        return BuiltLayer(_UpSample(size, self.config.interpolation), out)
