"""An ordered list of steps, fitted on the training part only.

The only way to fit a pipeline is :func:`fit_pipeline`, which takes the training indices as a
required argument: statistics cannot silently come from validation or test rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dlrun.config.entries import OneOfEntry
from dlrun.preprocess.base import Step
from dlrun.preprocess.steps import STEPS


@dataclass
class Pipeline:
    steps: list[tuple[str, Step]]

    def transform(
        self, x: np.ndarray, y: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        for _, step in self.steps:
            if step.applies_to == "x":
                x = step.transform(x)
            elif y is not None:
                y = step.transform(y)
        return x, y

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            f"{index}.{name}.{key}": value
            for index, (name, step) in enumerate(self.steps)
            for key, value in step.state_dict().items()
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for index, (name, step) in enumerate(self.steps):
            prefix = f"{index}.{name}."
            step.load_state_dict(
                {
                    key.removeprefix(prefix): value
                    for key, value in state.items()
                    if key.startswith(prefix)
                }
            )

    def spec(self) -> list[dict[str, Any]]:
        """The steps as YAML-style entries, to rebuild this pipeline from a checkpoint."""
        return [{name: step.config.model_dump(mode="json")} for name, step in self.steps]


def build_pipeline(entries: Sequence[OneOfEntry]) -> Pipeline:
    """Fresh, unfitted steps from config; build one per fold so no state is shared."""
    steps = []
    for entry in entries:
        name, config = entry.selected()
        steps.append((name, STEPS.get(name)(config)))
    return Pipeline(steps)


def fit_pipeline(
    entries: Sequence[OneOfEntry], x: np.ndarray, y: np.ndarray, train_idx: np.ndarray
) -> tuple[Pipeline, np.ndarray, np.ndarray]:
    """Build and fit the pipeline on ``x[train_idx]`` / ``y[train_idx]`` only.

    Returns the fitted pipeline and the transformed training part, which fitting computes anyway.
    """
    pipeline = build_pipeline(entries)
    x_fit, y_fit = x[train_idx], y[train_idx]
    for _, step in pipeline.steps:
        if step.applies_to == "x":
            x_fit = step.fit(x_fit).transform(x_fit)
        else:
            y_fit = step.fit(y_fit).transform(y_fit)
    return pipeline, x_fit, y_fit
