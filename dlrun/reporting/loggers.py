"""Callbacks that record training: per-epoch metric files and TensorBoard events.

TensorBoard's modules are imported when a run opens an events file, not with this module, so
commands that train nothing (``validate``, ``runs``, ``datasets``) do not pay for them.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from dlrun.reporting.events import EventsFile
from dlrun.reporting.files import TimeShare
from dlrun.reporting.files import json_line
from dlrun.reporting.files import write_csv
from dlrun.reporting.files import write_text
from dlrun.reporting.hparams import session_summaries
from dlrun.training.callbacks import Callback
from dlrun.training.state import TrainState
from dlrun.training.status import RunStatus

FLUSH_SECONDS = 2  # events reach the disk this often, so a live TensorBoard follows the run
FLUSH_SHARE = 0.01  # metric-file rewrites may take at most this share of the training time


class MetricsFileLogger(Callback):
    """Rewrites ``metrics.csv`` and ``metrics.jsonl`` atomically, so they are always complete.

    Rows carry a ``phase`` (``fit`` for the protocol's training, ``final`` for a retrain) so one
    file holds the whole run. Files are rewritten after an epoch unless that would spend more
    than ``FLUSH_SHARE`` of the time on rewriting (many epochs of a few milliseconds), and always at
    the end of each fit: slow epochs are never lost to a kill, fast ones lose a fraction of a
    second at most (and the resume state holds every row anyway). Only the end-of-fit rewrite
    waits for the disk (``fsync``); a per-epoch one is atomic but not flushed, since a process
    killed at any point still leaves a whole file.
    """

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.rows: list[dict[str, Any]] = []
        self.phase = "fit"
        self.budget = TimeShare(FLUSH_SHARE)

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        self.rows.append({"phase": self.phase, "epoch": state.epoch, **logs})
        if self.budget.due():
            self.flush()

    def on_fit_end(self, state: TrainState) -> None:
        self.flush(durable=True)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(row) for row in state["rows"]]
        self.flush()

    def flush(self, durable: bool = False) -> None:
        with self.budget.timed():
            header = list(dict.fromkeys(key for row in self.rows for key in row))
            rows = [[row.get(k, "") for k in header] for row in self.rows]
            write_csv(self.directory / "metrics.csv", header, rows, durable)
            lines = "".join(json_line(row) for row in self.rows)
            write_text(self.directory / "metrics.jsonl", lines, durable)


# Each phase's training and validation values go to sibling sub-runs under the same tags, so
# TensorBoard overlays them in one chart (the layout of Keras's TensorBoard callback).
PHASE_RUNS: dict[str, tuple[str, str]] = {
    "fit": ("train", "validation"),
    "final": ("final", "final_validation"),  # a retrain on train+val has no validation values
}
CURVE_GROUP = "epoch"  # one Time Series section holding every learning curve
RESULTS_RUN = "results"  # the HParams session: hyperparameters and final/CV numbers
SUB_RUNS = (*(run for runs in PHASE_RUNS.values() for run in runs), RESULTS_RUN)
EVENTS = "events.out.tfevents.*"


def tensorboard_place(key: str, phase: str) -> tuple[str, str]:
    """The sub-run and tag of one per-epoch value.

    ``val_accuracy`` of the fit goes to ``validation/`` and ``accuracy`` to ``train/``, both as
    ``epoch/accuracy``; the learning rate is a training value (``train/``, ``epoch/lr``). Tags
    share the ``epoch/`` prefix so Time Series shows all curves in its first, expanded section.

    Example:
        >>> tensorboard_place("val_loss", "fit")
        ('validation', 'epoch/loss')
        >>> tensorboard_place("loss", "final")
        ('final', 'epoch/loss')
    """
    train, validation = PHASE_RUNS[phase]
    name = key.removeprefix("val_")
    return (validation if name != key else train), f"{CURVE_GROUP}/{name}"


def remove_events(directory: Path) -> None:
    """Delete the events this logger writes under ``directory`` (its sub-runs, and the
    directory itself, where runs before the sub-run layout kept them), but not a fold's."""
    for folder in (directory, *(directory / run for run in SUB_RUNS)):
        for old in folder.glob(EVENTS):
            old.unlink()


class TensorBoardLogger(Callback):
    """Learning curves per epoch in sub-runs, and the run's HParams record in ``results/``.

    Layout of a run directory ``R`` (a fold's directory is laid out alike)::

        R/train/       epoch/loss, epoch/accuracy, ..., epoch/lr   (the fit's training values)
        R/validation/  epoch/loss, epoch/accuracy, ...             (the fit's validation values)
        R/final/       epoch/loss, ...                             (a final retrain)
        R/results/     HParams session; results/test_accuracy, results/validation_loss, ...

    The HParams session lives in ``results/`` rather than in ``R`` because TensorBoard turns
    every scalar under a session's directory into an HParams metric column: there, the columns
    are the run's final and cross-validated numbers, not the last value of every curve. No run
    writes an HParams *experiment* summary: TensorBoard then builds one from all sessions in the
    log directory (the union of their hyperparameters and metrics, settings that differ first),
    instead of picking one run's at random, so runs of different configs compare in one table.

    A resumed fit replays the rows its directory's :class:`MetricsFileLogger` restored into
    fresh events files (the old ones are removed first), so TensorBoard shows each epoch once,
    as in an uninterrupted run; the rows themselves are saved only once, there. Writers open on
    first use, so a phase without validation values leaves no empty sub-run.
    """

    def __init__(
        self, directory: Path, fresh: bool = False, rows: MetricsFileLogger | None = None
    ) -> None:
        super().__init__()
        if fresh:
            remove_events(directory)
        self.directory = directory
        self.writers: dict[str, EventsFile] = {}
        self.phase = "fit"
        self.rows = rows
        self.written = 0  # rows of ``rows`` already in the events files

    def writer(self, run: str) -> EventsFile:
        if run not in self.writers:
            self.writers[run] = EventsFile(self.directory / run, FLUSH_SECONDS)
        return self.writers[run]

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        self._write(self.phase, state.epoch, logs)

    def _write(self, phase: str, epoch: int, logs: dict[str, float]) -> None:
        """One event per sub-run holding all its values of the epoch: the scalars
        ``add_scalar`` would write (``simple_value``), at a quarter of the cost of one event
        per value, which weighs in runs of a thousand millisecond epochs."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        values: dict[str, list[Summary.Value]] = {}
        for key, value in logs.items():
            run, tag = tensorboard_place(key, phase)
            values.setdefault(run, []).append(Summary.Value(tag=tag, simple_value=value))
        for run, run_values in values.items():
            self.writer(run).add_summary(Summary(value=run_values), epoch)
        self.written += 1

    def state_dict(self) -> dict[str, Any]:
        return {"written": self.written}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Write the restored rows this writer has not written yet (a directory's second phase,
        such as a final retrain, restores the first phase's rows too)."""
        if self.rows is None:
            return
        for row in self.rows.rows[self.written : int(state["written"])]:
            logs = {k: v for k, v in row.items() if k not in ("phase", "epoch")}
            self._write(str(row["phase"]), int(row["epoch"]), logs)

    def write_hparams(
        self, params: dict[str, Any], scores: dict[str, dict[str, float]], status: RunStatus
    ) -> None:
        """The HParams session of this run: ``params``, and ``scores`` per split (``{"test":
        {"accuracy": 0.9}}``) as ``results/test_accuracy`` scalars in ``results/``; values that
        are not finite are left out."""
        writer = self.writer(RESULTS_RUN)
        for summary in session_summaries(params, status):
            writer.add_summary(summary)
        for split, metrics in scores.items():
            for name, value in metrics.items():
                if math.isfinite(value):
                    writer.add_scalar(f"{RESULTS_RUN}/{split}_{name}", value, 0)
        writer.flush()

    def on_fit_end(self, state: TrainState) -> None:
        """A finished fit's last epochs reach the disk now, not when the run ends."""
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        """Close every events file, each even when another fails; a later value opens a new
        file beside it."""
        writers, self.writers = list(self.writers.values()), {}
        with contextlib.ExitStack() as stack:
            for writer in writers:
                stack.callback(writer.close)
