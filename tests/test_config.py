from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlrun.config.load import config_from_data
from dlrun.config.load import config_from_text
from dlrun.config.load import load_config
from dlrun.config.load import resolved_yaml
from dlrun.config.schema import json_schema
from dlrun.errors import ConfigError
from tests.conftest import tiny_config

GOOD_YAML = """\
name: t
task: binary
data: {dataset: breast_cancer}
model:
  layers:
    - dense: {units: 4, activation: relu}
    - dense: {units: 1, activation: sigmoid}
loss: binary_crossentropy
optimizer: {name: rmsprop, lr: 1e-3}
"""


def messages(exc: ConfigError) -> list[str]:
    return [str(issue) for issue in exc.issues]


def test_typo_in_top_level_key_suggests_the_right_one_with_its_line() -> None:
    text = GOOD_YAML.replace("optimizer:", "optimzer:")
    with pytest.raises(ConfigError) as info:
        config_from_text(text, "t.yaml", [])
    assert messages(info.value) == ["optimzer (line 9): unknown key; did you mean 'optimizer'?"]


def test_typo_in_layer_parameter_and_unknown_layer() -> None:
    text = GOOD_YAML.replace("{units: 4, activation: relu}", "{unit: 4}").replace(
        "- dense: {units: 1", "- dens: {units: 1"
    )
    with pytest.raises(ConfigError) as info:
        config_from_text(text, "t.yaml", [])
    found = messages(info.value)
    assert "model.layers[0].dense.unit (line 6): unknown key; did you mean 'units'?" in found
    assert "model.layers[1].dens (line 7): unknown key; did you mean 'dense'?" in found


def test_wrong_type_names_path_and_received_value() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_data(tiny_config(train={"epochs": "ten"}))
    assert messages(info.value) == ["train.epochs: input should be a valid integer, got 'ten'"]


def test_unknown_dataset_loss_and_optimizer_names_get_suggestions() -> None:
    data = tiny_config(
        data={"dataset": "irsi"}, loss="categorical_crossentropyy", optimizer="rmsprp"
    )
    with pytest.raises(ConfigError) as info:
        config_from_data(data)
    text = "\n".join(messages(info.value))
    assert "data: unknown dataset 'irsi'; did you mean 'iris'?" in text
    assert (
        "loss: unknown name 'categorical_crossentropyy'; did you mean 'categorical_crossentropy'?"
        in text
    )
    assert "optimizer: unknown name 'rmsprp'; did you mean 'rmsprop'?" in text


def test_scientific_notation_is_a_float_and_fractions_are_accepted() -> None:
    cfg = config_from_text(GOOD_YAML, "t.yaml", ["preprocess=[{rescale: {scale: 1/255}}]"])
    assert cfg.optimizer.lr == pytest.approx(1e-3)
    assert cfg.preprocess[0].selected()[1].scale == pytest.approx(1 / 255)  # type: ignore[attr-defined]


def test_duplicate_key_is_reported_with_line() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_text(GOOD_YAML + "name: again\n", "t.yaml", [])
    assert messages(info.value) == ["name (line 10): key is written twice"]


def test_invalid_yaml_reports_line() -> None:
    with pytest.raises(ConfigError, match=r"line 3.*invalid YAML: expected ',' or ']'"):
        config_from_text("name: x\ntask: [binary\n", "t.yaml", [])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"task": "regression", "loss": "binary_crossentropy"},
            "binary_crossentropy expects a sigmoid output",
        ),
        ({"loss": "binary_crossentropy"}, "binary_crossentropy expects a sigmoid output"),
        ({"preprocess": ["standardize"]}, "categorical_crossentropy needs one-hot targets"),
        ({"task": "binary"}, "task binary needs independent per-output probabilities"),
        ({"metrics": ["r2"]}, "r2 does not apply to task multiclass"),
        (
            {"train": {"callbacks": [{"early_stopping": {"monitor": "val_acc"}}]}},
            "cannot monitor 'val_acc'",
        ),
    ],
)
def test_cross_field_contradictions_name_the_fix(changes: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        config_from_data(tiny_config(**changes))


def test_overrides_are_typed_as_yaml_and_expand_shorthand() -> None:
    cfg = config_from_data(
        tiny_config(optimizer="adam"),
        overrides=[
            "optimizer.lr=0.05",
            "train.epochs=7",
            "model.layers.0.dense.units=32",
            "train.shuffle=false",
        ],
    )
    assert cfg.optimizer.lr == 0.05
    assert cfg.train.epochs == 7 and cfg.train.shuffle is False
    assert cfg.model.layers[0].selected()[1].units == 32  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.epochs", "override must look like key.path=value"),
        (
            "model.layers.5.dense.units=3",
            r"model.layers\[5\]: no such list item; the list has 2 items",
        ),
        ("train.epohcs=3", "train.epohcs: unknown key; did you mean 'epochs'.*override"),
    ],
)
def test_bad_overrides(override: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        config_from_data(tiny_config(), overrides=[override])


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_config_fills_defaults_and_round_trips() -> None:
    cfg = config_from_text(GOOD_YAML, "t.yaml", [])
    text = resolved_yaml(cfg)
    assert (
        "rho: 0.9" in text
        and "epsilon: 1.0e-07" in text
        and "kernel_initializer: glorot_uniform" in text
    )
    again = config_from_text(text, "resolved.yaml", [])
    assert again == cfg


def test_json_schema_lists_layers_and_datasets() -> None:
    schema = json.dumps(json_schema())
    for name in (
        "dense",
        "dropout",
        "batchnorm",
        "standardize",
        "multi_hot",
        "early_stopping",
        "spirals",
    ):
        assert f'"{name}"' in schema
