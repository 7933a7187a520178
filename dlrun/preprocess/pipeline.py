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
from dlrun.data.base import Arrays
from dlrun.data.images import ImageFiles
from dlrun.errors import DataError
from dlrun.preprocess.base import Step
from dlrun.preprocess.steps import STEPS

DeviceSteps = dict[str, list[Step]]
"""Per array name, the elementwise steps left to run on the device, batch by batch."""


@dataclass
class Pipeline:
    steps: list[tuple[str, Step]]

    def ends_sparse(self, field: str) -> bool:
        """Whether ``field`` leaves the pipeline as sparse multi-hot rows: its last step makes
        them (a later step on it, such as a numeric one, would see the 0/1 matrix)."""
        mine = [step for _, step in self.steps if step.field == field]
        return bool(mine) and mine[-1].makes_sparse_rows

    def starts_from_text(self, field: str) -> bool:
        """Whether ``field`` enters the pipeline as one text per sample (its first step reads
        text, as ``tokenize`` does)."""
        mine = [step for _, step in self.steps if step.field == field]
        return bool(mine) and mine[0].reads_text

    def transform(self, arrays: Arrays) -> Arrays:
        """Every step on the host; arrays no step names pass through unchanged."""
        fields = dict(arrays.fields)
        for _, step in self.steps:
            if step.field in fields:
                fields[step.field] = step.transform(fields[step.field])
        return Arrays(**fields)

    def transform_deferring(self, arrays: Arrays) -> tuple[Arrays, DeviceSteps]:
        """Like :meth:`transform`, but a uint8 array whose remaining steps all act element by
        element stays uint8; those steps are returned to run on the device per batch (4x less
        memory for images, and the same values: each step computes in float32 either way)."""
        fields = dict(arrays.fields)
        deferred: DeviceSteps = {}
        for index, (_, step) in enumerate(self.steps):
            name = step.field
            if name not in fields or name in deferred:
                continue
            rest = [s for _, s in self.steps[index:] if s.field == name]
            if fields[name].dtype == np.uint8 and all(s.elementwise for s in rest):
                deferred[name] = rest
                continue
            fields[name] = step.transform(fields[name])
        return Arrays(**fields), deferred

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
        steps.append((name, STEPS.get(name)(config)))  # type: ignore[arg-type]
    return Pipeline(steps)


def fit_pipeline(entries: Sequence[OneOfEntry], data: Arrays, train_idx: np.ndarray) -> Pipeline:
    """Build the pipeline and fit each step on the training rows ``train_idx`` only.

    A step is fitted on what the steps before it produce; the training part is transformed only
    as far as a later step still needs fitting, so nothing is computed twice for the usual
    pipelines (and a streamed dataset is not materialised by stateless steps). Steps that would
    learn from images ``data.in_memory: false`` never decodes together are refused first.
    """
    pipeline = build_pipeline(entries)
    for name, step in pipeline.steps:
        if step.fitted_attributes and isinstance(data.fields.get(step.field), ImageFiles):
            raise DataError(
                f"preprocess: {name} learns from every training image, which "
                "data.in_memory: false never decodes together; use rescale, or set "
                "data.in_memory: true"
            )
    fields = {name: data[name][train_idx] for name in data.names()}
    for index, (_, step) in enumerate(pipeline.steps):
        name = step.field
        if name not in fields:
            raise DataError(
                f"preprocess[{index}]: the data has no array '{name}' to transform "
                f"(it has {', '.join(fields)})"
            )
        step.fit(fields[name])
        later = [s for _, s in pipeline.steps[index + 1 :] if s.field == name]
        if any(s.fitted_attributes for s in later):
            fields[name] = step.transform(fields[name])
    return pipeline
