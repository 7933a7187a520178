"""End-to-end: the CLI on the quickstart config, every artifact, errors, predict, SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from sklearn.datasets import load_digits
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from dlrun.cli import app
from tests.conftest import REPO
from tests.conftest import tiny_config
from tests.test_tensorboard import read_scalars

runner = CliRunner()


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    runs = tmp_path_factory.mktemp("runs")
    args = [
        "train",
        str(REPO / "configs/quickstart.yaml"),
        "train.epochs=4",
        "--runs-dir",
        str(runs),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return Path(result.output.strip().splitlines()[-1]), result.output


def test_train_prints_test_metrics_and_run_dir_last(quickstart_run: tuple[Path, str]) -> None:
    run_dir, output = quickstart_run
    assert "test metrics" in output and "accuracy" in output
    assert run_dir.is_dir() and run_dir.name.startswith("quickstart-")


def test_run_directory_holds_every_artifact(quickstart_run: tuple[Path, str]) -> None:
    run_dir, _ = quickstart_run
    expected = {
        "config.yaml", "env.json", "status.json", "metrics.csv", "metrics.jsonl", "results.json",
        "checkpoint.pt", "learning_curves.png", "confusion_matrix.png", "confusion_matrix.csv",
        "classification_report.txt", "report.md",
    }  # fmt: skip
    names = {p.name for p in run_dir.iterdir()}
    assert expected <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert any((run_dir / "train").glob("events.out.tfevents.*"))  # TensorBoard sub-runs
    for png in ("learning_curves.png", "confusion_matrix.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_artifact_contents(quickstart_run: tuple[Path, str]) -> None:
    run_dir, _ = quickstart_run
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["train"]["epochs"] == 4 and resolved["optimizer"]["epsilon"] == 1e-7
    env = json.loads((run_dir / "env.json").read_text())
    assert env["packages"]["torch"] and env["device"] == "cpu" and "train" in env["command"]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
    jsonl = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert jsonl[-1]["val_loss"] == pytest.approx(float(rows[-1]["val_loss"]))
    results = json.loads((run_dir / "results.json").read_text())
    assert results["data"]["sizes"] == {"train": 1149, "validation": 288, "test": 360}
    assert 0.8 < results["test"]["accuracy"] <= 1.0
    assert results["baseline"]["name"] == "majority class" and results["beats_baseline"] is True
    matrix = list(csv.reader((run_dir / "confusion_matrix.csv").open()))
    assert len(matrix) == 11 and sum(int(v) for row in matrix[1:] for v in row[1:]) == 360
    report = (run_dir / "classification_report.txt").read_text()
    assert "balanced error rate (BER)" in report and "precision" in report
    markdown = (run_dir / "report.md").read_text()
    for section in ("## Final metrics (test split, evaluated once)", "### Baselines", "| shuffled labels |", "## Leak checks", "test split read once, after all training",
                    "Total params: 8,970", "## Per-epoch history", "[checkpoint.pt](checkpoint.pt)"):  # fmt: skip
        assert section in markdown


def test_checkpoint_loads_with_weights_only(quickstart_run: tuple[Path, str]) -> None:
    run_dir, _ = quickstart_run
    payload = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert payload["task"]["models"]["model"]["0.linear.weight"].shape == (64, 64)
    assert payload["task"]["optimizers"]["model"]["param_groups"][0]["lr"] == 0.002
    assert payload["preprocess"]["1.one_hot.num_classes_"].item() == 10
    assert payload["pipeline_spec"][0] == {
        "rescale": {"array": None, "scale": 0.0625, "offset": 0.0}
    }
    assert payload["fields"] == {
        "x": {"shape": [64], "dtype": "float32", "sparse": False},
        "y": {"shape": [10], "dtype": "float32", "sparse": False},
    }


def test_tensorboard_curves_in_sub_runs_and_hparams_in_results(
    quickstart_run: tuple[Path, str],
) -> None:
    run_dir, _ = quickstart_run
    scalars = read_scalars(run_dir)
    assert set(scalars) == {"train", "validation", "results"}  # nothing in the run itself
    assert {"epoch/loss", "epoch/accuracy", "epoch/lr"} <= set(scalars["train"])
    assert {"epoch/loss", "epoch/accuracy"} <= set(scalars["validation"])  # overlaid
    assert [step for step, _ in scalars["validation"]["epoch/loss"]] == [1, 2, 3, 4]
    accuracy = json.loads((run_dir / "results.json").read_text())["test"]["accuracy"]
    ((step, value),) = scalars["results"]["results/test_accuracy"]
    assert step == 0 and value == pytest.approx(accuracy)
    events = EventAccumulator(str(run_dir / "results"))
    events.Reload()
    plugins = events.PluginTagToContent("hparams")
    assert set(plugins) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    assert {p.name for p in run_dir.iterdir() if p.is_dir()} == set(scalars)


def test_eval_reproduces_the_test_metrics(quickstart_run: tuple[Path, str]) -> None:
    run_dir, _ = quickstart_run
    result = runner.invoke(app, ["eval", str(run_dir)])
    assert result.exit_code == 0, result.output
    accuracy = json.loads((run_dir / "results.json").read_text())["test"]["accuracy"]
    assert f"{accuracy:.4f}" in result.output


def test_predict_round_trip_applies_saved_preprocessing(
    quickstart_run: tuple[Path, str], tmp_path: Path
) -> None:
    run_dir, _ = quickstart_run
    digits = load_digits()
    np.savez(tmp_path / "x.npz", x=digits.data[:40])
    out = tmp_path / "preds.csv"
    result = runner.invoke(
        app, ["predict", str(run_dir), "--input", str(tmp_path / "x.npz"), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 40 and len(rows[0]) == 11
    predicted = np.array([int(r["prediction"]) for r in rows])
    assert (predicted == digits.target[:40]).mean() > 0.7
    probs = np.array([[float(r[f"prob_{i}"]) for i in range(10)] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_outputs_that_cannot_be_written_there_are_one_line_errors(
    quickstart_run: tuple[Path, str], tmp_path: Path
) -> None:
    """A directory given as the output file, or a file as the runs directory: one line, exit 2,
    and nothing left behind (no temporary file, no run directory)."""
    run_dir, _ = quickstart_run
    np.savez(tmp_path / "x.npz", x=load_digits().data[:5])
    (tmp_path / "a_file").write_text("not a directory")
    commands = {
        "cannot write {out}: it is a directory; name a file to write": [
            ["predict", str(run_dir), "--input", str(tmp_path / "x.npz"), "--output", "{out}"],
            ["runs", "compare", str(run_dir), str(run_dir), "--output", "{out}"],
        ],
        "cannot write {out}/a_file/p.csv: {out}/a_file is a file, not a folder": [
            ["predict", str(run_dir), "--input", str(tmp_path / "x.npz"), "--output",
             "{out}/a_file/p.csv"],
        ],
        "cannot write {out}/a_file/c.png: {out}/a_file is a file, not a folder": [
            ["runs", "compare", str(run_dir), str(run_dir), "--output", "{out}/a_file/c.png"],
        ],
        "--output {out}/c.txt: the curves are written as a PNG; name a .png file": [
            ["runs", "compare", str(run_dir), str(run_dir), "--output", "{out}/c.txt"],
        ],
        "{out}/nowhere does not exist; dlrun runs list shows the runs there are": [
            ["eval", "{out}/nowhere"],
        ],
        "{run} is a run, not a directory of runs; its report is {run}/report.md, and dlrun runs "
        "list {runs} lists it among the others": [["runs", "list", "{run}"]],
        "cannot make a run directory in {out}/a_file: Not a directory": [
            ["train", str(REPO / "configs/quickstart.yaml"), "train.epochs=1", "--runs-dir",
             "{out}/a_file"],
        ],
    }  # fmt: skip
    for message, runs in commands.items():
        for args in runs:
            where = {"out": tmp_path, "run": run_dir, "runs": run_dir.parent}
            result = runner.invoke(app, [arg.format(**where) for arg in args])
            assert result.exit_code == 2, result.output
            assert " ".join(result.output.split()) == f"error: {message}".format(**where)
            assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "x.npz"]


def test_config_mistake_is_one_line_exit_2_without_traceback(write_config: Any) -> None:
    path = write_config(tiny_config(optimzer="adam"))
    proc = subprocess.run(
        [sys.executable, "-m", "dlrun", "train", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "optimzer (line" in proc.stderr and "did you mean 'optimizer'?" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_validate_prints_summary_and_totals() -> None:
    result = runner.invoke(app, ["validate", str(REPO / "configs/dlwp/ch2_mnist_dense.yaml")])
    assert result.exit_code == 0, result.output
    assert (
        "407,050" in result.output
        and "(None, 512)" in result.output
        and "config OK" in result.output
    )


def test_schema_prints_json() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "ExperimentConfig"


def test_runs_list_shows_status(quickstart_run: tuple[Path, str]) -> None:
    run_dir, _ = quickstart_run
    result = runner.invoke(app, ["runs", "list", str(run_dir.parent)])
    assert (
        result.exit_code == 0 and "completed" in result.output and "test accuracy" in result.output
    )


def test_sigkill_mid_epoch_leaves_no_partial_file(write_config: Any, tmp_path: Path) -> None:
    slow = tiny_config(
        data={"dataset": "classification", "n_samples": 8000, "n_features": 50},
        preprocess=["standardize"], loss="sparse_categorical_crossentropy",
        model={"layers": [{"dense": 256}, {"dense": 256}, {"dense": {"units": 2, "activation": "softmax"}}]},
        train={"epochs": 500, "batch_size": 8, "progress": "plain", "callbacks": [{"checkpoint": "last"}]},
    )  # fmt: skip
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlrun", "train", str(write_config(slow)), "--runs-dir", str(runs)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = 0
    deadline = time.time() + 120
    while seen < 2 and time.time() < deadline:  # wait for two finished epochs, then kill mid-epoch
        seen += "epoch " in proc.stdout.readline()
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir,) = list(runs.iterdir())
    assert (
        json.loads((run_dir / "status.json").read_text())["status"] == "running"
    )  # marked incomplete
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert len(rows) >= 2 and all(r["val_loss"] for r in rows)
    torch.load(run_dir / "checkpoint_last.pt", weights_only=True)
    result = runner.invoke(app, ["runs", "list", str(runs)])
    assert "incomplete" in result.output


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_interrupt_writes_report_marked_interrupted(
    write_config: Any, tmp_path: Path, stop: signal.Signals
) -> None:
    """SIGTERM (a scheduler's stop, or timeout's) killed the run mid-write, status "running"."""
    slow = tiny_config(
        data={"dataset": "classification", "n_samples": 8000, "n_features": 50},
        preprocess=["standardize"], loss="sparse_categorical_crossentropy",
        model={"layers": [{"dense": 128}, {"dense": {"units": 2, "activation": "softmax"}}]},
        train={"epochs": 500, "batch_size": 8, "progress": "plain"},
    )  # fmt: skip
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlrun", "train", str(write_config(slow)), "--runs-dir", str(runs)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.time() + 120
    while "epoch " not in proc.stdout.readline() and time.time() < deadline:
        pass
    proc.send_signal(stop)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output
    (run_dir,) = list(runs.iterdir())
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"
    assert "Run interrupted" in (run_dir / "report.md").read_text()
    assert (run_dir / "checkpoint.pt").is_file()


def test_runs_compare_overlays_curves_and_diffs_configs(tmp_path: Path, write_config: Any) -> None:
    runs = tmp_path / "runs"
    dirs = []
    for lr, name in ((0.01, "a.yaml"), (0.05, "b.yaml")):
        config = write_config(tiny_config(optimizer={"name": "adam", "lr": lr}), name)
        result = runner.invoke(app, ["train", str(config), "--runs-dir", str(runs)])
        assert result.exit_code == 0, result.output
        dirs.append(result.output.strip().splitlines()[-1])
    figure = tmp_path / "cmp.png"
    result = runner.invoke(app, ["runs", "compare", *dirs, "-o", str(figure)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert (
        "optimizer.lr" in result.output
        and "0.05" in result.output
        and "min val_loss" in result.output
    )
    assert "train.epochs" not in result.output  # equal values are not differences
    assert figure.read_bytes()[:4] == b"\x89PNG"
    alone = runner.invoke(app, ["runs", "compare", dirs[0]])
    assert alone.exit_code == 2 and "at least two run directories" in alone.output


def test_runs_compare_says_when_the_runs_train_different_losses(
    tmp_path: Path, write_config: Any
) -> None:
    regression = tiny_config(
        name="diabetes", task="regression", data={"dataset": "diabetes"}, loss="mse",
        preprocess=["standardize"], metrics=["mae"],
        model={"layers": [{"dense": 4}, {"dense": 1}]}, evaluation={"validation": {"fraction": 0.2}},
    )  # fmt: skip
    dirs = []
    for config in (tiny_config(), regression):
        path = write_config(config, f"{config['name']}.yaml")
        result = runner.invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs")])
        assert result.exit_code == 0, result.output
        dirs.append(result.output.strip().splitlines()[-1])
    result = runner.invoke(app, ["runs", "compare", *dirs, "-o", str(tmp_path / "c.png")],
                           terminal_width=200)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "warning: the runs train different losses (categorical_crossentropy, mse): their loss "
        "curves and min val_loss are on different scales" in " ".join(result.output.split())
    )
    same = runner.invoke(app, ["runs", "compare", dirs[0], dirs[0], "-o", str(tmp_path / "s.png")])
    assert same.exit_code == 0 and "different losses" not in same.output


def test_kfold_cli_prints_the_cross_validation_table(tmp_path: Path, write_config: Any) -> None:
    config = write_config(tiny_config(evaluation={"protocol": "kfold", "k": 2}))
    result = runner.invoke(
        app, ["train", str(config), "--runs-dir", str(tmp_path)], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "cross-validation (2 folds)" in result.output and "accuracy" in result.output
    run_dir = Path(result.output.strip().splitlines()[-1])
    listed = runner.invoke(app, ["runs", "list", str(tmp_path)], terminal_width=200)
    assert run_dir.name in listed.output and "cv accuracy (mean)" in listed.output
    iterated = write_config(tiny_config(name="it", evaluation={"protocol": "iterated_kfold",
                                                                "k": 2, "repeats": 2}), "it.yaml")  # fmt: skip
    result = runner.invoke(app, ["train", str(iterated), "--runs-dir", str(tmp_path)])
    assert "cross-validation (2 folds x 2 repeats)" in result.output  # not "(4 folds)"


def test_ctrl_c_before_the_run_starts_is_one_line(
    write_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pressed(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("dlrun.api.load_data", pressed)
    runs = tmp_path / "runs"
    result = runner.invoke(
        app, ["train", str(write_config(tiny_config())), "--runs-dir", str(runs)]
    )
    assert result.exit_code == 130
    assert (
        result.output.strip() == "interrupted: stopped by the user; nothing was left half-written"
    )
    assert not runs.exists()


def test_ctrl_c_between_epochs_and_setup_marks_the_run_interrupted(
    write_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pressed(*args: Any) -> None:
        raise KeyboardInterrupt

    runs = tmp_path / "runs"
    with monkeypatch.context() as patch:
        patch.setattr("dlrun.api.run_protocol", pressed)
        result = runner.invoke(
            app, ["train", str(write_config(tiny_config())), "--runs-dir", str(runs)]
        )
    (run_dir,) = list(runs.iterdir())
    assert result.exit_code == 130
    assert result.output.strip() == (
        f"interrupted: stopped by the user; continue with dlrun train --resume {run_dir}"
    )
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted"
    assert status["reason"] == "interrupted by the user outside training"
    resumed = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
