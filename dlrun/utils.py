"""Seeding and device selection."""

from __future__ import annotations

import random
from functools import cache

import numpy as np
import torch

from dlrun.errors import DlrunError


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a generator for data shuffling.

    On the CPU this makes a run repeat bit for bit (with the vector math warmed up first, see
    :func:`warm_vector_math`). On CUDA some kernels stay nondeterministic unless
    ``torch.use_deterministic_algorithms(True)`` is set, which costs speed.
    """
    warm_vector_math(torch.get_num_threads())
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@cache
def warm_vector_math(threads: int) -> None:
    """Run one of torch's vector math functions on every CPU thread, once per thread count.

    In about one process in five, the first such call made by several threads at once rounded
    the main thread's share differently (RMSprop's square root in the first step, up to 1e-6
    on the weights), so two runs of one config differed from there on. After one call that
    every thread takes part in, runs repeat; ``bench/repeatability.py`` measures it."""
    torch.rand(threads * 65536).exp_()


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
