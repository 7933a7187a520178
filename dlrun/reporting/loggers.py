"""Callbacks that record training: per-epoch metric files and TensorBoard events.

TensorBoard's writer is imported when a run creates one, not with this module, so commands
that train nothing (``validate``, ``runs``, ``datasets``) do not pay for it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from dlrun.reporting.files import write_csv
from dlrun.reporting.files import write_text
from dlrun.training.callbacks import Callback
from dlrun.training.state import TrainState

FLUSH_SECONDS = 2  # TensorBoard's writer timer
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
        self.flushed_at = 0.0
        self.flush_cost = 0.0

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        self.rows.append({"phase": self.phase, "epoch": state.epoch, **logs})
        if time.monotonic() - self.flushed_at >= self.flush_cost / FLUSH_SHARE:
            self.flush()

    def on_fit_end(self, state: TrainState) -> None:
        self.flush(durable=True)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(row) for row in state["rows"]]
        self.flush()

    def flush(self, durable: bool = False) -> None:
        started = time.monotonic()
        header = list(dict.fromkeys(key for row in self.rows for key in row))
        rows = [[row.get(k, "") for k in header] for row in self.rows]
        write_csv(self.directory / "metrics.csv", header, rows, durable)
        lines = "".join(json.dumps(row) + "\n" for row in self.rows)
        write_text(self.directory / "metrics.jsonl", lines, durable)
        self.flushed_at = time.monotonic()
        self.flush_cost = self.flushed_at - started


def tensorboard_tag(key: str, phase: str) -> str:
    """``val_accuracy`` -> ``val/accuracy``; training keys go under ``train/`` (or ``final/``)."""
    if key == "lr":
        return f"{phase}/lr" if phase != "fit" else "lr"
    if key.startswith("val_"):
        return f"val/{key.removeprefix('val_')}"
    return f"{'train' if phase == 'fit' else phase}/{key}"


class TensorBoardLogger(Callback):
    """Scalars per epoch, plus one HParams record in the same directory (no sub-runs).

    A resumed fit replays the rows its directory's :class:`MetricsFileLogger` restored into a
    fresh events file (the directory's old ones are removed first), so TensorBoard shows each
    epoch once, as in an uninterrupted run; the rows themselves are saved only once, there.
    """

    def __init__(
        self, directory: Path, fresh: bool = False, rows: MetricsFileLogger | None = None
    ) -> None:
        super().__init__()
        if fresh:
            for old in directory.glob("events.out.tfevents.*"):
                old.unlink()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(directory), flush_secs=FLUSH_SECONDS)
        self.phase = "fit"
        self.rows = rows
        self.written = 0  # rows of ``rows`` already in the events file

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        self._write(self.phase, state.epoch, logs)

    def _write(self, phase: str, epoch: int, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            self.writer.add_scalar(tensorboard_tag(key, phase), value, epoch)
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

    def write_hparams(self, params: dict[str, Any], results: dict[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams

        clean = {
            k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in params.items()
        }
        metrics = {f"hparams/{k}": v for k, v in results.items() if math.isfinite(v)}
        experiment, start, end = hparams(clean, metrics)
        file_writer = self.writer._get_file_writer()  # this directory: no extra sub-run
        for summary in (experiment, start, end):
            file_writer.add_summary(summary)
        for key, value in metrics.items():
            self.writer.add_scalar(key, value)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
