"""The console script ends without the interpreter's teardown, but loses nothing on the way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dlrun.cli import app
from tests.conftest import tiny_config

SCRIPT = """
import atexit, sys, threading, time
from dlrun.exiting import exit_now

atexit.register(print, "atexit ran")
threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished"))).start()
sys.stdout.write("buffered, not flushed")
exit_now(CODE)
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("CODE", code)], capture_output=True, text=True
    )


def test_threads_are_joined_atexit_runs_and_output_is_flushed() -> None:
    done = run("3")
    assert done.returncode == 3
    assert done.stdout == "buffered, not flushedthread finished\natexit ran\n"


def test_an_idle_thread_pool_does_not_hold_the_exit() -> None:
    script = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from dlrun.exiting import exit_now\n"
        "pool = ThreadPoolExecutor(2)\n"
        "print(pool.submit(sum, [1, 2]).result())\n"
        "exit_now(0)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "3\n")


def test_a_message_exits_with_1_and_none_with_0() -> None:
    message = run("'no such run'")
    assert (message.returncode, message.stderr) == (1, "no such run\n")
    assert run("None").returncode == 0


def test_the_dlrun_command_keeps_its_exit_codes_and_output() -> None:
    version = subprocess.run([sys.executable, "-m", "dlrun", "--version"], capture_output=True,
                             text=True)  # fmt: skip
    assert version.returncode == 0 and version.stdout.startswith("dlrun ")
    missing = subprocess.run([sys.executable, "-m", "dlrun", "validate", "missing.yaml"],
                             capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 2 and "missing.yaml: config file not found" in missing.stderr


def test_a_full_disk_is_one_line_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was a chain of tracebacks. torch.save to a path hides the OSError behind its own
    RuntimeErrors; to a file object, as dlrun saves checkpoints and resume states, the full
    disk (here /dev/full) shows as ENOSPC."""
    import dlrun.api

    def full(*args: object, **kwargs: object) -> None:
        with open("/dev/full", "wb") as handle:
            torch.save({"weights": torch.zeros(100_000)}, handle)

    monkeypatch.setattr(dlrun.api, "write_run_files", full)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(tiny_config()))
    result = CliRunner().invoke(app, ["train", str(config), "--runs-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error: no space left on the device; free some space and run the command again" in (
        " ".join(result.output.split())
    )


def test_resume_states_meet_a_full_disk_as_enospc() -> None:
    """What the one-line message above recognises: saved to a path, torch raised only its own
    RuntimeErrors ("unexpected pos"), and the user got their traceback."""
    import errno

    from dlrun.cli_common import disk_full
    from dlrun.training.snapshots import dump_state

    with pytest.raises(OSError) as caught:
        dump_state({"epoch": 3, "weights": torch.zeros(100_000)}, Path("/dev/full"))
    assert caught.value.errno == errno.ENOSPC and disk_full(caught.value) == ""
