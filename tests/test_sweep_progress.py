"""Sweeps show progress: a line per finished trial, a live table on a terminal, trial numbers
that match the trial-NNNN folders, and floats with 4 significant digits."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from rich.console import Console
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.config.load import config_from_data
from dlrun.reporting import plots
from dlrun.sweep.progress import SweepProgress
from dlrun.sweep.progress import duration
from dlrun.sweep.progress import trials_left
from dlrun.sweep.report import fmt
from dlrun.sweep.report import leaderboard
from dlrun.sweep.study import CONTINUED
from dlrun.sweep.study import queue_again
from dlrun.sweep.trials import grid_points
from dlrun.sweep.trials import suggest
from tests.conftest import tiny_config

LR = "optimizer.lr"
UNITS = "model.layers.0.dense.units"
GRID = {"method": "grid", "objective": {"metric": "accuracy"},
        "parameters": {LR: {"choice": [0.0031622776, 0.01]},
                       UNITS: {"int": {"low": 4, "high": 8, "step": 4}}}}  # fmt: skip


def _study(sweep: dict[str, Any]) -> tuple[Any, optuna.Study]:
    cfg = config_from_data(tiny_config(name="progress", sweep=sweep))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    assert cfg.sweep is not None
    for point in grid_points(cfg.sweep):
        study.enqueue_trial(point)
    return cfg, study


def _finish(cfg: Any, study: optuna.Study, state: TrialState, value: float | None = None,
            error: str | None = None, **attrs: Any) -> None:  # fmt: skip
    trial = study.ask()
    for path, space in cfg.sweep.parameters.items():
        suggest(trial, path, space)
    trial.set_user_attr("run_dir", f"trial-{trial.number + 1:04d}")
    if error:
        trial.set_user_attr("error", error)
    for name, attr in attrs.items():
        trial.set_user_attr(name, attr)
    study.tell(trial, value, state=state)


def test_durations_read_like_a_clock() -> None:
    assert [duration(s) for s in (0.4, 41, 245, 7380)] == ["0s", "41s", "4m05s", "2h03m"]


def test_floats_show_four_significant_digits() -> None:
    assert [fmt(v) for v in (0.0031622776, 0.91666668, 1234.5678, 8, None)] == [
        "0.003162", "0.9167", "1235", "8", "",
    ]  # fmt: skip


def test_trials_left_count_the_queue_and_the_budget() -> None:
    cfg, study = _study(GRID)
    assert trials_left(study.get_trials(), cfg.sweep) == 4  # four queued grid points
    _finish(cfg, study, TrialState.COMPLETE, 0.5)
    assert trials_left(study.get_trials(), cfg.sweep) == 3
    random = {"method": "random", "n_trials": 5, "objective": {"metric": "accuracy"},
              "parameters": {LR: {"float": {"low": 0.001, "high": 0.1}}}}  # fmt: skip
    cfg, study = _study(random)
    _finish(cfg, study, TrialState.COMPLETE, 0.5)
    _finish(cfg, study, TrialState.FAIL)  # a failed trial does not use the budget up
    assert trials_left(study.get_trials(), cfg.sweep) == 4


def test_a_line_per_finished_trial_with_best_so_far_and_time_left() -> None:
    cfg, study = _study(GRID)
    out = io.StringIO()
    progress = SweepProgress(cfg, study, Console(file=out, width=300))
    _finish(cfg, study, TrialState.COMPLETE, 0.91666668)
    progress.poll()
    _finish(cfg, study, TrialState.PRUNED)
    _finish(cfg, study, TrialState.FAIL, error="the model diverged")
    progress.poll()
    progress.poll()  # nothing new: nothing printed
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(
        r"\[1/4\] trial 1 complete  objective 0\.9167  optimizer\.lr=0\.003162 "
        r"model\.layers\.0\.dense\.units=4  best 0\.9167 \(trial 1\)  elapsed 0s  left ~0s",
        lines[0],
    )
    assert lines[1].startswith("[2/4] trial 2 pruned  optimizer.lr=0.003162 model.layers")
    assert "best 0.9167 (trial 1)" in lines[1]
    assert lines[2].startswith("[3/4] trial 3 failed  (the model diverged)  optimizer.lr=0.01")
    again = io.StringIO()  # a resumed sweep does not report the trials it found finished
    SweepProgress(cfg, study, Console(file=again, width=300)).poll()
    assert again.getvalue() == ""


def test_trials_finished_between_two_polls_name_only_the_best_before_them() -> None:
    cfg, study = _study(GRID)
    out = io.StringIO()
    progress = SweepProgress(cfg, study, Console(file=out, width=300))
    _finish(cfg, study, TrialState.COMPLETE, 0.5)  # two workers finish before one poll
    _finish(cfg, study, TrialState.COMPLETE, 0.75)
    progress.poll()
    first, second = out.getvalue().splitlines()
    assert "best 0.5 (trial 1)" in first and "trial 2" not in first  # not yet printed
    assert "best 0.75 (trial 2)" in second


def test_the_live_table_on_a_terminal_shows_the_leaderboard_so_far() -> None:
    cfg, study = _study(GRID)
    terminal = Console(file=io.StringIO(), force_terminal=True, width=200)
    with SweepProgress(cfg, study, terminal) as progress:
        assert progress.live is not None
        _finish(cfg, study, TrialState.COMPLETE, 0.75)
        progress.poll()
        screen = io.StringIO()
        Console(file=screen, width=200).print(progress)
    assert progress.live is None  # stopped on leaving
    shown = screen.getvalue()
    assert "sweep progress" in shown and "0.003162" in shown and "complete" in shown
    assert "1/4 trials finished, 0 running; best 0.75 (trial 1); elapsed" in shown
    assert SweepProgress(cfg, study, Console(file=io.StringIO())).__enter__().live is None


@pytest.fixture
def history_points(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    drawn: list[Any] = []
    history = plots.optimization_history

    def keep(points: list[tuple[int, float]], *args: Any) -> None:
        drawn.append(points)
        history(points, *args)

    monkeypatch.setattr(plots, "optimization_history", keep)
    return drawn


def test_dlrun_sweep_reports_each_trial_and_numbers_plots_as_folders(
    tmp_path: Path, history_points: list[Any]
) -> None:
    sweep = {**GRID, "parameters": {LR: {"choice": [0.0031622776, 0.031622776]}}}
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(tiny_config(name="one_param", sweep=sweep), sort_keys=False))
    result = CliRunner().invoke(app, ["sweep", str(config), "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("[1/2] trial 1 complete  objective ")
    assert "optimizer.lr=0.003162" in lines[0] and "left ~" in lines[0]
    assert lines[1].startswith("[2/2] trial 2 complete  objective ")
    assert "optimizer.lr=0.03162" in lines[1]
    board = lines[lines.index("leaderboard: one_param") + 1 :]
    assert board[0].split() == ["rank", "trial", "state", "objective", "std", LR, "seconds"]
    values = {row.split()[-2] for row in board[1:3]}  # the column before seconds
    assert values == {"0.003162", "0.03162"}
    assert "0.0031622776" not in result.output
    sweep_dir = tmp_path / "one_param"
    best = sweep_dir / "best_config.yaml"  # the trials left the test split unread
    assert lines[-2:] == [f"score the best config on the test split: dlrun train {best}",
                          str(sweep_dir)]  # fmt: skip
    (points,) = history_points
    folders = sorted(p.name for p in sweep_dir.glob("trial-*"))
    assert [f"trial-{trial:04d}" for trial, _ in points] == folders == ["trial-0001", "trial-0002"]
    assert (sweep_dir / "optimization_history.png").is_file()
    assert not (sweep_dir / "param_importances.png").exists()  # one parameter: nothing to rank
    report = (sweep_dir / "report.md").read_text()
    assert "![optimization history](optimization_history.png)" in report
    assert "param_importances" not in report


def test_a_trial_continued_after_ctrl_c_is_one_row_with_both_attempts_time() -> None:
    """The stopped attempt (failed, queued again to continue its run) is shown as the trial
    that continued it: no failed row, no extra count, and the time of both attempts."""
    cfg, study = _study({**GRID, "parameters": {LR: {"choice": [0.0031622776, 0.01]}}})
    _finish(cfg, study, TrialState.COMPLETE, 0.5)
    stopped = study.ask()  # Ctrl-C in trial 2: marked to be continued, failed, queued again
    suggest(stopped, LR, cfg.sweep.parameters[LR])
    stopped.set_user_attr("run_dir", "trial-0002")
    stopped.set_user_attr(CONTINUED, True)
    study.tell(stopped, state=TrialState.FAIL)
    queue_again(study, study.get_trials()[1])
    assert [r.state for r in leaderboard(cfg, study)] == ["complete", "fail"]  # not yet run
    out = io.StringIO()
    progress = SweepProgress(cfg, study, Console(file=out, width=300))  # the resumed sweep
    retry = study.ask()
    suggest(retry, LR, cfg.sweep.parameters[LR])
    assert retry.user_attrs["retry_of"] == 1 and retry.user_attrs["resume_dir"] == "trial-0002"
    retry.set_user_attr("run_dir", "trial-0002")
    study.tell(retry, 0.75)
    progress.poll()
    assert out.getvalue().startswith("[2/2] trial 2 complete  objective 0.75")  # was [3/3]
    rows = leaderboard(cfg, study)
    assert [(r.trial, r.state, r.objective) for r in rows] == [(2, "complete", 0.75),
                                                                (1, "complete", 0.5)]  # fmt: skip
    first, second = study.get_trials()[1:3]
    both = first.duration.total_seconds() + second.duration.total_seconds()  # type: ignore[union-attr]
    assert rows[0].seconds == pytest.approx(both)


def test_a_diverged_trial_says_so_in_the_leaderboard_and_its_line() -> None:
    cfg, study = _study(GRID)
    out = io.StringIO()
    progress = SweepProgress(cfg, study, Console(file=out, width=300))
    _finish(cfg, study, TrialState.FAIL, error="the training loss became nan in epoch 1",
            run_status="diverged")  # fmt: skip
    progress.poll()
    assert out.getvalue().startswith(
        "[1/4] trial 1 diverged  (the training loss became nan in epoch 1)"
    )
    assert [r.state for r in leaderboard(cfg, study)] == ["diverged"]


def test_a_trial_stopped_to_be_continued_prints_no_failure_line() -> None:
    """A dead worker's trial is failed and queued again while the sweep runs: the continuation
    reports, once it finishes; the stopped attempt is no failure of its own."""
    cfg, study = _study(GRID)
    out = io.StringIO()
    progress = SweepProgress(cfg, study, Console(file=out, width=300))
    assert CONTINUED == "continued"
    _finish(cfg, study, TrialState.FAIL, continued=True)
    progress.poll()
    assert out.getvalue() == "" and progress.counts[0] == 0
    _finish(cfg, study, TrialState.COMPLETE, 0.5)
    progress.poll()
    assert out.getvalue().startswith("[1/")


def test_leaderboard_scores_keep_four_figures_and_parameters_stay_short() -> None:
    from dlrun.sweep.report import LeaderRow
    from dlrun.sweep.report import TrialOutcome
    from dlrun.sweep.report import leaderboard_cells

    rows = [LeaderRow(rank, rank, TrialOutcome.COMPLETE, objective, None, {"lr": 0.0003162},
                      {}, 1.0, "") for rank, objective in ((1, 0.6806), (2, 0.68), (3, 0.6))]  # fmt: skip
    cells = [leaderboard_cells(row, ["lr"]) for row in rows]
    assert [c[3] for c in cells] == ["0.6806", "0.6800", "0.6000"]  # one column lines up
    assert cells[0][5] == "0.0003162" and cells[0][4] == ""


def test_importances_say_how_many_trials_they_rest_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Optuna's plot kept its "Objective Value" legend and said nothing of resting on four
    trials."""
    from optuna.visualization import matplotlib as vis

    from dlrun.sweep import report

    drawn: list[Any] = []
    plot = vis.plot_param_importances

    def keep(study: optuna.Study) -> Any:
        drawn.append(plot(study))
        return drawn[-1]

    monkeypatch.setattr(vis, "plot_param_importances", keep)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(lambda t: t.suggest_float("a", 0, 1) + 0.1 * t.suggest_float("b", 0, 1), 6)
    assert report._importances(study, tmp_path) == [report.IMPORTANCES_PNG]
    (axes,) = drawn
    assert axes.get_title() == (
        "Parameter importances (fANOVA over 6 complete trials; too few to rely on)"
    )
    assert [t.get_text() for t in axes.get_legend().get_texts()] == [
        "importance for the maximized objective"
    ]
