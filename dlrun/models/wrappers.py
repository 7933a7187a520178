"""Layers that wrap another layer: bidirectional (recurrent layers) and time_distributed.

The wrapped layer is written as any entry of ``model.layers``, e.g.
``- bidirectional: {layer: {lstm: {units: 32}}, merge_mode: concat}`` (DLwP 6.3.8) or
``- time_distributed: {layer: {dense: 1}}``, and is checked against the same schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from typing import Any
from typing import ClassVar
from typing import Literal

import torch
from pydantic import SerializeAsAny
from pydantic import ValidatorFunctionWrapHandler
from pydantic import WrapValidator
from torch import nn

from dlrun.config.base import StrictModel
from dlrun.config.entries import OneOfEntry
from dlrun.models.layers import LAYERS
from dlrun.models.layers import BuiltLayer
from dlrun.models.layers import Layer
from dlrun.models.layers import Shape
from dlrun.models.masking import MaskAware
from dlrun.models.recurrent import Recurrent
from dlrun.models.recurrent_cells import _Recurrent


def _layer_entry(data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validated like a ``model.layers`` entry; the schema holds every registered layer only
    once they are all imported, so it is looked up when a config is read."""
    from dlrun.config.schema import LayerEntry

    if isinstance(data, OneOfEntry):
        return data
    return LayerEntry.model_validate(data)


InnerLayer = Annotated[SerializeAsAny[OneOfEntry], WrapValidator(_layer_entry)]


def _inner(entry: OneOfEntry) -> tuple[str, Layer]:
    name, config = entry.selected()
    return name, LAYERS.get(name)(config)


def _prefixed(prefix: str, built: BuiltLayer) -> BuiltLayer:
    """``built``'s penalties named as parameters of the wrapper's module."""
    built.penalties = [(f"{prefix}.{param}", reg) for param, reg in built.penalties]
    return built


Merge = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MERGES: dict[str, Merge] = {
    "concat": lambda a, b: torch.cat([a, b], dim=-1),
    "sum": torch.add,
    "mul": torch.mul,
    "ave": lambda a, b: (a + b) / 2,
}


class _Bidirectional(MaskAware):
    def __init__(self, forward_layer: nn.Module, backward_layer: nn.Module, merge: str) -> None:
        super().__init__()
        assert isinstance(forward_layer, _Recurrent) and isinstance(backward_layer, _Recurrent)
        self.forward_layer = forward_layer
        self.backward_layer = backward_layer
        self.merge = merge
        for layer in (forward_layer, backward_layer):  # Keras: masked steps output zeros
            layer.zero_output_for_mask = layer.return_sequences

    def forward_masked(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        ahead, out_mask = self.forward_layer.forward_masked(x, mask)
        behind, _ = self.backward_layer.forward_masked(x, mask)
        if self.backward_layer.return_sequences:  # back in the inputs' time order
            behind = behind.flip(1)
        return MERGES[self.merge](ahead, behind), out_mask


@LAYERS.register("bidirectional")
class Bidirectional(Layer):
    """Keras ``Bidirectional``: the recurrent layer once forwards and once backwards
    (a second set of weights), outputs merged by ``merge_mode``."""

    keras_name = "Bidirectional"

    class Config(StrictModel):
        positional: ClassVar[str] = "layer"
        layer: InnerLayer
        merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"

    config: Config

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        name, layer = _inner(self.config.layer)
        if not isinstance(layer, Recurrent):
            raise ValueError(f"wraps a recurrent layer (simple_rnn, lstm, gru), not {name}")
        ahead = _prefixed("forward_layer", layer.build(input_shape, keras_init, False))
        behind = _prefixed(
            "backward_layer", layer.reversed().build(input_shape, keras_init, False)
        )
        merge = self.config.merge_mode
        module = _Bidirectional(ahead.module, behind.module, merge)
        units = ahead.output_shape[-1] * (2 if merge == "concat" else 1)
        return BuiltLayer(
            module, (*ahead.output_shape[:-1], units), ahead.penalties + behind.penalties
        )


class _TimeDistributed(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.flatten(0, 1)).unflatten(0, x.shape[:2])


@LAYERS.register("time_distributed")
class TimeDistributed(Layer):
    """Keras ``TimeDistributed``: the wrapped layer applied to every step on its own, with one
    set of weights (e.g. a dense layer per step of a sequence)."""

    keras_name = "TimeDistributed"
    carries_mask = True

    class Config(StrictModel):
        positional: ClassVar[str] = "layer"
        layer: InnerLayer

    config: Config

    def activation(self) -> str | None:
        return _inner(self.config.layer)[1].activation()

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        if len(input_shape) < 2:
            raise ValueError(f"reads (steps, ...) per sample, got {list(input_shape)}")
        name, layer = _inner(self.config.layer)
        if layer.draws_code:
            raise ValueError(f"cannot wrap {name}: a drawn code stands on its own, one per sample")
        built = _prefixed("inner", layer.build(input_shape[1:], keras_init, strip_activation))
        out = (input_shape[0], *built.output_shape)
        return BuiltLayer(
            _TimeDistributed(built.module), out, built.penalties, built.non_trainable_params
        )
