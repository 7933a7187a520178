"""Small things users notice: ``--version``, ``runs list`` (dates, sweeps, whole names when
piped) and ``validate`` printing each total once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlrun import __version__
from dlrun.cli import app
from dlrun.cli_common import console
from dlrun.config.load import config_from_data
from dlrun.config.resume import resume_changes
from tests.conftest import REPO
from tests.conftest import tiny_config

runner = CliRunner()
LONG_NAME = "a_really_long_experiment_name_that_a_narrow_table_would_cut-20261130-101500"


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"dlrun {__version__}\n"


def _fake_run(path: Path, started: str, status: str, accuracy: float) -> None:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text("name: x\n")
    (path / "status.json").write_text(json.dumps({"status": status}))
    (path / "env.json").write_text(json.dumps({"started": started}))
    results = {"task": "multiclass",
               "evaluation": {"split": "test", "metrics": {"loss": 0.3, "accuracy": accuracy}}}  # fmt: skip
    (path / "results.json").write_text(json.dumps(results))


def test_runs_list_shows_dates_and_sweeps_and_whole_names_when_piped(tmp_path: Path) -> None:
    _fake_run(tmp_path / LONG_NAME, "2026-11-30T10:15:00.123", "completed", 0.975)
    sweep = tmp_path / "spirals_search"
    _fake_run(sweep / "trial-0001", "2026-11-29T08:01:02", "completed", 0.8)
    _fake_run(sweep / "trial-0002", "2026-11-29T08:03:00", "completed", 0.9)
    (sweep / "leaderboard.csv").write_text(
        "rank,trial,state,objective\n1,2,complete,0.8912345\n2,1,complete,0.85\n"
    )
    (tmp_path / "not_a_run").mkdir()
    result = runner.invoke(app, ["runs", "list", str(tmp_path)])  # not a terminal: plain rows
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split() == ["run", "date", "status", "task", "metric", "value"]
    assert rows[0].split() == [LONG_NAME, "2026-11-30", "10:15", "completed", "multiclass",
                               "test", "accuracy", "0.9750"]  # fmt: skip
    assert rows[1].split() == ["spirals_search", "2026-11-29", "08:01", "sweep", "multiclass",
                               "best", "objective", "(2", "trials)", "0.8912"]  # fmt: skip
    assert len(rows) == 2  # the empty folder is neither a run nor a sweep


def test_runs_list_through_a_real_pipe_keeps_long_names(tmp_path: Path) -> None:
    _fake_run(tmp_path / LONG_NAME, "2026-11-30T10:15:00", "running", 0.5)
    done = subprocess.run([sys.executable, "-m", "dlrun", "runs", "list", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, check=False,
                          env={"COLUMNS": "40", "PATH": ""})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[:4] == [LONG_NAME, "2026-11-30", "10:15",
                                                       "incomplete"]  # fmt: skip


def test_validate_prints_each_total_once() -> None:
    result = runner.invoke(app, ["validate", str(REPO / "configs/quickstart.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.count("Total params") == 1
    assert result.output.count("8,970") == 2  # the total and the trainable count, once each
    assert "Total params: 8,970 (trainable 8,970)" in result.output
    assert "input (None, 64)" in result.output


def test_resume_changes_name_each_changed_key() -> None:
    saved = config_from_data(tiny_config())
    longer = config_from_data(tiny_config(train={**tiny_config()["train"], "epochs": 9}))
    assert [str(c) for c in resume_changes(saved, longer)] == ["train.epochs 3 -> 9"]
    assert resume_changes(saved, saved) == []


def test_runs_compare_puts_kfold_runs_with_and_without_a_final_retrain_in_one_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both report their folds' mean; the one with a final retrain its test score beside."""
    dirs = []
    for final in (None, {"epochs": 2}):
        evaluation = {"protocol": "kfold", "k": 2, **({"final": final} if final else {})}
        config = tmp_path / f"{'final' if final else 'folds'}.yaml"
        config.write_text(json.dumps(tiny_config(name=config.stem, evaluation=evaluation)))
        result = runner.invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "runs")])
        assert result.exit_code == 0, result.output
        dirs.append(result.output.strip().splitlines()[-1])
    cv_means = [
        json.loads((Path(d) / "results.json").read_text())["cross_validation"]["metrics"][
            "accuracy"
        ]["mean"]
        for d in dirs
    ]
    result = runner.invoke(app, ["runs", "compare", *dirs, "-o", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    (header,) = [line for line in result.output.splitlines() if "run" in line and "cv" in line]
    assert "cv accuracy (mean)" in header and "test accuracy" in header
    for name, mean in zip(("folds", "final"), cv_means, strict=True):
        (row,) = [line for line in result.output.splitlines() if line.startswith(f"│ {name} ")]
        assert f"{mean:.4f}" in row
    monkeypatch.setattr(console, "width", 50)  # rich's width, as a 50-column terminal sets it
    narrow = runner.invoke(app, ["runs", "compare", *dirs, "-o", str(tmp_path / "c.png")])
    assert narrow.exit_code == 0 and "…" not in narrow.output  # folded onto lines, never cut
    table = narrow.output.split("results")[0]  # the config differences
    first_cells = [line.split("│")[1].strip() for line in table.splitlines() if "│" in line]
    assert "evaluation.final.retrain" in "".join(first_cells)
    for mean in cv_means:  # numbers are never split over lines: each is whole on its row
        assert f"{mean:.4f}" in narrow.output.split("results")[1]
    monkeypatch.setattr(console, "width", 200)
    scored = runner.invoke(app, ["eval", dirs[0]])
    assert f"{dirs[0]}: validation metrics per fold" in scored.output  # the path on one line
    typo = runner.invoke(app, ["runs", "compare", *dirs, "-o", str(tmp_path / "c.png"),
                               "--keys", "val_loss,val_acc"])  # fmt: skip
    assert (
        typo.exit_code == 0
        and "warning: no run recorded val_acc per epoch; not drawn" in typo.output
    )


def test_an_epoch_whose_loss_was_not_a_number_is_never_the_best(tmp_path: Path) -> None:
    from dlrun.runs import _run_metrics

    rows = [{"epoch": 1, "val_loss": float("nan")}, {"epoch": 2, "val_loss": 0.7}]
    assert _run_metrics("r", tmp_path, rows) == {"run": "r", "min val_loss": 0.7, "at epoch": 2}


def test_a_damaged_results_file_is_named_and_hides_no_other_run(tmp_path: Path) -> None:
    _fake_run(tmp_path / "good", "2026-11-30T10:15:00", "completed", 0.9)
    _fake_run(tmp_path / "cut", "2026-11-30T11:15:00", "completed", 0.8)
    (tmp_path / "cut" / "results.json").write_text('{"status": "compl')  # cut short
    listed = runner.invoke(app, ["runs", "list", str(tmp_path)])
    assert listed.exit_code == 0, listed.output  # was a JSONDecodeError traceback
    rows = [line.split() for line in listed.output.splitlines()[1:]]
    assert [row[:4] for row in rows] == [["cut", "2026-11-30", "11:15", "damaged"],
                                         ["good", "2026-11-30", "10:15", "completed"]]  # fmt: skip
    compared = runner.invoke(app, ["runs", "compare", str(tmp_path / "good"),
                                   str(tmp_path / "cut"), "-o", str(tmp_path / "c.png")],
                             terminal_width=400)  # fmt: skip
    assert compared.exit_code == 2 and "Traceback" not in compared.output
    assert f"{tmp_path / 'cut' / 'results.json'} cannot be read (" in compared.output


@pytest.mark.parametrize(
    ("command", "sentence"),
    [
        (["train"], "(train.epochs=30 extends a finished run)"),
        (["eval"], "the run's model on the test split"),
        (["sweep"], "every trial is a normal run under runs/NAME/trial-NNNN"),
        (["datasets", "embed"], "glove.6B.DIMd.txt or glove.6B.zip"),
    ],
)
def test_help_texts_rewrap_their_sentences_to_the_terminal(
    command: list[str], sentence: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A docstring's line breaks are the source file's, not the terminal's: the help joins
    them (a sentence used to break mid-line at 80 columns), and nothing in it is eaten as
    markup (``<name>`` was)."""
    monkeypatch.setenv("COLUMNS", "120")  # typer's help console reads its width from here
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert sentence in result.output
