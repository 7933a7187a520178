"""Figures are drawn after ``dlrun train`` prints its result, and at once everywhere else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import dlrun.cli
from dlrun.cli import app
from dlrun.reporting import plots
from dlrun.reporting.curves import CurveMarks
from dlrun.reporting.drawing import draw
from dlrun.reporting.drawing import drawn_last
from dlrun.reporting.drawing import pending_names


def _figure(text: str, target: Path) -> None:
    target.parent.mkdir(exist_ok=True)
    target.write_text(text)


def test_outside_a_scope_a_figure_is_drawn_at_once(tmp_path: Path) -> None:
    draw(_figure, "curve", target=tmp_path / "a.png")
    assert (tmp_path / "a.png").read_text() == "curve"
    assert pending_names(tmp_path) == []


def test_inside_a_scope_figures_wait_for_its_end_and_are_listed(tmp_path: Path) -> None:
    with drawn_last():
        draw(_figure, "curve", target=tmp_path / "a.png")
        draw(_figure, "matrix", target=tmp_path / "sub" / "b.png")
        assert not (tmp_path / "a.png").exists()
        assert pending_names(tmp_path) == ["a.png"]
        assert pending_names(tmp_path / "sub") == ["b.png"]
    assert (tmp_path / "a.png").read_text() == "curve"
    assert (tmp_path / "sub" / "b.png").exists()
    assert pending_names(tmp_path) == []


def test_a_failing_block_still_gets_its_figures_and_keeps_its_error(tmp_path: Path) -> None:
    def broken(target: Path) -> None:
        raise RuntimeError("matplotlib broke")

    with pytest.raises(ValueError, match="the run failed"), drawn_last():
        draw(broken, target=tmp_path / "broken.png")
        draw(_figure, "fold 1", target=tmp_path / "a.png")
        raise ValueError("the run failed")
    assert (tmp_path / "a.png").read_text() == "fold 1"


def test_ctrl_c_skips_the_figures(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), drawn_last():
        draw(_figure, "curve", target=tmp_path / "a.png")
        raise KeyboardInterrupt
    assert not (tmp_path / "a.png").exists()


def test_train_prints_its_result_before_drawing(
    monkeypatch: pytest.MonkeyPatch, write_config: Any, tmp_path: Path
) -> None:
    from tests.conftest import tiny_config

    events: list[str] = []
    printed, curves = dlrun.cli.print_result, plots.learning_curves

    def print_result(result: Any) -> None:
        printed(result)
        events.append("result printed")

    def learning_curves(rows: list[dict[str, Any]], marks: CurveMarks, target: Path) -> None:
        events.append(
            f"drawn; report lists it: {target.name in (target.parent / 'report.md').read_text()}"
        )
        curves(rows, marks, target)

    monkeypatch.setattr(dlrun.cli, "print_result", print_result)
    monkeypatch.setattr(plots, "learning_curves", learning_curves)
    result = CliRunner().invoke(app, ["train", str(write_config(tiny_config())),
                                      "--runs-dir", str(tmp_path / "runs")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert events == ["result printed", "drawn; report lists it: True"]
    run_dir = Path(result.output.strip().splitlines()[-1])
    assert (run_dir / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
