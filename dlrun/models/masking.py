"""Keras's sequence masks: padding steps that recurrent layers skip.

An ``embedding`` with ``mask_zero: true`` marks every step whose token id is 0 (padding). As in
Keras, the mask travels with the tensor through the layers that carry it (dropout, activations,
dense, ...: their ``carries_mask``), is read by the layers that use it (recurrent layers skip the
masked steps, global average pooling leaves them out of the mean) and is dropped by any other
layer (Keras 3 drops it there too, with a warning).

Only networks that make a mask pay for it: :class:`MaskedSequential` replaces ``nn.Sequential``
just when a layer makes one, and its state dict keys are the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MaskAware(nn.Module):
    """A module that makes, reads or forwards a mask of shape (batch, steps) (True: keep)."""

    makes_mask: bool = False  # set by layers that create a mask from their inputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_masked(x, None)[0]

    def forward_masked(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The output and the mask that goes with it (``None``: no mask from here on)."""
        raise NotImplementedError


class MaskedSequential(nn.Sequential):
    """``nn.Sequential`` that hands a mask from layer to layer, as Keras does."""

    def __init__(self, modules: Sequence[nn.Module], carries: Sequence[bool]) -> None:
        super().__init__(*modules)
        self.carries = tuple(carries)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask: torch.Tensor | None = None
        for module, carries in zip(self, self.carries, strict=True):
            if isinstance(module, MaskAware):
                x, mask = module.forward_masked(x, mask)
            else:
                x = module(x)
                mask = mask if carries else None
        return x


def sequential(modules: Sequence[nn.Module], carries: Sequence[bool]) -> nn.Sequential:
    """A masked network when some module makes a mask, else a plain ``nn.Sequential``."""
    if any(isinstance(m, MaskAware) and m.makes_mask for m in modules):
        return MaskedSequential(modules, carries)
    return nn.Sequential(*modules)
