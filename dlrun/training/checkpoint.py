"""Checkpoint files: plain tensors and Python values, loadable with ``weights_only=True``.

A checkpoint holds what ``dlrun eval`` and ``dlrun predict`` need to rebuild a run's model
without its data: the task's state (every sub-model's weights and optimizer state), the fitted
preprocessing, the resolved config and the shapes of the inputs the models were built for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dlrun.errors import RunError
from dlrun.preprocess.pipeline import Pipeline
from dlrun.reporting.files import atomic_path
from dlrun.tasks.base import Task
from dlrun.training.batches import Fields
from dlrun.training.state import TrainState

FORMAT_KEY = "format"
FORMAT_VERSION = 2
TASK_KEY = "task"
PREPROCESS_KEY = "preprocess"
PIPELINE_SPEC_KEY = "pipeline_spec"
CONFIG_KEY = "config_yaml"
FIELDS_KEY = "fields"
EPOCH_KEY = "epoch"
STATUS_KEY = "status"
CLASS_NAMES_KEY = "class_names"
FEATURE_NAMES_KEY = "feature_names"
VOCABULARY_KEY = "vocabulary"


@dataclass(frozen=True)
class DataNames:
    """The names a dataset gives its classes, input columns and (for inputs of word ids) its
    words, in the order of their ids (for reports and predict)."""

    class_names: list[str] | None
    feature_names: list[str] | None
    vocabulary: list[str] | None = None


def save_checkpoint(
    target: Path,
    task: Task,
    pipeline: Pipeline,
    config_yaml: str,
    state: TrainState,
    fields: Fields,
    names: DataNames,
) -> None:
    payload: dict[str, Any] = {
        FORMAT_KEY: FORMAT_VERSION,
        TASK_KEY: task.state_dict(),
        PREPROCESS_KEY: pipeline.state_dict(),
        PIPELINE_SPEC_KEY: pipeline.spec(),
        CONFIG_KEY: config_yaml,
        FIELDS_KEY: {name: spec.to_dict() for name, spec in fields.items()},
        EPOCH_KEY: state.epoch,
        STATUS_KEY: state.status.value,
        CLASS_NAMES_KEY: names.class_names,
        FEATURE_NAMES_KEY: names.feature_names,
        VOCABULARY_KEY: names.vocabulary,
    }
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)  # to a file object: a full disk raises ENOSPC, not "pos"


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunError(
            f"no checkpoint at {path}; the run may have been stopped before it saved one"
        )
    try:
        payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise RunError(f"cannot read checkpoint {path}: {exc}") from None
    if payload.get(FORMAT_KEY) != FORMAT_VERSION:
        raise RunError(
            f"{path} has checkpoint format {payload.get(FORMAT_KEY)}, expected {FORMAT_VERSION} "
            "(it was written by another dlrun version; train the run again)"
        )
    return payload
