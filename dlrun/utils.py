"""Seeding and device selection."""

from __future__ import annotations

import random

import numpy as np
import torch

from dlrun.errors import DlrunError


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a generator for data shuffling.

    On the CPU this makes a run repeat bit for bit, except a rare second set of roundings seen
    with two threads (README, "Resume"). On CUDA some kernels stay nondeterministic unless
    ``torch.use_deterministic_algorithms(True)`` is set, which costs speed.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an unavailable explicit choice is an error."""
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_ok else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DlrunError(
                f"train.device is {name} but CUDA is not available here; use device: auto or cpu"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DlrunError(
                f"train.device is {name} but only {torch.cuda.device_count()} CUDA devices exist"
            )
    if name == "mps" and not mps_ok:
        raise DlrunError(
            "train.device is mps but MPS is not available here; use device: auto or cpu"
        )
    return torch.device(name)
