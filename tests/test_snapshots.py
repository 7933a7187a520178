"""The resume file: plain data through a restricted pickle, tensors through torch.save."""

from __future__ import annotations

import io
import math
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.reporting.files import TimeShare
from dlrun.training.snapshots import dump_state
from dlrun.training.snapshots import load_state
from tests.conftest import tiny_config


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


def test_a_write_is_due_again_after_its_cost_divided_by_its_share() -> None:
    clock = [100.0]
    budget = TimeShare(0.02, lambda: clock[0])
    assert budget.due()  # never written yet
    with budget.timed():
        clock[0] += 0.004  # a 4 ms write may come again 200 ms later
    clock[0] += 0.195
    assert not budget.due()
    clock[0] += 0.006
    assert budget.due()


@pytest.mark.parametrize(
    ("every", "expected"), [("auto", [1, 51, 101, 120]), (1, list(range(1, 121)))]
)
def test_resume_states_follow_checkpoint_every(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, every: object, expected: list[int]
) -> None:
    """``auto`` skips saves that would cost more than 2% of the time; an integer does not.
    Either way the last epoch is saved, so a finished fit resumes from its end. The budget's
    clock ticks one second per reading: a save (two readings) costs one second, so the next is
    due 50 seconds, here 50 epochs of one reading each, later."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(
        "dlrun.training.snapshots.TimeShare", lambda share: TimeShare(share, lambda: next(ticks))
    )
    saved: list[int] = []

    def counted(payload: dict[str, object], path: Path) -> None:
        saved.append(int(payload["epoch"]))  # type: ignore[call-overload]
        dump_state(payload, path)

    monkeypatch.setattr("dlrun.training.snapshots.dump_state", counted)
    changes = {"train": {"epochs": 120, "batch_size": 64, "checkpoint_every": every}}
    result = run_experiment(config_from_data(tiny_config(**changes)), tmp_path / "runs")
    assert saved == expected
    assert load_state(result.run_dir / "resume-fit.pt")["epoch"] == 120
