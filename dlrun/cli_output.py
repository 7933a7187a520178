"""What the command line prints about a run: result tables, warnings, the run directory."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from rich.table import Table

from dlrun.cli_common import console
from dlrun.cli_common import error_line
from dlrun.training.status import RunStatus

if TYPE_CHECKING:
    from dlrun.api import RunResult
    from dlrun.evaluation.scoring import Evaluation


def warn(text: str) -> None:
    """One warning, one line even when the output is a file (soft wrap), as errors are."""
    console.print(f"[yellow]warning:[/] {text}", highlight=False, soft_wrap=True)


def number_table(
    title: str, label: str | None, columns: list[str], rows: list[list[str]]
) -> Table:
    """Rows of formatted numbers under ``columns``, after a text column ``label`` if given.

    At a narrow terminal the text and the headers fold onto more lines, but a number never
    does (split over two lines it reads as two numbers): each number column is as wide as its
    longest cell. The table is at least as wide as its title (a run's path), which rich would
    otherwise wrap to the table's width mid-name.
    """
    table = Table(title=title, min_width=min(len(title), console.width))
    if label is not None:
        table.add_column(label, overflow="fold")
    first = 0 if label is None else 1
    for i, name in enumerate(columns, start=first):
        longest = max((len(row[i]) for row in rows), default=0)
        table.add_column(name, justify="right", overflow="fold", min_width=longest)
    for row in rows:
        table.add_row(*row)
    return table


def metrics_table(title: str, metrics: dict[str, float]) -> Table:
    return number_table(title, None, list(metrics), [[f"{v:.4f}" for v in metrics.values()]])


def print_result(result: RunResult) -> None:
    """The outcome, what to do about a diverged or interrupted run, and the run directory."""
    print_outcome(result.results)
    if result.status is RunStatus.DIVERGED:
        error_line(f"error: {result.results['stop_reason']}; try a lower learning rate")
    elif result.status is RunStatus.INTERRUPTED:
        error_line(
            "interrupted: partial results and report written; continue with "
            f"dlrun train --resume {result.run_dir}"
        )
    print(result.run_dir, flush=True)


def cv_table(cv: dict[str, Any]) -> Table:
    count = len(next(iter(cv["metrics"].values()))["values"])
    table = Table(title=f"cross-validation ({cv.get('layout') or f'{count} folds'})")
    for column in ("metric", "mean", "std", "per fold"):
        table.add_column(column, justify="right")
    for name, summary in cv["metrics"].items():
        values = " ".join(f"{v:.4f}" for v in summary["values"])
        table.add_row(name, f"{summary['mean']:.4f}", f"{summary['std']:.4f}", values)
    return table


def print_outcome(results: dict[str, Any]) -> None:
    """Cross-validation summary, the once-scored split, and every warning worth reading."""
    from dlrun.reporting.markdown import verdict_sentence

    cv = results.get("cross_validation")
    if cv and cv["metrics"]:
        console.print(cv_table(cv))
        if cv.get("best_epoch"):
            smoothed = "smoothed " if cv.get("smoothing") else ""
            console.print(f"best epoch by {smoothed}fold-averaged {cv['monitor']}: "
                          f"{cv['best_epoch']}")  # fmt: skip
    scored = results.get("evaluation")
    if scored:
        console.print(metrics_table(f"{scored['split']} metrics", scored["metrics"]))
    verdict = results.get("baseline_verdict")
    if verdict and not verdict["beats"]:
        warn(verdict_sentence(verdict))
    for warning in results.get("warnings") or []:
        warn(warning)


def fold_table(title: str, folds: list[tuple[str, Evaluation]]) -> Table:
    """One row per fold (name, then each metric) and their mean."""
    keys = list(folds[0][1].metrics)
    rows = [[name, *(f"{scored.metrics[k]:.4f}" for k in keys)] for name, scored in folds]
    means = [sum(s.metrics[k] for _, s in folds) / len(folds) for k in keys]
    rows.append(["mean", *(f"{m:.4f}" for m in means)])
    return number_table(title, "fold", keys, rows)
