"""Keras parity of the sequence layers: embedding (with mask_zero), simple_rnn, lstm, gru and
the wrappers, plus the recurrent behaviour no output comparison can show (dropout masks that
stay the same over time, torch's fused kernels equal to the step loop)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.test_keras_parity import KerasLayers
from tests.test_keras_parity import assert_parity
from tests.test_keras_parity import dlrun_model
from tests.test_keras_parity import keras

L = keras.layers
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras 3 on numpy 2
STEPS, FEATURES, VOCAB = 6, 3, 12


def token_ids() -> np.ndarray:
    """Ids with padding (0) at the end, at the start and in the middle of sequences."""
    ids = np.random.default_rng(1).integers(1, VOCAB, (4, STEPS))
    ids[0, -2:] = 0
    ids[1, :3] = 0
    ids[2, 2] = 0
    return ids


def masked(*layers: dict[str, Any] | str) -> list[dict[str, Any] | str]:
    return [{"embedding": {"input_dim": VOCAB, "output_dim": FEATURES, "mask_zero": True}}, *layers]  # fmt: skip


def keras_masked(*layers: Any) -> list[Any]:
    return [L.Embedding(VOCAB, FEATURES, mask_zero=True), *layers]


def keras2_hard_sigmoid(x: Any) -> Any:
    """Keras 2's hard sigmoid (the books' LSTM and GRU gates), which Keras 3 no longer has."""
    return keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def bidirectional_lstm(mode: str) -> KerasLayers:
    return lambda: [L.Bidirectional(L.LSTM(3), merge_mode=mode)]


SEQUENCE_CASES: dict[str, tuple[list[Any], KerasLayers]] = {
    "simple_rnn": ([{"simple_rnn": 4}], lambda: [L.SimpleRNN(4)]),
    "simple_rnn_sequences_backwards_relu": (
        [{"simple_rnn": {"units": 4, "return_sequences": True, "go_backwards": True, "activation": "relu"}}],
        lambda: [L.SimpleRNN(4, return_sequences=True, go_backwards=True, activation="relu")]),
    "simple_rnn_no_bias_dropout": ([{"simple_rnn": {"units": 3, "use_bias": False, "dropout": 0.4, "recurrent_dropout": 0.3}}],
                                   lambda: [L.SimpleRNN(3, use_bias=False, dropout=0.4, recurrent_dropout=0.3)]),
    "lstm": ([{"lstm": 4}], lambda: [L.LSTM(4)]),
    "lstm_sequences_backwards": ([{"lstm": {"units": 3, "return_sequences": True, "go_backwards": True}}],
                                 lambda: [L.LSTM(3, return_sequences=True, go_backwards=True)]),
    "lstm_other_activations": ([{"lstm": {"units": 3, "activation": "relu", "recurrent_activation": "hard_sigmoid"}}],
                               lambda: [L.LSTM(3, activation="relu", recurrent_activation="hard_sigmoid")]),
    "lstm_no_bias_dropout": ([{"lstm": {"units": 3, "use_bias": False, "dropout": 0.2, "recurrent_dropout": 0.5}}],
                             lambda: [L.LSTM(3, use_bias=False, dropout=0.2, recurrent_dropout=0.5)]),
    "gru": ([{"gru": 4}], lambda: [L.GRU(4)]),
    "gru_reset_before": ([{"gru": {"units": 4, "reset_after": False, "return_sequences": True}}],
                         lambda: [L.GRU(4, reset_after=False, return_sequences=True)]),
    "gru_keras2_gates": ([{"gru": {"units": 4, "reset_after": False, "recurrent_activation": "hard_sigmoid_keras2"}}],
                         lambda: [L.GRU(4, reset_after=False, recurrent_activation=keras2_hard_sigmoid)]),
    "gru_backwards_no_bias_dropout": ([{"gru": {"units": 3, "go_backwards": True, "use_bias": False, "recurrent_dropout": 0.3}}],
                                      lambda: [L.GRU(3, go_backwards=True, use_bias=False, recurrent_dropout=0.3)]),
    "gru_linear": ([{"gru": {"units": 3, "activation": "linear", "return_sequences": True}}],
                   lambda: [L.GRU(3, activation="linear", return_sequences=True)]),
    "stacked_recurrent": ([{"lstm": {"units": 4, "return_sequences": True}}, {"gru": 3}],
                          lambda: [L.LSTM(4, return_sequences=True), L.GRU(3)]),
    **{f"bidirectional_{mode}": ([{"bidirectional": {"layer": {"lstm": 3}, "merge_mode": mode}}], bidirectional_lstm(mode))
       for mode in ("concat", "sum", "mul", "ave")},
    "bidirectional_gru_sequences": ([{"bidirectional": {"layer": {"gru": {"units": 3, "return_sequences": True}}}}],
                                    lambda: [L.Bidirectional(L.GRU(3, return_sequences=True))]),
    "time_distributed_dense": ([{"time_distributed": {"layer": {"dense": {"units": 2, "activation": "relu"}}}}],
                               lambda: [L.TimeDistributed(L.Dense(2, activation="relu"))]),
    "conv1d_pool_lstm": ([{"conv1d": {"filters": 4, "kernel_size": 2}}, {"max_pooling1d": 2}, {"lstm": 2}],
                         lambda: [L.Conv1D(4, 2), L.MaxPooling1D(2), L.LSTM(2)]),
}  # fmt: skip

TOKEN_CASES: dict[str, tuple[list[Any], KerasLayers]] = {
    "embedding": ([{"embedding": {"input_dim": VOCAB, "output_dim": 5}}], lambda: [L.Embedding(VOCAB, 5)]),
    "embedding_flatten_dense": ([{"embedding": {"input_dim": VOCAB, "output_dim": 2, "input_length": STEPS}}, "flatten", {"dense": 1}],
                                lambda: [L.Embedding(VOCAB, 2), L.Flatten(), L.Dense(1)]),
    "mask_lstm": (masked({"lstm": 4}), lambda: keras_masked(L.LSTM(4))),
    "mask_gru_sequences": (masked({"gru": {"units": 3, "return_sequences": True}}),
                           lambda: keras_masked(L.GRU(3, return_sequences=True))),
    "mask_simple_rnn_backwards": (masked({"simple_rnn": {"units": 3, "go_backwards": True}}),
                                  lambda: keras_masked(L.SimpleRNN(3, go_backwards=True))),
    "mask_through_dropout_and_dense": (masked({"dropout": 0.5}, {"dense": 4}, {"lstm": 2}),
                                       lambda: keras_masked(L.Dropout(0.5), L.Dense(4), L.LSTM(2))),
    "mask_stacked": (masked({"lstm": {"units": 3, "return_sequences": True}}, {"simple_rnn": 2}),
                     lambda: keras_masked(L.LSTM(3, return_sequences=True), L.SimpleRNN(2))),
    "mask_bidirectional_sequences": (masked({"bidirectional": {"layer": {"lstm": {"units": 2, "return_sequences": True}}}}),
                                     lambda: keras_masked(L.Bidirectional(L.LSTM(2, return_sequences=True)))),
    "mask_global_average": (masked("global_average_pooling1d"), lambda: keras_masked(L.GlobalAveragePooling1D())),
    "beginners_imdb_rnn_shape": (
        [{"embedding": {"input_dim": VOCAB, "output_dim": 4}}, {"dropout": 0.3}, {"simple_rnn": 3}, "batchnorm",
         {"dropout": 0.2}, {"dense": {"units": 1, "activation": "sigmoid"}}],
        lambda: [L.Embedding(VOCAB, 4), L.Dropout(0.3), L.SimpleRNN(3), L.BatchNormalization(), L.Dropout(0.2),
                 L.Dense(1, activation="sigmoid")]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(SEQUENCE_CASES))
def test_sequence_layer_matches_keras(case: str) -> None:
    layers, keras_layers = SEQUENCE_CASES[case]
    assert_parity(layers, keras_layers(), (STEPS, FEATURES))


@pytest.mark.parametrize("case", sorted(TOKEN_CASES))
def test_token_layers_match_keras(case: str) -> None:
    layers, keras_layers = TOKEN_CASES[case]
    assert_parity(layers, keras_layers(), (STEPS,), token_ids())


def test_time_distributed_conv2d_matches_keras() -> None:
    layers = [{"time_distributed": {"layer": {"conv2d": {"filters": 2, "kernel_size": 2}}}}]
    assert_parity(layers, [L.TimeDistributed(L.Conv2D(2, 2))], (3, 4, 4, 2))


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_frozen_pretrained_embedding_matches_keras(tmp_path: Path, suffix: str) -> None:
    """A GloVe-style matrix file (``dlrun datasets embed``), frozen: non-trainable in both."""
    matrix = np.random.default_rng(2).standard_normal((VOCAB, 4)).astype(np.float32)
    path = tmp_path / f"glove{suffix}"
    if suffix == ".npy":
        np.save(path, matrix)
    else:
        np.savez(path, embeddings=matrix)
    layer = {"embedding": {"input_dim": VOCAB, "output_dim": 4, "weights": str(path), "trainable": False}}  # fmt: skip
    keras_layer = L.Embedding(VOCAB, 4, weights=[matrix], trainable=False)
    model = assert_parity([layer, "flatten"], [keras_layer, L.Flatten()], (STEPS,), token_ids())
    assert model.total_params == VOCAB * 4 and model.trainable_params == 0
    fresh = dlrun_model([layer], (STEPS,))  # the file's matrix, not an initialiser's
    weight = dict(fresh.network.named_parameters())["0.weight"]
    np.testing.assert_array_equal(weight.detach().numpy(), matrix)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_torch_fused_kernels_equal_the_step_loop(kind: str) -> None:
    torch.manual_seed(0)
    model = dlrun_model([{kind: {"units": 5, "return_sequences": True}}], (STEPS, FEATURES))
    module: Any = model.network[0]
    with torch.no_grad():
        for param in module.parameters():
            param.uniform_(-0.5, 0.5)  # non-zero biases too
    x = torch.randn(3, STEPS, FEATURES)
    fused = module.fused(x)
    assert fused is not None
    torch.testing.assert_close(fused, module.loop(x, None, None, None), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_recurrent_dropout_mask_is_the_same_at_every_step(kind: str) -> None:
    """Training with recurrent_dropout: each gate's mask on the fed-back state is drawn once per
    sequence (Keras), so every step sees the same masks."""
    torch.manual_seed(0)
    units = 8
    cfg = {"units": units, "return_sequences": True, "recurrent_dropout": 0.5}
    model = dlrun_model([{kind: cfg}], (STEPS, units))
    module: Any = model.network[0]
    masks: list[torch.Tensor] = []
    original = module.recur

    def recording(h: torch.Tensor, state_mask: torch.Tensor | None, first: int, last: int) -> torch.Tensor:  # fmt: skip
        assert state_mask is not None
        masks.append(state_mask[first:last].clone())
        return original(h, state_mask, first, last)

    module.recur = recording
    module.train()
    module(torch.randn(16, STEPS, units))
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    calls_per_step = len(masks) // STEPS
    assert len(masks) == calls_per_step * STEPS
    for step in range(1, STEPS):
        for call in range(calls_per_step):
            assert torch.equal(masks[step * calls_per_step + call], masks[call])
    whole = torch.cat([m for m in masks[:calls_per_step]])
    assert whole.shape[0] == gates and set(whole.unique().tolist()) == {0.0, 2.0}
    model.network.eval()
    assert torch.equal(model.network(torch.ones(2, STEPS, units)), model.network(torch.ones(2, STEPS, units)))  # fmt: skip


def test_recurrent_dropout_drops_the_same_state_units_at_every_step() -> None:
    """The same, seen in the outputs: a linear simple_rnn with identity kernels fed one input
    at the first step carries each unit as ``mask * previous``; a unit dropped once stays zero
    and a kept one doubles (1 / (1 - 0.5)) at every step."""
    units = 32
    model = dlrun_model([{"simple_rnn": {"units": units, "activation": "linear", "return_sequences": True, "recurrent_dropout": 0.5}}], (STEPS, units))  # fmt: skip
    module: Any = model.network[0]
    with torch.no_grad():
        module.kernel.copy_(torch.eye(units))
        module.recurrent_kernel.copy_(torch.eye(units))
    x = torch.zeros(4, STEPS, units)
    x[:, 0] = 1.0
    module.train()
    out = module(x)
    kept = out[:, 1] > 0
    assert 0 < int(kept.sum()) < kept.numel()
    for step in range(1, STEPS):
        torch.testing.assert_close(out[:, step], kept * 2.0**step)


def test_cudnn_weight_compaction_warning_is_silenced_and_only_it() -> None:
    """cuDNN warns at each fused call that the weights are not one flat buffer (they keep
    Keras's layout on purpose); importing the layers filters that warning, no other. Run in a
    fresh interpreter: pytest resets warning filters around every test."""
    script = (
        "import warnings\n"
        "import dlrun.models.recurrent_cells\n"
        "for text in ('RNN module weights are not part of single contiguous chunk of memory.',\n"
        "             'another warning from the same module'):\n"
        "    warnings.warn_explicit(text, UserWarning, 'recurrent_cells.py', 1,\n"
        "                           module='dlrun.models.recurrent_cells')\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", script], capture_output=True, text=True, check=True
    )
    assert "contiguous chunk" not in result.stderr
    assert "another warning from the same module" in result.stderr
