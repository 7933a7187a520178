"""Per-epoch training state on disk, so a killed or interrupted fit resumes bit for bit.

After an epoch (every ``train.checkpoint_every`` epochs, or with ``auto`` whenever writing
takes at most 2% of the time since the last write) and when training stops, one file is replaced
atomically with everything the next epoch depends on: the task (weights, optimizer states,
learning rates), every callback's state (early-stopping counters and best weights, plateau
counters, metric rows), the batch source (shuffling generator and position), the global random
generators (Python, NumPy, torch CPU and CUDA: dropout draws from them), the epoch, the history
and the status. On the CPU the resumed fit then computes exactly what the uninterrupted one
would have.
"""

from __future__ import annotations

import collections
import io
import pickle
import random
from pathlib import Path
from typing import Any
from typing import Literal

import numpy as np
import torch

from dlrun.errors import RunError
from dlrun.reporting.files import TimeShare
from dlrun.reporting.files import atomic_path
from dlrun.training.batches import BatchSource
from dlrun.training.callbacks import Callback
from dlrun.training.state import TrainState
from dlrun.training.status import RunStatus

FORMAT = 2
SAVE_SHARE = 0.02  # ``auto``: the resume state may take this share of the training time


def tensor_slot(index: int) -> int:
    """Stands for the tensor at ``index`` of the file's tensor list (swapped in on load)."""
    return index


def dump_state(payload: dict[str, Any], path: Path) -> None:
    """Plain data through the C pickler, tensors through ``torch.save``.

    After many epochs the state holds thousands of small objects (histories, metric rows);
    ``torch.save`` visits each one in Python, the C pickler with a dispatch table calls back
    only for tensors, which is ten times faster.
    """
    tensors: list[torch.Tensor] = []

    def slot(tensor: torch.Tensor) -> tuple[Any, tuple[int]]:
        tensors.append(tensor)
        return tensor_slot, (len(tensors) - 1,)

    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {torch.Tensor: slot, torch.nn.Parameter: slot}
    pickler.dump(payload)
    plain = torch.frombuffer(bytearray(buffer.getbuffer()), dtype=torch.uint8)
    with open(path, "wb") as handle:  # a file object: a full disk raises ENOSPC
        torch.save({"plain": plain, "tensors": tensors}, handle)


class _PlainUnpickler(pickle.Unpickler):
    """Loads plain data and tensor slots only: no other code runs on load."""

    def __init__(self, data: bytes, tensors: list[torch.Tensor]) -> None:
        super().__init__(io.BytesIO(data))
        self.tensors = tensors

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == (__name__, "tensor_slot"):
            return self.tensors.__getitem__
        if (module, name) == ("collections", "OrderedDict"):  # what state_dict() returns
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def load_state(path: Path) -> dict[str, Any]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if "plain" not in saved:
        return dict(saved)  # an older format: the caller names it
    return dict(_PlainUnpickler(saved["plain"].numpy().tobytes(), saved["tensors"]).load())


def rng_states() -> dict[str, Any]:
    kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": [kind, np.asarray(keys).tolist(), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    kind, keys, *rest = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def read_resume_state(path: Path, epochs: int) -> dict[str, Any]:
    """The saved fit at ``path``, refused if it cannot be read, comes from another format, or
    has trained more than the ``epochs`` it would now be continued to."""
    try:
        saved = load_state(path)
    except Exception as exc:  # torch raises many types for a damaged file
        reason = str(exc) or type(exc).__name__  # an empty file's EOFError says nothing
        raise RunError(f"cannot read the resume state {path} ({reason}); it is damaged: delete "
                       "it to restart that fit from its first epoch, or start a new run") from None  # fmt: skip
    if saved.get("format") != FORMAT:
        raise RunError(f"{path} was written by another dlrun version; start a new run")
    if int(saved["epoch"]) > epochs:
        raise RunError(
            f"{path} holds {saved['epoch']} trained epochs; train.epochs={epochs} "
            "cannot take them back (start a new run instead)"
        )
    return saved


class Snapshots:
    """One fit's resume file (for example ``resume-fit.pt`` in its run directory)."""

    def __init__(self, path: Path, every: int | Literal["auto"] = 1) -> None:
        """Save every ``every`` epochs; ``auto`` saves while that costs at most ``SAVE_SHARE``
        of the time (every epoch of a second or more; a few times a second for epochs of
        milliseconds, where a save would otherwise cost as much as the epoch)."""
        self.path = path
        self.every = every
        self.budget = TimeShare(SAVE_SHARE)

    def _due(self, state: TrainState) -> bool:
        if state.should_stop or state.epoch == state.epochs:
            return True
        return self.budget.due() if self.every == "auto" else state.epoch % self.every == 0

    def save(self, state: TrainState, source: BatchSource, callbacks: Callback) -> None:
        if not self._due(state) or state.status is RunStatus.DIVERGED:
            return  # resuming a diverged fit would only diverge again
        with self.budget.timed():  # all of a save: gathering the state costs too
            payload = {
                "format": FORMAT,
                "epoch": state.epoch,
                "status": state.status.value,
                "stop_reason": state.stop_reason,
                "history": state.history,
                "task": state.task.state_dict(),
                "callbacks": callbacks.state_dict(),
                "source": source.state_dict(),
                "rng": rng_states(),
            }
            with atomic_path(self.path, durable=False) as tmp:
                dump_state(payload, tmp)

    def restore(self, state: TrainState, source: BatchSource, callbacks: Callback) -> bool:
        """Put the fit back where the file left it; ``False`` when there is no file yet."""
        if not self.path.is_file():
            return False
        saved = read_resume_state(self.path, state.epochs)
        state.task.load_state_dict(saved["task"])
        callbacks.load_state_dict(saved["callbacks"])
        source.load_state_dict(saved["source"])
        set_rng_states(saved["rng"])
        state.epoch = state.resumed_from = int(saved["epoch"])
        state.history = list(saved["history"])
        status = RunStatus(saved["status"])
        if status is RunStatus.STOPPED_EARLY:  # a callback ended it: that decision stands
            state.stop(status, saved["stop_reason"])
        return True

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
