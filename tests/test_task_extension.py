"""The task extension point: a task defined here, outside dlrun, trains from YAML via the CLI.

A denoising dense autoencoder: no labels, its own loss (reconstruction error against the clean
input), noise on training batches only. Nothing in dlrun knows it exists, yet the config is
checked, the loop trains it, the run directory is complete, and eval, predict and resume work,
in this process and, loaded as a plugin (``DLRUN_PLUGINS``), from the ``dlrun`` command itself.
This module is importable as a plugin: at import time it touches only the registries, not
``dlrun.config`` (which the plugin loader runs inside of).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from pydantic import Field
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.config.base import StrictModel
from dlrun.data.base import Arrays
from dlrun.errors import ConfigError
from dlrun.errors import DataError
from dlrun.models.build import build_model
from dlrun.tasks.base import TASKS
from dlrun.tasks.base import StepResult
from dlrun.tasks.base import Task
from dlrun.training.batches import Batch
from dlrun.training.batches import Fields
from dlrun.training.metrics import MetricKind
from dlrun.training.metrics import Predictions
from dlrun.training.optimizers import OPTIMIZERS
from tests.conftest import REPO

runner = CliRunner()


def inputs_only(arrays: Arrays) -> Arrays:
    return arrays.replace(y=None)


@TASKS.register("denoising_autoencoder")
class DenoisingAutoencoder(Task):
    """Reconstruct the clean input from a noisy one through a narrow layer."""

    class Config(StrictModel):
        noise: float = Field(default=0.1, ge=0)

    config: Config
    metric_kinds = frozenset({MetricKind.ERRORS})

    def array_form(self) -> Any:
        return inputs_only

    def build(self, fields: Fields, device: torch.device) -> None:
        shape = fields["x"].shape
        self.net = build_model(self.cfg.model.layers, shape)
        if self.net.output_shape != shape:
            raise DataError(f"an autoencoder must output its input shape {list(shape)}")
        self.net.network.to(device)
        self.spec = OPTIMIZERS.get(self.cfg.optimizer.name)(self.cfg.optimizer)
        self.params = list(self.net.network.parameters())
        self.optimizer = self.spec.create(self.params)
        self.models, self.optimizers = {"autoencoder": self.net}, {"autoencoder": self.optimizer}

    def train_step(self, batch: Batch) -> StepResult:
        self.net.network.train()
        clean = batch["x"]
        noise = self.config.noise * torch.randn_like(clean)
        out = self.net.network(clean + noise)
        loss = (out - clean).square().mean()
        self.spec.step(self.optimizer, self.params, loss)
        return StepResult(loss.detach(), len(clean), {"y_pred": out.detach(), "y_true": clean})

    @torch.no_grad()
    def eval_step(self, batch: Batch) -> StepResult:
        self.net.network.eval()
        out = self.net.network(batch["x"])
        loss = (out - batch["x"]).square().mean()
        return StepResult(loss, len(out), {"y_pred": out, "y_true": batch["x"]})

    @torch.no_grad()
    def predict_step(self, batch: Batch) -> torch.Tensor:
        self.net.network.eval()
        out: torch.Tensor = self.net.network(batch["x"])
        return out

    def predictions(self, results: list[StepResult]) -> Predictions | None:
        cat = lambda key: torch.cat([r.outputs[key] for r in results])  # noqa: E731
        return Predictions(cat("y_true"), cat("y_pred"))


def autoencoder_config(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "autoencoder",
        "task": {"name": "denoising_autoencoder", "noise": 0.05},
        "data": {"dataset": "iris", "test_fraction": 0.2},
        "preprocess": ["standardize"],
        "model": {"layers": [{"dense": {"units": 2, "activation": "tanh"}}, {"dense": 4}]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "metrics": ["mae"],
        "train": {"epochs": 30, "batch_size": 16, "progress": "none"},
        "evaluation": {"validation": {"fraction": 0.2}},
    }
    config.update(changes)
    return config


@pytest.fixture(scope="module")
def autoencoder_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ae")
    config = folder / "ae.yaml"
    config.write_text(yaml.safe_dump(autoencoder_config(), sort_keys=False))
    result = runner.invoke(app, ["train", str(config), "--runs-dir", str(folder / "runs")])
    assert result.exit_code == 0, result.output
    return Path(result.output.strip().splitlines()[-1])


def test_a_task_defined_outside_dlrun_trains_through_dlrun_train(autoencoder_run: Path) -> None:
    names = {p.name for p in autoencoder_run.iterdir()}
    assert {"config.yaml", "env.json", "status.json", "metrics.csv", "metrics.jsonl", "results.json",
            "checkpoint.pt", "learning_curves.png", "report.md", "resume-fit.pt"} <= names  # fmt: skip
    assert any((autoencoder_run / "train").glob("events.out.tfevents.*"))
    assert not {"confusion_matrix.png", "predictions.png"} & names  # it names no analyses
    resolved = yaml.safe_load((autoencoder_run / "config.yaml").read_text())
    assert resolved["task"] == {"name": "denoising_autoencoder", "noise": 0.05}
    rows = list(csv.DictReader((autoencoder_run / "metrics.csv").open()))
    assert len(rows) == 30 and {"loss", "mae", "val_loss", "val_mae", "lr"} <= set(rows[0])
    assert float(rows[-1]["val_loss"]) < 0.5 * float(rows[0]["val_loss"])  # it learned
    results = json.loads((autoencoder_run / "results.json").read_text())
    assert results["status"] == "completed" and results["task"] == "denoising_autoencoder"
    assert results["loss"] is None and results["baselines"] == []
    assert results["test"]["loss"] < 0.6 and results["test_split_reads"] == 1
    assert results["params"] == 4 * 2 + 2 + 2 * 4 + 4
    report = (autoencoder_run / "report.md").read_text()
    assert "loss: defined by the task" in report and "Baselines" not in report


def test_eval_and_predict_use_the_tasks_own_steps(autoencoder_run: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", str(autoencoder_run)])
    assert result.exit_code == 0, result.output
    test = json.loads((autoencoder_run / "results.json").read_text())["test"]
    assert f"{test['mae']:.4f}" in result.output
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32))
    out = tmp_path / "recon.csv"
    result = runner.invoke(
        app, ["predict", str(autoencoder_run), "-i", str(inputs), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["output_0", "output_1", "output_2", "output_3"] and len(rows) == 3


def test_resume_extends_the_tasks_run(autoencoder_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / autoencoder_run.name
    shutil.copytree(autoencoder_run, copy)
    result = runner.invoke(app, ["train", "--resume", str(copy), "train.epochs=35"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((copy / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == [str(i) for i in range(1, 36)]
    original = list(csv.DictReader((autoencoder_run / "metrics.csv").open()))
    assert rows[:30] == original  # the first 30 epochs are kept, not retrained
    assert json.loads((copy / "results.json").read_text())["resumed_from_epoch"] == {"fit": 30}


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"task": "denoising_autoencodr"}, "did you mean 'denoising_autoencoder'"),
     ({"task": {"name": "denoising_autoencoder", "nois": 0.1}}, "task.nois: unknown key; did you mean 'noise'"),
     ({"metrics": ["accuracy"]}, "accuracy does not apply to task denoising_autoencoder")],
)  # fmt: skip
def test_a_registered_task_gets_the_usual_config_errors(
    changes: dict[str, Any], message: str
) -> None:
    from dlrun.config.load import config_from_data  # not at import: this module is a plugin

    with pytest.raises(ConfigError, match=message):
        config_from_data(autoencoder_config(**changes))


def test_supervised_tasks_still_need_a_loss() -> None:
    from dlrun.config.load import config_from_data

    config = autoencoder_config(task="regression")
    with pytest.raises(ConfigError, match="loss: task regression needs a loss"):
        config_from_data(config)


def test_the_dlrun_command_loads_the_task_as_a_plugin(tmp_path: Path) -> None:
    config = tmp_path / "ae.yaml"
    config.write_text(yaml.safe_dump(autoencoder_config(), sort_keys=False))
    command = [
        sys.executable,
        "-m",
        "dlrun",
        "train",
        str(config),
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "DLRUN_PLUGINS": "tests.test_task_extension"}
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert json.loads((run_dir / "results.json").read_text())["task"] == "denoising_autoencoder"
    missing = {**env, "DLRUN_PLUGINS": "no_such_plugin_module"}
    done = subprocess.run(
        command, env=missing, capture_output=True, text=True, timeout=300, check=False
    )
    assert (
        done.returncode == 2
        and "cannot import the plugin module 'no_such_plugin_module'" in done.stderr
    )
    assert "Traceback" not in done.stderr
