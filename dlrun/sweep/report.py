"""What a finished sweep leaves: leaderboard.csv, plots, best_config.yaml and report.md."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from dlrun.config.load import resolved_yaml
from dlrun.config.schema import ExperimentConfig
from dlrun.errors import RunError
from dlrun.evaluation.runner import tests_a_model
from dlrun.reporting import plots
from dlrun.reporting.files import atomic_path
from dlrun.reporting.files import write_csv
from dlrun.reporting.files import write_text
from dlrun.reporting.markdown import image
from dlrun.runs import read_results
from dlrun.sweep.names import LEADERBOARD
from dlrun.sweep.names import folder_number
from dlrun.sweep.trials import decode
from dlrun.sweep.trials import label
from dlrun.sweep.trials import trial_config

HISTORY_PNG = "optimization_history.png"
IMPORTANCES_PNG = "param_importances.png"
FEW_TRIALS = 20  # fewer complete trials give importances too noisy to rely on


@dataclass(frozen=True)
class LeaderRow:
    rank: int | None
    trial: int
    state: TrialOutcome
    objective: float | None
    std: float | None  # across folds, for cross-validated trials
    params: dict[str, Any]  # as shown: choice labels where given
    values: dict[str, Any]  # as set into the config
    seconds: float | None
    run_dir: str


def _shown(
    cfg: ExperimentConfig, params: dict[str, Any], show: Callable[..., Any]
) -> dict[str, Any]:
    assert cfg.sweep is not None
    spaces = cfg.sweep.parameters
    return {k: show(spaces[k], v) if k in spaces else v for k, v in params.items()}


def retried(trials: list[FrozenTrial]) -> dict[int, FrozenTrial]:
    """The attempts a later trial took over (stopped by Ctrl-C or a dead worker, queued again
    to continue its run) once it runs, by number: the later trial stands for them. An attempt
    whose continuation still waits (a sweep that stopped first) stands for itself."""
    by_number = {t.number: t for t in trials}
    return {
        int(t.user_attrs["retry_of"]): by_number[int(t.user_attrs["retry_of"])]
        for t in trials
        if t.user_attrs.get("retry_of") is not None and t.state != TrialState.WAITING
    }


def trial_seconds(trial: FrozenTrial, earlier: dict[int, FrozenTrial]) -> float | None:
    """A trial's training time, with that of the attempts it continued."""
    seconds = trial.duration.total_seconds() if trial.duration is not None else None
    retry_of = trial.user_attrs.get("retry_of")
    before = None if retry_of is None else earlier.get(int(retry_of))
    if before is None or seconds is None:
        return seconds
    return seconds + (trial_seconds(before, earlier) or 0.0)


class TrialOutcome(str, Enum):
    """How a trial stands in the leaderboard: Optuna's state, or what ended its run."""

    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAIL = "fail"
    DIVERGED = "diverged"

    @property
    def said(self) -> str:
        """The word a progress line uses (``trial 3 failed``)."""
        return "failed" if self is TrialOutcome.FAIL else self.value

    def __str__(self) -> str:  # tables and the CSV show the value
        return self.value


def shown_state(trial: FrozenTrial) -> TrialOutcome:
    """complete, pruned, fail, or what failed the trial's run (diverged)."""
    return TrialOutcome(trial.user_attrs.get("run_status") or trial.state.name.lower())


def leaderboard(cfg: ExperimentConfig, study: optuna.Study) -> list[LeaderRow]:
    """Complete trials best first, then pruned and failed ones in trial order; an attempt that
    a later trial continued is shown as that trial."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    every = study.get_trials(deepcopy=False)
    earlier = retried(every)
    trials = [t for t in every if t.number not in earlier]
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    done.sort(key=lambda t: float(t.value or 0.0), reverse=maximize)
    ranked = {t.number for t in done}  # by number: comparing FrozenTrials compares every field
    rest = [t for t in trials if t.number not in ranked and t.state != TrialState.WAITING]

    def row(trial: FrozenTrial, rank: int | None) -> LeaderRow:
        folder = str(trial.user_attrs.get("run_dir", ""))
        return LeaderRow(rank, folder_number(folder, trial.number), shown_state(trial),
                         trial.value, trial.user_attrs.get("std"),
                         _shown(cfg, trial.params, label), _shown(cfg, trial.params, decode),
                         trial_seconds(trial, earlier), folder)  # fmt: skip

    return [row(t, i + 1) for i, t in enumerate(done)] + [row(t, None) for t in rest]


def fmt(value: Any) -> str:
    """How a sweep shows a value: floats with 4 significant digits (``0.0003162``, ``0.9583``),
    ``None`` as an empty cell, anything else as itself."""
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def best_row(rows: list[LeaderRow]) -> LeaderRow | None:
    """The chosen trial's row; None when no trial finished with a score."""
    return next((r for r in rows if r.rank == 1), None)


def leaderboard_cells(row: LeaderRow, names: list[str]) -> list[str]:
    """One leaderboard row as the CLI, the live table and report.md show it."""
    seconds = "" if row.seconds is None else f"{row.seconds:.1f}"
    return [fmt(row.rank), str(row.trial), str(row.state), _score(row.objective),
            _score(row.std), *(fmt(row.params.get(n, "")) for n in names), seconds]  # fmt: skip


def _score(value: float | None) -> str:
    """Scores keep their trailing zeros (0.6800, not 0.68 above 0.6806), so a column lines up."""
    return "" if value is None else f"{value:#.4g}"


LEADERBOARD_COLUMNS = ("rank", "trial", "state", "objective", "std")  # then the parameters


def write_sweep_files(
    cfg: ExperimentConfig, study: optuna.Study, sweep_dir: Path
) -> list[LeaderRow]:
    rows = leaderboard(cfg, study)
    names = list(cfg.sweep.parameters) if cfg.sweep else []
    write_csv(sweep_dir / LEADERBOARD,
              ["rank", "trial", "state", "objective", "std", *names, "seconds", "run_dir"],
              [[r.rank or "", r.trial, str(r.state), "" if r.objective is None else r.objective,
                "" if r.std is None else r.std,
                *(fmt(r.params.get(n, "")) for n in names),
                "" if r.seconds is None else round(r.seconds, 2), r.run_dir] for r in rows])  # fmt: skip
    best = best_row(rows)
    if best is not None:
        write_text(sweep_dir / "best_config.yaml", resolved_yaml(trial_config(cfg, best.values)))
    figures = _plots(cfg, study, rows, sweep_dir)
    scoring = scoring_command(cfg, sweep_dir, rows)
    write_text(sweep_dir / "report.md", _report(cfg, study, rows, names, figures, scoring))
    return rows


def scoring_command(cfg: ExperimentConfig, sweep_dir: Path, rows: list[LeaderRow]) -> str | None:
    """The command whose run scores the chosen config on the test split, where that run would:
    the trials held a test split back, and the protocol tests a model (a single split, or a
    final retrain). Without one the chosen config is never tested, by the sweep or by it."""
    best = best_row(rows)
    if best is None:
        return None
    try:
        results = read_results(sweep_dir / best.run_dir)
    except RunError:  # a damaged trial: its run says nothing of the test split
        return None
    if not results.get("test_held_back") or not tests_a_model(cfg):
        return None
    return f"dlrun train {sweep_dir / 'best_config.yaml'}"


def varying_parameters(study: optuna.Study) -> list[str]:
    """Parameters that took more than one value among the complete trials."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = dict.fromkeys(name for t in complete for name in t.params)
    return [n for n in names if len({repr(t.params.get(n)) for t in complete}) > 1]


def _plots(cfg: ExperimentConfig, study: optuna.Study, rows: list[LeaderRow],
           sweep_dir: Path) -> list[str]:  # fmt: skip
    """The optimization history, numbered as the trial folders are, and the parameter
    importances when at least two parameters varied (with one, it is 100% by definition)."""
    assert cfg.sweep is not None
    points = [
        (r.trial, r.objective)
        for r in rows
        if r.state is TrialOutcome.COMPLETE and r.objective is not None
    ]
    if not points:
        return []
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    objective = f"validation {cfg.sweep.objective.metric}"
    plots.optimization_history(sorted(points), maximize, objective, sweep_dir / HISTORY_PNG)
    if len(varying_parameters(study)) < 2:
        return [HISTORY_PNG]
    return [HISTORY_PNG, *_importances(study, sweep_dir)]


def _importances(study: optuna.Study, sweep_dir: Path) -> list[str]:
    """Optuna's importance plot (fANOVA on the complete trials), or nothing when it cannot be
    computed (every trial scored the same)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from optuna.visualization import matplotlib as vis

    try:
        with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axes = vis.plot_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return []
    figure = axes.get_figure()
    if not isinstance(figure, Figure):
        return []  # not drawn on a figure of its own: nothing to save
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    axes.set_title(f"Parameter importances (fANOVA over {complete} complete trials"
                   f"{'; too few to rely on' if complete < FEW_TRIALS else ''})")  # fmt: skip
    legend = axes.get_legend()
    if legend is not None:  # Optuna labels its bars "Objective Value"
        legend.get_texts()[0].set_text(f"importance for the {study.direction.name.lower()}d "
                                       "objective")  # fmt: skip
    with atomic_path(sweep_dir / IMPORTANCES_PNG) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return [IMPORTANCES_PNG]


def _report(cfg: ExperimentConfig, study: optuna.Study, rows: list[LeaderRow], names: list[str],
            plots: list[str], scoring: str | None) -> str:  # fmt: skip
    sweep = cfg.sweep
    assert sweep is not None
    shown = (TrialOutcome.COMPLETE, TrialOutcome.PRUNED, TrialOutcome.FAIL)  # even when none
    states = dict.fromkeys(shown, 0) | Counter(r.state for r in rows)
    lines = [f"# Sweep {cfg.name}", "",
             f"- method: {sweep.method}; objective: validation {sweep.objective.metric} "
             f"({study.direction.name.lower()}); pruner: {sweep.pruner}",
             "- trials: " + ", ".join(f"{n} {s.said}" for s, n in states.items()),
             "- the test split is never read by a trial"
             + ("; `dlrun train best_config.yaml` scores the chosen config on it once"
                if scoring else ""), "",
             "| rank | trial | state | objective | std | " + " | ".join(names) + " | seconds |",
             "|" + "---|" * (6 + len(names))]  # fmt: skip
    lines += ["| " + " | ".join(leaderboard_cells(r, names)) + " |" for r in rows]
    lines += [
        "",
        *(line for p in plots for line in (image(p), "")),
        "",
        "Best config: [best_config.yaml](best_config.yaml)"
        if best_row(rows) is not None
        else "No trial finished with a score, so no config was chosen.",
        "",
    ]
    return "\n".join(lines)
