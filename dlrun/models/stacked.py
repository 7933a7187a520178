"""K copies of one network as one: parameters stacked on a leading fold axis.

``torch.func.stack_module_state`` stacks the K models' parameters (named as in one model);
layers with a direct stacked form (dense: one batched matmul) use it, and any other network
runs under ``torch.func.vmap`` over ``functional_call``, which covers convolutions too. Layers
that update buffers in place (batch norm) cannot be stacked: the config check names them.
"""

from __future__ import annotations

import torch
from torch.func import functional_call
from torch.func import stack_module_state
from torch.func import vmap

from dlrun.models.build import BuiltModel


class StackedNetwork:
    """The K members' parameters with a leading fold axis, and a forward pass over them."""

    def __init__(self, members: list[BuiltModel], use_vmap: bool = False) -> None:
        self.members = members
        self.base = members[0].network  # structure (and dropout modules) for the forward pass
        params, buffers = stack_module_state([m.network for m in members])
        self.params: dict[str, torch.Tensor] = params
        self.buffers: dict[str, torch.Tensor] = buffers
        direct = [
            layer.stacked_forward(module, f"{index}.")
            for index, ((_, layer), module) in enumerate(zip(members[0].layers, self.base, strict=True))
        ]  # fmt: skip
        self.direct = None if use_vmap or any(f is None for f in direct) else direct
        self.vmapped = vmap(self._member_forward, randomness="different")

    def _member_forward(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        out: torch.Tensor = functional_call(self.base, (params, buffers), (x,))
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (K, batch, ...) -> (K, batch, ...)."""
        if self.direct is None:
            return self.vmapped(self.params, self.buffers, x)
        for forward in self.direct:
            assert forward is not None
            x = forward(x, self.params)
        return x

    def train(self, mode: bool = True) -> None:
        if self.base.training is not mode:  # setting it walks every module
            self.base.train(mode)

    def write_back(self) -> None:
        """Copy each fold's slice into its own model (for evaluation, checkpoints, reports)."""
        with torch.no_grad():
            for k, member in enumerate(self.members):
                state = {name: t[k] for name, t in {**self.params, **self.buffers}.items()}
                member.network.load_state_dict(state)
