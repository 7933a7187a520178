"""The one closed set of run and fit statuses, and the rule that goes with it."""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """Where a fit or a whole run stands.

    ``STOPPED_EARLY`` is a normal end of training (a callback decided it had learned enough); the
    halted statuses are not: a halted run skips the final retrain and never reads the test split.
    """

    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED_EARLY = "stopped_early"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    PRUNED = "pruned"
    FAILED = "failed"  # an exception ended the run (written to status.json only)

    @property
    def halted(self) -> bool:
        """Training ended before its time: nothing after it (final retrain, test) may run."""
        return self in _HALTED

    @property
    def resumable(self) -> bool:
        """Whether ``train --resume`` continues a run that ended so: not one that diverged
        (it would diverge again) nor a trial its sweep pruned."""
        return self not in (RunStatus.DIVERGED, RunStatus.PRUNED)

    @property
    def said(self) -> str:
        """The status in words, as a report's sentence reads it (``stopped early``)."""
        return self.value.replace("_", " ")

    def __str__(self) -> str:  # f-strings and messages show the value, not RunStatus.X
        return self.value


_HALTED = frozenset(
    {RunStatus.DIVERGED, RunStatus.INTERRUPTED, RunStatus.PRUNED, RunStatus.FAILED}
)
