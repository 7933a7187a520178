"""dlrun's RMSprop loop gives torch's RMSprop numbers and state, bit for bit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch.optim import rmsprop as torch_rmsprop

from dlrun.config.load import config_from_data
from dlrun.training import eager
from dlrun.training.optimizers import OPTIMIZERS
from dlrun.training.rmsprop import LoopRMSprop
from tests.conftest import tiny_config

SETTINGS = [
    {},
    {"momentum": 0.9},
    {"centered": True},
    {"momentum": 0.5, "centered": True, "weight_decay": 0.01},
]


def _params(seed: int, dtype: torch.dtype = torch.float32) -> list[torch.nn.Parameter]:
    """A wide kernel kept transposed (as dlrun's dense layers keep one), a bias, a matrix."""
    gen = torch.Generator().manual_seed(seed)
    kernel = torch.randn(300, 16, generator=gen, dtype=dtype)
    return [
        torch.nn.Parameter(kernel.t()),  # non-contiguous
        torch.nn.Parameter(torch.randn(16, generator=gen, dtype=dtype)),
        torch.nn.Parameter(torch.randn(4, 16, generator=gen, dtype=dtype)),
    ]


def _gradients(params: list[torch.nn.Parameter], steps: int) -> Iterator[None]:
    """Sets random gradients before each step; the matrix gets none on odd steps, as a frozen
    or unused layer would not."""
    gen = torch.Generator().manual_seed(1)
    for step in range(steps):
        for index, param in enumerate(params):
            skip = index == 2 and step % 2
            grad = torch.randn(param.shape, generator=gen, dtype=param.dtype) * 1e-3
            param.grad = None if skip else grad
        yield


def _train(
    kind: type[torch.optim.RMSprop], settings: dict[str, Any], dtype: torch.dtype = torch.float32
) -> tuple[list[torch.nn.Parameter], dict[str, Any]]:
    params = _params(0, dtype)
    optimizer = kind(params, lr=0.01, alpha=0.9, eps=1e-7, **settings)
    for _ in _gradients(params, 12):
        eager.step(optimizer)
    return params, optimizer.state_dict()


def _assert_same(ours: Any, theirs: Any) -> None:
    (our_params, our_state), (their_params, their_state) = ours, theirs
    for mine, other in zip(our_params, their_params, strict=True):
        assert torch.equal(mine, other)
    assert our_state["param_groups"] == their_state["param_groups"]
    assert our_state["state"].keys() == their_state["state"].keys()
    for key, state in their_state["state"].items():
        assert our_state["state"][key].keys() == state.keys()
        for name, value in state.items():
            mine = our_state["state"][key][name]
            assert mine.dtype == value.dtype and torch.equal(mine, value), name


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(s) or "plain")
def test_the_loop_gives_torchs_numbers_and_state_bit_for_bit(
    settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = _train(torch.optim.RMSprop, settings)
    with monkeypatch.context() as patched:
        # torch's arithmetic cannot run: what passes was computed by the loop
        patched.setattr(torch_rmsprop, "_single_tensor_rmsprop", None)
        ours = _train(LoopRMSprop, settings)
    _assert_same(ours, theirs)


def test_under_a_float64_default_the_step_counter_is_float64_as_torchs() -> None:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ours = _train(LoopRMSprop, {}, torch.float64)
        theirs = _train(torch.optim.RMSprop, {}, torch.float64)
    finally:
        torch.set_default_dtype(previous)
    _assert_same(ours, theirs)
    assert ours[1]["state"][0]["step"].dtype == torch.float64


@pytest.mark.parametrize("settings", [{}, SETTINGS[3]], ids=["plain", "momentum-centered-decay"])
def test_the_loop_continues_a_state_torch_saved(
    settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run saved before dlrun had the loop resumes: 6 steps by torch, then 6 by the loop,
    give torch's 12."""
    reference = _train(torch.optim.RMSprop, settings)
    params = _params(0)
    steps = _gradients(params, 12)
    first = torch.optim.RMSprop(params, lr=0.01, alpha=0.9, eps=1e-7, **settings)
    for _ in range(6):
        next(steps)
        eager.step(first)
    saved = first.state_dict()
    resumed = LoopRMSprop(params, lr=0.01, alpha=0.9, eps=1e-7, **settings)
    resumed.load_state_dict(saved)
    monkeypatch.setattr(torch_rmsprop, "_single_tensor_rmsprop", None)
    for _ in steps:
        eager.step(resumed)
    _assert_same((params, resumed.state_dict()), reference)


def test_settings_the_loop_does_not_cover_are_stepped_by_torch() -> None:
    """``maximize`` is one (the loop would descend where torch's step ascends); a closure is
    another, and its loss is returned as torch returns it."""
    ours, _ = _train(LoopRMSprop, {"maximize": True})
    theirs, _ = _train(torch.optim.RMSprop, {"maximize": True})
    plain, _ = _train(LoopRMSprop, {})
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert not torch.equal(ours[1], plain[1])
    param = torch.nn.Parameter(torch.ones(2))
    param.grad = torch.ones(2)
    assert float(LoopRMSprop([param]).step(lambda: torch.tensor(3.0))) == 3.0


def test_the_rmsprop_optimizer_is_the_loop() -> None:
    spec = OPTIMIZERS.get("rmsprop")(config_from_data(tiny_config(optimizer="rmsprop")).optimizer)
    assert type(spec.create(_params(0))) is LoopRMSprop
