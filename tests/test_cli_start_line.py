"""A run says what it does when it starts: one line before any progress, with the run
directory, the device, the parameter count and the split sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.reporting.progress import start_line
from tests.conftest import tiny_config

runner = CliRunner()


def _train(write_config: Any, tmp_path: Path, progress: str, **changes: Any) -> tuple[str, Path]:
    train = {**tiny_config()["train"], "epochs": 2, "progress": progress}
    path = write_config(tiny_config(train=train, **changes))
    result = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    return result.output, Path(result.output.strip().splitlines()[-1])


def test_the_start_line_comes_first_and_says_where_on_what_and_how_big(
    write_config: Any, tmp_path: Path
) -> None:
    output, run_dir = _train(write_config, tmp_path, "plain")
    lines = output.splitlines()
    # iris: 150 rows, 20% test, then 20% of the rest for validation; 4-8-3 dense: 67 weights
    assert lines[0] == (
        f"training tiny in {run_dir} on cpu: 67 parameters; train 96, validation 24, test 30"
    )
    assert lines[1].startswith("epoch 1/2")


def test_kfold_sizes_are_per_fold(write_config: Any, tmp_path: Path) -> None:
    evaluation = {"protocol": "kfold", "k": 2}
    output, _ = _train(write_config, tmp_path, "plain", evaluation=evaluation)
    assert output.splitlines()[0].endswith(
        "67 parameters; non test 120, folds 2, train per fold 60, validation per fold 60, test 30"
    )


def test_progress_none_is_a_silent_run(write_config: Any, tmp_path: Path) -> None:
    output, _ = _train(write_config, tmp_path, "none")
    assert "training tiny" not in output and "epoch 1/2" not in output
    assert "test metrics" in output  # the result is still printed


def test_a_resumed_run_says_so_and_which_settings_changed(
    write_config: Any, tmp_path: Path
) -> None:
    _, run_dir = _train(write_config, tmp_path, "plain")
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "train.epochs=3"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "resuming with changed settings: train.epochs 2 -> 3"
    assert lines[1].startswith(f"resuming tiny in {run_dir} on cpu: 67 parameters")
    assert lines[2].startswith("epoch 3/3")
    assert (
        "warning: the test split was scored before this resume too (2 reads in all)"
        in " ".join(result.output.split())
    )
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test_split_reads"] == 2
    report = (run_dir / "report.md").read_text()
    assert "test split read 2 times: the run was resumed after a test score" in report
    same = runner.invoke(app, ["train", "--resume", str(run_dir), "train.epochs=3"])
    assert same.exit_code == 0, same.output
    assert same.output.splitlines()[0] == (
        "the overrides match the run's saved config: nothing changes"
    )


def test_start_line_formats_counts_with_thousands_separators() -> None:
    line = start_line("mnist", Path("runs/m"), "cuda (NVIDIA H200)", 407050,
                      {"train": 48000, "validation": 12000, "test": 10000}, resume=False)  # fmt: skip
    assert line == ("training mnist in runs/m on cuda (NVIDIA H200): 407,050 parameters; "
                    "train 48,000, validation 12,000, test 10,000")  # fmt: skip
