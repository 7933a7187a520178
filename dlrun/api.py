"""The library API behind the CLI: train, validate, evaluate and predict.

Tests call these functions directly; ``cli.py`` only parses arguments and prints.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from dlrun.config.load import resolved_yaml
from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import LoadedData
from dlrun.data.load import load_data
from dlrun.evaluation.fitting import build_for
from dlrun.evaluation.fitting import make_loss
from dlrun.evaluation.fitting import preprocess_entries
from dlrun.evaluation.holdout import HoldoutOutcome
from dlrun.evaluation.holdout import run_holdout
from dlrun.models.build import BuiltModel
from dlrun.preprocess.pipeline import Pipeline
from dlrun.preprocess.pipeline import fit_pipeline
from dlrun.reporting import plots
from dlrun.reporting.artifacts import build_results
from dlrun.reporting.artifacts import write_analysis
from dlrun.reporting.artifacts import write_report
from dlrun.reporting.files import write_json
from dlrun.reporting.files import write_text
from dlrun.reporting.loggers import MetricsFileLogger
from dlrun.reporting.loggers import TensorBoardLogger
from dlrun.reporting.progress import ProgressReporter
from dlrun.reporting.rundir import RunDirectory
from dlrun.reporting.rundir import environment
from dlrun.training.callbacks import CALLBACKS
from dlrun.training.callbacks import Callback
from dlrun.training.callbacks import CallbackList
from dlrun.training.checkpoint import save_checkpoint
from dlrun.training.steps import SupervisedStep
from dlrun.utils import resolve_device
from dlrun.utils import seed_everything


@dataclass
class RunResult:
    run_dir: Path
    status: str
    results: dict[str, Any]


def run_experiment(
    cfg: ExperimentConfig,
    runs_dir: Path = Path("runs"),
    console: Console | None = None,
    command: list[str] | None = None,
) -> RunResult:
    """Run ``cfg`` under its evaluation protocol and write a complete run directory."""
    console = console or Console()
    generator = seed_everything(cfg.seed)
    device = resolve_device(cfg.train.device)
    data = load_data(cfg)  # before the run directory exists: bad data leaves nothing behind
    run = RunDirectory.create(runs_dir, cfg.name)
    config_yaml = resolved_yaml(cfg)
    write_text(run.file("config.yaml"), config_yaml)
    write_json(run.file("env.json"), environment(device, command or sys.argv))
    metrics_log = MetricsFileLogger(run.path)
    tensorboard = TensorBoardLogger(run.path)
    progress = ProgressReporter(cfg.train.progress, console)

    def callbacks_for(phase: str) -> Callback:
        metrics_log.phase = tensorboard.phase = phase
        progress.label = "final retrain: " if phase == "final" else ""
        if phase == "final":
            tensorboard.step_offset = 0
            return CallbackList([metrics_log, tensorboard, progress])
        user = [
            CALLBACKS.get(name)(config)
            for name, config in (e.selected() for e in cfg.train.callbacks)
        ]
        return CallbackList([*user, metrics_log, tensorboard, progress])

    def saver(pipeline: Pipeline, step: SupervisedStep) -> Any:
        def save(name: str) -> None:
            save_checkpoint(run.file(name), step, pipeline, config_yaml, len(metrics_log.rows),
                            data.class_names, data.feature_names)  # fmt: skip

        return save

    started = time.perf_counter()
    try:
        outcome = run_holdout(cfg, data, device, generator, callbacks_for, saver)
    except BaseException as exc:
        run.set_status("failed", f"{type(exc).__name__}: {exc}")
        tensorboard.close()
        raise
    duration = time.perf_counter() - started
    results = _finish(
        run, cfg, data, outcome, metrics_log, tensorboard, str(device), duration, config_yaml
    )
    return RunResult(run.path, outcome.status, results)


def _finish(
    run: RunDirectory,
    cfg: ExperimentConfig,
    data: LoadedData,
    outcome: HoldoutOutcome,
    metrics_log: MetricsFileLogger,
    tensorboard: TensorBoardLogger,
    device: str,
    duration: float,
    config_yaml: str,
) -> dict[str, Any]:
    fitted = outcome.fitted
    save_checkpoint(run.file("checkpoint.pt"), fitted.step, fitted.pipeline, config_yaml,
                    fitted.state.epoch, data.class_names, data.feature_names)  # fmt: skip
    results = build_results(cfg, outcome, data.description, device, duration)
    write_json(run.file("results.json"), results)
    if metrics_log.rows:
        plots.learning_curves(metrics_log.rows, run.file("learning_curves.png"))
    write_analysis(run, cfg, outcome, data.class_names)
    scored = outcome.evaluation.metrics if outcome.evaluation else {}
    prefix = outcome.evaluation.split if outcome.evaluation else ""
    tensorboard.write_hparams(hparams_of(cfg), {f"{prefix}_{k}": v for k, v in scored.items()})
    tensorboard.close()
    write_report(run, results, metrics_log.rows, outcome)
    run.set_status(outcome.status, outcome.stop_reason)
    return results


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
    for section in ("model", "optimizer", "loss", "train", "preprocess"):
        walk(section, dumped[section])
    flat["seed"] = cfg.seed
    return flat


def model_for_summary(cfg: ExperimentConfig) -> BuiltModel:
    """Build the model for ``dlrun validate``, from ``model.input_shape`` or the data itself."""
    loss = make_loss(cfg)
    if cfg.model.input_shape is not None:
        return build_for(cfg, cfg.model.input_shape, loss)
    data = load_data(cfg)
    sample = np.arange(min(len(data.train), 256))
    entries = preprocess_entries(cfg, data.implied_steps)
    _, x, _ = fit_pipeline(entries, data.train.x, data.train.y, sample)
    return build_for(cfg, x.shape[1:], loss)
