"""dlrun sweep on the journal storage: search spaces, workers, trials as runs, resume, pruning."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from dlrun.api import run_experiment
from dlrun.cli import app
from dlrun.config.load import config_from_data
from dlrun.config.load import load_config
from dlrun.config.schema import ExperimentConfig
from dlrun.errors import ConfigError
from dlrun.errors import DlrunError
from dlrun.errors import RunError
from dlrun.sweep.report import LeaderRow
from dlrun.sweep.report import TrialOutcome
from dlrun.sweep.report import scoring_command
from dlrun.sweep.run import run_sweep
from dlrun.sweep.study import open_storage
from dlrun.sweep.study import open_study
from dlrun.sweep.trials import resumable
from dlrun.sweep.trials import run_trial
from tests.conftest import REPO
from tests.conftest import tiny_config

GRID = {"method": "grid", "objective": {"metric": "accuracy"},
        "parameters": {"optimizer.lr": {"choice": [0.01, 0.05]},
                       "model.layers.0.dense.units": {"int": {"low": 4, "high": 8, "step": 4}}}}  # fmt: skip


def _sweep_config(sweep: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return tiny_config(name="tiny_sweep", sweep=sweep, **changes)


def _rows(sweep_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((sweep_dir / "leaderboard.csv").open()))


def test_invalid_paths_and_values_fail_before_any_trial(tmp_path: Path) -> None:
    bad_path = {**GRID, "parameters": {"optimizer.lrr": {"choice": [0.1]}}}
    with pytest.raises(ConfigError, match=r"sweep\.parameters\.optimizer\.lrr.*unknown key"):
        run_sweep(config_from_data(_sweep_config(bad_path)), tmp_path)
    bad_value = {**GRID, "parameters": {"model.layers.0.dense.units": {"choice": [8, -1]}}}
    with pytest.raises(ConfigError, match=r"value -1"):
        run_sweep(config_from_data(_sweep_config(bad_value)), tmp_path)
    with pytest.raises(ConfigError, match="grid sweeps need choice or int ranges"):
        config_from_data(
            _sweep_config(
                {**GRID, "parameters": {"optimizer.lr": {"float": {"low": 0.001, "high": 0.1}}}}
            )
        )
    huge = {"model.layers.0.dense.units": {"int": {"low": 4, "high": 4_000_000_000}}}
    with pytest.raises(ConfigError, match=r"the grid has 3,999,999,997 points, more than 10,000"):
        config_from_data(_sweep_config({**GRID, "parameters": huge}))  # not listed: no MemoryError
    with pytest.raises(ConfigError, match=r"seed: input should be less than 2147483648"):
        config_from_data(_sweep_config(GRID, seed=2**31))  # folds add to it: numpy's 2**32
    overlapping = {**GRID, "parameters": {
        "model.layers": {"choice": [[{"dense": 8}, {"dense": {"units": 3, "activation": "softmax"}}]]},
        "model.layers.0.dense.units": {"choice": [4, 16]}}}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        config_from_data(_sweep_config(overlapping))
    assert str(caught.value).endswith(
        "sweep.parameters.model.layers.0.dense.units: model.layers.0.dense.units lies inside "
        "model.layers, which is swept too: each trial would set it twice and report one of the "
        "values; sweep one of the two"
    )
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def grid_sweep_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    runs = tmp_path_factory.mktemp("sweeps")
    shown = io.StringIO()
    result = run_sweep(config_from_data(_sweep_config(GRID)), runs, workers=2,
                       console=Console(file=shown, width=300))  # fmt: skip
    return result.sweep_dir, shown.getvalue()


@pytest.fixture(scope="module")
def grid_sweep(grid_sweep_run: tuple[Path, str]) -> Path:
    return grid_sweep_run[0]


def test_the_main_process_reports_what_the_workers_finish(
    grid_sweep_run: tuple[Path, str],
) -> None:
    _, shown = grid_sweep_run
    lines = shown.splitlines()
    assert [line.split("  ")[0][:6] for line in lines] == ["[1/4] ", "[2/4] ", "[3/4] ", "[4/4] "]
    numbers = sorted(int(line.split()[2]) for line in lines)  # "[n/4] trial N complete ..."
    assert numbers == [1, 2, 3, 4] and all(" complete  objective " in line for line in lines)


def test_grid_points_run_exactly_once_across_two_workers(grid_sweep: Path) -> None:
    rows = _rows(grid_sweep)
    assert [r["state"] for r in rows] == ["complete"] * 4
    points = {(r["optimizer.lr"], r["model.layers.0.dense.units"]) for r in rows}
    assert points == {("0.01", "4"), ("0.01", "8"), ("0.05", "4"), ("0.05", "8")}
    objectives = [float(r["objective"]) for r in rows]
    assert objectives == sorted(objectives, reverse=True)  # accuracy: best first


def test_trials_never_read_the_test_split(grid_sweep: Path) -> None:
    """Hold-out trials would each score the test split, and the leaderboard's user would see a
    test score beside every candidate: the test is left to the chosen config's own run."""
    for trial in sorted(grid_sweep.glob("trial-*")):
        results = json.loads((trial / "results.json").read_text())
        assert results["test_held_back"] == 30 and results["data"]["sizes"] == {
            "train": 96, "validation": 24, "test_held_back": 30}  # fmt: skip
        assert results["test_split_reads"] == 0 and results["test"] is None
        assert results["evaluation"]["split"] == "validation"
        report = (trial / "report.md").read_text()
        assert "- test split held back (30 rows): a sweep's trials never read it" in report
    best = yaml.safe_load((grid_sweep / "best_config.yaml").read_text())
    assert best["evaluation"]["protocol"] == "holdout" and best["data"]["dataset"] == "iris"
    command = f"dlrun train {grid_sweep / 'best_config.yaml'}"
    assert (
        "`dlrun train best_config.yaml` scores the chosen config on it once"
        in (grid_sweep / "report.md").read_text()
    )
    rows = [LeaderRow(1, 1, TrialOutcome.COMPLETE, 1.0, None, {}, {}, 1.0, "trial-0001")]
    holdout = config_from_data(_sweep_config(GRID))
    assert scoring_command(holdout, grid_sweep, rows) == command
    kfold = config_from_data(_sweep_config(GRID, evaluation={"protocol": "kfold", "k": 3}))
    assert scoring_command(kfold, grid_sweep, rows) is None  # its run tests nothing either
    final = {"protocol": "kfold", "k": 3, "final": {"epochs": 2}}
    assert scoring_command(config_from_data(_sweep_config(GRID, evaluation=final)), grid_sweep,
                        rows) == command  # fmt: skip


def test_a_trial_trains_no_final_model(tmp_path: Path) -> None:
    """A trial is judged on validation data: a final retrain would be trained for nothing."""
    evaluation = {"protocol": "kfold", "k": 2, "final": {"epochs": 2}}
    sweep = {**GRID, "parameters": {"optimizer.lr": {"choice": [0.01]}}}
    result = run_sweep(config_from_data(_sweep_config(sweep, evaluation=evaluation)), tmp_path)
    trial = result.sweep_dir / "trial-0001"
    assert json.loads((trial / "results.json").read_text())["final_epochs"] is None
    assert yaml.safe_load((trial / "config.yaml").read_text())["evaluation"]["final"] is None
    best = yaml.safe_load((result.sweep_dir / "best_config.yaml").read_text())
    assert best["evaluation"]["final"]["epochs"] == 2  # the chosen config keeps it


def test_the_main_process_is_one_of_the_workers(grid_sweep: Path) -> None:
    """With 2 workers only one process is started: this one, already loaded, runs trials too."""
    storage = open_storage(grid_sweep, None)
    names = [study.study_name for study in storage.get_all_studies()]
    trials = [t for n in names for t in optuna.load_study(study_name=n, storage=storage).trials]
    pids = {trial.user_attrs["pid"] for trial in trials}
    assert os.getpid() in pids and len(pids) <= 2


def test_trials_are_normal_runs_with_hparams(grid_sweep: Path) -> None:
    trials = sorted(p for p in grid_sweep.iterdir() if p.name.startswith("trial-"))
    assert [p.name for p in trials] == ["trial-0001", "trial-0002", "trial-0003", "trial-0004"]
    for trial in trials:
        assert {"config.yaml", "results.json", "checkpoint.pt", "report.md"} <= {
            p.name for p in trial.iterdir()
        }
        events = EventAccumulator(str(trial / "results"))  # the trial's HParams session
        events.Reload()
        assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")
    units = {
        yaml.safe_load((t / "config.yaml").read_text())["model"]["layers"][0]["dense"]["units"]
        for t in trials
    }
    assert units == {4, 8}
    openings = {(t / "report.md").read_text().split("\n\n")[1] for t in trials}
    assert "A trial of sweep tiny_sweep: optimizer.lr=0.05, model.layers.0.dense.units=8." in (
        openings
    )  # the trial's own values, not only the base config's description


def test_a_trial_is_neither_resumed_as_a_run_nor_evaluated_on_the_test(grid_sweep: Path) -> None:
    """Both read the test split its trial held back (eval printed a test score; a resume as a
    run wrote one into results.json)."""
    from dlrun.api import resume_experiment
    from dlrun.errors import RunError
    from dlrun.reuse import evaluate_run

    trial = grid_sweep / "trial-0002"
    before = (trial / "results.json").read_bytes()
    with pytest.raises(RunError, match="is a sweep's trial, which never reads the test split"):
        resume_experiment(trial)
    with pytest.raises(RunError, match="is a sweep's trial: its test split stays held back"):
        evaluate_run(trial)
    assert (trial / "results.json").read_bytes() == before


def test_sweep_directory_holds_leaderboard_plots_best_config_and_report(grid_sweep: Path) -> None:
    files = {p.name for p in grid_sweep.iterdir()}
    assert {
        "leaderboard.csv",
        "best_config.yaml",
        "report.md",
        "optimization_history.png",
        "param_importances.png",  # two parameters varied
        "journal.log",
    } <= files
    best = load_config(grid_sweep / "best_config.yaml")
    top = _rows(grid_sweep)[0]
    assert best.sweep is None and best.optimizer.lr == float(top["optimizer.lr"])
    assert "| 1 |" in (grid_sweep / "report.md").read_text()


def test_existing_sweep_needs_resume(tmp_path: Path) -> None:
    cfg = config_from_data(
        _sweep_config({**GRID, "parameters": {"optimizer.lr": {"choice": [0.01]}}})
    )
    run_sweep(cfg, tmp_path)
    with pytest.raises(RunError, match="add --resume"):
        run_sweep(cfg, tmp_path)
    again = run_sweep(cfg, tmp_path, resume=True)
    assert [r.state for r in again.rows] == ["complete"]  # the finished point is not redone
    stacks = [[{"dense": 8}, {"dense": {"units": 3, "activation": "softmax"}}]]
    for other in ({"optimizer.lr": {"choice": [0.01, 0.02]}},  # other choices
                  {"optimizer.lr": {"int": {"low": 1, "high": 2}}},  # another kind
                  {"optimizer.lr": {"choice": [0.02]}}):  # fmt: skip
        with pytest.raises(RunError, match=r"sweep\.parameters\.optimizer\.lr: its values "
                           r"changed kind or choices since the sweep began"):  # fmt: skip
            run_sweep(config_from_data(_sweep_config({**GRID, "parameters": other})), tmp_path,
                      resume=True)  # fmt: skip
    layered = tmp_path / "layered"
    run_sweep(config_from_data(_sweep_config({**GRID, "parameters": {
        "model.layers": {"choice": stacks}}})), layered)  # fmt: skip
    wider = [[{"dense": 16}, {"dense": {"units": 3, "activation": "softmax"}}]]  # same count
    with pytest.raises(RunError, match=r"sweep\.parameters\.model\.layers: its values changed"):
        run_sweep(config_from_data(_sweep_config({**GRID, "parameters": {
            "model.layers": {"choice": wider}}})), layered, resume=True)  # fmt: skip


def test_a_grid_resumed_with_a_wider_range_trains_only_the_new_points(tmp_path: Path) -> None:
    def grid(high: int) -> ExperimentConfig:
        units = {"model.layers.0.dense.units": {"int": {"low": 4, "high": high, "step": 4}}}
        return config_from_data(_sweep_config({**GRID, "parameters": units}))

    run_sweep(grid(8), tmp_path)
    grown = run_sweep(grid(16), tmp_path, resume=True)  # before, no new point was queued
    assert sorted((r.values["model.layers.0.dense.units"], r.state) for r in grown.rows) == [
        (4, "complete"), (8, "complete"), (12, "complete"), (16, "complete")]  # fmt: skip
    assert len(list((tmp_path / "tiny_sweep").glob("trial-*"))) == 4
    assert len(run_sweep(grid(16), tmp_path, resume=True).rows) == 4  # and only once


def test_tpe_respects_the_trial_budget(tmp_path: Path) -> None:
    sweep = {"method": "tpe", "n_trials": 3, "objective": {"metric": "loss"},
             "parameters": {"optimizer.lr": {"float": {"low": 0.001, "high": 0.1, "log": True}}}}  # fmt: skip
    result = run_sweep(config_from_data(_sweep_config(sweep)), tmp_path)
    assert len(result.rows) == 3 and all(r.state == "complete" for r in result.rows)
    losses = [r.objective for r in result.rows]
    assert losses == sorted(losses)  # type: ignore[type-var]  # loss: lowest first


def test_pruned_trial_stops_its_run_and_never_reads_the_test_split(tmp_path: Path) -> None:
    evaluation = {"validation": {"fraction": 0.2, "stratify": True}, "final": {"epochs": 2}}
    cfg = config_from_data(_sweep_config({"method": "random", "pruner": "median", "objective": {"metric": "loss"},
                                          "parameters": {"optimizer.lr": {"choice": [0.01]}}},
                                         evaluation=evaluation))  # fmt: skip
    study = optuna.create_study(
        pruner=optuna.pruners.ThresholdPruner(upper=0.0)
    )  # any loss > 0 prunes
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned):
        run_trial(cfg, trial, tmp_path)
    status = json.loads((tmp_path / "trial-0001" / "status.json").read_text())
    assert status["status"] == "pruned" and "pruned after epoch 1" in status["reason"]
    results = json.loads((tmp_path / "trial-0001" / "results.json").read_text())
    assert (
        results["final_epochs"] is None
        and results["test_split_reads"] == 0
        and results["test"] is None
    )
    rows = list(csv.DictReader((tmp_path / "trial-0001" / "metrics.csv").open()))
    assert [r["phase"] for r in rows] == ["fit"]  # no final retrain after the pruning


def test_killed_sweep_resumes_without_redoing_finished_trials(
    tmp_path: Path, write_config: Any
) -> None:
    sweep = {**GRID, "parameters": {"optimizer.lr": {"choice": [0.01, 0.02, 0.03]}}}
    config = write_config(
        _sweep_config(sweep, train={"epochs": 200, "batch_size": 8, "progress": "none"})
    )
    command = [sys.executable, "-m", "dlrun", "sweep", str(config), "--runs-dir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(command, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    sweep_dir = tmp_path / "tiny_sweep"
    deadline = time.monotonic() + 120
    while (
        not (sweep_dir / "trial-0002" / "resume-fit.pt").exists() and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (sweep_dir / "trial-0002").exists(), "the sweep never reached its second trial"
    finished_before = json.loads((sweep_dir / "trial-0001" / "status.json").read_text())["status"]
    assert finished_before == "completed"
    result = run_sweep(load_config(config), tmp_path, resume=True)
    assert result.requeued == 1
    states = [r.state for r in result.rows]
    assert states == ["complete"] * 3  # the killed attempt is shown as the trial continuing it
    done = [r.params["optimizer.lr"] for r in result.rows if r.state == "complete"]
    assert sorted(done) == [0.01, 0.02, 0.03]  # each point once; trial 1 was not rerun
    assert not (sweep_dir / "trial-0005").exists()
    # the killed trial went on from its last saved epoch, in its own directory
    assert not (sweep_dir / "trial-0004").exists()
    resumed = json.loads((sweep_dir / "trial-0002" / "results.json").read_text())
    assert resumed["status"] == "completed" and resumed["resumed_from_epoch"]["fit"] >= 1
    rows = list(csv.DictReader((sweep_dir / "trial-0002" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 201))


def test_a_trial_stopped_by_ctrl_c_runs_again_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C fails the running trial and queues its values again: ``--resume`` continues it
    from its run directory, so every grid point ends complete."""
    calls: list[int] = []

    def stopped_once(cfg: Any, trial: optuna.Trial, sweep_dir: Path) -> float:
        calls.append(trial.number)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return run_trial(cfg, trial, sweep_dir)

    monkeypatch.setattr("dlrun.sweep.study.run_trial", stopped_once)
    cfg = config_from_data(_sweep_config(GRID))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg, tmp_path, workers=1)
    result = run_sweep(cfg, tmp_path, workers=1, resume=True)
    rows = _rows(result.sweep_dir)
    done = {
        (r["optimizer.lr"], r["model.layers.0.dense.units"])
        for r in rows
        if r["state"] == "complete"
    }
    assert done == {(lr, units) for lr in ("0.01", "0.05") for units in ("4", "8")}
    assert len(calls) == 5 and [r["state"] for r in rows] == ["complete"] * 4  # no fail row


@pytest.mark.parametrize("method", ["random", "tpe"])
def test_workers_sharing_a_seed_draw_each_trial_its_own_values(method: str) -> None:
    """Each worker opens the study with the sweep's seed; a trial's values come from that seed
    and its number, so two workers draw different values, and the same ones one worker would."""
    cfg = config_from_data(_sweep_config(
        {"method": method, "n_trials": 6, "objective": {"metric": "accuracy"},
         "parameters": {"optimizer.lr": {"float": {"low": 1e-4, "high": 1e-1, "log": True}},
                        "model.layers.0.dense.units": {"int": {"low": 2, "high": 64}}}}
    ))  # fmt: skip

    def drawn(workers: int) -> dict[int, tuple[float, int]]:
        storage = optuna.storages.InMemoryStorage()
        studies = [open_study(cfg, storage, "s") for _ in range(workers)]
        values = {}
        for number in range(6):
            trial = studies[number % workers].ask()
            values[trial.number] = (trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                                    trial.suggest_int("units", 2, 64))  # fmt: skip
            studies[number % workers].tell(trial, 0.5)
        return values

    two = drawn(2)
    assert len(set(two.values())) == 6  # no trial repeats another's values
    assert two == drawn(1)


def test_a_storage_that_cannot_be_opened_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    cfg = config_from_data(_sweep_config(GRID))
    for url in ("bogus://x", f"sqlite:///{tmp_path}/missing/dir/db.sqlite"):
        with pytest.raises(DlrunError, match=rf"cannot open the sweep storage {url}: ") as caught:
            run_sweep(cfg, tmp_path / "runs", storage=url)
        assert "\n" not in str(caught.value)  # no second line pointing at SQLAlchemy's docs
    assert not (tmp_path / "runs").exists()


def test_a_resumed_sweep_trains_what_it_started_with(tmp_path: Path) -> None:
    """Its trials must compare: a resume (or another machine's worker) with other training
    settings is refused before any trial runs; its sweep section and display may change."""
    base = _sweep_config({**GRID, "parameters": {"optimizer.lr": {"choice": [0.01]}}})
    run_sweep(config_from_data(base), tmp_path)
    best = (tmp_path / "tiny_sweep" / "best_config.yaml").read_text()
    for key, value in (
        ("optimizer", {"name": "adam", "lr": 0.5}),
        ("seed", 3),
        ("train", {**base["train"], "epochs": base["train"]["epochs"] + 1}),
    ):
        changed = config_from_data({**base, key: value})
        with pytest.raises(
            ConfigError,
            match=r"cannot change when resuming \(the sweep was "
            r"trained with .*\); start a new sweep instead",
        ):
            run_sweep(changed, tmp_path, resume=True)
    assert (tmp_path / "tiny_sweep" / "best_config.yaml").read_text() == best
    shown = {**base, "train": {**base["train"], "progress": "none"}, "description": "again"}
    result = run_sweep(config_from_data(shown), tmp_path, resume=True)
    assert [row["state"] for row in _rows(result.sweep_dir)] == ["complete"]


def test_a_requeued_trial_resumes_only_a_run_that_can_continue(tmp_path: Path) -> None:
    """A trial queued again after its worker died continues its run only when that run may
    continue: the same settings, no fewer epochs than it trained, saved fits readable."""
    base = tiny_config(train={"epochs": 3, "batch_size": 16, "progress": "none"})
    config = config_from_data(base)
    run_dir = run_experiment(config, tmp_path).run_dir
    assert resumable(run_dir, config)
    assert resumable(run_dir, config_from_data({**base, "train": {**base["train"], "epochs": 5}}))
    assert not resumable(run_dir, config_from_data({**base, "seed": 1}))
    assert not resumable(
        run_dir, config_from_data({**base, "train": {**base["train"], "epochs": 2}})
    )
    (run_dir / "resume-fit.pt").write_bytes(b"damaged")
    assert not resumable(run_dir, config)


def test_sweep_file_merges_over_a_plain_config(tmp_path: Path, write_config: Any) -> None:
    config = write_config(tiny_config(name="merged"))
    sweep_file = tmp_path / "space.yaml"
    sweep_file.write_text(yaml.safe_dump({"sweep": {"method": "grid", "objective": {"metric": "accuracy"},
                                                    "parameters": {"optimizer.lr": {"choice": [0.01, 0.02]}}}}))  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", str(config), "--sweep-file", str(sweep_file), "--runs-dir",
                                 str(tmp_path / "runs")], terminal_width=200)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "leaderboard: merged" in result.output and len(_rows(tmp_path / "runs" / "merged")) == 2
    sweep_file.write_text(
        yaml.safe_dump({"method": "grdi", "parameters": {"optimizer.lr": {"choice": [1]}}})
    )
    bad = runner.invoke(
        app, ["sweep", str(config), "--sweep-file", str(sweep_file)], terminal_width=200
    )
    assert bad.exit_code == 2 and "sweep.method" in bad.output


def test_ctrl_c_in_a_trial_of_this_process_interrupts_the_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process works as a worker too; Ctrl-C there ends the sweep as interrupted (the
    CLI then says so and exits 130) instead of being taken for the end of the trials."""

    def interrupted(*args: object) -> float:
        raise KeyboardInterrupt

    monkeypatch.setattr("dlrun.sweep.study.run_trial", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(config_from_data(_sweep_config(GRID)), tmp_path, workers=1)


def test_a_diverged_trial_is_named_so_with_its_reason(tmp_path: Path) -> None:
    sweep = {"method": "grid", "objective": {"metric": "loss"},
             "parameters": {"optimizer.lr": {"choice": [1e6]}}}  # fmt: skip
    cfg = _sweep_config(sweep, task="regression", data={"dataset": "diabetes"}, preprocess=[],
                        loss="mse", metrics=["mae"], optimizer={"name": "sgd", "lr": 0.01},
                        model={"layers": [{"dense": 16}, {"dense": 1}]},
                        evaluation={"validation": {"fraction": 0.2}})  # fmt: skip
    (tmp_path / "d.yaml").write_text(json.dumps(cfg))
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "d.yaml"), "--runs-dir",
                                      str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning: no trial finished with a score (diverged): nothing was chosen" in " ".join(
        result.output.split()
    )  # it ended as if a sweep had chosen something
    assert [r["state"] for r in _rows(tmp_path / "tiny_sweep")] == ["diverged"]
    report = (tmp_path / "tiny_sweep" / "report.md").read_text()
    assert "- trials: 0 complete, 0 pruned, 0 failed, 1 diverged" in report


def test_a_resume_under_another_study_name_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    """It started a new study in the same journal: every trial failed on the first study's
    folders, and the leaderboard and report were overwritten with six failures."""
    cfg = config_from_data(_sweep_config({**GRID, "n_trials": 1}))
    sweep_dir = run_sweep(cfg, tmp_path, study_name="first").sweep_dir
    before = {p.name: p.read_bytes() for p in sweep_dir.iterdir() if p.is_file()}
    with pytest.raises(RunError, match=r"holds no study 'tiny_sweep' \(it holds 'first'\); "
                       "pass --study first"):  # fmt: skip
        run_sweep(cfg, tmp_path, resume=True)
    assert {p.name: p.read_bytes() for p in sweep_dir.iterdir() if p.is_file()} == before


def test_sigterm_to_the_main_process_stops_its_workers_too(
    tmp_path: Path, write_config: Any
) -> None:
    """SIGTERM reaches one process, not the group as Ctrl-C does: the workers, never told,
    went on with the sweep while the main process waited for them."""
    sweep = {**GRID, "parameters": {"optimizer.lr": {"choice": [0.01, 0.02, 0.03, 0.04]}}}
    config = write_config(
        _sweep_config(sweep, train={"epochs": 3000, "batch_size": 8, "progress": "none"})
    )
    command = [sys.executable, "-m", "dlrun", "sweep", str(config), "--workers", "2",
               "--runs-dir", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO)},
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    sweep_dir = tmp_path / "tiny_sweep"
    deadline = time.monotonic() + 120
    while len(list(sweep_dir.glob("trial-*/resume-fit.pt"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # both workers are training
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 130, stderr
    assert "interrupted: finished trials are kept" in stderr
    assert time.monotonic() - sent < 20  # the worker stopped at its epoch's end, not its trial's
    trials = sorted(p.name for p in sweep_dir.glob("trial-*"))
    time.sleep(3)
    assert sorted(p.name for p in sweep_dir.glob("trial-*")) == trials  # no orphan goes on
    statuses = [json.loads(p.read_text())["status"] for p in sweep_dir.glob("trial-*/status.json")]
    assert "running" not in statuses  # every trial stopped cleanly, none killed mid-epoch
