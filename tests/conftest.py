from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

BASE: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "task": "multiclass",
    "data": {"dataset": "iris", "test_fraction": 0.2},
    "preprocess": ["standardize", "one_hot"],
    "model": {
        "layers": [
            {"dense": {"units": 8, "activation": "relu"}},
            {"dense": {"units": 3, "activation": "softmax"}},
        ]
    },
    "loss": "categorical_crossentropy",
    "optimizer": {"name": "adam", "lr": 0.01},
    "metrics": ["accuracy"],
    "train": {"epochs": 3, "batch_size": 16, "progress": "none"},
    "evaluation": {"validation": {"fraction": 0.2, "stratify": True}},
}


def tiny_config(**changes: Any) -> dict[str, Any]:
    """A deep copy of BASE with top-level keys replaced."""
    config = copy.deepcopy(BASE)
    config.update(changes)
    return config


@pytest.fixture
def write_config(tmp_path: Path) -> Any:
    def write(data: dict[str, Any] | str, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write
