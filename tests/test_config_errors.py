"""Mistakes found by trying dlrun as a new user (issue 14, items 7, 9, 10 and 12).

Each is one line (or the usual multi-problem report) with the key path, its line in the file and
a suggestion, exit code 2, no traceback, and nothing left behind: no run directory, no sweep
journal.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dlrun.api import validate_experiment
from dlrun.cli import app
from dlrun.config.load import config_from_text
from dlrun.config.load import load_config
from dlrun.data.load import load_data
from dlrun.errors import ConfigError
from dlrun.evaluation.preflight import check_with_data
from dlrun.sweep.run import run_sweep

runner = CliRunner()

# Line numbers below refer to this text: 1 name, 7-8 the two dense layers, 10 metrics.
CONFIG = """\
name: errs
task: multiclass
data: {data}
preprocess: [standardize{one_hot}]
model:{input_shape}
  layers:
    - dense: {{units: {units}, activation: {activation}}}
    - dense: {{units: {outputs}, activation: softmax}}
loss: {loss}
metrics: [accuracy]
optimizer: {{name: adam, lr: 0.01}}
train: {{epochs: 1, batch_size: 16, progress: none, device: cpu}}
{extra}"""


def config_text(**changes: Any) -> str:
    values = {"data": "{dataset: iris, test_fraction: 0.2}", "one_hot": ", one_hot", "input_shape": "", "units": 8,
              "activation": "relu", "outputs": 3, "loss": "categorical_crossentropy",
              "extra": ""}  # fmt: skip
    values.update(changes)
    return CONFIG.format(**values)


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), terminal_width=400)


def error_line(result: Any) -> str:
    """The single line a user mistake prints (asserting there is exactly one)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


# --- item 7: sizes are positive; a model too big to fit is refused with its size in bytes ----


def test_huge_layer_is_refused_in_validate_and_train_without_a_run(
    tmp_path: Path, write_config: Any
) -> None:
    path = write_config(config_text(units=1_000_000_000_000))
    # iris has 4 features: 4e12 + 1e12 weights, then 3e12 + 3: 8e12 + 3 float32 parameters
    expected = (
        "model.layers[0].dense (line 7): the model cannot fit: its 8,000,000,000,003 "
        "parameters take 32,000,000,000,012 bytes (29.1 TiB), and training needs at least "
        "128,000,000,000,048 bytes (116.4 TiB) with gradients and optimizer state, but cpu has"
    )
    assert expected in error_line(invoke("validate", str(path)))
    line = error_line(invoke("train", str(path), "--runs-dir", str(tmp_path / "runs")))
    assert expected in line and line.endswith("available; make this layer smaller")
    assert not (tmp_path / "runs").exists()


def test_model_is_measured_against_the_memory_the_device_has(
    tmp_path: Path, write_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 units on 4 features: 4*8+8 + 8*3+3 = 67 parameters, 268 bytes; training 4 x 268."""
    monkeypatch.setattr("dlrun.models.size.available_bytes", lambda device: 1000)
    path = write_config(config_text())
    line = error_line(invoke("train", str(path), "--runs-dir", str(tmp_path / "runs")))
    assert line.endswith(
        "model.layers[0].dense (line 7): the model cannot fit: its 67 parameters take 268 bytes "
        "(268 bytes), and training needs at least 1,072 bytes (1.0 KiB) with gradients and "
        "optimizer state, but cpu has 1,000 bytes (1,000 bytes) available; make this layer "
        "smaller"
    )
    assert not (tmp_path / "runs").exists()
    monkeypatch.setattr("dlrun.models.size.available_bytes", lambda device: 1072)
    assert [m.total_params for m in validate_experiment(load_config(path)).models] == [67]


def test_size_beyond_64_bits_is_one_line(write_config: Any) -> None:
    path = write_config(config_text(units=10**19))
    assert error_line(invoke("validate", str(path))).endswith(
        "model.layers[0].dense (line 7): the layer is too large to exist: its size overflows "
        "64 bits (input shape (4,)); make it smaller"
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"input_shape": "\n  input_shape: [-4]"},
         "model.input_shape[0] (line 6): input should be greater than 0, got -4"),
        ({"input_shape": "\n  input_shape: []"},
         "model.input_shape (line 6): list should have at least 1 item after validation"),
        ({"units": "0"}, "model.layers[0].dense.units (line 7): input should be greater than 0"),
    ],
)  # fmt: skip
def test_sizes_must_be_positive(changes: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_text(config_text(**changes), "exp.yaml", [])
    assert expected in str(info.value)


def test_reshape_target_must_be_positive() -> None:
    text = config_text().replace(
        "    - dense: {units: 8, ", "    - reshape: [-1, 2]\n    - dense: {units: 8, "
    )
    with pytest.raises(ConfigError, match=r"model\.layers\[0\]\.reshape\[0\] \(line 7\): "
                       "input should be greater than 0, got -1"):  # fmt: skip
        config_from_text(text, "exp.yaml", [])


# --- item 10: an unknown activation is a normal config error, with the others -------------------


def test_unknown_activation_has_path_line_suggestion_and_joins_other_errors() -> None:
    text = config_text(activation="rellu").replace("metrics:", "metrcs:")
    with pytest.raises(ConfigError) as info:
        config_from_text(text, "exp.yaml", [])
    assert [str(issue) for issue in info.value.issues] == [
        "model.layers[0].dense.activation (line 7): unknown activation 'rellu'; did you mean "
        "'relu'?; known: elu, gelu, hard_sigmoid, hard_sigmoid_keras2, leaky_relu, linear, "
        "relu, selu, sigmoid, silu, softmax, softplus, softsign, swish, tanh",
        "metrcs (line 10): unknown key; did you mean 'metrics'?",
    ]


def test_unknown_activation_layer_and_initializer_are_located() -> None:
    text = config_text().replace(
        "    - dense: {units: 8, activation: relu}",
        "    - dense: {units: 8, activation: relu, kernel_initializer: glorot_unifrom}\n"
        "    - activation: tanhh",
    )
    with pytest.raises(ConfigError) as info:
        config_from_text(text, "exp.yaml", [])
    found = [str(issue) for issue in info.value.issues]
    assert len(found) == 2
    assert found[0].startswith(
        "model.layers[0].dense.kernel_initializer (line 7): unknown initializer "
        "'glorot_unifrom'; did you mean 'glorot_uniform'?"
    )
    assert found[1].startswith(
        "model.layers[1].activation.activation (line 8): unknown activation 'tanhh'; "
        "did you mean 'tanh'?"
    )


def test_a_value_of_neither_type_of_a_union_is_one_issue_at_the_users_key() -> None:
    text = config_text(data="{dataset: csv, path: t.csv, target: [y]}")
    with pytest.raises(ConfigError) as info:
        config_from_text(text, "exp.yaml", [])
    assert [str(issue) for issue in info.value.issues] == [
        "data.target (line 3): input should be a valid string or a valid integer, got a list"
    ]  # was: data.target.str and data.target.int, one issue each


def test_cross_field_problems_carry_their_line() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_text(config_text(loss="binary_crossentropy"), "exp.yaml", [])
    assert [str(issue) for issue in info.value.issues] == [
        "model.layers[1] (line 8): binary_crossentropy expects a sigmoid output, but the model "
        "ends with softmax; set activation: sigmoid on the last layer"
    ]


# --- item 12: the model's outputs are checked against the data before a run exists ---------------

SPARSE = {"data": "{dataset: digits, test_fraction: 0.2}", "one_hot": "", "outputs": 5,
          "loss": "sparse_categorical_crossentropy"}  # fmt: skip


def test_validate_checks_outputs_against_integer_labels(write_config: Any) -> None:
    path = write_config(config_text(**SPARSE))
    assert error_line(invoke("validate", str(path))).endswith(
        "exp.yaml: model.layers[1].dense.units (line 8): the model outputs 5 values per sample "
        "but the targets hold label 9, which needs 10; set units: 10"
    )


def test_an_override_inside_a_faulty_section_is_named_not_blamed(write_config: Any) -> None:
    """The section's mistake (contiguous folds shuffled) is the file's; the override of k is
    named, since a section-wide check cannot tell which key it was about."""
    extra = "evaluation: {protocol: kfold, k: 3, contiguous: true, shuffle: true}\n"
    path = write_config(config_text(extra=extra))
    line = error_line(invoke("validate", str(path), "evaluation.k=4"))
    assert line.endswith(
        "set shuffle: false and leave stratify out (the command line overrode evaluation.k)"
    ), line
    assert "set by a command-line override" not in line
    line = error_line(invoke("validate", str(path), "evaluation.shuffle=true"))
    assert line.endswith("(the command line overrode evaluation.shuffle)"), line
    other_protocol = invoke("validate", str(path), "evaluation.protocol=holdout").output
    assert (
        "  - evaluation.k (line 13): unknown key (allowed: curves, final, monitor, protocol, "
        "validation) (the command line overrode evaluation.protocol)" in other_protocol
    )
    assert (  # .inf would pass "greater than 0", then wreck the run
        "  - optimizer.lr (line 11): input should be a finite number, got inf (set by a "
        "command-line override)" in invoke("validate", str(path), "optimizer.lr=.inf").output
    )


def test_validate_checks_outputs_against_one_hot_targets(write_config: Any) -> None:
    path = write_config(config_text(outputs=5))
    assert error_line(invoke("validate", str(path))).endswith(
        "exp.yaml: model.layers[1].dense.units (line 8): the model outputs 5 values per sample "
        "but the targets have 3; set units: 3"
    )


def test_a_mistake_made_by_an_override_says_so(write_config: Any) -> None:
    path = write_config(config_text())
    assert error_line(invoke("validate", str(path), "model.layers.1.dense.units=5")).endswith(
        "model.layers[1].dense.units (line 8): the model outputs 5 values per sample but the "
        "targets have 3; set units: 3 (set by a command-line override)"
    )


def test_no_data_skips_the_data_and_needs_an_input_shape(write_config: Any) -> None:
    path = write_config(config_text(**SPARSE, input_shape="\n  input_shape: [64]"))
    result = invoke("validate", str(path), "--no-data")
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "not checked against the data (--no-data)" in output and "config OK" in output
    bare = write_config(config_text(**SPARSE), "bare.yaml")
    assert error_line(invoke("validate", str(bare), "--no-data")).endswith(
        "bare.yaml: model.input_shape (line 5): checking without the data needs "
        "model.input_shape (the per-sample input shape, e.g. [784]); set it, or let validate "
        "read the data"
    )


def test_validate_with_an_input_shape_never_downloads(
    write_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Online, with an empty cache: MNIST is not here, and validate must not fetch it."""
    monkeypatch.delenv("DLRUN_OFFLINE")

    def no_fetch(*args: Any) -> None:
        raise AssertionError("validate downloaded data")

    monkeypatch.setattr("dlrun.data.locate.fetch", no_fetch)
    mnist = {"data": "mnist", "outputs": 10, "input_shape": "\n  input_shape: [784]"}
    result = invoke("validate", str(write_config(config_text(**mnist))))
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "not checked against the data (it could not be read here: dataset mnist" in output
    assert "(validate reads only local copies when model.input_shape is set)" in output
    assert "DLRUN_OFFLINE is set" not in output  # the user never set it
    assert "Total params: 6,370" in output and "config OK" in output
    assert "DLRUN_OFFLINE" not in os.environ


def test_train_refuses_mismatched_outputs_before_creating_a_run(
    tmp_path: Path, write_config: Any
) -> None:
    for name, changes in (("sparse.yaml", SPARSE), ("onehot.yaml", {"outputs": 5})):
        path = write_config(config_text(**changes), name)
        line = error_line(invoke("train", str(path), "--runs-dir", str(tmp_path / "runs")))
        assert f"{name}: model.layers[1].dense.units (line 8): the model outputs 5" in line
    assert not (tmp_path / "runs").exists()


def test_train_refuses_an_input_shape_the_data_does_not_have(
    tmp_path: Path, write_config: Any
) -> None:
    path = write_config(config_text(input_shape="\n  input_shape: [5]"))
    runs = tmp_path / "runs"
    assert error_line(invoke("train", str(path), "--runs-dir", str(runs))).endswith(
        "model.input_shape (line 6): is [5] but the preprocessed data has shape [4] per sample; "
        "set input_shape: [4]"
    )
    assert not runs.exists()


def test_the_check_leaves_every_random_stream_where_it_was(write_config: Any) -> None:
    cfg = load_config(write_config(config_text()))
    data = load_data(cfg)
    torch.manual_seed(3)
    np.random.seed(3)
    check_with_data(cfg, data, torch.device("cpu"))
    after = torch.rand(2), np.random.rand(2)
    torch.manual_seed(3)
    np.random.seed(3)
    assert torch.equal(after[0], torch.rand(2)) and np.array_equal(after[1], np.random.rand(2))


# --- item 9: every sweep setting is checked before anything is created ---------------------------

SWEEP = """\
sweep:
  method: grid
  objective: {{metric: {metric}}}
  pruner: {pruner}
  parameters:
    {parameter}: {{choice: {choices}}}
"""


def sweep_text(**changes: Any) -> str:
    values = {"metric": "accuracy", "pruner": "none", "parameter": "optimizer.lr",
              "choices": "[0.01]"}  # fmt: skip
    values.update(changes)
    return config_text(extra=SWEEP.format(**values))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"metric": "acc"},
         "sweep.objective.metric (line 15): unknown metric 'acc'; did you mean 'accuracy'?; "
         "known: loss, accuracy, "),
        ({"metric": "f1"},
         "sweep.objective.metric (line 15): 'f1' is not recorded by the trials (metrics: "
         "accuracy); add it to metrics, or optimise loss"),
        ({"parameter": "model.layers.1.dense.units", "choices": "[3, 5]"},
         "sweep.parameters.model.layers.1.dense.units (line 18): value 5: "
         "model.layers[1].dense.units: the model outputs 5 values per sample but the targets "
         "have 3; set units: 3"),
        ({"parameter": "optimizer.lrr"},
         "sweep.parameters.optimizer.lrr (line 18): value 0.01: optimizer.lrr: unknown key; "
         "did you mean 'lr'?"),
    ],
)  # fmt: skip
def test_sweep_settings_are_checked_before_anything_is_created(
    changes: dict[str, str], expected: str, tmp_path: Path, write_config: Any
) -> None:
    path = write_config(sweep_text(**changes))
    line = error_line(invoke("sweep", str(path), "--runs-dir", str(tmp_path / "runs")))
    assert f"exp.yaml: {expected}" in line
    assert not (tmp_path / "runs").exists()  # no sweep directory, no journal.log


def test_pruning_a_k_fold_sweep_is_refused(tmp_path: Path, write_config: Any) -> None:
    text = sweep_text(pruner="median").replace(
        "train: {", "evaluation: {protocol: kfold, k: 2}\ntrain: {"
    )
    with pytest.raises(ConfigError, match=r"sweep\.pruner \(line 17\): pruning judges one "
                       "validation curve per trial, and protocol kfold trains several models"):  # fmt: skip
        load_config(write_config(text))


def test_corrected_sweep_runs_without_resume(tmp_path: Path, write_config: Any) -> None:
    runs = tmp_path / "runs"
    bad = write_config(sweep_text(metric="acc"))
    assert invoke("sweep", str(bad), "--runs-dir", str(runs)).exit_code == 2
    result = run_sweep(load_config(write_config(sweep_text())), runs)
    assert [row.state for row in result.rows] == ["complete"]


def test_sweep_file_mistakes_have_path_line_and_suggestion(
    tmp_path: Path, write_config: Any
) -> None:
    config = write_config(config_text())
    space = tmp_path / "space.yaml"
    space.write_text("sweep:\n  method: grdi\n  objective: {metric: acc}\n"
                     "  parameters: {optimizer.lr: {choice: [0.01]}}\n")  # fmt: skip
    result = invoke("sweep", str(config), "--sweep-file", str(space), "--runs-dir",
                    str(tmp_path / "runs"))  # fmt: skip
    assert result.exit_code == 2
    assert "sweep.method (line 2): expected one of grid, random, tpe, got 'grdi'; did you " \
           "mean 'grid'?" in result.output  # fmt: skip
    assert "sweep.objective.metric (line 3): unknown metric 'acc'; did you mean " \
           "'accuracy'?" in result.output  # fmt: skip
    assert not (tmp_path / "runs").exists()
    plain = invoke("sweep", str(config), "--sweep-file", str(config))  # a config, not a sweep
    assert plain.exit_code == 2 and plain.output.count("\n") == 1
    assert plain.output.endswith("sweep: the file has no sweep section: give it a 'sweep:' "
                                 "mapping, or the sweep's own keys (method, parameters, ...)\n")  # fmt: skip


def test_validate_fails_on_data_that_is_here_but_damaged(
    write_config: Any, tmp_path: Path
) -> None:
    """Data not here is checked without (input_shape); a truncated file that is here was
    treated the same and validate said config OK, while train failed on it."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):  # fmt: skip
        (folder / name).write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x05abc")[:-6])
    data = f"{{dataset: mnist, path: {folder}}}"
    mnist = {"data": data, "outputs": 10, "input_shape": "\n  input_shape: [784]"}
    result = invoke("validate", str(write_config(config_text(**mnist))))
    assert result.exit_code == 2 and "config OK" not in result.output
    assert "cannot read " in result.output and "Traceback" not in result.output


def test_validate_checks_without_a_data_file_that_is_not_here(write_config: Any) -> None:
    """A user's CSV that is on another machine is skipped as a missing mirror copy is."""
    data = "{dataset: csv, path: /nowhere/table.csv, target: y}"
    config = config_text(data=data, input_shape="\n  input_shape: [4]")
    result = invoke("validate", str(write_config(config)))
    assert result.exit_code == 0, result.output
    assert "not checked against the data (it could not be read here: CSV file not found" in (
        " ".join(result.output.split())
    )
