"""What convolution and pooling layers share: Keras's size arguments and ``padding`` rules.

Tensors between dlrun layers are channels-last, as in Keras and the books' YAML shapes
(``(batch, height, width, channels)``), so a ``flatten`` after a convolution orders its values
as Keras does and dense weights line up with Keras's. Convolution and pooling layers move the
channels to torch's position 1 for the one torch call and back again. After a conv2d both moves
are views (the data stays in torch's ``channels_last`` memory format), so they cost no copy.

``padding: same`` follows Keras (and TensorFlow): the output length is ``ceil(length / stride)``
and, when the total padding is odd, the extra row or column goes at the end. torch's own
``padding="same"`` pads symmetrically and refuses strides, so the padding is computed here.
"""

from __future__ import annotations

import math
from typing import Annotated
from typing import Literal

import torch
from pydantic import AfterValidator
from pydantic import PositiveInt
from torch.nn import functional

Padding = Literal["valid", "same"]
Pads = tuple[tuple[int, int], ...]  # (before, after) per spatial axis


def _at_most_two(value: int | list[int]) -> int | list[int]:
    if isinstance(value, list) and not 1 <= len(value) <= 2:
        raise ValueError(f"expected one number or a list of one or two, got {value}")
    return value


Size = Annotated[PositiveInt | list[PositiveInt], AfterValidator(_at_most_two)]
"""``3`` or ``[3, 3]``: Keras's ``kernel_size``, ``strides``, ``pool_size`` and the like."""


def per_axis(value: int | list[int], dims: int, name: str) -> tuple[int, ...]:
    """``value`` for each of the ``dims`` spatial axes (one number applies to all)."""
    if isinstance(value, int):
        return (value,) * dims
    if len(value) == 1:
        return (value[0],) * dims
    if len(value) != dims:
        raise ValueError(f"{name} has {len(value)} values for {dims} spatial axes")
    return tuple(value)


def same_pads(length: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras's ``same`` padding of one axis: ``(before, after)``, any extra one after."""
    extent = (kernel - 1) * dilation + 1
    total = max((math.ceil(length / stride) - 1) * stride + extent - length, 0)
    return total // 2, total - total // 2


def window_pads(
    lengths: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: Padding,
) -> Pads:
    """The padding of every spatial axis (zeros for ``valid``)."""
    if padding == "valid":
        return tuple((0, 0) for _ in lengths)
    return tuple(same_pads(*axis) for axis in zip(lengths, kernel, strides, dilation, strict=True))


def window_output(
    lengths: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
    pads: Pads,
) -> tuple[int, ...]:
    """Output lengths of a sliding window; a window larger than its input is an error."""
    out = []
    for length, k, s, d, (before, after) in zip(
        lengths, kernel, strides, dilation, pads, strict=True
    ):
        extent = (k - 1) * d + 1
        padded = length + before + after
        if padded < extent:
            raise ValueError(
                f"the window ({extent}) is larger than the input ({length}); use a smaller "
                "kernel or pool, or padding: same"
            )
        out.append((padded - extent) // s + 1)
    return tuple(out)


def torch_padding(pads: Pads) -> tuple[int, ...] | None:
    """The symmetric padding torch's layers apply themselves, or ``None`` when uneven."""
    if all(before == after for before, after in pads):
        return tuple(before for before, _ in pads)
    return None


def pad(x: torch.Tensor, pads: Pads, value: float = 0.0) -> torch.Tensor:
    """Pad the trailing spatial axes of a channels-first tensor by ``pads``."""
    flat = [side for before_after in reversed(pads) for side in before_after]
    return functional.pad(x, flat, value=value) if any(flat) else x


def to_channels_first(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(-1, 1)


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(1, -1)


def check_rank(input_shape: tuple[int, ...], dims: int) -> None:
    """A ``dims``-d layer reads (spatial axes..., channels) per sample (the error is shown
    after the layer's path, ``model.layers[2].conv2d: ...``)."""
    if len(input_shape) != dims + 1:
        axes = {1: "(steps, channels)", 2: "(height, width, channels)"}[dims]
        raise ValueError(
            f"reads {axes} per sample, got {list(input_shape)}; add a reshape layer or set "
            "model.input_shape"
        )
