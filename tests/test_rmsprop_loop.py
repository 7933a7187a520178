"""dlrun's RMSprop loop gives torch's RMSprop numbers and state, bit for bit."""

from __future__ import annotations

from typing import Any

import pytest
import torch

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


def _params(seed: int) -> list[torch.nn.Parameter]:
    """A wide kernel kept transposed (as dlrun's dense layers keep one), a bias, a matrix."""
    gen = torch.Generator().manual_seed(seed)
    kernel = torch.randn(300, 16, generator=gen)
    return [
        torch.nn.Parameter(kernel.t()),  # non-contiguous
        torch.nn.Parameter(torch.randn(16, generator=gen)),
        torch.nn.Parameter(torch.randn(4, 16, generator=gen)),
    ]


def _train(kind: type[torch.optim.RMSprop], settings: dict[str, Any]) -> Any:
    params = _params(0)
    optimizer = kind(params, lr=0.01, alpha=0.9, eps=1e-7, **settings)
    gen = torch.Generator().manual_seed(1)
    for step in range(12):
        for index, param in enumerate(params):
            # the matrix gets no gradient on odd steps, as a frozen or unused layer would not
            skip = index == 2 and step % 2
            param.grad = None if skip else torch.randn(param.shape, generator=gen) * 1e-3
        eager.step(optimizer)
    return params, optimizer.state_dict()


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(s) or "plain")
def test_the_loop_gives_torchs_numbers_and_state_bit_for_bit(settings: dict[str, Any]) -> None:
    ours, our_state = _train(LoopRMSprop, settings)
    theirs, their_state = _train(torch.optim.RMSprop, settings)
    for mine, other in zip(ours, theirs, strict=True):
        assert torch.equal(mine, other)
    assert our_state["param_groups"] == their_state["param_groups"]
    for key, state in their_state["state"].items():
        assert our_state["state"][key].keys() == state.keys()
        for name, value in state.items():
            mine = our_state["state"][key][name]
            assert mine.dtype == value.dtype and torch.equal(mine, value), name


def test_settings_the_loop_does_not_cover_are_stepped_by_torch() -> None:
    """``maximize`` is one; the loop would descend where torch's step ascends."""
    ours, _ = _train(LoopRMSprop, {"maximize": True})
    theirs, _ = _train(torch.optim.RMSprop, {"maximize": True})
    plain, _ = _train(LoopRMSprop, {})
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert not torch.equal(ours[1], plain[1])


def test_the_rmsprop_optimizer_is_the_loop_and_resumes_from_torchs_state() -> None:
    spec = OPTIMIZERS.get("rmsprop")(config_from_data(tiny_config(optimizer="rmsprop")).optimizer)
    params = _params(0)
    optimizer = spec.create(params)
    assert type(optimizer) is LoopRMSprop
    _, their_state = _train(torch.optim.RMSprop, {})
    optimizer.load_state_dict(their_state)  # a run saved before the loop existed resumes
    assert torch.equal(optimizer.state_dict()["state"][0]["square_avg"],
                       their_state["state"][0]["square_avg"])  # fmt: skip
