"""Keras parity: each dlrun layer, given Keras's weights, computes Keras's outputs (to 1e-5)
and has Keras's parameter counts. Keras 3 runs on its torch backend (a test-only dependency).

The helpers here are shared with tests/test_keras_parity_recurrent.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported
keras = pytest.importorskip("keras")

from dlrun.config.schema import LayerEntry  # noqa: E402
from dlrun.models.build import BuiltModel  # noqa: E402
from dlrun.models.build import build_model  # noqa: E402

KerasLayers = Callable[[], list[Any]]
# Keras 3 on numpy 2 warns about ``__array__(copy=...)`` in its own conversions.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def keras_to_torch(name: str, weight: np.ndarray) -> np.ndarray:
    """One Keras weight in dlrun's (torch's) layout."""
    if name == "depthwise_kernel":  # (kh, kw, in, multiplier) -> (in * multiplier, 1, kh, kw)
        kh, kw, channels, multiplier = weight.shape
        return weight.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw)
    if "kernel" in name and weight.ndim >= 3:  # (*window, a, b) -> (b, a, *window)
        return weight.transpose(weight.ndim - 1, weight.ndim - 2, *range(weight.ndim - 2))
    if "kernel" in name:  # dense and recurrent kernels: (in, out) -> (out, in)
        return weight.T
    return weight  # biases, embeddings, batch-norm statistics


def load_keras_weights(keras_layer: Any, module: torch.nn.Module) -> None:
    """Keras's weights, in order, into the module's tensors, in order (same order per layer)."""
    targets = [t for n, t in module.state_dict().items() if not n.endswith("num_batches_tracked")]
    weights = keras_layer.weights
    assert len(weights) == len(targets), (keras_layer.name, [w.path for w in weights])
    with torch.no_grad():
        for variable, target in zip(weights, targets, strict=True):
            value = keras_to_torch(variable.name, keras.ops.convert_to_numpy(variable))
            assert value.shape == tuple(target.shape), (variable.path, value.shape, target.shape)
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def keras_counts(model: Any) -> tuple[int, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return model.count_params(), trainable


def dlrun_model(layers: Sequence[Any], input_shape: tuple[int, ...]) -> BuiltModel:
    return build_model([LayerEntry.model_validate(layer) for layer in layers], input_shape)


def assert_parity(
    layers: Sequence[Any],
    keras_layers: list[Any],
    input_shape: tuple[int, ...],
    x: np.ndarray | None = None,
    atol: float = 1e-5,
) -> BuiltModel:
    """Same outputs and parameter counts as the Keras stack, with Keras's weights copied in."""
    torch.manual_seed(0)
    if x is None:
        x = np.random.default_rng(0).standard_normal((3, *input_shape)).astype(np.float32)
    dtype = "int64" if x.dtype.kind in "iu" else "float32"
    k_model = keras.Sequential([keras.Input(input_shape, dtype=dtype), *keras_layers])
    expected = keras.ops.convert_to_numpy(k_model(x, training=False))
    model = dlrun_model(layers, input_shape)
    for keras_layer, module in zip(k_model.layers, model.network, strict=True):
        load_keras_weights(keras_layer, module)
    model.network.eval()
    with torch.no_grad():
        got = model.network(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)
    assert (model.total_params, model.trainable_params) == keras_counts(k_model)
    assert tuple(model.output_shape) == tuple(k_model.output_shape[1:])
    return model


L = keras.layers
CASES: dict[str, tuple[list[Any], KerasLayers, tuple[int, ...]]] = {
    # conv1d
    "conv1d_valid": ([{"conv1d": {"filters": 4, "kernel_size": 3, "activation": "relu"}}],
                     lambda: [L.Conv1D(4, 3, activation="relu")], (9, 2)),
    "conv1d_same_strided": ([{"conv1d": {"filters": 3, "kernel_size": 4, "strides": 2, "padding": "same"}}],
                            lambda: [L.Conv1D(3, 4, strides=2, padding="same")], (9, 2)),
    "conv1d_dilated_no_bias": ([{"conv1d": {"filters": 3, "kernel_size": 3, "dilation_rate": 2, "padding": "same", "use_bias": False}}],
                               lambda: [L.Conv1D(3, 3, dilation_rate=2, padding="same", use_bias=False)], (8, 2)),
    # conv2d
    "conv2d_valid": ([{"conv2d": {"filters": 4, "kernel_size": [3, 2], "activation": "tanh"}}],
                     lambda: [L.Conv2D(4, (3, 2), activation="tanh")], (7, 6, 3)),
    "conv2d_same_strided_uneven": ([{"conv2d": {"filters": 4, "kernel_size": 3, "strides": [2, 1], "padding": "same"}}],
                                   lambda: [L.Conv2D(4, 3, strides=(2, 1), padding="same")], (8, 7, 2)),
    "conv2d_same_even_kernel": ([{"conv2d": {"filters": 2, "kernel_size": 4, "padding": "same"}}],
                                lambda: [L.Conv2D(2, 4, padding="same")], (6, 5, 2)),
    "conv2d_dilated": ([{"conv2d": {"filters": 2, "kernel_size": 3, "dilation_rate": 2}}],
                       lambda: [L.Conv2D(2, 3, dilation_rate=2)], (9, 8, 2)),
    # conv2d_transpose
    "conv2d_transpose_valid": ([{"conv2d_transpose": {"filters": 3, "kernel_size": 3, "strides": 2}}],
                               lambda: [L.Conv2DTranspose(3, 3, strides=2)], (4, 5, 2)),
    "conv2d_transpose_valid_stride_above_kernel": ([{"conv2d_transpose": {"filters": 2, "kernel_size": 2, "strides": 3, "activation": "relu"}}],
                                                   lambda: [L.Conv2DTranspose(2, 2, strides=3, activation="relu")], (3, 4, 2)),
    "conv2d_transpose_same_odd": ([{"conv2d_transpose": {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}}],
                                  lambda: [L.Conv2DTranspose(3, 3, strides=2, padding="same")], (4, 5, 2)),
    "conv2d_transpose_same_even": ([{"conv2d_transpose": {"filters": 2, "kernel_size": 4, "strides": 2, "padding": "same"}}],
                                   lambda: [L.Conv2DTranspose(2, 4, strides=2, padding="same")], (3, 4, 2)),
    "conv2d_transpose_same_kernel_below_stride": ([{"conv2d_transpose": {"filters": 2, "kernel_size": 1, "strides": 2, "padding": "same"}}],
                                                  lambda: [L.Conv2DTranspose(2, 1, strides=2, padding="same")], (3, 3, 2)),
    "conv2d_transpose_output_padding": ([{"conv2d_transpose": {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1}}],
                                        lambda: [L.Conv2DTranspose(2, 3, strides=2, output_padding=1)], (3, 4, 2)),
    "conv2d_transpose_dilated_same": ([{"conv2d_transpose": {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same"}}],
                                      lambda: [L.Conv2DTranspose(2, 3, dilation_rate=2, padding="same")], (5, 5, 2)),
    # separable_conv2d
    "separable_conv2d": ([{"separable_conv2d": {"filters": 4, "kernel_size": 3, "depth_multiplier": 2, "activation": "relu"}}],
                         lambda: [L.SeparableConv2D(4, 3, depth_multiplier=2, activation="relu")], (7, 6, 3)),
    "separable_conv2d_same_strided": ([{"separable_conv2d": {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}}],
                                      lambda: [L.SeparableConv2D(3, 3, strides=2, padding="same")], (7, 8, 2)),
    "separable_conv2d_dilated": ([{"separable_conv2d": {"filters": 3, "kernel_size": 2, "dilation_rate": 2, "use_bias": False}}],
                                 lambda: [L.SeparableConv2D(3, 2, dilation_rate=2, use_bias=False)], (6, 6, 2)),
    # pooling
    "max_pooling1d": (["max_pooling1d"], lambda: [L.MaxPooling1D()], (9, 3)),
    "max_pooling1d_same": ([{"max_pooling1d": {"pool_size": 3, "strides": 2, "padding": "same"}}],
                           lambda: [L.MaxPooling1D(3, strides=2, padding="same")], (8, 3)),
    "max_pooling2d": ([{"max_pooling2d": 2}], lambda: [L.MaxPooling2D(2)], (7, 6, 3)),
    "max_pooling2d_same_uneven": ([{"max_pooling2d": {"pool_size": 2, "padding": "same"}}],
                                  lambda: [L.MaxPooling2D(2, padding="same")], (7, 5, 2)),
    "max_pooling2d_strided": ([{"max_pooling2d": {"pool_size": [3, 2], "strides": 1}}],
                              lambda: [L.MaxPooling2D((3, 2), strides=1)], (5, 5, 2)),
    "average_pooling1d": ([{"average_pooling1d": {"pool_size": 3}}], lambda: [L.AveragePooling1D(3)], (10, 2)),
    "average_pooling1d_same": ([{"average_pooling1d": {"pool_size": 3, "strides": 1, "padding": "same"}}],
                               lambda: [L.AveragePooling1D(3, strides=1, padding="same")], (6, 2)),
    "average_pooling2d": ([{"average_pooling2d": {"pool_size": 2, "strides": 1}}],
                          lambda: [L.AveragePooling2D(2, strides=1)], (4, 5, 2)),
    "average_pooling2d_same": ([{"average_pooling2d": {"pool_size": 3, "strides": 1, "padding": "same"}}],
                               lambda: [L.AveragePooling2D(3, strides=1, padding="same")], (4, 5, 2)),
    "global_max_pooling1d": (["global_max_pooling1d"], lambda: [L.GlobalMaxPooling1D()], (6, 3)),
    "global_max_pooling2d": (["global_max_pooling2d"], lambda: [L.GlobalMaxPooling2D()], (4, 5, 3)),
    "global_average_pooling1d": (["global_average_pooling1d"], lambda: [L.GlobalAveragePooling1D()], (6, 3)),
    "global_average_pooling2d": (["global_average_pooling2d"], lambda: [L.GlobalAveragePooling2D()], (4, 5, 3)),
    "upsampling2d_nearest": ([{"upsampling2d": [2, 3]}], lambda: [L.UpSampling2D((2, 3))], (3, 4, 2)),
    "upsampling2d_bilinear": ([{"upsampling2d": {"size": 2, "interpolation": "bilinear"}}],
                              lambda: [L.UpSampling2D(2, interpolation="bilinear")], (3, 4, 2)),
    # small layers
    "leaky_relu": (["leaky_relu"], lambda: [L.LeakyReLU()], (5,)),
    "leaky_relu_slope": ([{"leaky_relu": 0.1}], lambda: [L.LeakyReLU(negative_slope=0.1)], (4, 3)),
    "repeat_vector": ([{"repeat_vector": 3}], lambda: [L.RepeatVector(3)], (4,)),
    "spatial_dropout1d": ([{"spatial_dropout1d": 0.5}], lambda: [L.SpatialDropout1D(0.5)], (5, 3)),
    "spatial_dropout2d": ([{"spatial_dropout2d": 0.5}], lambda: [L.SpatialDropout2D(0.5)], (4, 4, 3)),
    # stacks: flatten after convolutions keeps Keras's (height, width, channels) order
    "conv_pool_flatten_dense": (
        [{"conv2d": {"filters": 4, "kernel_size": 3, "activation": "relu"}}, "max_pooling2d",
         {"conv2d": {"filters": 3, "kernel_size": 2, "padding": "same"}}, "flatten",
         {"dense": {"units": 5, "activation": "softmax"}}],
        lambda: [L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(), L.Conv2D(3, 2, padding="same"),
                 L.Flatten(), L.Dense(5, activation="softmax")],
        (10, 9, 2),
    ),
    "conv_batchnorm": ([{"conv2d": {"filters": 3, "kernel_size": 3}}, "batchnorm", "global_average_pooling2d"],
                       lambda: [L.Conv2D(3, 3), L.BatchNormalization(), L.GlobalAveragePooling2D()], (6, 6, 2)),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_keras(case: str) -> None:
    layers, keras_layers, input_shape = CASES[case]
    assert_parity(layers, keras_layers(), input_shape)


def test_uneven_same_average_pooling_leaves_the_padding_out_of_the_mean() -> None:
    """TensorFlow (the books' Keras) divides by the real values under the window. Keras 3 on
    torch pads with copies of the edge value instead (its last window of [1..6] pooled by 3
    with stride 2 averages 5, 6, 6 = 5.67), so the check is against the values themselves."""
    model = dlrun_model([{"average_pooling1d": {"pool_size": 3, "strides": 2, "padding": "same"}}], (6, 1))  # fmt: skip
    x = torch.arange(1.0, 7.0).reshape(1, 6, 1)
    assert model.network(x).flatten().tolist() == [2.0, 4.0, 5.5]
    model2d = dlrun_model([{"average_pooling2d": {"pool_size": 2, "padding": "same"}}], (3, 3, 1))
    grid = torch.arange(9.0).reshape(1, 3, 3, 1)
    assert model2d.network(grid).flatten().tolist() == [2.0, 3.5, 6.5, 8.0]


def test_evaluated_loss_includes_the_weight_penalties_as_keras_evaluate_does() -> None:
    """Keras adds the regularisers' penalty to the loss it reports in evaluation as well as in
    training, so a regularised model's ``val_loss`` and test loss hold it (DLwP Fig. 4.7)."""
    from dlrun.config.load import config_from_data
    from dlrun.evaluation.fitting import task_for
    from dlrun.training.batches import FieldSpec
    from tests.conftest import tiny_config

    layers = [
        {"dense": {"units": 4, "activation": "relu",
                   "kernel_regularizer": {"l1": 0.01, "l2": 0.02}}},
        {"dense": {"units": 1, "kernel_regularizer": {"l2": 0.5}}},
    ]  # fmt: skip
    keras_layers = [
        L.Dense(4, activation="relu", kernel_regularizer=keras.regularizers.L1L2(0.01, 0.02)),
        L.Dense(1, kernel_regularizer=keras.regularizers.L2(0.5)),
    ]
    k_model = keras.Sequential([keras.Input((3,)), *keras_layers])
    k_model.compile(loss="mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    y = rng.standard_normal((8, 1)).astype(np.float32)
    expected = k_model.evaluate(x, y, batch_size=8, verbose=0)

    cfg = config_from_data(tiny_config(
        task="regression", loss="mse", metrics=[], preprocess=[], model={"layers": layers},
        data={"dataset": "regression", "n_samples": 40, "n_features": 3},
        evaluation={"validation": {"fraction": 0.2}},
    ))  # fmt: skip
    task = task_for(cfg)
    task.build({"x": FieldSpec((3,), torch.float32), "y": FieldSpec((1,), torch.float32)},
               torch.device("cpu"))  # fmt: skip
    for keras_layer, module in zip(k_model.layers, task.models["model"].network, strict=True):
        load_keras_weights(keras_layer, module)
    result = task.eval_step({"x": torch.from_numpy(x), "y": torch.from_numpy(y)})
    plain = float(np.mean((keras.ops.convert_to_numpy(k_model(x)) - y) ** 2))
    assert expected > plain + 0.1  # the penalty is a visible part of Keras's figure
    assert float(result.loss) == pytest.approx(expected, rel=1e-5)


def test_binary_crossentropy_on_raw_outputs_clips_them_as_keras_does() -> None:
    """``any_output: true`` scores a model without its final sigmoid as Keras does (DLwP
    listing 6.46): outputs clipped to [1e-7, 1 - 1e-7] and read as probabilities. Without the
    option such a model is refused."""
    from dlrun.config.load import config_from_data
    from dlrun.errors import ConfigError
    from dlrun.tasks.supervised import make_loss
    from tests.conftest import tiny_config

    raw_model = {"layers": [{"dense": 4}, {"dense": 1}]}
    settings = {"task": "binary", "preprocess": [], "model": raw_model,
                "data": {"dataset": "breast_cancer"}}  # fmt: skip
    with pytest.raises(ConfigError, match="binary_crossentropy expects a sigmoid output"):
        config_from_data(tiny_config(**settings, loss="binary_crossentropy"))
    cfg = config_from_data(
        tiny_config(**settings, loss={"name": "binary_crossentropy", "any_output": True})
    )
    outputs = np.array([[-2.0], [0.0], [0.3], [0.9], [1.0], [1.7]], dtype=np.float32)
    targets = np.array([[1.0], [0.0], [1.0], [0.0], [1.0], [0.0]], dtype=np.float32)
    expected = float(keras.losses.BinaryCrossentropy()(targets, outputs))
    got = make_loss(cfg)(torch.from_numpy(outputs), torch.from_numpy(targets), False)
    assert float(got) == pytest.approx(expected, rel=1e-5)
