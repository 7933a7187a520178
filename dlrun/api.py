"""The library API behind the CLI: train, validate, evaluate and predict.

Tests call these functions directly; ``cli.py`` only parses arguments and prints.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from dlrun.config.load import resolved_yaml
from dlrun.config.schema import ExperimentConfig
from dlrun.data.load import load_data
from dlrun.evaluation.fitting import build_for
from dlrun.evaluation.fitting import make_loss
from dlrun.evaluation.fitting import preprocess_entries
from dlrun.evaluation.runner import plan_protocol
from dlrun.evaluation.runner import run_protocol
from dlrun.models.build import BuiltModel
from dlrun.preprocess.pipeline import fit_pipeline
from dlrun.reporting.artifacts import RunFiles
from dlrun.reporting.artifacts import write_run_files
from dlrun.reporting.files import write_json
from dlrun.reporting.files import write_text
from dlrun.reporting.progress import ProgressReporter
from dlrun.reporting.recorder import RunRecording
from dlrun.reporting.results import build_results
from dlrun.reporting.rundir import RunDirectory
from dlrun.reporting.rundir import environment
from dlrun.training.callbacks import Callback
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
    run_name: str | None = None,
    extra_callbacks: Sequence[Callback] = (),
) -> RunResult:
    """Run ``cfg`` under its evaluation protocol and write a complete run directory.

    ``run_name`` gives the directory an exact name (sweep trials); ``extra_callbacks`` join the
    training callbacks (a sweep's pruning and heartbeat).
    """
    console = console or Console()
    seed_everything(cfg.seed)
    device = resolve_device(cfg.train.device)
    data = load_data(cfg)  # before the run directory exists: bad data leaves nothing behind
    plan = plan_protocol(cfg, data)
    run = (RunDirectory.create(runs_dir, run_name, exact=True) if run_name
           else RunDirectory.create(runs_dir, cfg.name))  # fmt: skip
    config_yaml = resolved_yaml(cfg)
    write_text(run.file("config.yaml"), config_yaml)
    write_json(run.file("env.json"), environment(device, command or sys.argv))
    progress = ProgressReporter(cfg.train.progress, console)
    recording = RunRecording(run, cfg, config_yaml, data, progress, list(extra_callbacks))
    started = time.perf_counter()
    try:
        outcome = run_protocol(cfg, plan, device, recording)
    except BaseException as exc:
        run.set_status("failed", f"{type(exc).__name__}: {exc}")
        recording.close()
        raise
    results = build_results(cfg, outcome, data.description, str(device),
                            time.perf_counter() - started)  # fmt: skip
    top = recording.top
    files = RunFiles(run, top.metrics.rows, top.tensorboard, config_yaml)
    write_run_files(files, cfg, data, results, outcome.top_model, outcome.evaluation,
                    outcome.cv, outcome.folds, summary_model=outcome.model)  # fmt: skip
    recording.close()
    run.set_status(outcome.status, outcome.stop_reason)
    return RunResult(run.path, outcome.status, results)


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
