"""Record training into run directories: the top run and one sub-run per fold.

:class:`RunRecording` is what :func:`dlrun.evaluation.runner.run_protocol` talks to. Each
directory gets its own metrics files and TensorBoard writer, so folds appear in TensorBoard as
sibling runs; a finished fold is written out at once, so a stopped K-fold run keeps it. Each fit
also keeps a resume state (``resume-fit.pt``, ``resume-final.pt``, or ``resume-folds.pt`` for
stacked folds) beside its files.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import LoadedData
from dlrun.evaluation.fitting import FitHooks
from dlrun.evaluation.fitting import SaverFactory
from dlrun.evaluation.outcome import FoldOutcome
from dlrun.evaluation.protocols import Fold
from dlrun.preprocess.pipeline import Pipeline
from dlrun.reporting.artifacts import RunFiles
from dlrun.reporting.artifacts import write_run_files
from dlrun.reporting.files import write_text
from dlrun.reporting.loggers import MetricsFileLogger
from dlrun.reporting.loggers import TensorBoardLogger
from dlrun.reporting.progress import ProgressReporter
from dlrun.reporting.results import fold_results
from dlrun.reporting.rundir import RunDirectory
from dlrun.training.batches import Fields
from dlrun.training.callbacks import CALLBACKS
from dlrun.training.callbacks import Callback
from dlrun.training.callbacks import CallbackList
from dlrun.training.checkpoint import DataNames
from dlrun.training.checkpoint import save_checkpoint
from dlrun.training.snapshots import Snapshots
from dlrun.training.snapshots import read_resume_state
from dlrun.training.state import TrainState

RESUME_FILE = "resume-{phase}.pt"


def check_resumable(run: RunDirectory, cfg: ExperimentConfig) -> None:
    """Read every saved fit of ``run`` as resuming it with ``cfg`` will, before the run's files
    change: a fit that cannot continue (fewer epochs than it trained, a damaged file) is
    refused while the run is still as it was (resuming rewrites its config and TensorBoard
    files, and a failure half-way would leave it marked failed)."""
    final = cfg.evaluation.final
    for path in sorted(run.path.rglob(RESUME_FILE.format(phase="*"))):
        epochs = cfg.train.epochs  # a fit's, and a final retrain's (its best epoch, at most)
        if path.name == RESUME_FILE.format(phase="final") and final is not None:
            epochs = final.epochs if isinstance(final.epochs, int) else epochs
        read_resume_state(path, epochs)


def _trained_before(run: RunDirectory, phase: str) -> bool:
    """Whether the run's metrics hold epochs of ``phase``: a fit that trained before, whose
    resume state is gone (deleted, or never written by an old version), starts over."""
    try:
        lines = run.file("metrics.jsonl").read_text().splitlines()
    except OSError:
        return False
    with contextlib.suppress(ValueError):
        return any(json.loads(line).get("phase", "fit") == phase for line in lines if line)
    return False


@dataclass
class DirectoryLog:
    """The metrics files and TensorBoard events of one run directory."""

    run: RunDirectory
    metrics: MetricsFileLogger
    tensorboard: TensorBoardLogger

    @classmethod
    def at(cls, run: RunDirectory, resuming: bool) -> DirectoryLog:
        metrics = MetricsFileLogger(run.path)
        return cls(run, metrics, TensorBoardLogger(run.path, fresh=resuming, rows=metrics))

    def set_phase(self, phase: str) -> None:
        self.metrics.phase = self.tensorboard.phase = phase


class RunRecording:
    """``resuming`` reopens an existing run: its fold directories are reused and each fit
    continues from its resume state."""

    def __init__(
        self,
        run: RunDirectory,
        cfg: ExperimentConfig,
        config_yaml: str,
        data: LoadedData,
        progress: ProgressReporter,
        extra_callbacks: list[Callback] | None = None,
        resuming: bool = False,
    ) -> None:
        self.run = run
        self.cfg = cfg
        self.config_yaml = config_yaml
        self.data = data
        self.names = DataNames(data.class_names, data.feature_names, data.vocabulary)
        self.reporter = progress
        self.extra_callbacks = extra_callbacks or []
        self.resuming = resuming
        self.logs: dict[str, DirectoryLog] = {"": DirectoryLog.at(run, resuming)}
        self.found: set[Path] = set()  # resume states seen here: one dlrun removes is no news

    @property
    def top(self) -> DirectoryLog:
        return self.logs[""]

    def log_for(self, fold: Fold | None) -> DirectoryLog:
        name = "" if fold is None else fold.name
        if name not in self.logs:
            child = self.run.create_child(name, reuse=self.resuming)
            write_text(child.file("config.yaml"), self.config_yaml)
            self.logs[name] = DirectoryLog.at(child, self.resuming)
        return self.logs[name]

    def hooks(self, fold: Fold | None, phase: str, progress: bool = True) -> FitHooks:
        log = self.log_for(fold)
        log.set_phase(phase)
        chain: list[Callback] = [log.metrics, log.tensorboard]
        if phase == "fit":
            user = [
                CALLBACKS.get(n)(c) for n, c in (e.selected() for e in self.cfg.train.callbacks)
            ]
            chain = [*user, *self.extra_callbacks, *chain]
        if progress:
            label = fold.label if fold is not None else "final retrain"
            self.reporter.label = f"{label}: " if label else ""
            chain.append(self.reporter)
        return FitHooks(CallbackList(chain), self.saver(log), self.snapshots(fold, phase))

    def snapshots(self, fold: Fold | None, phase: str) -> Snapshots:
        log = self.log_for(fold)
        path = log.run.file(RESUME_FILE.format(phase=phase))
        if path.is_file():
            self.found.add(path)  # if it goes, dlrun discarded it (a stale final retrain)
        elif self.resuming and path not in self.found and _trained_before(log.run, phase):
            self.reporter.note(f"note: {path} is missing, so this fit trains again from epoch 1")
        return Snapshots(path, self.cfg.train.checkpoint_every)

    def saver(self, log: DirectoryLog) -> SaverFactory:
        def factory(pipeline: Pipeline, fields: Fields) -> Callable[[str, TrainState], None]:
            def save(name: str, state: TrainState) -> None:
                save_checkpoint(log.run.file(name), state.task, pipeline, self.config_yaml,
                                state, fields, self.names)  # fmt: skip

            return save

        return factory

    def progress(self, label: str) -> Callback:
        self.reporter.label = label
        return self.reporter

    def fold_finished(self, outcome: FoldOutcome) -> None:
        if not outcome.fold.name:
            return  # a single split is the run itself, written when the run finishes
        log = self.log_for(outcome.fold)
        results = fold_results(self.cfg, outcome)
        files = RunFiles(log.run, log.metrics.rows, log.tensorboard, self.config_yaml)
        write_run_files(files, self.cfg, self.data, results, outcome.fitted, outcome.evaluation)
        log.run.set_status(outcome.fitted.state.status, outcome.fitted.state.stop_reason)

    def close(self) -> None:
        """Close every directory's events files and the progress display, each even when
        another fails (a full disk); a failure is raised once all have been tried."""
        with contextlib.ExitStack() as stack:
            stack.callback(self.reporter.close)
            for log in self.logs.values():
                stack.callback(log.tensorboard.close)
