"""``dlrun train`` draws its figures in another process and waits for them after its result;
elsewhere figures are drawn at once."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import dlrun.cli
from dlrun.cli import app
from dlrun.errors import RunError
from dlrun.reporting import drawing
from dlrun.reporting import plots
from dlrun.reporting.curves import CurveMarks
from dlrun.reporting.drawing import draw
from dlrun.reporting.drawing import drawn_last
from dlrun.reporting.drawing import pending_names


def _figure(text: str, target: Path) -> None:
    """Writes ``text`` and the id of the process that drew it (module level: picklable)."""
    target.parent.mkdir(exist_ok=True)
    target.write_text(f"{text} {os.getpid()}")


def _broken(target: Path) -> None:
    raise RuntimeError("matplotlib broke")


def _slow(target: Path) -> None:
    time.sleep(30)
    target.write_text("drawn")


def test_outside_a_scope_a_figure_is_drawn_at_once(tmp_path: Path) -> None:
    draw(_figure, "curve", target=tmp_path / "a.png")
    assert (tmp_path / "a.png").read_text() == f"curve {os.getpid()}"
    assert pending_names(tmp_path) == []


def test_inside_a_scope_figures_are_drawn_by_another_process_and_listed(tmp_path: Path) -> None:
    with drawn_last():
        draw(_figure, "curve", target=tmp_path / "a.png")
        draw(_figure, "matrix", target=tmp_path / "sub" / "b.png")
        assert pending_names(tmp_path) == ["a.png"]
        assert pending_names(tmp_path / "sub") == ["b.png"]
    text, pid = (tmp_path / "a.png").read_text().split()
    assert text == "curve" and int(pid) != os.getpid()
    assert (tmp_path / "sub" / "b.png").read_text().startswith("matrix ")
    assert pending_names(tmp_path) == []


def test_a_figure_the_process_cannot_take_is_drawn_here_at_the_end(tmp_path: Path) -> None:
    def local(target: Path) -> None:  # defined inside a function: pickle cannot send it
        target.write_text(str(os.getpid()))

    with drawn_last():
        draw(local, target=tmp_path / "local.png")
        assert not (tmp_path / "local.png").exists()
        assert pending_names(tmp_path) == ["local.png"]
    assert (tmp_path / "local.png").read_text() == str(os.getpid())


def test_figures_the_process_did_not_draw_are_drawn_here(tmp_path: Path) -> None:
    with drawn_last():
        draw(_figure, "sent", target=tmp_path / "a.png")
        scope = drawing._PENDING.get()
        assert scope is not None and scope.process is not None
        scope.process.process.kill()  # the figure process dies
        scope.process.process.wait()
        draw(_figure, "after", target=tmp_path / "b.png")
    assert (tmp_path / "a.png").read_text().startswith("sent ")
    assert (tmp_path / "b.png").read_text() == f"after {os.getpid()}"


def test_a_figure_that_fails_in_the_process_is_reported_after_the_others(tmp_path: Path) -> None:
    with (
        pytest.raises(
            RunError, match=r"drawing broken\.png failed: RuntimeError: matplotlib broke"
        ),
        drawn_last(),
    ):
        draw(_broken, target=tmp_path / "broken.png")
        draw(_figure, "curve", target=tmp_path / "a.png")
    assert (tmp_path / "a.png").read_text().startswith("curve ")


def test_a_failing_block_still_gets_its_figures_and_keeps_its_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the run failed"), drawn_last():
        draw(_broken, target=tmp_path / "broken.png")
        draw(_figure, "fold 1", target=tmp_path / "a.png")
        raise ValueError("the run failed")
    assert (tmp_path / "a.png").read_text().startswith("fold 1 ")


def test_a_run_failing_before_any_figure_does_not_wait_for_the_process() -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match="config typo"), drawn_last():
        scope = drawing._PENDING.get()
        raise ValueError("config typo")
    assert scope is not None and scope.process is not None
    assert scope.process.process.returncode is not None  # stopped, not left running
    assert time.monotonic() - started < 5


def test_ctrl_c_abandons_the_figures_not_drawn_yet(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), drawn_last():
        draw(_slow, target=tmp_path / "a.png")
        raise KeyboardInterrupt
    assert time.monotonic() - started < 20  # the process was stopped, not waited for
    assert list(tmp_path.iterdir()) == []  # no figure, no temporary file


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
