"""How much memory a model takes, and whether the machine has it, decided before allocating.

Models are planned on torch's ``meta`` device first: every layer is built with its real shapes
but no storage, so a ``dense: {units: 1000000000000}`` layer costs nothing until it is refused
here with its size in bytes, instead of ending in an allocator traceback.

The limit is the memory free on the device the model would live on: for CUDA what
``torch.cuda.mem_get_info`` reports free; for the CPU (and MPS, whose memory is the host's)
``MemAvailable`` from ``/proc/meminfo`` (what the kernel can hand out without swapping), capped
by a cgroup v2 limit when the process runs in one, else the physical memory. Training needs more
than the weights: :data:`TRAINING_COPIES` counts each trainable weight four times (the weight,
its gradient and the two moments Adam keeps, the most any registered optimizer keeps). That is a
lower bound, since activations come on top, so a model refused here could never train.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from dlrun.errors import ConfigIssue

TRAINING_COPIES = 4  # weight + gradient + two optimizer moments, per trainable weight


def weight_bytes(module: nn.Module) -> int:
    """Bytes of every parameter and buffer (meta tensors report their size, hold none)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def training_bytes(module: nn.Module) -> int:
    """A lower bound on training memory: weights, plus gradient and optimizer moments."""
    trainable = sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)
    return weight_bytes(module) + (TRAINING_COPIES - 1) * trainable


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom() -> int | None:
    """What a cgroup v2 memory limit still allows this process, if one is set."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((root / "memory.current").read_text().strip())
    except (OSError, ValueError):
        return None


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device``, or ``None`` when it cannot be known (then nothing is refused)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type not in ("cpu", "mps"):
        return None
    host = _meminfo_available() or _physical_memory()
    cgroup = _cgroup_headroom()
    known = [value for value in (host, cgroup) if value is not None]
    return min(known) if known else None


def human(size: int) -> str:
    """``16000000000000`` -> ``14.6 TiB``."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def too_big(
    params: int, weights: int, needed: int, device: torch.device, path: str
) -> list[ConfigIssue]:
    """One issue when ``needed`` bytes exceed what ``device`` has free, else none.

    ``weights`` is the model's own size; ``needed`` is what the use at hand takes (the weights
    alone to create the model, :func:`training_bytes` to train it).
    """
    available = available_bytes(device)
    if available is None or needed <= available:
        return []
    size = f"its {params:,} parameters take {weights:,} bytes ({human(weights)})"
    if needed > weights:
        size += f", and training needs at least {needed:,} bytes ({human(needed)}) with "
        size += "gradients and optimizer state"
    return [
        ConfigIssue(
            path,
            f"the model cannot fit: {size}, but {device.type} has {available:,} bytes "
            f"({human(available)}) available; make this layer smaller",
        )
    ]


def largest(sizes: Sequence[int]) -> int:
    """Index of the largest entry (the layer to shrink first)."""
    return max(range(len(sizes)), key=lambda i: sizes[i]) if sizes else 0
