"""What a finished sweep leaves: leaderboard.csv, plots, best_config.yaml and report.md."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from dlrun.config.load import resolved_yaml
from dlrun.config.schema import ExperimentConfig
from dlrun.reporting.files import atomic_path
from dlrun.reporting.files import write_csv
from dlrun.reporting.files import write_text
from dlrun.sweep.trials import decode
from dlrun.sweep.trials import label
from dlrun.sweep.trials import trial_config


@dataclass(frozen=True)
class LeaderRow:
    rank: int | None
    trial: int
    state: str
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


def leaderboard(cfg: ExperimentConfig, study: optuna.Study) -> list[LeaderRow]:
    """Complete trials best first, then pruned and failed ones in trial order."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    done.sort(key=lambda t: float(t.value or 0.0), reverse=maximize)
    rest = [t for t in trials if t not in done and t.state != TrialState.WAITING]

    def row(trial: FrozenTrial, rank: int | None) -> LeaderRow:
        seconds = trial.duration.total_seconds() if trial.duration is not None else None
        return LeaderRow(rank, trial.number + 1, trial.state.name.lower(), trial.value,
                         trial.user_attrs.get("std"), _shown(cfg, trial.params, label),
                         _shown(cfg, trial.params, decode), seconds,
                         str(trial.user_attrs.get("run_dir", "")))  # fmt: skip

    return [row(t, i + 1) for i, t in enumerate(done)] + [row(t, None) for t in rest]


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_sweep_files(
    cfg: ExperimentConfig, study: optuna.Study, sweep_dir: Path
) -> list[LeaderRow]:
    rows = leaderboard(cfg, study)
    names = list(cfg.sweep.parameters) if cfg.sweep else []
    write_csv(sweep_dir / "leaderboard.csv",
              ["rank", "trial", "state", "objective", "std", *names, "seconds", "run_dir"],
              [[r.rank or "", r.trial, r.state, "" if r.objective is None else r.objective,
                "" if r.std is None else r.std,
                *(_fmt(r.params.get(n, "")) for n in names),
                "" if r.seconds is None else round(r.seconds, 2), r.run_dir] for r in rows])  # fmt: skip
    best = next((r for r in rows if r.rank == 1), None)
    if best is not None:
        write_text(sweep_dir / "best_config.yaml", resolved_yaml(trial_config(cfg, best.values)))
    plots = _plots(study, sweep_dir)
    write_text(sweep_dir / "report.md", _report(cfg, study, rows, names, plots))
    return rows


def _plots(study: optuna.Study, sweep_dir: Path) -> list[str]:
    """Optimization history and parameter importances (when enough trials finished)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    written = []
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    makers: dict[str, Callable[[optuna.Study], Any]] = {
        "optimization_history.png": vis.plot_optimization_history
    }
    if len(complete) >= 2 and len(study.best_trial.params) >= 1:
        makers["param_importances.png"] = vis.plot_param_importances
    for name, make in makers.items():
        try:
            with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = make(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. importances when every trial scored the same
        figure = axes.get_figure()
        with atomic_path(sweep_dir / name) as tmp:
            figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(name)
    return written


def _report(cfg: ExperimentConfig, study: optuna.Study, rows: list[LeaderRow], names: list[str],
            plots: list[str]) -> str:  # fmt: skip
    sweep = cfg.sweep
    assert sweep is not None
    states = {s: sum(r.state == s for r in rows) for s in ("complete", "pruned", "fail")}
    lines = [f"# Sweep {cfg.name}", "",
             f"- method: {sweep.method}; objective: validation {sweep.objective.metric} "
             f"({study.direction.name.lower()}); pruner: {sweep.pruner}",
             "- trials: " + ", ".join(f"{n} {s}" for s, n in states.items()),
             "- the test split is never used to choose", "",
             "| rank | trial | state | objective | std | " + " | ".join(names) + " | seconds |",
             "|" + "---|" * (6 + len(names))]  # fmt: skip
    for r in rows:
        cells = [r.rank or "", r.trial, r.state, "" if r.objective is None else _fmt(r.objective),
                 "" if r.std is None else _fmt(r.std),
                 *(_fmt(r.params.get(n, "")) for n in names), _fmt(r.seconds or "")]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [
        "",
        *(f"![{p}]({p})" for p in plots),
        "",
        "Best config: [best_config.yaml](best_config.yaml)",
        "",
    ]
    return "\n".join(lines)
