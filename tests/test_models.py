from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from dlrun.config.entries import OneOfEntry
from dlrun.config.schema import LayerEntry
from dlrun.models.build import build_model
from dlrun.models.layers import LAYERS
from tests.test_layers_contract import LAYER_CASES

EXAMPLES = {
    "dense": {"units": 5, "activation": "relu", "kernel_regularizer": "l2"},
    "dropout": {"rate": 0.3},
    "batchnorm": {},
    "activation": {"activation": "tanh"},
    "flatten": {},
    "reshape": {"target_shape": [2, 6]},
    "gaussian_sampling": {"units": 2},  # draws: not stackable (see tests/test_vae.py)
}


def entries(*layers: dict[str, Any] | str) -> list[OneOfEntry]:
    return [LayerEntry.model_validate(layer) for layer in layers]


def test_every_registered_layer_has_an_example() -> None:
    assert set(EXAMPLES) | set(LAYER_CASES) == set(LAYERS.names())  # spatial/sequence layers


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_layer_contract_builds_runs_and_round_trips(name: str) -> None:
    entry = LayerEntry.model_validate({name: EXAMPLES[name]})
    assert LayerEntry.model_validate(entry.model_dump()) == entry
    model = build_model([entry], (3, 4))
    out = model.network(torch.randn(7, 3, 4))
    assert tuple(out.shape) == (7, *model.output_shape)
    assert model.rows[0].params == sum(p.numel() for p in model.network.parameters()) + (
        8 if name == "batchnorm" else 0
    )


def test_dense_784_512_10_has_keras_parameter_count() -> None:
    model = build_model(
        entries(
            {"dense": {"units": 512, "activation": "relu"}},
            {"dense": {"units": 10, "activation": "softmax"}},
        ),
        (784,),
    )
    assert model.total_params == 407_050
    assert [row.name for row in model.rows] == ["dense", "dense_1"]


def test_keras_init_is_glorot_uniform_with_zero_bias() -> None:
    torch.manual_seed(0)
    model = build_model(entries({"dense": 256}), (512,))
    params = dict(model.network.named_parameters())
    limit = math.sqrt(6 / (512 + 256))
    weight = params["0.linear.weight"].detach()
    assert float(weight.abs().max()) <= limit
    assert float(weight.abs().max()) > 0.95 * limit
    assert float(weight.std()) == pytest.approx(limit / math.sqrt(3), rel=0.05)
    assert torch.count_nonzero(params["0.linear.bias"]) == 0


def test_torch_init_keeps_pytorch_defaults() -> None:
    torch.manual_seed(0)
    model = build_model(entries({"dense": 256}), (512,), keras_init=False)
    assert torch.count_nonzero(dict(model.network.named_parameters())["0.linear.bias"]) > 0


def test_batchnorm_uses_keras_momentum_and_epsilon() -> None:
    model = build_model(entries("batchnorm"), (6,))
    norm = next(m for m in model.network.modules() if isinstance(m, torch.nn.BatchNorm1d))
    assert norm.momentum == pytest.approx(0.01) and norm.eps == pytest.approx(1e-3)
    assert model.total_params == 24 and model.trainable_params == 12


def test_fused_output_activation_is_stripped_and_reapplied() -> None:
    layers = entries({"dense": {"units": 3, "activation": "softmax"}})
    fused = build_model(layers, (4,), fused_activations=frozenset({"softmax"}))
    plain = build_model(layers, (4,))
    plain.network.load_state_dict(fused.network.state_dict())
    x = torch.randn(5, 4)
    assert fused.output_activation == "softmax"
    assert torch.allclose(fused.probabilities(fused.network(x)), plain.network(x))
    assert not torch.allclose(fused.network(x).sum(dim=1), torch.ones(5))


def test_output_activation_seen_through_dropout() -> None:
    layers = entries({"dense": {"units": 1, "activation": "sigmoid"}}, {"dropout": 0.1})
    model = build_model(layers, (4,), fused_activations=frozenset({"sigmoid"}))
    assert model.output_activation == "sigmoid"


def test_regularizer_penalty_matches_keras_formula() -> None:
    layers = entries({"dense": {"units": 2, "kernel_regularizer": {"l1": 0.01, "l2": 0.001}}})
    model = build_model(layers, (3,))
    weight = dict(model.network.named_parameters())["0.linear.weight"]
    expected = 0.01 * weight.abs().sum() + 0.001 * weight.square().sum()
    penalty = model.take_penalty()
    assert penalty is not None and torch.allclose(penalty, expected)


def test_reshape_with_wrong_size_is_a_config_error() -> None:
    from dlrun.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"model.layers\[0\].reshape: cannot reshape \[12\] into \[5\]"
    ):
        build_model(entries({"reshape": [5]}), (12,))
