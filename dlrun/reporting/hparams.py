"""Flatten a config into the scalar hyperparameters TensorBoard's HParams tab compares."""

from __future__ import annotations

from typing import Any

from dlrun.config.schema import ExperimentConfig


def hparams_of(cfg: ExperimentConfig) -> dict[str, Any]:
    """Flat hyperparameters for TensorBoard's HParams tab."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(f"{prefix}.{index}", item)
        elif value is not None:
            flat[prefix] = value

    dumped = cfg.model_dump(mode="json")
    for section in ("model", "optimizer", "loss", "train", "preprocess", "evaluation"):
        walk(section, dumped[section])
    flat["seed"] = cfg.seed
    return flat
