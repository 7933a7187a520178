"""Convolution layers with Keras's arguments: conv1d, conv2d, conv2d_transpose, separable_conv2d.

Inputs and outputs are channels-last like Keras (see dlrun/models/spatial.py); weights are in
torch's layout, initialised with Keras's fans, so parameter counts and initial scales match the
books' Keras models. Keras forbids ``strides`` and ``dilation_rate`` both above 1, and so do we.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from pydantic import Field
from pydantic import PositiveInt
from torch import nn
from torch.nn import functional

from dlrun.config.base import StrictModel
from dlrun.models.activations import make_activation
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
from dlrun.models.spatial import Padding
from dlrun.models.spatial import Pads
from dlrun.models.spatial import Size
from dlrun.models.spatial import check_rank
from dlrun.models.spatial import pad
from dlrun.models.spatial import per_axis
from dlrun.models.spatial import to_channels_first
from dlrun.models.spatial import to_channels_last
from dlrun.models.spatial import torch_padding
from dlrun.models.spatial import window_output
from dlrun.models.spatial import window_pads

# By number of spatial axes; typed loosely since torch types each by its own tuple length.
_CONV: dict[int, Callable[..., nn.Conv1d | nn.Conv2d]] = {1: nn.Conv1d, 2: nn.Conv2d}
_TRANSPOSE: dict[int, Callable[..., nn.ConvTranspose1d | nn.ConvTranspose2d]] = {
    1: nn.ConvTranspose1d,
    2: nn.ConvTranspose2d,
}
_TRANSPOSE_FUNCTION = {1: functional.conv_transpose1d, 2: functional.conv_transpose2d}


class WindowConfig(StrictModel):
    """What every convolution takes (Keras's names and defaults)."""

    positional: ClassVar[str] = "filters"
    filters: PositiveInt
    kernel_size: Size
    strides: Size = 1
    padding: Padding = "valid"
    dilation_rate: Size = 1
    activation: ActivationName | None = None
    use_bias: bool = True
    bias_initializer: InitializerName = "zeros"
    bias_regularizer: RegularizerConfig | None = None


class ConvConfig(WindowConfig):
    kernel_initializer: InitializerName = "glorot_uniform"
    kernel_regularizer: RegularizerConfig | None = None


class ConvTransposeConfig(ConvConfig):
    output_padding: Size | None = Field(
        default=None, description="extra rows/columns at the end of the output (Keras)"
    )


class SeparableConfig(WindowConfig):
    depth_multiplier: PositiveInt = 1
    depthwise_initializer: InitializerName = "glorot_uniform"
    pointwise_initializer: InitializerName = "glorot_uniform"
    depthwise_regularizer: RegularizerConfig | None = None
    pointwise_regularizer: RegularizerConfig | None = None


class _Conv(nn.Module):
    """Channels-last in and out; ``pads`` is set only for Keras's uneven ``same`` padding."""

    def __init__(self, conv: nn.Module, pads: Pads | None, activation: nn.Module | None) -> None:
        super().__init__()
        self.conv = conv
        self.pads = pads
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = to_channels_first(x)
        if self.pads is not None:
            y = pad(y, self.pads)
        y = to_channels_last(self.conv(y))
        return y if self.activation is None else self.activation(y)


class _ConvTranspose(nn.Module):
    """torch's full transposed convolution, cropped (or zero-extended) to Keras's window.

    torch can only crop both ends equally; Keras's ``same`` crops one more at the end for odd
    kernels with even strides, so the crop is done here and the bias added after it (the
    extended positions hold the bias alone, as in Keras).
    """

    def __init__(
        self,
        transpose: nn.ConvTranspose1d | nn.ConvTranspose2d,
        crops: Pads,
        activation: nn.Module | None,
    ) -> None:
        super().__init__()
        self.transpose = transpose
        self.crops = crops
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.transpose
        y = _TRANSPOSE_FUNCTION[len(self.crops)](
            to_channels_first(x), t.weight, None, t.stride, 0, 0, 1, t.dilation
        )
        for axis, (before, after) in enumerate(self.crops, start=2):
            y = y.narrow(axis, max(before, 0), y.shape[axis] - max(before, 0) - max(after, 0))
        y = pad(y, tuple((max(-before, 0), max(-after, 0)) for before, after in self.crops))
        y = to_channels_last(y)
        if t.bias is not None:
            y = y + t.bias
        return y if self.activation is None else self.activation(y)


def transpose_crops(
    kernel: int, stride: int, dilation: int, padding: Padding, output_padding: int | None
) -> tuple[int, int]:
    """What Keras keeps of torch's full output ``(length - 1) * stride + extent`` on one axis:
    ``(cropped before, cropped after)``, negative for zeros added (Keras's own rule, from
    ``keras.src.backend.common.backend_utils``)."""
    extent = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(extent, stride) - extent if output_padding is None else output_padding
        return 0, -extra
    if output_padding is None:
        total = stride + extent - 2
    else:
        total = extent + extent % 2 - 2 + output_padding
    before = min(total // 2 + total % 2, extent - 1)
    return extent - 1 - before, extent - 1 - (total - before)


class _Convolution(Layer):
    """Shared build steps; subclasses make the torch module for their kind of convolution."""

    dims: ClassVar[int]
    config: WindowConfig

    def activation(self) -> str | None:
        return self.config.activation

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        check_rank(input_shape, self.dims)
        c = self.config
        kernel = per_axis(c.kernel_size, self.dims, "kernel_size")
        strides = per_axis(c.strides, self.dims, "strides")
        dilation = per_axis(c.dilation_rate, self.dims, "dilation_rate")
        if max(strides) > 1 and max(dilation) > 1:
            raise ValueError("strides and dilation_rate cannot both be above 1 (as in Keras)")
        act = None if strip_activation else make_activation(c.activation)
        return self.make(input_shape, kernel, strides, dilation, act, keras_init)

    def make(
        self,
        input_shape: Shape,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        dilation: tuple[int, ...],
        act: nn.Module | None,
        keras_init: bool,
    ) -> BuiltLayer:
        """A plain convolution; ``separable_conv2d`` overrides the torch part."""
        c = self.config
        assert isinstance(c, ConvConfig)
        out, even, pads = self._window(input_shape[:-1], kernel, strides, dilation)
        conv = _CONV[self.dims](
            input_shape[-1], c.filters, kernel, strides, even, dilation, bias=c.use_bias
        )
        if keras_init:
            init_kernel_bias(conv.weight, conv.bias, c.kernel_initializer, c.bias_initializer)
        regularized = penalties(
            ("conv.weight", c.kernel_regularizer),
            ("conv.bias", c.bias_regularizer if c.use_bias else None),
        )
        return BuiltLayer(_Conv(conv, pads, act), (*out, c.filters), regularized)

    def _window(
        self,
        lengths: tuple[int, ...],
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        dilation: tuple[int, ...],
    ) -> tuple[Shape, tuple[int, ...] | int, Pads | None]:
        """Keras's window over the spatial ``lengths``: the output lengths, the padding torch's
        layer applies itself (even padding; else 0), and the uneven pads :class:`_Conv` must
        add before it (else ``None``)."""
        pads = window_pads(lengths, kernel, strides, dilation, self.config.padding)
        out = window_output(lengths, kernel, strides, dilation, pads)
        even = torch_padding(pads)
        return out, 0 if even is None else even, pads if even is None else None


@LAYERS.register("conv1d")
class Conv1D(_Convolution):
    """Keras ``Conv1D`` on (steps, channels) per sample."""

    keras_name = "Conv1D"
    dims = 1
    Config = ConvConfig
    config: ConvConfig


@LAYERS.register("conv2d")
class Conv2D(_Convolution):
    """Keras ``Conv2D`` on (height, width, channels) per sample.

    Example (DLwP 5.1): ``- conv2d: {filters: 32, kernel_size: 3, activation: relu}``.
    """

    keras_name = "Conv2D"
    dims = 2
    Config = ConvConfig
    config: ConvConfig


@LAYERS.register("conv2d_transpose")
class Conv2DTranspose(_Convolution):
    """Keras ``Conv2DTranspose``: ``same`` multiplies each spatial size by its stride."""

    keras_name = "Conv2DTranspose"
    dims = 2
    Config = ConvTransposeConfig
    config: ConvTransposeConfig

    def make(
        self,
        input_shape: Shape,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        dilation: tuple[int, ...],
        act: nn.Module | None,
        keras_init: bool,
    ) -> BuiltLayer:
        c = self.config
        lengths, channels = input_shape[:-1], input_shape[-1]
        extra: tuple[int | None, ...] = (None,) * self.dims
        if c.output_padding is not None:
            extra = per_axis(c.output_padding, self.dims, "output_padding")
            if any(e >= s for e, s in zip(extra, strides, strict=True) if e is not None):
                raise ValueError(f"output_padding {list(extra)} must be below {list(strides)}")
        axes = list(zip(lengths, kernel, strides, dilation, extra, strict=True))
        crops = tuple(transpose_crops(k, s, d, c.padding, e) for _, k, s, d, e in axes)
        out = tuple(
            (n - 1) * s + (k - 1) * d + 1 - before - after
            for (n, k, s, d, _), (before, after) in zip(axes, crops, strict=True)
        )
        transpose = _TRANSPOSE[self.dims](
            channels, c.filters, kernel, strides, dilation=dilation, bias=c.use_bias
        )
        if keras_init:  # weight (in, filters, *kernel): torch's fans are Keras's here
            init_kernel_bias(
                transpose.weight, transpose.bias, c.kernel_initializer, c.bias_initializer
            )
        regularized = penalties(
            ("transpose.weight", c.kernel_regularizer),
            ("transpose.bias", c.bias_regularizer if c.use_bias else None),
        )
        return BuiltLayer(_ConvTranspose(transpose, crops, act), (*out, c.filters), regularized)


@LAYERS.register("separable_conv2d")
class SeparableConv2D(_Convolution):
    """Keras ``SeparableConv2D``: a depthwise convolution (``depth_multiplier`` filters per
    input channel) then a 1x1 pointwise one; the bias belongs to the pointwise step."""

    keras_name = "SeparableConv2D"
    dims = 2
    Config = SeparableConfig
    config: SeparableConfig

    def make(
        self,
        input_shape: Shape,
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        dilation: tuple[int, ...],
        act: nn.Module | None,
        keras_init: bool,
    ) -> BuiltLayer:
        c = self.config
        channels = input_shape[-1]
        out, even, pads = self._window(input_shape[:-1], kernel, strides, dilation)
        depth = channels * c.depth_multiplier
        depthwise = _CONV[2](
            channels, depth, kernel, strides, even, dilation, groups=channels, bias=False
        )
        pointwise = _CONV[2](depth, c.filters, 1, bias=c.use_bias)
        if keras_init:
            _depthwise_init(depthwise.weight, c.depthwise_initializer, channels)
            init_kernel_bias(
                pointwise.weight, pointwise.bias, c.pointwise_initializer, c.bias_initializer
            )
        regularized = penalties(
            ("conv.0.weight", c.depthwise_regularizer),
            ("conv.1.weight", c.pointwise_regularizer),
            ("conv.1.bias", c.bias_regularizer if c.use_bias else None),
        )
        module = _Conv(nn.Sequential(depthwise, pointwise), pads, act)
        return BuiltLayer(module, (*out, c.filters), regularized)


def _depthwise_init(weight: torch.Tensor, name: str, channels: int) -> None:
    """Keras's fans for a depthwise kernel: in = channels * kernel, out = multiplier * kernel
    (torch's grouped layout ``(channels * multiplier, 1, *kernel)`` would give others)."""
    multiplier = weight.shape[0] // channels
    keras_view = torch.empty(multiplier, channels, *weight.shape[2:], device=weight.device)
    INITIALIZERS.get(name)(keras_view)
    with torch.no_grad():
        weight.copy_(keras_view.transpose(0, 1).reshape(weight.shape))
