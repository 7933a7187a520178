"""The figure process of ``dlrun train``: imports matplotlib at once, then draws what it is sent.

Started by :class:`dlrun.reporting.drawing.FigureProcess` before the run imports torch, it pays
matplotlib's import on another core while the run loads and trains, and draws each figure as it
arrives. It reads pickled :class:`~dlrun.reporting.drawing.Figure` objects from stdin until the
run closes it, and writes one line per figure to stdout: the target path when drawn,
``!<path>\\t<error>`` when drawing failed (the traceback goes to stderr). It runs in its own
session, away from the terminal's Ctrl-C, and ignores SIGINT where that does not apply (Windows):
the run decides whether the figures are still wanted, and stops it with SIGTERM, which unwinds
like an exit so that a figure half-written leaves no temporary file.

    python -m dlrun.reporting.figure_worker
"""

from __future__ import annotations

import io
import pickle
import signal
import sys
import traceback


def warm_up() -> None:
    """Import matplotlib's figure and Agg modules and render once (fonts, caches)."""
    from matplotlib.figure import Figure

    import dlrun.reporting.plots  # noqa: F401 - what the figures call

    figure = Figure(figsize=(1, 1))
    figure.subplots().plot([0, 1], [0, 1])
    figure.savefig(io.BytesIO(), format="png")


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(1)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit)
    warm_up()
    source = sys.stdin.buffer
    while True:
        try:
            figure = pickle.load(source)
        except EOFError:
            return
        try:
            figure()
        except Exception as exc:  # reported to the run, which raises the first one
            traceback.print_exc()
            message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            print(f"!{figure.target}\t{message}", flush=True)
        else:
            print(figure.target, flush=True)


if __name__ == "__main__":
    from dlrun.exiting import exit_now

    main()
    exit_now(0)  # the run waits for this process to end: skip matplotlib's teardown
