"""A small folder of class subfolders of JPEGs, and the streaming config that reads it (used by
the streaming tests and by the CUDA tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dlrun.config.load import config_from_data
from dlrun.config.schema import ExperimentConfig
from tests.conftest import tiny_config

PER_CLASS = 20


def make_image_folder(root: Path) -> Path:
    """40 small JPEGs of random pixels, 20 per class (cats, dogs), in ``root`` (made here)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir()
        for i in range(PER_CLASS):
            pixels = rng.integers(0, 256, (14, 18, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name[:-1]}.{i}.jpg")
    return root


def image_folder_config(
    folder: Path, in_memory: bool, workers: int = 0, **changes: Any
) -> ExperimentConfig:
    """A binary convnet on ``folder`` with augmentation, streamed unless ``in_memory``."""
    settings: dict[str, Any] = dict(
        task="binary", loss="binary_crossentropy", metrics=["accuracy"],
        data={"dataset": "image_folder", "path": str(folder), "target_size": [12, 12],
              "test_fraction": 0.2, "in_memory": in_memory, "workers": workers,
              "augment": {"rotation_range": 40, "zoom_range": 0.2, "horizontal_flip": True}},
        preprocess=[{"rescale": "1/255"}],
        model={"layers": [{"conv2d": {"filters": 2, "kernel_size": 3, "activation": "relu"}},
                          {"flatten": {}}, {"dense": {"units": 1, "activation": "sigmoid"}}]},
        train={"epochs": 1, "batch_size": 8, "progress": "none"},
        evaluation={"validation": {"first": 8}},
    )  # fmt: skip
    return config_from_data(tiny_config(**{**settings, **changes}))
