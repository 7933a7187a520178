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


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never download: datasets come from fixtures, mirrors or the 127.0.0.1 server.
    A mirror the caller's shell names (``make test-all`` names ../shared/data) is not one of
    them: the tests that read a mirror set it themselves."""
    monkeypatch.setenv("DLRUN_OFFLINE", "1")
    monkeypatch.delenv("DLRUN_DATA_PATH", raising=False)
    monkeypatch.setenv("DLRUN_CACHE", str(tmp_path_factory.mktemp("cache")))


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


from tests.http_fixture import file_server  # noqa: E402,F401 - a fixture the download tests use
