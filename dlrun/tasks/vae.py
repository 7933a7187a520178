"""Variational autoencoders (Beginners ch. 9, DLwP 8.4): an autoencoder whose code is drawn
from a Gaussian it learns (a ``gaussian_sampling`` layer), so that codes near it decode to new
samples.

The loss is the books': the reconstruction loss summed over each sample's values (Beginners'
code multiplies Keras's per-value mean by ``original_dim``; ``reconstruction: mean`` keeps the
mean, as DLwP's code does), plus the code layer's weighted divergence from ``N(0, 1)``, averaged
over the batch. Each scored split also comes with a grid of codes chosen by the task, decoded:
for a code of two values, evenly spaced over ``[-grid_range, grid_range]`` in both (Beginners'
latent traversals) or at N(0, 1)'s quantiles 0.05 to 0.95 (DLwP's); for a code of any other
size, draws from ``N(0, 1)`` with a fixed seed. The first value grows left to right and the
second falls top to bottom, as in Beginners' figures (DLwP's figure 8.14 has the second rising).
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import TYPE_CHECKING
from typing import Annotated
from typing import ClassVar

import torch
from pydantic import Field
from pydantic import model_validator

from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue
from dlrun.models.build import instantiate_layers
from dlrun.models.variational import GaussianCode
from dlrun.models.variational import GaussianSampling
from dlrun.tasks.autoencoder import Autoencoder
from dlrun.tasks.base import TASKS
from dlrun.training.metrics import Generated
from dlrun.training.metrics import Reconstructions

if TYPE_CHECKING:
    from dlrun.config.schema import ExperimentConfig
    from dlrun.tasks.base import StepResult
    from dlrun.training.batches import Fields
    from dlrun.training.metrics import Predictions

GRID_SEED = 0  # the draws for a wide code: the same figure at every evaluation of a run
QUANTILES = (0.05, 0.95)  # DLwP 8.4's grid: N(0, 1) quantiles from 5 % to 95 %


class Reconstruction(str, Enum):
    """How a sample's reconstruction loss is taken over its values."""

    SUM = "sum"  # Beginners ch. 9's code: original_dim * the per-value mean
    MEAN = "mean"  # DLwP 8.4's code: Keras's per-value mean


class GridSpacing(str, Enum):
    """Where a two-value code's grid puts its codes."""

    EVEN = "even"  # evenly over [-grid_range, grid_range] (Beginners ch. 9)
    NORMAL_QUANTILES = "normal_quantiles"  # at N(0, 1)'s quantiles 0.05 .. 0.95 (DLwP 8.4)


@TASKS.register("vae")
class VariationalAutoencoder(Autoencoder):
    """An autoencoder through ``model.layers[code_layer]``, a layer that draws its output."""

    class Config(Autoencoder.Config):
        grid: int = Field(default=15, ge=1, le=50, description="generated samples per side")
        grid_range: float = Field(default=4.0, gt=0, description="an even grid spans "
                                  "-grid_range .. grid_range in both values")  # fmt: skip
        # written as their values: ``grid_spacing: normal_quantiles``
        grid_spacing: Annotated[GridSpacing, Field(strict=False)] = Field(
            default=GridSpacing.EVEN,
            description="a 2-value code's grid: even (over grid_range) or normal_quantiles "
            "(N(0, 1)'s quantiles 0.05 to 0.95, DLwP 8.4)",
        )
        reconstruction: Annotated[Reconstruction, Field(strict=False)] = Field(
            default=Reconstruction.SUM,
            description="the loss of each sample: sum over its values (Beginners ch. 9) or "
            "mean (DLwP 8.4)",
        )

        @model_validator(mode="after")
        def _range_of_an_even_grid(self) -> VariationalAutoencoder.Config:
            if "grid_range" in self.model_fields_set and self.grid_spacing is not GridSpacing.EVEN:
                raise ValueError("grid_range spans an even grid; normal_quantiles sets its own")
            return self

    config: Config
    analyses: ClassVar[tuple[str, ...]] = (*Autoencoder.analyses, "generated")

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> list[ConfigIssue]:
        issues = super().check_config(cfg)
        assert isinstance(cfg.task, cls.Config)
        index = cfg.task.code_layer
        if index >= len(cfg.model.layers):
            return issues
        name, layer = instantiate_layers(cfg.model.layers)[index]
        if not layer.draws_code:
            issues.append(ConfigIssue(f"model.layers[{index}].{name}", "is the code of a vae, "
                                      "which must be drawn: make it a gaussian_sampling layer "
                                      "(or use task: autoencoder)"))  # fmt: skip
        return issues

    @classmethod
    def loss_description(cls, cfg: ExperimentConfig) -> str | None:
        assert isinstance(cfg.task, cls.Config)
        name = cfg.loss.name if cfg.loss is not None else "the loss"
        taken = "summed" if cfg.task.reconstruction is Reconstruction.SUM else "averaged"
        code = instantiate_layers(cfg.model.layers)[cfg.task.code_layer][1]
        weight = code.config.divergence_weight if isinstance(code, GaussianSampling) else 1.0
        times = "" if weight == 1 else f"{weight:g} x "
        return (
            f"{name} {taken} over each sample's values, plus {times}the code's divergence "
            "from N(0, 1)"
        )

    def build(self, fields: Fields, device: torch.device) -> None:
        super().build(fields, device)
        index = self.config.code_layer
        code = self.model.network[index]
        if not isinstance(code, GaussianCode):
            raise TypeError(f"the code layer builds a {type(code).__name__}, not a GaussianCode, "
                            "whose means a vae reports")  # fmt: skip
        shape = self.model.rows[index].output_shape
        if len(shape) != 1:
            name = self.model.layers[index][0]
            raise ConfigError([ConfigIssue(f"model.layers[{index}].{name}", f"gives codes shaped "
                               f"{list(shape)} per sample, but a vae's code is one row of "
                               "values: add a flatten before it")])  # fmt: skip
        self.code = code

    def data_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of each sample summed over its values (Beginners' ``original_dim * mse``)
        or averaged over them (DLwP's)."""
        mean = super().data_loss(outputs, targets)
        return (
            mean * outputs[0].numel() if self.config.reconstruction is Reconstruction.SUM else mean
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A draw for the decoder; each sample's mean as its code (the book plots the means)."""
        drawn, _ = super().encode(x)
        assert self.code.mean is not None
        return drawn, self.code.mean

    def scored_predictions(self, results: list[StepResult]) -> Predictions | None:
        """A scored split's reconstructions come with samples generated from the grid."""
        rebuilt = super().scored_predictions(results)
        if not isinstance(rebuilt, Reconstructions) or rebuilt.codes is None:
            return rebuilt
        return dataclasses.replace(rebuilt, generated=self.generate(rebuilt.codes.shape[1]))

    @torch.no_grad()
    def generate(self, width: int) -> Generated:
        """The decoder's outputs for the grid of codes (see the module's docstring)."""
        side = self.config.grid
        if width == 2:  # left to right the first value grows, top to bottom the second falls
            steps, chosen = self._grid_steps()
            codes = torch.stack(torch.meshgrid(steps.flip(0), steps, indexing="ij"))
            codes = codes.flip(0).reshape(2, -1).T
        else:
            draws = torch.Generator().manual_seed(GRID_SEED)
            codes = torch.randn(side * side, width, generator=draws)
            chosen = "codes drawn from N(0, 1)"
        self._mode(False)
        device = next(self.model.network.parameters()).device
        samples = self.model.probabilities(self.decode(codes.to(device)))
        return Generated(samples.cpu(), codes, side, chosen)

    def _grid_steps(self) -> tuple[torch.Tensor, str]:
        """The values each axis of a two-value grid takes, and how they were chosen."""
        side, span = self.config.grid, self.config.grid_range
        if self.config.grid_spacing is GridSpacing.EVEN:
            steps, chosen = torch.linspace(-span, span, side), f"from -{span:g} to {span:g}"
        else:
            low, high = QUANTILES
            quantiles = torch.linspace(low, high, side, dtype=torch.float64)
            steps = torch.special.ndtri(quantiles).float()
            chosen = f"at the N(0, 1) quantiles {low:g} to {high:g}"
        return steps, f"codes {chosen} in both values"
