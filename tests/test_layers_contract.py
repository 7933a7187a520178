"""The layer contract for the convolution, pooling, embedding, recurrent and wrapper layers,
each on an input of the shape it reads: config round trip, forward and backward, Keras-form
summary rows, and stacked fold models (vmap) equal to each copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dlrun.api import run_experiment
from dlrun.api import validate_experiment
from dlrun.config.load import config_from_data
from dlrun.config.schema import LayerEntry
from dlrun.errors import ConfigError
from dlrun.errors import DataError
from dlrun.models.build import build_model
from dlrun.models.layers import LAYERS
from dlrun.models.masking import MaskedSequential
from dlrun.models.stacked import StackedNetwork
from tests.conftest import tiny_config

IDS = "ids"  # an input of token ids in [0, 9)
# name: (parameters, input shape per sample, input kind)
LAYER_CASES: dict[str, tuple[dict[str, Any], tuple[int, ...], str]] = {
    "conv1d": ({"filters": 3, "kernel_size": 2, "padding": "same", "strides": 2, "kernel_regularizer": "l2"}, (7, 2), "float"),
    "conv2d": ({"filters": 3, "kernel_size": 3, "activation": "relu", "bias_regularizer": "l1"}, (6, 5, 2), "float"),
    "conv2d_transpose": ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "bias_regularizer": "l2"}, (3, 4, 2), "float"),
    "separable_conv2d": ({"filters": 3, "kernel_size": 2, "depth_multiplier": 2, "depthwise_regularizer": "l2"}, (5, 5, 2), "float"),
    "max_pooling1d": ({"pool_size": 2, "padding": "same"}, (5, 2), "float"),
    "max_pooling2d": ({"pool_size": 2}, (4, 5, 2), "float"),
    "average_pooling1d": ({"pool_size": 3, "strides": 2, "padding": "same"}, (6, 2), "float"),
    "average_pooling2d": ({"pool_size": [2, 1]}, (4, 3, 2), "float"),
    "global_max_pooling1d": ({}, (5, 3), "float"),
    "global_max_pooling2d": ({}, (3, 4, 2), "float"),
    "global_average_pooling1d": ({}, (5, 3), "float"),
    "global_average_pooling2d": ({}, (3, 4, 2), "float"),
    "upsampling2d": ({"size": [2, 1], "interpolation": "bilinear"}, (2, 3, 2), "float"),
    "embedding": ({"input_dim": 9, "output_dim": 3, "mask_zero": True, "embeddings_regularizer": "l2"}, (5,), IDS),
    "simple_rnn": ({"units": 3, "return_sequences": True, "dropout": 0.2}, (4, 2), "float"),
    "lstm": ({"units": 3, "recurrent_dropout": 0.2, "recurrent_regularizer": "l2"}, (4, 2), "float"),
    "gru": ({"units": 3, "go_backwards": True, "bias_regularizer": "l1"}, (4, 2), "float"),
    "bidirectional": ({"layer": {"lstm": {"units": 2, "return_sequences": True, "kernel_regularizer": "l2"}}, "merge_mode": "ave"}, (4, 2), "float"),
    "time_distributed": ({"layer": {"dense": {"units": 2, "kernel_regularizer": "l2"}}}, (4, 3), "float"),
    "repeat_vector": ({"n": 3}, (4,), "float"),
    "leaky_relu": ({"negative_slope": 0.1}, (3, 4), "float"),
    "spatial_dropout1d": ({"rate": 0.5}, (4, 3), "float"),
    "spatial_dropout2d": ({"rate": 0.5}, (3, 3, 2), "float"),
}  # fmt: skip


def inputs(shape: tuple[int, ...], kind: str, *batch: int) -> torch.Tensor:
    if kind == IDS:
        return torch.randint(0, 9, (*batch, *shape))
    return torch.randn(*batch, *shape)


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_builds_runs_backward_and_round_trips(name: str) -> None:
    params, shape, kind = LAYER_CASES[name]
    entry = LayerEntry.model_validate({name: params})
    assert LayerEntry.model_validate(entry.model_dump(mode="json")) == entry
    model = build_model([entry], shape)
    model.network.train()
    x = inputs(shape, kind, 5)
    x.requires_grad_(x.is_floating_point())
    out = model.network(x)
    assert tuple(out.shape) == (5, *model.output_shape)
    penalty = model.take_penalty()
    (out.square().mean() + (0 if penalty is None else penalty)).backward()
    grads = [p.grad for p in model.network.parameters()] + ([x.grad] if x.requires_grad else [])
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    own = sum(p.numel() for p in model.network.parameters())
    assert model.rows[0].params == own and model.rows[0].kind == LAYERS.get(name).keras_name


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_stacked_fold_models_equal_each_copy(name: str) -> None:
    params, shape, kind = LAYER_CASES[name]
    entry = LayerEntry.model_validate({name: params})
    models = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        models.append(build_model([entry], shape))
    x = inputs(shape, kind, 3, 4)
    for model in models:
        model.network.eval()
    expected = torch.stack([m.network(x[k]) for k, m in enumerate(models)])
    stacked = StackedNetwork(models)
    stacked.train(False)
    torch.testing.assert_close(stacked(x), expected, atol=1e-5, rtol=1e-5)


def test_masked_stack_runs_under_vmap_and_parallel_folds_accept_it() -> None:
    layers = [{"embedding": {"input_dim": 9, "output_dim": 3, "mask_zero": True}}, {"lstm": 2}]
    entries = [LayerEntry.model_validate(layer) for layer in layers]
    models = [build_model(entries, (5,)) for _ in range(2)]
    assert isinstance(models[0].network, MaskedSequential)
    x = torch.randint(0, 9, (2, 4, 5))
    x[:, :, -1] = 0
    expected = torch.stack([m.network(x[k]) for k, m in enumerate(models)])
    torch.testing.assert_close(StackedNetwork(models)(x), expected, atol=1e-5, rtol=1e-5)
    config = tiny_config(
        task="binary", loss="binary_crossentropy", preprocess=[],
        model={"input_shape": [5], "layers": [*layers, {"dense": {"units": 1, "activation": "sigmoid"}}]},
        evaluation={"protocol": "kfold", "k": 2, "parallel_folds": True},
    )  # fmt: skip
    assert config_from_data(config).evaluation.model_dump()["parallel_folds"] is True


def test_mask_is_dropped_by_layers_that_do_not_carry_it() -> None:
    """A mask reaches recurrent layers through dropout; a flatten ends it (as in Keras 3)."""
    embedding = {"embedding": {"input_dim": 9, "output_dim": 2, "mask_zero": True}}
    through = build_model([LayerEntry.model_validate(e) for e in [embedding, {"dropout": 0.1}, {"simple_rnn": 2}]], (4,))  # fmt: skip
    plain = build_model([LayerEntry.model_validate(e) for e in [{"embedding": {"input_dim": 9, "output_dim": 2}}, {"dropout": 0.1}, {"simple_rnn": 2}]], (4,))  # fmt: skip
    plain.network.load_state_dict(through.network.state_dict())
    through.network.eval()
    plain.network.eval()
    padded = torch.tensor([[3, 5, 0, 0]])
    assert torch.equal(through.network(padded), through.network(padded[:, :2]))
    assert not torch.equal(plain.network(padded), plain.network(padded[:, :2]))


@pytest.mark.parametrize(
    ("layer", "shape", "message"),
    [
        ({"conv2d": {"filters": 2, "kernel_size": 3}}, (8, 3), r"conv2d: reads \(height, width, channels\) per sample, got \[8, 3\]"),
        ({"conv2d": {"filters": 2, "kernel_size": 5}}, (4, 4, 1), r"the window \(5\) is larger than the input \(4\)"),
        ({"conv1d": {"filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2}}, (9, 1), "cannot both be above 1"),
        ({"conv2d": {"filters": 2, "kernel_size": [3, 3, 3]}}, (9, 9, 1), "one number or a list of one or two"),
        ({"lstm": 3}, (10,), r"lstm: reads \(steps, features\) per sample, got \[10\]"),
        ({"bidirectional": {"layer": {"dense": 3}}}, (4, 2), "bidirectional: wraps a recurrent layer"),
        ({"bidirectional": {"layer": {"lsmt": 3}}}, (4, 2), r"bidirectional\.layer\.lsmt: unknown key"),
        ({"embedding": {"input_dim": 9, "output_dim": 2, "input_length": 6}}, (5,), "input_length is 6"),
        ({"conv2d_transpose": {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 2}}, (3, 3, 1), "must be below"),
    ],
)  # fmt: skip
def test_layer_mistakes_are_config_errors_naming_the_layer(
    layer: dict[str, Any], shape: tuple[int, ...], message: str
) -> None:
    config = tiny_config(model={"input_shape": list(shape), "layers": [layer, "flatten", {"dense": {"units": 3, "activation": "softmax"}}]})  # fmt: skip
    with pytest.raises(ConfigError, match=message) as info:
        validate_experiment(config_from_data(config), use_data=False)
    assert "model.layers[0]" in str(info.value)


def test_embedding_refuses_float_inputs_with_a_fix() -> None:
    model = build_model([LayerEntry.model_validate({"embedding": {"input_dim": 4, "output_dim": 2}})], (3,))  # fmt: skip
    with pytest.raises(DataError, match=r"integer token ids, but the inputs are torch\.float32"):
        model.network(torch.zeros(1, 3))
    assert model.network(torch.tensor([[1, 2, 3]], dtype=torch.uint8)).shape == (1, 3, 2)


def test_token_ids_train_as_integers_with_parallel_folds_equal_to_sequential(
    tmp_path: Path,
) -> None:
    """Integer ids from a data file reach the embedding as integers (it refuses floats), and
    stacked fold models (the step loop under vmap) train as the sequential ones (torch's fused
    LSTM kernel) do."""
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, (60, 6))
    x[rng.random((60, 6)) < 0.3] = 0
    np.savez(tmp_path / "ids.npz", x=x, y=(x[:, 0] > 10).astype(np.int64))
    losses = {}
    for parallel in (False, True):
        config = tiny_config(
            task="binary", loss="binary_crossentropy", metrics=[], preprocess=[],
            data={"dataset": "npz", "path": str(tmp_path / "ids.npz"), "test_fraction": 0.2},
            model={"layers": [{"embedding": {"input_dim": 20, "output_dim": 4}},
                              {"lstm": 3}, {"dense": {"units": 1, "activation": "sigmoid"}}]},
            train={"epochs": 2, "batch_size": 8, "progress": "none"},
            evaluation={"protocol": "kfold", "k": 2, "parallel_folds": parallel},
        )  # fmt: skip
        result = run_experiment(config_from_data(config), tmp_path / str(parallel))
        assert result.results["parallel_folds"] is parallel
        losses[parallel] = result.results["cross_validation"]["metrics"]["loss"]["values"]
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_an_embedding_matrix_file_is_read_once_while_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Builds for the pre-run check, each fold and a final retrain share one read."""
    import dlrun.models.embedding as embedding

    path = tmp_path / "glove.npy"
    np.save(path, np.arange(12, dtype=np.float32).reshape(4, 3))
    reads: list[str] = []
    load = embedding._load_matrix

    def counted(name: str) -> np.ndarray:
        reads.append(name)
        return load(name)

    monkeypatch.setattr(embedding, "_load_matrix", counted)
    entry = LayerEntry.model_validate(
        {"embedding": {"input_dim": 4, "output_dim": 3, "weights": str(path)}}
    )
    for _ in range(3):
        weight = build_model([entry], (5,)).network.get_parameter("0.weight")
        assert weight[2].tolist() == [6.0, 7.0, 8.0]
    assert len(reads) == 1
    np.save(path, np.ones((4, 3), dtype=np.float32) * 2)  # a changed file is read again
    weight = build_model([entry], (5,)).network.get_parameter("0.weight")
    assert weight[0].tolist() == [2.0, 2.0, 2.0] and len(reads) == 2
