"""Flatten a config into the scalar hyperparameters TensorBoard's HParams tab compares."""

from __future__ import annotations

from typing import Any

from dlrun.config.schema import ExperimentConfig


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as dotted keys: ``{"model.layers.0.dense.units": 16, ...}``."""
    flat: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}.{index}"))
    elif value is not None:
        flat[prefix] = value
    return flat


def hparams_of(cfg: ExperimentConfig) -> dict[str, Any]:
    """Flat hyperparameters for TensorBoard's HParams tab."""
    dumped = cfg.model_dump(mode="json")
    sections = ("model", "optimizer", "loss", "train", "preprocess", "evaluation")
    flat = {k: v for section in sections for k, v in flatten(dumped[section], section).items()}
    flat["seed"] = cfg.seed
    return flat
