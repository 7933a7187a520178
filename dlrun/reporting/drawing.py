"""Figures drawn in a separate process while the run goes on, when the command asks for it.

Matplotlib costs about a second to import on a small machine, and a tenth of a second or more
per figure; a run's result line should not wait for either. Inside :func:`drawn_last` (what
``dlrun train`` enters before it imports torch) a :class:`FigureProcess` imports matplotlib on
another core while the run loads and trains, and draws each figure as soon as :func:`draw` sends
it; the scope waits for the last one as it closes, after the command printed its result. A
figure that cannot be sent (a function defined inside another, a process that died) is drawn in
this process at the end instead. Elsewhere (the library API, tests, sweep trials) figures are
drawn at once, as before. Either way each file is written atomically: whole or not at all.

Example:
    >>> with drawn_last():  # doctest: +SKIP
    ...     result = run_experiment(cfg)  # figures sent to the figure process
    ...     print(result.run_dir)  # the result line comes first
    ... # here the scope waits until every figure is drawn
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun.errors import RunError
from dlrun.interrupts import held_interrupts


@dataclass(frozen=True)
class Figure:
    """A call ``function(*args, target)`` that draws one figure into ``target``."""

    function: Callable[..., None]
    args: tuple[Any, ...]
    target: Path

    def __call__(self) -> None:
        self.function(*self.args, self.target)


class FigureProcess:
    """A ``python -m dlrun.reporting.figure_worker`` child drawing the figures it is sent."""

    def __init__(self) -> None:
        self.sent: list[Figure] = []
        # Files, not pipes, so the child never blocks on a full pipe; finish() or stop() close them.
        self.output = tempfile.TemporaryFile()  # noqa: SIM115
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115
        paths = os.pathsep.join(path for path in sys.path if path)  # a plugin's figures import
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dlrun.reporting.figure_worker"],
            stdin=subprocess.PIPE, stdout=self.output, stderr=self.errors,
            env={**os.environ, "PYTHONPATH": paths, "PYTHONSAFEPATH": "1"},  # not the cwd's modules
            start_new_session=True,
        )  # fmt: skip

    def send(self, figure: Figure) -> bool:
        """Hand ``figure`` over; ``False`` when it cannot go (not picklable, child gone)."""
        try:
            data = pickle.dumps(figure, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # pickle raises several types for what it cannot store
            return False
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except OSError:  # the child died
            return False
        self.sent.append(figure)
        return True

    def finish(self) -> tuple[list[Figure], list[str]]:
        """Wait for the child; returns the sent figures it did not draw and its failures."""
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        self.process.wait()
        self.output.seek(0)
        lines = self.output.read().decode(errors="replace").splitlines()
        self.output.close()
        failures = [line[1:] for line in lines if line.startswith("!")]
        done = {line.split("\t")[0].removeprefix("!") for line in lines}
        if failures:  # the child's tracebacks, for the one who reads the error
            self.errors.seek(0)
            sys.stderr.write(self.errors.read().decode(errors="replace"))
        self.errors.close()
        return [f for f in self.sent if str(f.target) not in done], failures

    def stop(self) -> None:
        """Abandon the figures not drawn yet (Ctrl-C, a failed run with none to draw): the
        child ends on SIGTERM through its ``finally`` blocks, so no temporary file is left."""
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output.close()
        self.errors.close()


@dataclass
class _Scope:
    """What :func:`drawn_last` collects: figures the process has, and those drawn here."""

    process: FigureProcess | None
    here: list[Figure]

    def figures(self) -> list[Figure]:
        return [*(self.process.sent if self.process else []), *self.here]


_PENDING: ContextVar[_Scope | None] = ContextVar("dlrun_pending_figures", default=None)


def draw(function: Callable[..., None], *args: Any, target: Path) -> None:
    """Draw ``function(*args, target)`` now, or in the enclosing :func:`drawn_last`'s process."""
    figure = Figure(function, args, target)
    scope = _PENDING.get()
    if scope is None:
        figure()
    elif scope.process is None or not scope.process.send(figure):
        scope.here.append(figure)


def pending_names(directory: Path) -> list[str]:
    """Names of the figures sent or still to be drawn into ``directory`` (a report lists them)."""
    scope = _PENDING.get()
    return (
        [f.target.name for f in scope.figures() if f.target.parent == directory] if scope else []
    )


def _start_process() -> FigureProcess | None:
    try:
        return FigureProcess()
    except OSError:  # no process to be had: everything is drawn here at the end
        return None


@contextlib.contextmanager
def drawn_last() -> Iterator[None]:
    """Draw the block's figures in a separate process; wait for them when the block ends.

    A block that fails still gets the figures of what it finished (a K-fold run's completed
    folds), and its own error is the one raised; Ctrl-C abandons those not drawn yet.
    """
    scope = _Scope(_start_process(), [])
    finished = interrupted = False
    token = _PENDING.set(scope)
    try:
        yield
        finished = True
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        _PENDING.reset(token)
        if finished:
            with held_interrupts():  # the report embeds them: Ctrl-C waits until they are drawn
                _finish(scope)
        elif interrupted or not scope.figures():  # nothing to wait for: don't
            if scope.process is not None:
                scope.process.stop()
        else:
            with contextlib.suppress(Exception):
                _finish(scope)


def _finish(scope: _Scope) -> None:
    """Wait for the process, draw here what it could not, then raise the first failure."""
    failures: list[str] = []
    undrawn = scope.here
    if scope.process is not None:
        left, failures = scope.process.finish()
        undrawn = [*left, *scope.here]
    try:
        _draw_all(undrawn)
    finally:
        if failures:
            path, _, message = failures[0].partition("\t")
            raise RunError(f"drawing {Path(path).name} failed: {message} (traceback above)")


def _draw_all(figures: list[Figure]) -> None:
    """Every figure, even after one fails (each is its own file); then the first failure."""
    failure: Exception | None = None
    for figure in figures:
        try:
            figure()
        except Exception as exc:  # raised below, once the others are drawn
            failure = failure or exc
    if failure is not None:
        raise failure
