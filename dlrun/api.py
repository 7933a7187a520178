"""The library API behind the CLI: train, resume, validate, evaluate and predict.

Tests call these functions directly; ``cli.py`` only parses arguments and prints.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from dlrun.config.load import config_from_text
from dlrun.config.load import resolved_yaml
from dlrun.config.resume import check_resume_changes
from dlrun.config.schema import ExperimentConfig
from dlrun.data.load import load_data
from dlrun.errors import RunError
from dlrun.evaluation.fitting import Sources
from dlrun.evaluation.fitting import preprocess_entries
from dlrun.evaluation.fitting import task_for
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
from dlrun.training.batches import FieldSpec
from dlrun.training.callbacks import Callback
from dlrun.training.status import RunStatus
from dlrun.utils import resolve_device
from dlrun.utils import seed_everything


@dataclass
class RunResult:
    run_dir: Path
    status: RunStatus
    results: dict[str, Any]


def run_experiment(
    cfg: ExperimentConfig,
    runs_dir: Path = Path("runs"),
    console: Console | None = None,
    command: list[str] | None = None,
    run_name: str | None = None,
    extra_callbacks: Sequence[Callback] = (),
    resume: bool = False,
) -> RunResult:
    """Run ``cfg`` under its evaluation protocol and write a complete run directory.

    ``run_name`` gives the directory an exact name (sweep trials); ``extra_callbacks`` join the
    training callbacks (a sweep's pruning and heartbeat); ``resume`` continues the existing run
    ``runs_dir/run_name`` from its saved states instead of starting a new one.
    """
    console = console or Console()
    seed_everything(cfg.seed)
    device = resolve_device(cfg.train.device)
    data = load_data(cfg)  # before the run directory exists: bad data leaves nothing behind
    plan = plan_protocol(cfg, data)
    run = _run_directory(runs_dir, cfg.name, run_name, resume)
    config_yaml = resolved_yaml(cfg)
    write_text(run.file("config.yaml"), config_yaml)
    _record_environment(run, environment(device, command or sys.argv), resume)
    progress = ProgressReporter(cfg.train.progress, console)
    recording = RunRecording(run, cfg, config_yaml, data, progress, list(extra_callbacks), resume)
    started = time.perf_counter()
    try:
        outcome = run_protocol(cfg, plan, device, recording)
    except BaseException as exc:
        run.set_status(RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
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


def _run_directory(runs_dir: Path, name: str, run_name: str | None, resume: bool) -> RunDirectory:
    if resume:
        if run_name is None:
            raise ValueError("resuming needs the run's directory name")
        run = RunDirectory.open(runs_dir / run_name)
        run.set_status(RunStatus.RUNNING)
        return run
    if run_name is not None:
        return RunDirectory.create(runs_dir, run_name, exact=True)
    return RunDirectory.create(runs_dir, name)


def _record_environment(run: RunDirectory, env: dict[str, Any], resume: bool) -> None:
    """env.json describes the first start; each resume is appended to its ``resumes`` list."""
    target = run.file("env.json")
    if resume and target.is_file():
        first = json.loads(target.read_text())
        first.setdefault("resumes", []).append(env)
        env = first
    write_json(target, env)


def resume_experiment(
    path: str | Path,
    overrides: Sequence[str] = (),
    console: Console | None = None,
    command: list[str] | None = None,
) -> RunResult:
    """Continue a killed, interrupted or finished run in place (``dlrun train --resume``).

    Only overrides that do not change what was learned are accepted (``train.epochs=30``
    extends a run); each fit continues from its last saved epoch, and on the CPU the result is
    bit for bit what an uninterrupted run gives.
    """
    run = RunDirectory.open(path)
    status = run.status().get("status")
    if status == RunStatus.DIVERGED.value:
        raise RunError(
            f"{path} diverged; resuming would repeat it. Start a new run (a lower learning "
            "rate usually helps)"
        )
    if status == RunStatus.PRUNED.value:
        raise RunError(f"{path} was pruned by its sweep; its trial is over")
    source = str(run.file("config.yaml"))
    text = run.file("config.yaml").read_text(encoding="utf-8")
    saved = config_from_text(text, source, [])
    cfg = config_from_text(text, source, list(overrides))
    check_resume_changes(saved, cfg, source)
    return run_experiment(cfg, run.path.parent, console, command, run.path.name, resume=True)


def models_for_summary(cfg: ExperimentConfig) -> list[BuiltModel]:
    """The task's models for ``dlrun validate``, from ``model.input_shape`` or the data itself."""
    task = task_for(cfg)
    if cfg.model.input_shape is not None:
        fields = {task.inputs[0]: FieldSpec(tuple(cfg.model.input_shape), torch.float32)}
    else:
        data = load_data(cfg)
        sample = np.arange(min(len(data.train), 256))
        entries = preprocess_entries(cfg, data.implied_steps)
        pipeline = fit_pipeline(entries, data.train, sample)
        sources = Sources(pipeline, task, cfg.train.batch_size, resolve_device("cpu"), False)
        fields = sources(data.train.subset(sample)).fields()
    task.build(fields, resolve_device("cpu"))
    return list(task.models.values())
