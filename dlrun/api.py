"""The library API behind the CLI: train, resume, validate, evaluate and predict.

Tests call these functions directly; ``cli.py`` only parses arguments and prints.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from dlrun.config.load import config_from_text
from dlrun.config.load import resolved_yaml
from dlrun.config.resume import check_resume_changes
from dlrun.config.schema import ExperimentConfig
from dlrun.data.checksums import collect_notes
from dlrun.data.load import load_data
from dlrun.data.locate import local_copies_only
from dlrun.errors import DataNotHere
from dlrun.errors import DlrunError
from dlrun.errors import Interrupted
from dlrun.errors import RunError
from dlrun.evaluation.preflight import check_with_data
from dlrun.evaluation.preflight import check_with_shape
from dlrun.evaluation.runner import plan_protocol
from dlrun.evaluation.runner import run_protocol
from dlrun.evaluation.runner import split_sizes
from dlrun.interrupts import HeldInterrupt
from dlrun.interrupts import held_interrupts
from dlrun.models.build import BuiltModel
from dlrun.reporting.artifacts import RunFiles
from dlrun.reporting.artifacts import write_run_files
from dlrun.reporting.files import write_json
from dlrun.reporting.files import write_text
from dlrun.reporting.progress import ProgressReporter
from dlrun.reporting.progress import start_line
from dlrun.reporting.recorder import RunRecording
from dlrun.reporting.recorder import check_resumable
from dlrun.reporting.results import build_results
from dlrun.reporting.rundir import RunDirectory
from dlrun.reporting.rundir import environment
from dlrun.runs import read_results
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
    hold_back_test: bool = False,
) -> RunResult:
    """Run ``cfg`` under its evaluation protocol and write a complete run directory.

    ``run_name`` gives the directory an exact name (sweep trials); ``extra_callbacks`` join the
    training callbacks (a sweep's pruning and heartbeat); ``resume`` continues the existing run
    ``runs_dir/run_name`` from its saved states instead of starting a new one;
    ``hold_back_test`` leaves the test split unread (a sweep's trials: a test score beside
    every candidate invites choosing on it).
    """
    console = console or Console()
    seed_everything(cfg.seed)
    device = resolve_device(cfg.train.device)
    with collect_notes() as data_notes:  # e.g. a mirror file that is not the registered one
        data = load_data(cfg)  # before the run directory exists: bad data leaves nothing behind
    for note in data_notes:
        console.print(note, highlight=False, markup=False, soft_wrap=True)
    fingerprint = data.fingerprint()
    if resume and run_name is not None:
        RunDirectory(runs_dir / run_name).check_same_data(
            fingerprint, "resuming would mix the two"
        )
    plan = plan_protocol(cfg, data)
    if hold_back_test:
        plan = plan.without_test()
    task = check_with_data(cfg, plan.data, device)  # a mistake leaves no run directory behind
    run = _run_directory(runs_dir, cfg.name, run_name, resume)
    earlier_reads = _earlier_test_reads(run) if resume else 0
    config_yaml = resolved_yaml(cfg)
    env = {**environment(device, command or sys.argv), "data_fingerprint": fingerprint,
           "config_sha256": _config_digest(config_yaml),
           **({"test_held_back": True} if hold_back_test else {})}  # fmt: skip
    _record_environment(run, env, resume)  # first: a stop before the config leaves the old one
    write_text(run.file("config.yaml"), config_yaml)
    progress = ProgressReporter(cfg.train.progress, console)
    shown = f"{device} ({env['device_name']})" if device.type == "cuda" else str(device)
    sizes = split_sizes(plan)
    progress.announce(start_line(cfg.name, run.path, shown, task.total_params, sizes, resume))
    recording = RunRecording(run, cfg, config_yaml, data, progress, list(extra_callbacks), resume)
    started = time.perf_counter()
    try:
        outcome = run_protocol(cfg, plan, device, recording)
        with held_interrupts():  # Ctrl-C waits until the finished run's files are all written
            results = build_results(cfg, outcome, data.description, str(device),
                                    time.perf_counter() - started, data.class_names)  # fmt: skip
            results["data"]["notes"] = data_notes
            results["test_held_back"] = plan.held_back  # rows; 0 when nothing was held back
            _count_earlier_reads(results, earlier_reads)
            top = recording.top
            files = RunFiles(run, top.metrics.rows, top.tensorboard, config_yaml)
            write_run_files(files, cfg, data, results, outcome.top_model, outcome.evaluation,
                            outcome.cv, outcome.folds, summary_model=outcome.model)  # fmt: skip
            recording.close()
            run.set_status(outcome.status, outcome.stop_reason)
    except HeldInterrupt:  # the run's files are complete: nothing to mark or continue
        raise Interrupted(f"stopped by the user once {run.path} was complete") from None
    except KeyboardInterrupt:  # outside an epoch (an epoch stops cleanly by itself)
        run.set_status(RunStatus.INTERRUPTED, "interrupted by the user outside training")
        recording.close()
        raise Interrupted(
            f"stopped by the user; continue with dlrun train --resume {run.path}"
        ) from None
    except BaseException as exc:
        run.set_status(RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
        recording.close()
        raise
    return RunResult(run.path, outcome.status, results)


def _earlier_test_reads(run: RunDirectory) -> int:
    """How often the run's test split was read before this resume (0 without results: a
    damaged results.json is rewritten by the resume, not a reason to refuse it)."""
    try:
        return int(read_results(run.path).get("test_split_reads") or 0)
    except (RunError, TypeError, ValueError):
        return 0


def _count_earlier_reads(results: dict[str, Any], earlier: int) -> None:
    """A resumed run's test reads include those before it: a run extended after its test
    score was seen has had that score read more than once."""
    if not earlier:
        return
    now = results["test_split_reads"]
    results["test_split_reads"] = earlier + now
    if now:
        results["warnings"].append(
            f"the test split was scored before this resume too ({earlier + now} reads in all): "
            "a run changed or extended after its test score was seen is no longer tested on "
            "unseen data"
        )


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


def _refuse_parts(run: RunDirectory, path: str | Path) -> None:
    """A fold of a run, or a sweep's trial, is not resumed on its own: a fold's directory would
    fill with a whole new run, and a trial resumed as a run would read its held-back test."""
    above = run.run_above()
    if above is not None:
        raise RunError(f"{path} is one fold of the run {above}; resume that run: "
                       f"dlrun train --resume {above}")  # fmt: skip
    if run.holds_back_test():
        raise RunError(f"{path} is a sweep's trial, which never reads the test split; continue "
                       "the sweep with dlrun sweep CONFIG --resume, and test the chosen config "
                       "with dlrun train SWEEP_DIR/best_config.yaml")  # fmt: skip


def _config_digest(text: str) -> str:
    """What env.json records of each start's config.yaml, to tell a hand edit from it."""
    return hashlib.sha256(text.encode()).hexdigest()


def _refuse_edited_config(run: RunDirectory, text: str, source: str) -> None:
    """The run's config.yaml must be the one its last start wrote: an edited file would be
    taken for what was trained (a changed learning rate recorded but never used, a changed
    layer failing on the saved weights). Changes go through ``--resume`` overrides."""
    record = run.recorded_environment()
    # the last start's config, or the one before it when that start stopped before writing its
    written = [start.get("config_sha256") for start in [record, *record.get("resumes", [])]]
    if written[-1] is not None and _config_digest(text) not in written[-2:]:
        raise RunError(f"{source} was edited after the run wrote it, so it no longer says what "
                       "was trained; put it back, and give changes as key=value overrides "
                       "after --resume")  # fmt: skip


def _record_environment(run: RunDirectory, env: dict[str, Any], resume: bool) -> None:
    """env.json describes the first start; each resume is appended to its ``resumes`` list."""
    first = run.recorded_environment() if resume else {}  # checked before anything changed
    if first:
        first.setdefault("resumes", []).append(env)
        env = first
    write_json(run.file("env.json"), env)


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
    _refuse_parts(run, path)
    source = str(run.file("config.yaml"))
    text = run.file("config.yaml").read_text(encoding="utf-8")
    _refuse_edited_config(run, text, source)
    saved = config_from_text(text, source, [])
    cfg = config_from_text(text, source, list(overrides))
    changes = check_resume_changes(saved, cfg, source)
    check_resumable(run, cfg)
    console = console or Console()
    if changes:
        changed = "; ".join(str(change) for change in changes)
        console.print(f"resuming with changed settings: {changed}", highlight=False,
                      markup=False, soft_wrap=True)  # fmt: skip
    elif overrides:
        console.print("the overrides match the run's saved config: nothing changes",
                      highlight=False)  # fmt: skip
    return run_experiment(cfg, run.path.parent, console, command, run.path.name, resume=True)


@dataclass
class Validation:
    """What ``dlrun validate`` found: the task's models, and why the data was not used, if not."""

    models: list[BuiltModel]
    skipped_data: str | None = None


def validate_experiment(cfg: ExperimentConfig, use_data: bool = True) -> Validation:
    """Build the task's models without allocating them and check them against the data.

    With the data (the default, when it can be read) the outputs are checked against every
    training target and the protocol's splits are planned, as ``train`` does before it creates
    a run directory. With a ``model.input_shape`` only data already here (``data.path``, a
    mirror, the cache) is read, never downloaded; without it (``use_data=False``, or data that
    is not here) the models are built for ``model.input_shape`` alone.
    """
    try:
        device = resolve_device(cfg.train.device)
    except DlrunError:
        device = torch.device("meta")  # a device this machine lacks: its memory is unknown
    if not use_data:
        task = check_with_shape(cfg, device)
        return Validation(list(task.models.values()), "--no-data")
    try:
        reading = (
            local_copies_only("validate reads only local copies when model.input_shape is set")
            if cfg.model.input_shape is not None
            else nullcontext()
        )
        with reading:
            data = load_data(cfg)
    except DataNotHere as exc:  # a file here but damaged is a failure, not a skip
        if cfg.model.input_shape is None:
            raise
        task = check_with_shape(cfg, device)
        return Validation(list(task.models.values()), f"it could not be read here: {exc}")
    task = check_with_data(cfg, plan_protocol(cfg, data).data, device)
    return Validation(list(task.models.values()))


def models_for_summary(cfg: ExperimentConfig) -> list[BuiltModel]:
    """The task's models for a summary: from ``model.input_shape`` when it is given (no data
    is read), else from the data."""
    return validate_experiment(cfg, use_data=cfg.model.input_shape is None).models
