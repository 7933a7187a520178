"""torch optimizers called as eager code, without the wrappers that load torch's compiler.

torch marks an optimizer's ``step``, ``add_param_group``, ``state_dict`` and
``load_state_dict`` so that compiled code never traces them, and each mark imports the
compiler (``torch._dynamo``: 1.2 s of a process on this 2-core CPU) the first time it runs.
dlrun compiles nothing, so it calls the methods themselves: their results are the same, and a
run never loads the compiler. ``step`` also skips its profiler label and step hooks (10 µs a
step: 24 against 14 for the book's 2-3-2 network); an optimizer given hooks, or a ``step`` of
its own (as a learning-rate scheduler patches in), is stepped through torch's wrapper.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import torch
from torch.optim import optimizer as torch_optimizer

_METHODS: dict[tuple[type[torch.optim.Optimizer], str], Callable[..., Any]] = {}


def uncompiled(kind: type[torch.optim.Optimizer], name: str) -> Callable[..., Any]:
    """``kind``'s method ``name`` under torch's wrappers (one not marked with ``__wrapped__``
    is returned as it is, and then works as before, only slower)."""
    method = _METHODS.get((kind, name))
    if method is None:
        method = _METHODS[kind, name] = inspect.unwrap(getattr(kind, name))
    return method


def step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``, in eager mode (gradients off, as torch's wrapper sets them)."""
    hooked = (
        "step" in vars(optimizer)
        or optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
        or torch_optimizer._global_optimizer_pre_hooks
        or torch_optimizer._global_optimizer_post_hooks
    )
    if hooked or optimizer.defaults.get("differentiable"):
        optimizer.step()
        return
    with torch.no_grad():
        uncompiled(type(optimizer), "step")(optimizer)


def state_of(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer.state_dict()``."""
    state: dict[str, Any] = uncompiled(type(optimizer), "state_dict")(optimizer)
    return state


def load_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``."""
    uncompiled(type(optimizer), "load_state_dict")(optimizer, state)


@contextlib.contextmanager
def constructing() -> Iterator[None]:
    """While optimizers are built: ``add_param_group``, which their constructor calls, kept
    as its own uncompiled form (what torch's mark caches on it after loading the compiler).
    The mark is taken off afterwards, so code compiled later in the process sees torch's."""
    method = getattr(torch.optim.Optimizer.add_param_group, "__wrapped__", None)
    marked = (
        method is not None
        and "torch._dynamo" not in sys.modules
        and not hasattr(method, "__dynamo_disable")
    )
    if marked:
        setattr(method, "__dynamo_disable", method)  # the name torch reads
    try:
        yield
    finally:
        if marked and getattr(method, "__dynamo_disable", None) is method:
            delattr(method, "__dynamo_disable")
