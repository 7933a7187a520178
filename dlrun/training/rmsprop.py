"""The two RMSprop forms dlrun steps itself, as plain loops over the parameters.

:class:`LoopRMSprop` is torch's RMSprop (``sqrt(v) + epsilon``, the books' Keras 2 form)
with a step that does torch's arithmetic, op for op, without torch's per-step bookkeeping:
on the CPU torch's step spends more time gathering lists and checking options than updating
small layers (357 µs against 220 µs for the IMDB network's six tensors on this 2-core
machine). Its results and its state are torch's, bit for bit (tested); any setting the loop
does not cover (another device, ``foreach``, ``maximize``, complex or differentiable
parameters, sparse gradients, a tensor learning rate, a closure) is stepped by torch's own code.
:class:`EpsilonInSqrtRMSprop` is Keras 3's form (``sqrt(v + epsilon)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from dlrun.training import eager


class LoopRMSprop(torch.optim.RMSprop):
    """torch's RMSprop, stepped by a loop over the parameters where it can (see the module)."""

    def step(self, closure: Any = None) -> Any:
        if closure is not None or not all(_plain(group) for group in self.param_groups):
            # torch's own step, with gradients on where it records them (``differentiable``)
            with torch.set_grad_enabled(bool(self.defaults["differentiable"])):
                return eager.uncompiled(torch.optim.RMSprop, "step")(self, closure)
        with torch.no_grad():
            for group in self.param_groups:
                _rmsprop_loop(self.state, group)
        return None


def _plain(group: dict[str, Any]) -> bool:
    """Whether the loop computes this group exactly as torch's single-tensor RMSprop does."""
    options = ("foreach", "maximize", "differentiable", "capturable")
    return (
        not any(group[name] for name in options)
        and isinstance(group["lr"], float)
        and all(p.device.type == "cpu" and p.dtype.is_floating_point and not p.is_complex()
                and (p.grad is None or not p.grad.is_sparse) for p in group["params"])
    )  # fmt: skip


def _rmsprop_loop(state: dict[torch.Tensor, dict[str, Any]], group: dict[str, Any]) -> None:
    """One update of ``group``: the same ops in the same order as torch's
    ``_single_tensor_rmsprop``, and its state kept as torch keeps it (``step`` a tensor)."""
    lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
    momentum, centered, decay = group["momentum"], group["centered"], group["weight_decay"]
    for param in group["params"]:
        grad = param.grad
        if grad is None:
            continue
        own = state[param]
        if not own:
            float64 = torch.get_default_dtype() == torch.float64  # torch's counter: float32 else
            own["step"] = torch.zeros((), dtype=torch.float64 if float64 else torch.float32)
            own["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if momentum > 0:
                own["momentum_buffer"] = torch.zeros_like(
                    param, memory_format=torch.preserve_format
                )
            if centered:
                own["grad_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        own["step"] += 1
        if decay != 0:
            grad = grad.add(param, alpha=decay)
        square_avg = own["square_avg"]
        square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        if centered:
            grad_avg = own["grad_avg"]
            grad_avg.lerp_(grad, 1 - alpha)
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        avg = avg.add_(eps)
        if momentum > 0:
            buffer = own["momentum_buffer"]
            buffer.mul_(momentum).addcdiv_(grad, avg)
            param.add_(buffer, alpha=-lr)
        else:
            param.addcdiv_(grad, avg, value=-lr)


class EpsilonInSqrtRMSprop(torch.optim.Optimizer):
    """RMSprop as Keras 3 computes it: ``p -= lr * g / sqrt(v - mean_g^2 [centered] + eps)``,
    momentum accumulating the increments; weight decay is added to the gradient as in torch."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        alpha: float,
        eps: float,
        momentum: float,
        centered: bool,
        weight_decay: float,
    ) -> None:
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "momentum": momentum,
                    "centered": centered, "weight_decay": weight_decay}  # fmt: skip
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            rho, eps = group["alpha"], group["eps"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if group["weight_decay"]:
                    grad = grad.add(param, alpha=group["weight_decay"])
                state = self.state[param]
                if not state:
                    state["square_avg"] = torch.zeros_like(param)
                    state["grad_avg"] = torch.zeros_like(param)
                    state["momentum_buffer"] = torch.zeros_like(param)
                square_avg = state["square_avg"].mul_(rho).addcmul_(grad, grad, value=1 - rho)
                denominator = square_avg.add(eps)
                if group["centered"]:
                    grad_avg = state["grad_avg"].mul_(rho).add_(grad, alpha=1 - rho)
                    denominator.addcmul_(grad_avg, grad_avg, value=-1)
                increment = grad.mul(group["lr"]).div_(denominator.sqrt_())
                if group["momentum"] > 0:
                    buffer = state["momentum_buffer"].mul_(group["momentum"]).add_(increment)
                    param.sub_(buffer)
                else:
                    param.sub_(increment)
