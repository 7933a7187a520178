"""What a running sweep shows: one line per finished trial, and a live leaderboard on a terminal.

The study's storage is the one source: :meth:`SweepProgress.poll` reads it after each trial of an
in-process worker, and every second while worker processes run, so trials finished by other
processes (or other machines sharing the storage) are reported too. Each line says the trial's
folder number, its values, its objective, the best so far, the time spent and an estimate of the
time left (elapsed time per finished trial, times the trials left: worker parallelism included).

Example of a line::

    [3/4] trial 3 complete  objective 0.9167  optimizer.lr=0.05 units=4  best 0.9583 (trial 2)  elapsed 12s  left ~4s
"""

from __future__ import annotations

import time
from collections import Counter
from types import TracebackType

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
from rich.console import Console
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dlrun.config.schema import ExperimentConfig
from dlrun.sweep.names import folder_number
from dlrun.sweep.report import LEADERBOARD_COLUMNS
from dlrun.sweep.report import LeaderRow
from dlrun.sweep.report import fmt
from dlrun.sweep.report import leaderboard
from dlrun.sweep.report import leaderboard_cells
from dlrun.sweep.report import shown_state
from dlrun.sweep.space import SweepConfig
from dlrun.sweep.study import CONTINUED
from dlrun.sweep.trials import label

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
LIVE_ROWS = 10  # the live table's length: the best trials, then the running ones


def duration(seconds: float) -> str:
    """``41s``, ``4m05s``, ``2h03m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def trials_left(trials: list[FrozenTrial], sweep: SweepConfig) -> int:
    """Trials still to finish: queued and running ones, and for random/TPE the rest of the
    budget (which complete and pruned trials use up, as the workers count it)."""
    counts = Counter(t.state for t in trials)
    pending = counts[TrialState.WAITING] + counts[TrialState.RUNNING]
    if sweep.method == "grid":
        return pending
    used = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
    return max(pending, sweep.trial_budget() - used)


def leaderboard_table(rows: list[LeaderRow], names: list[str], title: str) -> Table:
    """The leaderboard as a rich table: floats with 4 significant digits."""
    table = Table(title=title)
    for column in (*LEADERBOARD_COLUMNS, *names, "seconds"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*leaderboard_cells(row, names))
    return table


class SweepProgress:
    """Reports the trials of ``study`` as they finish; a context manager for the live table.

    Trials finished before it started (a resumed sweep) count for "best so far" and the totals
    but are not reported again, and they do not enter the time estimate.
    """

    def __init__(self, cfg: ExperimentConfig, study: optuna.Study, console: Console) -> None:
        assert cfg.sweep is not None
        self.cfg, self.sweep, self.study, self.console = cfg, cfg.sweep, study, console
        self.names = list(self.sweep.parameters)
        self.maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        self.started = time.monotonic()
        trials = study.get_trials(deepcopy=False)
        self.reported = {t.number for t in trials if t.state in FINISHED}
        self.finished_here = 0
        self.rows: list[LeaderRow] = []
        self.counts: tuple[int, int, int] = (
            self._done(trials),
            0,
            trials_left(trials, self.sweep),
        )
        self.best = ""
        self.live: Live | None = None

    def __enter__(self) -> SweepProgress:
        if self.console.is_terminal and not self.console.quiet:
            self.live = Live(self, console=self.console, transient=True, refresh_per_second=2)
            self.live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def poll(self) -> None:
        """Report every trial that finished since the last poll and refresh the table."""
        trials = self.study.get_trials(deepcopy=False)
        new = [t for t in trials if t.state in FINISHED and t.number not in self.reported]
        new.sort(key=lambda t: (t.datetime_complete is None, t.datetime_complete, t.number))
        shown = [t for t in trials if t.number in self.reported]
        before = self._done(trials)
        self.reported.update(t.number for t in new)
        new = [t for t in new if not t.user_attrs.get(CONTINUED)]  # its continuation reports
        self.finished_here += len(new)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        self.counts = (self._done(trials), running, trials_left(trials, self.sweep))
        for ordinal, trial in enumerate(new, start=before + 1):
            shown.append(trial)
            self.best = self._best(shown)  # as of this line: a later trial is not named yet
            line = self.line(trial, ordinal)
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)
        self.best = self._best(trials)
        if self.live is not None:
            self.rows = leaderboard(self.cfg, self.study)[:LIVE_ROWS]
            self.live.refresh()

    def _done(self, trials: list[FrozenTrial]) -> int:
        """Finished trials reported, an attempt continued by a later trial not counted apart."""
        continued = {t.number for t in trials if t.user_attrs.get(CONTINUED)}
        return len(self.reported - continued)

    def line(self, trial: FrozenTrial, ordinal: int) -> str:
        """The ``ordinal``-th finished trial, with the sweep's totals and time as they stand."""
        done, _, left = self.counts
        number = folder_number(str(trial.user_attrs.get("run_dir", "")), trial.number)
        parts = [f"[{ordinal}/{done + left}] trial {number} {shown_state(trial).said}"]
        if trial.state == TrialState.COMPLETE:
            parts.append(f"objective {fmt(trial.value)}")
        if trial.user_attrs.get("error"):
            parts.append(f"({trial.user_attrs['error']})")
        spaces = self.sweep.parameters
        values = [
            f"{k}={fmt(label(spaces[k], v))}" for k, v in trial.params.items() if k in spaces
        ]
        parts += [" ".join(values), self.best, self.timing()]
        return "  ".join(part for part in parts if part)

    def timing(self) -> str:
        """``elapsed 41s  left ~2m44s``; the estimate is capped by the sweep's timeout."""
        elapsed = time.monotonic() - self.started
        _, _, left = self.counts
        text = f"elapsed {duration(elapsed)}"
        if not self.finished_here or not left:
            return text
        estimate = elapsed / self.finished_here * left
        if self.sweep.timeout is not None:
            estimate = min(estimate, max(0.0, self.sweep.timeout - elapsed))
        return f"{text}  left ~{duration(estimate)}"

    def _best(self, trials: list[FrozenTrial]) -> str:
        scored = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        if not scored:
            return ""
        pick = max if self.maximize else min
        best = pick(scored, key=lambda t: float(t.value or 0.0))
        number = folder_number(str(best.user_attrs.get("run_dir", "")), best.number)
        return f"best {fmt(best.value)} (trial {number})"

    def __rich__(self) -> Group:
        """The live view: the leaderboard so far and one status line (redrawn twice a second,
        so the elapsed time moves while a trial trains)."""
        done, running, left = self.counts
        status = f"{done}/{done + left} trials finished, {running} running"
        status = "; ".join(part for part in (status, self.best, self.timing()) if part)
        table = leaderboard_table(self.rows, self.names, f"sweep {self.cfg.name}")
        return Group(table, Text(status))
