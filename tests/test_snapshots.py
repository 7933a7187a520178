"""The resume file: plain data through a restricted pickle, tensors through torch.save."""

from __future__ import annotations

import io
import math
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from dlrun.training.snapshots import dump_state
from dlrun.training.snapshots import load_state


def test_a_state_comes_back_with_its_types_keys_and_shared_tensors(tmp_path: Path) -> None:
    weight = torch.arange(6.0).reshape(2, 3)
    generator = torch.Generator().manual_seed(1).get_state()
    history = [{"loss": 1.0 / (i + 1), "val_loss": 2.0} for i in range(300)] + [{"loss": math.nan}]
    payload = {
        "history": history,
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.1}]},
        "python_rng": (3, tuple(range(625)), None),
        "model": OrderedDict(w=weight),
        "best": {"w": weight},  # the same tensor twice is stored once and shared again
        "generator": generator,
    }
    dump_state(payload, tmp_path / "state.pt")
    back = load_state(tmp_path / "state.pt")
    assert back["history"][:300] == history[:300] and math.isnan(back["history"][300]["loss"])
    assert list(back["optimizer"]["state"]) == [0]  # int keys stay ints (torch matches on them)
    assert back["python_rng"] == (3, tuple(range(625)), None)
    assert (
        isinstance(back["model"], OrderedDict)
        and torch.equal(back["model"]["w"], weight)
        and back["model"]["w"] is back["best"]["w"]
    )
    assert back["generator"].dtype == torch.uint8
    assert torch.equal(back["generator"], generator)


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran on load",))


def test_a_state_that_would_run_code_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    buffer = io.BytesIO()
    pickle.dump({"history": [Payload()]}, buffer)
    plain = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
    torch.save({"plain": plain, "tensors": []}, tmp_path / "state.pt")
    with pytest.raises(pickle.UnpicklingError, match=r"builtins\.print is not plain data"):
        load_state(tmp_path / "state.pt")
    assert "code ran" not in capsys.readouterr().out
