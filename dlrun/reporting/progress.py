"""Live training progress: a rich bar on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import math
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn
from rich.progress import MofNCompleteColumn
from rich.progress import Progress
from rich.progress import TaskID
from rich.progress import TextColumn
from rich.progress import TimeElapsedColumn

from dlrun.reporting.markdown import sizes_text
from dlrun.tasks.base import mean_loss
from dlrun.training.callbacks import Callback
from dlrun.training.state import TrainState
from dlrun.training.status import RunStatus

REFRESH_SECONDS = 0.25
# Under the bar, printing a line redraws the live display (about a millisecond): epoch lines
# of fast epochs are gathered and printed together at most this often, and at the fit's end.
LINES_SECONDS = 0.1


def format_logs(logs: dict[str, float]) -> str:
    return "  ".join(f"{key} {value:.4g}" for key, value in logs.items())


def start_line(
    name: str, run_dir: Path, device: str, params: int, sizes: dict[str, int | str], resume: bool
) -> str:
    """What a run is about to do, in one line: where it writes, on what, how big, on what data.

    Example:
        >>> start_line("quickstart", Path("runs/q"), "cpu", 8970,
        ...            {"train": 1149, "validation": 288, "test": 360}, resume=False)
        'training quickstart in runs/q on cpu: 8,970 parameters; train 1,149, validation 288, test 360'
    """
    verb = "resuming" if resume else "training"
    return f"{verb} {name} in {run_dir} on {device}: {params:,} parameters; {sizes_text(sizes)}"


class ProgressReporter(Callback):
    """``mode`` is ``bar``, ``plain`` or ``none``; ``auto`` picks ``bar`` on a terminal."""

    def __init__(self, mode: str, console: Console | None = None, label: str = "") -> None:
        super().__init__()
        self.console = console or Console()
        self.mode = ("bar" if self.console.is_terminal else "plain") if mode == "auto" else mode
        self.label = label
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.lines: list[str] = []  # epoch lines not printed yet (bar mode)
        self.lines_printed = -math.inf  # the first line at once, however early the clock

    def note(self, line: str) -> None:
        """Print ``line`` whatever the mode: something the user must know (as warnings)."""
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def announce(self, line: str) -> None:
        """Print ``line`` before any progress (the run's start line); nothing in mode none,
        which asks for a silent run."""
        if self.mode != "none":
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def on_fit_start(self, state: TrainState) -> None:
        """One bar for the whole fit, rewound each epoch: adding, removing or resetting a task
        redraws the display at once (about a millisecond each), which epochs of a few
        milliseconds would pay every time; an update is only recorded for the next refresh."""
        if self.mode == "bar":
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[live]}"),
                console=self.console, transient=True,
            )  # fmt: skip
            self.progress.start()
            self.task = self.progress.add_task("", total=state.batches_per_epoch, live="")

    def on_epoch_start(self, state: TrainState) -> None:
        self.epoch_started = time.perf_counter()
        self.last_refresh = -math.inf
        if self.progress is not None and self.task is not None:
            description = f"{self.label}epoch {state.epoch + 1}/{state.epochs}"
            self.progress.update(self.task, completed=0, total=state.batches_per_epoch,
                                 description=description, live="")  # fmt: skip
            (task,) = self.progress.tasks  # what Progress.reset clears, less its redraw:
            task.finished_time = None  # the bar is unfinished again
            task.start_time = self.progress.get_time()  # and its elapsed time is the epoch's

    def on_batch_end(self, state: TrainState) -> None:
        if self.progress is None or self.task is None:
            return
        now = time.perf_counter()
        if self.lines and now - self.lines_printed >= LINES_SECONDS:
            self._print_lines(now)  # a fast epoch's line does not wait for a slow one to end
        if now - self.last_refresh > REFRESH_SECONDS and state.results:
            live = f"loss {mean_loss(state.results):.4f}"  # reads the device rarely
            self.last_refresh = now
            self.progress.update(self.task, completed=state.batch, live=live)
        else:
            self.progress.update(self.task, completed=state.batch)

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        if self.mode == "none":
            return
        seconds = time.perf_counter() - self.epoch_started
        line = (
            f"{self.label}epoch {state.epoch}/{state.epochs} ({seconds:.1f}s)  {format_logs(logs)}"
        )
        if self.progress is None and not self.console.quiet:
            # no live display to keep below the line: the text as it is, without rich's
            # rendering (85 microseconds a line, a tenth of a second over 1000 short epochs)
            self.console.file.write(line + "\n")
            self.console.file.flush()  # a pipe or log file sees each epoch as it ends
            return
        self.lines.append(line)
        now = time.perf_counter()
        if now - self.lines_printed >= LINES_SECONDS:
            self._print_lines(now)

    def _print_lines(self, now: float | None = None) -> None:
        if self.lines:
            text = "\n".join(self.lines)
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)
            self.lines.clear()
        self.lines_printed = time.perf_counter() if now is None else now

    def close(self) -> None:
        """Print the gathered lines and take the bar down: the end of a fit, or a run that
        fails inside one (the last epochs' lines are the ones to see then)."""
        self._print_lines()
        if self.progress is not None:
            self.progress.stop()
            self.progress = self.task = None

    def on_fit_end(self, state: TrainState) -> None:
        """Say why a fit stopped early; a divergence is left to the run's end, which reports
        it once, as an error with what to try."""
        self.close()
        if state.stop_reason and self.mode != "none" and state.status is not RunStatus.DIVERGED:
            self.console.print(f"{self.label}{state.stop_reason}", highlight=False)
