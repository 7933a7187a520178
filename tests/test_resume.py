"""Exact resume: a killed or interrupted run continues bit for bit (CPU) with --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dlrun.api import resume_experiment
from dlrun.api import run_experiment
from dlrun.cli import app
from dlrun.config.load import config_from_data
from dlrun.errors import ConfigError
from dlrun.errors import Interrupted
from dlrun.errors import RunError
from dlrun.reuse import evaluate_run
from dlrun.training.callbacks import Callback
from dlrun.training.state import TrainState
from dlrun.training.status import RunStatus
from tests.conftest import REPO
from tests.conftest import tiny_config
from tests.test_tensorboard import read_scalars

runner = CliRunner()

# Dropout, early stopping with restored weights, a plateau schedule and a final retrain: every
# kind of state a resume has to restore.
RESUMABLE = tiny_config(
    data={"dataset": "digits", "test_fraction": 0.2},
    preprocess=[{"rescale": {"scale": "1/16"}}, "one_hot"],
    model={"layers": [{"dense": {"units": 32, "activation": "relu"}}, {"dropout": 0.3},
                      {"dense": {"units": 10, "activation": "softmax"}}]},
    train={"epochs": 12, "batch_size": 8, "progress": "plain", "callbacks": [
        {"early_stopping": {"monitor": "val_loss", "patience": 6, "restore_best": True}},
        {"reduce_lr_on_plateau": {"monitor": "val_loss", "patience": 1, "factor": 0.5}}]},
    evaluation={"validation": {"fraction": 0.2}, "final": {"epochs": 12}},
)  # fmt: skip


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    lines = (
        (run_dir / "metrics.jsonl").read_text().splitlines()
        if (run_dir / "metrics.jsonl").exists()
        else []
    )
    return [json.loads(line) for line in lines]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    weights: dict[str, torch.Tensor] = payload["task"]["models"]["model"]
    return weights


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("full")
    return run_experiment(config_from_data(RESUMABLE), runs).run_dir


@pytest.mark.parametrize(("phase", "rows"), [("fit", 3), ("final", 2)])
def test_a_run_killed_with_sigkill_resumes_bit_for_bit(
    uninterrupted: Path, write_config: Any, tmp_path: Path, phase: str, rows: int
) -> None:
    runs = tmp_path / "runs"
    command = [
        sys.executable,
        "-m",
        "dlrun",
        "train",
        str(write_config(RESUMABLE)),
        "--runs-dir",
        str(runs),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        dirs = list(runs.glob("*")) if runs.exists() else []
        if dirs and sum(r.get("phase") == phase for r in _safe_rows(dirs[0])) >= rows:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir,) = list(runs.iterdir())
    assert json.loads((run_dir / "status.json").read_text())["status"] == "running", (
        "killed too late"
    )
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert (run_dir / "metrics.csv").read_text() == (uninterrupted / "metrics.csv").read_text()
    full, resumed = _weights(uninterrupted), _weights(run_dir)
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    results = json.loads((run_dir / "results.json").read_text())
    expected = json.loads((uninterrupted / "results.json").read_text())
    assert results["test"] == expected["test"] and results["status"] == "completed"
    # Each fit continued from its last saved epoch: with checkpoint_every auto (the default)
    # that is any epoch from the first, which is always saved, up to the last one recorded.
    resumed_from = results["resumed_from_epoch"]
    fit_epochs = sum(r["phase"] == "fit" for r in _rows(uninterrupted))
    if phase == "fit":
        assert list(resumed_from) == ["fit"] and 1 <= resumed_from["fit"] < fit_epochs
    else:  # the fit had finished: it was only restored; the final retrain continued
        assert resumed_from["fit"] == fit_epochs and resumed_from["final"] >= 1
    assert "resumes" in json.loads((run_dir / "env.json").read_text())
    scalars = read_scalars(run_dir)  # TensorBoard shows each epoch once, in its sub-run
    assert scalars == read_scalars(uninterrupted)
    assert set(scalars) == {"train", "validation", "final", "results"}


def _safe_rows(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return _rows(run_dir)
    except (OSError, ValueError):
        return []


def test_resume_refuses_changes_to_what_was_learned(uninterrupted: Path) -> None:
    result = runner.invoke(app, ["train", "--resume", str(uninterrupted), "optimizer.lr=0.1"])
    assert result.exit_code == 2
    assert (
        "optimizer.lr: cannot change when resuming (the run was trained with 0.01)"
        in result.output
    )
    assert "Traceback" not in result.output
    with pytest.raises(ConfigError, match=r"model\.layers\[0\]\.dense\.units: cannot change"):
        resume_experiment(uninterrupted, ["model.layers.0.dense.units=64"])
    result = runner.invoke(
        app, ["train", "--resume", str(uninterrupted), "configs/quickstart.yaml"]
    )
    assert result.exit_code == 2 and "give only key=value overrides" in result.output


class InterruptOnce(Callback):
    """Presses Ctrl-C at the end of epoch ``epoch`` of the ``fit``-th fit it sees."""

    def __init__(self, fit: int, epoch: int) -> None:
        super().__init__()
        self.fit, self.epoch, self.fits, self.fired = fit, epoch, 0, False

    def on_fit_start(self, state: TrainState) -> None:
        self.fits += 1

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        if not self.fired and self.fits >= self.fit and state.epoch == self.epoch:
            self.fired = True
            raise KeyboardInterrupt


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential-folds", "stacked-folds"])
def test_an_interrupted_kfold_run_keeps_its_finished_folds(tmp_path: Path, parallel: bool) -> None:
    config = tiny_config(
        evaluation={"protocol": "kfold", "k": 3, "final": {"epochs": 2}, "parallel_folds": parallel},
        train={"epochs": 4, "batch_size": 16, "progress": "none", "checkpoint_every": 1},
        model={"layers": [{"dense": {"units": 8, "activation": "relu"}}, {"dropout": 0.2},
                          {"dense": {"units": 3, "activation": "softmax"}}]},
    )  # fmt: skip
    cfg = config_from_data(config)
    full = run_experiment(cfg, tmp_path / "full")
    stopped = run_experiment(
        cfg, tmp_path / "stopped", extra_callbacks=[InterruptOnce(fit=2, epoch=3)]
    )
    assert stopped.status is RunStatus.INTERRUPTED
    assert stopped.results["test_split_reads"] == 0 and stopped.results["final_epochs"] is None
    resumed = resume_experiment(stopped.run_dir)
    assert resumed.status is RunStatus.COMPLETED
    assert resumed.results["cross_validation"] == full.results["cross_validation"]
    assert resumed.results["test"] == full.results["test"]
    for fold in ("fold_01", "fold_02", "fold_03"):
        a, b = (run / fold / "metrics.csv" for run in (full.run_dir, stopped.run_dir))
        assert a.read_text() == b.read_text()
        assert read_scalars(full.run_dir / fold) == read_scalars(stopped.run_dir / fold)
    assert read_scalars(full.run_dir) == read_scalars(stopped.run_dir)  # final/, results/
    if parallel:  # all folds train together: they resume together from the last saved epoch
        assert resumed.results["resumed_from_epoch"] == {"fold_01": 2, "fold_02": 2, "fold_03": 2}
    else:  # fold 1 finished and is only rescored; fold 2 continues; fold 3 starts fresh
        assert resumed.results["resumed_from_epoch"] == {"fold_01": 4, "fold_02": 2}


def test_a_diverged_run_is_not_resumed(tmp_path: Path) -> None:
    config = tiny_config(
        optimizer={"name": "sgd", "lr": 1e9},
        train={"epochs": 5, "batch_size": 16, "progress": "none"},
    )
    result = run_experiment(config_from_data(config), tmp_path)
    assert result.status is RunStatus.DIVERGED
    with pytest.raises(RunError, match="diverged; resuming would repeat it"):
        resume_experiment(result.run_dir)


def test_a_finished_run_cannot_be_shortened_and_stays_as_it_was(uninterrupted: Path) -> None:
    def files() -> dict[str, bytes]:
        return {
            str(path.relative_to(uninterrupted)): path.read_bytes()
            for path in sorted(uninterrupted.rglob("*"))
            if path.is_file()
        }

    before = files()
    assert any("events.out.tfevents" in name for name in before)
    with pytest.raises(
        RunError, match=r"holds 12 trained epochs; train\.epochs=5 cannot take them back"
    ):
        resume_experiment(uninterrupted, ["train.epochs=5"])
    result = runner.invoke(app, ["train", "--resume", str(uninterrupted), "train.epochs=5"])
    assert result.exit_code == 2 and "cannot take them back" in result.output
    assert "Traceback" not in result.output
    assert files() == before  # config, status, environment and TensorBoard files untouched
    assert json.loads((uninterrupted / "status.json").read_text())["status"] == "completed"


def test_halted_runs_keep_their_test_split_sealed_from_eval(tmp_path: Path) -> None:
    config = tiny_config(
        optimizer={"name": "sgd", "lr": 1e9},
        train={"epochs": 5, "batch_size": 16, "progress": "none"},
    )
    run_dir = run_experiment(config_from_data(config), tmp_path).run_dir
    result = runner.invoke(app, ["eval", str(run_dir)])
    assert (
        result.exit_code == 2
        and "ended as diverged, so eval does not use it; train a new run" in result.output
    )  # not "resume it": a resume of a diverged run is refused
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "status": "pruned"}))
    with pytest.raises(RunError, match="was pruned by its sweep"):
        resume_experiment(run_dir)


def test_eval_and_resume_refuse_a_data_file_that_changed(tmp_path: Path) -> None:
    """Reordered rows give other splits: eval would score rows the model trained on, and a
    resume would go on training on them, both silently."""
    x = np.random.default_rng(0).normal(size=(60, 3)).round(3)
    lines = ["a,b,c,label", *(f"{a},{b},{c},{int(a > 0)}" for a, b, c in x)]
    table = tmp_path / "table.csv"
    table.write_text("\n".join(lines) + "\n")
    config = tiny_config(task="binary", loss="binary_crossentropy", metrics=["accuracy"],
                         data={"dataset": "csv", "path": str(table), "target": "label"},
                         preprocess=["standardize"],
                         model={"layers": [{"dense": 4},
                                           {"dense": {"units": 1, "activation": "sigmoid"}}]},
                         train={"epochs": 2, "batch_size": 16, "progress": "none"})  # fmt: skip
    run = run_experiment(config_from_data(config), tmp_path / "runs").run_dir
    assert evaluate_run(run).test is not None  # the same file: scored again
    table.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    for act in (lambda: evaluate_run(run), lambda: resume_experiment(run, ["train.epochs=3"])):
        with pytest.raises(RunError, match=r"was trained on other rows than the data reads now "
                           r"\(data fingerprint [0-9a-f]{16}, now [0-9a-f]{16}\): the data file "
                           r"changed"):  # fmt: skip
            act()
    assert json.loads((run / "status.json").read_text())["status"] == "completed"  # untouched


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_a_fold_is_not_resumed_on_its_own(tmp_path: Path) -> None:
    """Resuming fold_02 built a whole new K-fold run inside it and replaced its model."""
    config = tiny_config(evaluation={"protocol": "kfold", "k": 2})
    run = run_experiment(config_from_data(config), tmp_path).run_dir
    before = _files(run)
    result = runner.invoke(app, ["train", "--resume", str(run / "fold_02")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"is one fold of the run {run}; resume that run" in " ".join(result.output.split())
    assert _files(run) == before


def test_a_damaged_env_json_is_refused_before_the_run_changes(uninterrupted: Path) -> None:
    env = uninterrupted / "env.json"
    kept = env.read_bytes()
    try:
        env.write_text("{bad")
        before = _files(uninterrupted)
        result = runner.invoke(app, ["train", "--resume", str(uninterrupted), "train.epochs=13"])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "env.json cannot be read (" in result.output
        assert _files(uninterrupted) == before  # still completed, config as it was
    finally:
        env.write_bytes(kept)


def test_ctrl_c_while_a_finished_run_writes_its_files_waits_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It left results.json "completed" beside status.json "interrupted" and no report."""
    import dlrun.api

    write = dlrun.api.write_run_files

    def interrupted_write(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C just as the files are written
        write(*args, **kwargs)

    monkeypatch.setattr(dlrun.api, "write_run_files", interrupted_write)
    with pytest.raises(Interrupted, match=r"stopped by the user once .* was complete"):
        run_experiment(config_from_data(tiny_config()), tmp_path)  # held, then raised
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    assert json.loads((run_dir / "results.json").read_text())["status"] == "completed"
    assert (run_dir / "report.md").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C as before


def test_a_hand_edited_config_is_refused_on_resume(tmp_path: Path) -> None:
    """An edited learning rate was accepted and recorded, though never used; an edited layer
    failed on the saved weights with a traceback and marked the run failed."""
    run = run_experiment(config_from_data(tiny_config()), tmp_path).run_dir
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.01", "lr: 0.05"))
    before = _files(run)
    with pytest.raises(RunError, match=r"config\.yaml was edited after the run wrote it"):
        resume_experiment(run, ["train.epochs=4"])
    assert _files(run) == before
    config.write_text(config.read_text().replace("lr: 0.05", "lr: 0.01"))
    assert resume_experiment(run, ["train.epochs=4"]).status is RunStatus.COMPLETED
    with pytest.raises(RunError, match="edited"):  # the resume recorded its own config
        config.write_text(config.read_text().replace("epochs: 4", "epochs: 5"))
        resume_experiment(run)


def test_an_empty_resume_state_says_why_and_what_to_do(tmp_path: Path) -> None:
    run = run_experiment(config_from_data(tiny_config()), tmp_path).run_dir
    (run / "resume-fit.pt").write_bytes(b"")
    with pytest.raises(RunError, match=r"resume-fit\.pt \(.+\); it is damaged: delete it to "
                       "restart that fit"):  # fmt: skip
        resume_experiment(run, ["train.epochs=4"])


def test_a_fit_whose_resume_state_is_gone_says_it_starts_over(
    tmp_path: Path, write_config: Any
) -> None:
    """It trained again from epoch 1 without a word."""
    run = run_experiment(config_from_data(tiny_config()), tmp_path).run_dir
    (run / "resume-fit.pt").unlink()
    result = runner.invoke(app, ["train", "--resume", str(run), "train.epochs=4"])
    assert result.exit_code == 0, result.output
    assert f"note: {run / 'resume-fit.pt'} is missing, so this fit trains again from epoch 1" in (
        " ".join(result.output.split())
    )
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3, 4]
