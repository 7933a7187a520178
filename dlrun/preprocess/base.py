"""The preprocessing step contract (scikit-learn style).

Constructors store hyperparameters; ``fit`` creates the fitted attributes, whose names end in
``_`` and are listed in ``fitted_attributes`` so they can be saved in a checkpoint as tensors and
restored for ``dlrun predict``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from pydantic import Field

from dlrun.config.base import StrictModel
from dlrun.errors import NotFittedError


class StepConfig(StrictModel):
    """Settings every step takes: which named array it transforms."""

    array: str | None = Field(
        default=None, description="the array to transform (default: x; y for target steps)"
    )


class Step:
    """One preprocessing step on one named array (``x`` unless configured with ``array:``)."""

    Config: ClassVar[type[StepConfig]] = StepConfig
    applies_to: ClassVar[str] = "x"  # the array a step transforms when ``array`` is not set
    fitted_attributes: ClassVar[tuple[str, ...]] = ()
    # Acts element by element, holds no fitted state and has a torch version: a uint8 array
    # (images) may then stay uint8 in memory and go through this step on the device, one batch
    # at a time (stacked folds share one copy of such steps).
    elementwise: ClassVar[bool] = False
    encodes_labels: ClassVar[bool] = False  # turns class labels into one-hot rows
    fills_missing: ClassVar[bool] = False  # replaces NaN inputs, so the data may hold them
    reads_text: ClassVar[bool] = False  # takes one text per sample (so predict reads texts)

    def __init__(self, config: StepConfig) -> None:
        self.config = config

    @property
    def field(self) -> str:
        return self.config.array or self.applies_to

    @property
    def makes_sparse_rows(self) -> bool:
        """Whether its output is sparse multi-hot rows (an :class:`~dlrun.data.sparse.IndexRows`):
        what the model reads when no later step turns them back into the 0/1 matrix."""
        return False

    def torch_transform(self, data: torch.Tensor) -> torch.Tensor:
        """The same transform on a batch tensor (``elementwise`` steps only)."""
        raise NotImplementedError(f"{type(self).__name__} runs on the host only")

    def fit(self, data: np.ndarray) -> Step:
        """Learn state from the training part; stateless steps need not override this."""
        self._fit(data)
        return self

    def _fit(self, data: np.ndarray) -> None:
        return None

    def transform(self, data: np.ndarray) -> np.ndarray:
        self.check_is_fitted()
        return self._transform(data)

    def _transform(self, data: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def check_is_fitted(self) -> None:
        missing = [name for name in self.fitted_attributes if not hasattr(self, name)]
        if missing:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet; call fit() on training data first"
            )

    def state_dict(self) -> dict[str, torch.Tensor]:
        self.check_is_fitted()
        return {
            name: torch.from_numpy(np.array(getattr(self, name)))
            for name in self.fitted_attributes
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name in self.fitted_attributes:
            setattr(self, name, state[name].numpy())
