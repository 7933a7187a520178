"""A variational code (Beginners ch. 9, DLwP 8.4): a layer whose output is drawn, not computed.

Two dense heads give each sample a mean and a log-variance; the output is one draw
``z = mean + exp(log_scale * log_var) * eps`` with ``eps ~ N(0, 1)`` (the reparameterisation:
the draw stays differentiable in the mean and the variance). ``log_scale`` is 0.5, the standard
draw, in Beginners' code; DLwP 8.4's code draws with ``exp(log_var)``, 1.0. The layer adds the
divergence of the Gaussian ``(mean, exp(log_var))`` from ``N(0, 1)`` to the loss,
``-0.5 * sum(1 + log_var - mean**2 - exp(log_var))`` per sample times ``divergence_weight``
(1 in Beginners' MNIST code; DLwP's ``-5e-4 * mean(...)`` over two values is 5e-4 of it), as
Keras's ``add_loss`` adds it: to the training loss and to every evaluation's. With a
``log_scale`` other than 0.5 the draw's variance is ``exp(2 * log_scale * log_var)``, not the
``exp(log_var)`` the divergence is taken of: DLwP's code has this mismatch, kept on purpose
to reproduce it. It draws in evaluation too, as the books' ``Lambda`` layers do, so
``val_loss`` is scored on drawn codes as Keras scores it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from dlrun.config.base import StrictModel
from dlrun.models.initializers import init_kernel_bias
from dlrun.models.layers import LAYERS
from dlrun.models.layers import BuiltLayer
from dlrun.models.layers import Layer
from dlrun.models.layers import Shape


class GaussianCode(nn.Module):
    """The two heads and the draw. After a forward, :meth:`take_added_loss` gives the batch's
    mean divergence once, and ``mean`` holds the batch's means (what ``dlrun predict`` and the
    code-space figure show: the book plots the means)."""

    def __init__(
        self, mean: nn.Linear, log_var: nn.Linear, log_scale: float, divergence_weight: float
    ) -> None:
        super().__init__()
        self.mean_head = mean
        self.log_var_head = log_var
        self.log_scale = log_scale
        self.divergence_weight = divergence_weight
        self.mean: torch.Tensor | None = None
        self._divergence: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, log_var = self.mean_head(x), self.log_var_head(x)
        per_sample = -0.5 * (1 + log_var - mean.square() - log_var.exp()).sum(dim=-1)
        self._divergence = self.divergence_weight * per_sample.mean()
        self.mean = mean.detach()
        return mean + torch.exp(self.log_scale * log_var) * torch.randn_like(mean)

    def take_added_loss(self) -> torch.Tensor | None:
        """The last forward's divergence, handed over once (no graph is kept past a step)."""
        divergence, self._divergence = self._divergence, None
        return divergence


@LAYERS.register("gaussian_sampling")
class GaussianSampling(Layer):
    """Keras builds it from two ``Dense(units)`` layers and a ``Lambda``: the parameter count is
    theirs, ``2 * (inputs * units + units)``."""

    keras_name = "GaussianSampling"
    draws_code = True
    vmappable = False  # the forward keeps its divergence on the module

    class Config(StrictModel):
        positional: ClassVar[str] = "units"
        units: int = Field(gt=0, description="the code's size (the book's latent_dim)")
        log_scale: float = Field(default=0.5, gt=0, description="z = mean + exp(log_scale * "
                                 "log_var) * eps; DLwP 8.4's code: 1.0")  # fmt: skip
        divergence_weight: float = Field(default=1.0, ge=0, description="the divergence's "
                                         "weight in the loss; DLwP 8.4's code: 5e-4 for its "
                                         "2-value code (1e-3 / units)")  # fmt: skip

    config: Config

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        units = self.config.units
        heads = [nn.Linear(input_shape[-1], units) for _ in range(2)]
        if keras_init:
            for head in heads:
                init_kernel_bias(head.weight, head.bias, "glorot_uniform", "zeros")
        mean, log_var = heads
        code = GaussianCode(mean, log_var, self.config.log_scale, self.config.divergence_weight)
        return BuiltLayer(code, (*input_shape[:-1], units))
