"""Checkpoint files: plain tensors and Python values, loadable with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dlrun.errors import RunError
from dlrun.preprocess.pipeline import Pipeline
from dlrun.reporting.files import atomic_path
from dlrun.training.steps import SupervisedStep

FORMAT_KEY = "format"
FORMAT_VERSION = 1
MODEL_KEY = "model"
OPTIMIZER_KEY = "optimizer"
PREPROCESS_KEY = "preprocess"
PIPELINE_SPEC_KEY = "pipeline_spec"
CONFIG_KEY = "config_yaml"
INPUT_SHAPE_KEY = "input_shape"
EPOCH_KEY = "epoch"
CLASS_NAMES_KEY = "class_names"
FEATURE_NAMES_KEY = "feature_names"


def save_checkpoint(
    target: Path,
    step: SupervisedStep,
    pipeline: Pipeline,
    config_yaml: str,
    epoch: int,
    class_names: list[str] | None,
    feature_names: list[str] | None,
) -> None:
    payload: dict[str, Any] = {
        FORMAT_KEY: FORMAT_VERSION,
        MODEL_KEY: step.model_state(),
        OPTIMIZER_KEY: step.optimizer.state_dict(),
        PREPROCESS_KEY: pipeline.state_dict(),
        PIPELINE_SPEC_KEY: pipeline.spec(),
        CONFIG_KEY: config_yaml,
        INPUT_SHAPE_KEY: list(step.model.input_shape),
        EPOCH_KEY: epoch,
        CLASS_NAMES_KEY: class_names,
        FEATURE_NAMES_KEY: feature_names,
    }
    with atomic_path(target) as tmp:
        torch.save(payload, tmp)


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
            f"{path} has checkpoint format {payload.get(FORMAT_KEY)}, expected {FORMAT_VERSION}"
        )
    return payload
