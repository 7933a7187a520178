"""Turn ``model.layers`` into an ``nn.Sequential`` with inferred shapes and a Keras summary."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

import torch
from torch import nn

from dlrun.config.entries import OneOfEntry
from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue
from dlrun.models.activations import make_activation
from dlrun.models.layers import LAYERS
from dlrun.models.layers import AddsLoss
from dlrun.models.layers import BuiltLayer
from dlrun.models.layers import Layer
from dlrun.models.layers import RegularizerConfig
from dlrun.models.layers import Shape
from dlrun.models.masking import sequential
from dlrun.models.size import largest
from dlrun.models.size import too_big
from dlrun.models.size import weight_bytes


@dataclass(frozen=True)
class SummaryRow:
    name: str
    kind: str
    output_shape: Shape
    params: int
    trainable: int


@dataclass
class BuiltModel:
    """The network plus what the trainer and reports need to know about it.

    ``output_activation`` is set when the last activation was left out of ``network`` so the
    loss can apply it in logit form; :meth:`probabilities` applies it for predictions.
    """

    network: nn.Sequential
    input_shape: Shape
    output_shape: Shape
    output_activation: str | None
    rows: list[SummaryRow]
    penalties: list[tuple[str, RegularizerConfig]]  # parameter name in ``network``, penalty
    layers: list[tuple[str, Layer]]  # the registered layer behind each module, as configured
    added_losses: list[AddsLoss] = field(default_factory=list)  # modules adding loss terms

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def trainable_params(self) -> int:
        return sum(row.trainable for row in self.rows)

    def take_penalty(self) -> torch.Tensor | None:
        """What the layers add to the last forward's loss: the weight regularisers' penalty and
        the terms of modules that add their own (a variational code's divergence); ``None``
        when there is neither. Call it once per forward: the added terms are handed over once,
        so that no graph outlives its step."""
        terms = [term for m in self.added_losses if (term := m.take_added_loss()) is not None]
        weights = weight_penalty(dict(self.network.named_parameters()), self.penalties)
        if weights is not None:
            terms.append(weights)
        return sum(terms[1:], terms[0]) if terms else None

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        """Map raw network outputs to the values the user's model would produce."""
        activation = make_activation(self.output_activation)
        return outputs if activation is None else activation(outputs)


def weight_penalty(
    params: Mapping[str, torch.Tensor],
    penalties: list[tuple[str, RegularizerConfig]],
    per_fold: bool = False,
) -> torch.Tensor | None:
    """``sum(l1 * |w| + l2 * w**2)`` over the named ``params``; ``per_fold`` keeps the leading
    (fold) axis of stacked weights, giving one penalty per fold."""
    if not penalties:
        return None
    total: torch.Tensor | float = 0.0
    for name, reg in penalties:
        weight = params[name]
        flat = weight.flatten(1) if per_fold else weight.reshape(1, -1)
        if reg.l1:
            total = total + reg.l1 * flat.abs().sum(dim=1)
        if reg.l2:
            total = total + reg.l2 * flat.square().sum(dim=1)
    if isinstance(total, float):
        return None
    return total if per_fold else total[0]


def instantiate_layers(entries: Sequence[OneOfEntry]) -> list[tuple[str, Layer]]:
    """The registered layer object for each YAML entry, in order."""
    layers = []
    for entry in entries:
        name, config = entry.selected()
        layers.append((name, LAYERS.get(name)(config)))
    return layers


def _output_activation_index(layers: list[tuple[str, Layer]]) -> int | None:
    """Index of the layer whose activation the network's output carries, if any."""
    for index in range(len(layers) - 1, -1, -1):
        layer = layers[index][1]
        if not layer.passes_activation_through:
            return index if layer.activation() not in (None, "linear") else None
    return None


def last_activation(entries: Sequence[OneOfEntry]) -> str | None:
    """The activation the network ends with (``None`` for a linear output)."""
    layers = instantiate_layers(entries)
    index = _output_activation_index(layers)
    return None if index is None else layers[index][1].activation()


def build_model(
    entries: Sequence[OneOfEntry],
    input_shape: Shape,
    keras_init: bool = True,
    fused_activations: frozenset[str] = frozenset(),
) -> BuiltModel:
    """Build every layer in order, inferring each input shape from the previous output.

    The final activation is stripped (and reported as ``output_activation``) when it is one the
    loss fuses, e.g. sigmoid with binary cross-entropy. The layers are first planned on the
    meta device, so a model whose weights cannot fit in memory is refused with its size before
    anything is allocated (under a ``meta`` default device the plan is the build).
    """
    layers = instantiate_layers(entries)
    output_index = _output_activation_index(layers)
    final = None if output_index is None else layers[output_index][1].activation()
    fuse = final if final in fused_activations else None
    strip_at = output_index if fuse else None
    shape = tuple(input_shape)
    if torch.empty(0).device.type != "meta":
        with torch.device("meta"):
            planned = _build_layers(layers, shape, keras_init, strip_at)
        _check_host_memory(layers, planned)
    built_layers = _build_layers(layers, shape, keras_init, strip_at)
    modules: list[nn.Module] = []
    rows: list[SummaryRow] = []
    penalties: list[tuple[str, RegularizerConfig]] = []
    counts: dict[str, int] = {}
    for index, ((name, layer), built) in enumerate(zip(layers, built_layers, strict=True)):
        modules.append(built.module)
        penalties.extend((f"{index}.{param}", reg) for param, reg in built.penalties)
        trainable = sum(p.numel() for p in built.module.parameters() if p.requires_grad)
        label = name if name not in counts else f"{name}_{counts[name]}"
        counts[name] = counts.get(name, 0) + 1
        params = trainable + built.non_trainable_params
        rows.append(SummaryRow(label, layer.keras_name, built.output_shape, params, trainable))
        shape = built.output_shape
    network = sequential(modules, [layer.carries_mask for _, layer in layers])
    added: list[AddsLoss] = [m for m in network.modules() if isinstance(m, AddsLoss)]
    return BuiltModel(network, tuple(input_shape), shape, fuse, rows, penalties, layers, added)


def _build_layers(
    layers: list[tuple[str, Layer]], shape: Shape, keras_init: bool, strip_at: int | None
) -> list[BuiltLayer]:
    """Each layer built for the previous one's output; shape errors name the layer."""
    built_layers = []
    for index, (name, layer) in enumerate(layers):
        try:
            built = layer.build(shape, keras_init, strip_activation=index == strip_at)
        except ValueError as exc:
            issue = ConfigIssue(f"model.layers[{index}].{name}", f"{exc} (input shape {shape})")
            raise ConfigError([issue]) from None
        except (RuntimeError, TypeError, OverflowError) as exc:
            if "overflow" not in str(exc).lower():
                raise
            issue = ConfigIssue(
                f"model.layers[{index}].{name}",
                f"the layer is too large to exist: its size overflows 64 bits "
                f"(input shape {shape}); make it smaller",
            )
            raise ConfigError([issue]) from None
        built_layers.append(built)
        shape = built.output_shape
    return built_layers


def _check_host_memory(layers: list[tuple[str, Layer]], planned: list[BuiltLayer]) -> None:
    """Refuse weights that the host (where modules are created) cannot hold."""
    sizes = [weight_bytes(built.module) for built in planned]
    params = sum(p.numel() for built in planned for p in built.module.parameters())
    index = largest(sizes)
    path = f"model.layers[{index}].{layers[index][0]}"
    issues = too_big(params, sum(sizes), sum(sizes), torch.device("cpu"), path)
    if issues:
        raise ConfigError(issues)
