"""The progress bar on a terminal: one bar per fit, a line per epoch above it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from tests.conftest import tiny_config


def test_one_bar_serves_every_epoch_and_each_epoch_prints_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    added: list[str] = []
    add_task = Progress.add_task

    def counted(self: Progress, description: str, *args: object, **kwargs: object) -> object:
        added.append(description)
        return add_task(self, description, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Progress, "add_task", counted)
    shown = io.StringIO()
    console = Console(file=shown, force_terminal=True, width=150)
    config = tiny_config(train={"epochs": 5, "batch_size": 16, "progress": "bar"})
    run_experiment(config_from_data(config), tmp_path, console)
    assert len(added) == 1  # rewinding a bar redraws nothing; adding one redraws at once
    text = shown.getvalue()
    for epoch in range(1, 6):
        assert f"epoch {epoch}/5 (" in text
    assert "val_loss" in text
