"""The preprocessing step contract (scikit-learn style).

Constructors store hyperparameters; ``fit`` creates the fitted attributes, whose names end in
``_`` and are listed in ``fitted_attributes`` so they can be saved in a checkpoint as tensors and
restored for ``dlrun predict``.
"""

from __future__ import annotations

from typing import ClassVar
from typing import Literal

import numpy as np
import torch

from dlrun.config.base import StrictModel
from dlrun.errors import NotFittedError


class Step:
    """One preprocessing step. ``applies_to`` says whether it transforms features or targets."""

    Config: ClassVar[type[StrictModel]] = StrictModel
    applies_to: ClassVar[Literal["x", "y"]] = "x"
    fitted_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: StrictModel) -> None:
        self.config = config

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
