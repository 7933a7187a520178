"""The books' models, written as dlrun configs, have the parameter counts of the books' Keras
summaries (trainable and non-trainable) and Keras's output shapes, built the way ``dlrun
validate --no-data`` builds them (config, then the model for ``model.input_shape``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dlrun.api import validate_experiment
from dlrun.cli import app
from dlrun.config.load import config_from_data
from dlrun.models.build import BuiltModel
from tests.conftest import tiny_config


def conv(filters: int, size: int = 3, **options: Any) -> dict[str, Any]:
    return {"conv2d": {"filters": filters, "kernel_size": size, "activation": "relu", **options}}


def dense(units: int, activation: str = "relu") -> dict[str, Any]:
    return {"dense": {"units": units, "activation": activation}}


def deepnet() -> list[Any]:
    """Beginners E34: dropout and dense layers halving from 3072 while the width exceeds 10."""
    layers: list[Any] = []
    units, rate = 3072, 0.5
    layers += [{"dropout": rate}, dense(units)]
    units, rate = units // 2, rate / 2
    while units > 10:
        layers += [{"dropout": round(rate, 4)}, dense(units)]
        units, rate = units // 2, rate / 1.5
    return [*layers, dense(10, "sigmoid")]


def imdb_recurrent(recurrent: dict[str, Any]) -> list[Any]:
    """Beginners E38/E39: Embedding(10000, 64) -> DO -> RNN(32) -> BN -> DO -> Dense(1)."""
    embedding = {"input_dim": 10000, "output_dim": 64, "input_length": 128}
    return [{"embedding": embedding}, {"dropout": 0.3}, recurrent, "batchnorm", {"dropout": 0.2},
            dense(1, "sigmoid")]  # fmt: skip


BINARY = {"task": "binary", "loss": "binary_crossentropy", "preprocess": []}
ONE_HOT = {"task": "multiclass", "loss": "categorical_crossentropy", "preprocess": ["one_hot"]}
SIGMOIDS = {"task": "multiclass", "loss": "binary_crossentropy", "preprocess": ["one_hot"]}

# name: (input shape, layers, task/loss, total, non-trainable)
BOOK_MODELS: dict[str, tuple[list[int], list[Any], dict[str, Any], int, int]] = {
    "dlwp_5_1_mnist_convnet": (
        [28, 28, 1],
        [conv(32), {"max_pooling2d": 2}, conv(64), {"max_pooling2d": 2}, conv(64), "flatten",
         dense(64), dense(10, "softmax")],
        ONE_HOT, 93_322, 0),
    "dlwp_5_2_dogs_vs_cats": (
        [150, 150, 3],
        [conv(32), "max_pooling2d", conv(64), "max_pooling2d", conv(128), "max_pooling2d",
         conv(128), "max_pooling2d", "flatten", dense(512), dense(1, "sigmoid")],
        BINARY, 3_453_121, 0),
    "dlwp_6_2_embedding_simple_rnn": (
        [100], [{"embedding": {"input_dim": 10000, "output_dim": 32}}, {"simple_rnn": 32},
                dense(1, "sigmoid")], BINARY, 322_080 + 33, 0),
    "dlwp_6_2_four_simple_rnns": (
        [100], [{"embedding": {"input_dim": 10000, "output_dim": 32}},
                *[{"simple_rnn": {"units": 32, "return_sequences": True}}] * 3, {"simple_rnn": 32},
                dense(1, "sigmoid")], BINARY, 328_320 + 33, 0),
    "beginners_e33_widenet": (
        [3072], [{"dropout": 0.5}, dense(3072), {"dropout": 0.2}, dense(3072), dense(10, "sigmoid")],
        SIGMOIDS, 18_911_242, 0),
    "beginners_e34_deepnet": ([3072], deepnet(), SIGMOIDS, 15_734_806, 0),
    "beginners_e37_cifar10_cnn": (
        [32, 32, 3],
        [conv(64, 9, strides=2), "max_pooling2d", "batchnorm",
         conv(128, 3, strides=1), "max_pooling2d", "batchnorm", "flatten", {"dropout": 0.5},
         dense(256), {"dropout": 0.2}, dense(64), {"dropout": 0.1}, dense(10, "sigmoid")],
        SIGMOIDS, 238_666, 384),
    "beginners_e38_imdb_simple_rnn": ([128], imdb_recurrent({"simple_rnn": 32}), BINARY, 643_265, 64),
    "beginners_e39_imdb_lstm": ([128], imdb_recurrent({"lstm": 32}), BINARY, 652_577, 64),
}  # fmt: skip


def book_config(name: str) -> dict[str, Any]:
    input_shape, layers, task, _, _ = BOOK_MODELS[name]
    return tiny_config(
        name=name,
        model={"input_shape": input_shape, "layers": layers},
        metrics=[],
        **task,
    )


def built(name: str) -> BuiltModel:
    (model,) = validate_experiment(config_from_data(book_config(name)), use_data=False).models
    return model


@pytest.mark.parametrize("name", sorted(BOOK_MODELS))
def test_book_model_has_the_keras_parameter_counts(name: str) -> None:
    *_, total, frozen = BOOK_MODELS[name]
    model = built(name)
    assert model.total_params == total
    assert model.total_params - model.trainable_params == frozen


def test_mnist_convnet_summary_rows_are_the_books() -> None:
    """DLwP listing 5.3: every output shape and parameter count."""
    rows = [
        (row.kind, row.output_shape, row.params) for row in built("dlwp_5_1_mnist_convnet").rows
    ]
    assert rows == [
        ("Conv2D", (26, 26, 32), 320), ("MaxPooling2D", (13, 13, 32), 0),
        ("Conv2D", (11, 11, 64), 18_496), ("MaxPooling2D", (5, 5, 64), 0),
        ("Conv2D", (3, 3, 64), 36_928), ("Flatten", (576,), 0),
        ("Dense", (64,), 36_928), ("Dense", (10,), 650),
    ]  # fmt: skip


def test_beginners_cifar_and_imdb_summary_rows_are_the_books() -> None:
    cnn = built("beginners_e37_cifar10_cnn").rows
    assert [(r.output_shape, r.params) for r in cnn[:3]] == [((12, 12, 64), 15_616), ((6, 6, 64), 0), ((6, 6, 64), 256)]  # fmt: skip
    assert cnn[-1].params == 650
    rnn = built("beginners_e38_imdb_simple_rnn").rows
    assert [(r.kind, r.output_shape, r.params) for r in rnn] == [
        ("Embedding", (128, 64), 640_000), ("Dropout", (128, 64), 0), ("SimpleRNN", (32,), 3_104),
        ("BatchNormalization", (32,), 128), ("Dropout", (32,), 0), ("Dense", (1,), 33),
    ]  # fmt: skip
    assert built("beginners_e39_imdb_lstm").rows[2].params == 12_416


def test_validate_no_data_prints_the_keras_summary(tmp_path: Path) -> None:
    path = tmp_path / "mnist_convnet.yaml"
    path.write_text(yaml.safe_dump(book_config("dlwp_5_1_mnist_convnet"), sort_keys=False))
    result = CliRunner().invoke(app, ["validate", str(path), "--no-data"], terminal_width=400)
    assert result.exit_code == 0, result.output
    for text in ("conv2d (Conv2D)", "(None, 26, 26, 32)", "max_pooling2d_1 (MaxPooling2D)",
                 "(None, 5, 5, 64)", "flatten (Flatten)", "(None, 576)", "36,928", "93,322"):  # fmt: skip
        assert text in result.output, text
