"""``dlrun tensorboard``: it listens on loopback only, and stopping it stops TensorBoard.

Linux only: listening sockets and process trees are read from ``/proc``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from tests.conftest import REPO
from tests.test_tensorboard import free_port
from tests.test_tensorboard import wait_for_port

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").is_file(), reason="reads sockets and processes from /proc"
)
LISTEN = "0A"

runner = CliRunner()


def listening(port: int) -> set[str]:
    """Local addresses (hex, as ``/proc/net/tcp*`` writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).is_file():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == LISTEN and int(hex_port, 16) == port:
                found.add(address)
    return found


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while being read
        children.setdefault(parent, []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def dlrun_tensorboard(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``dlrun tensorboard`` on an empty runs directory, listening; killed if a test fails."""
    runs = tmp_path / "runs"
    runs.mkdir()
    port = free_port()
    command = [sys.executable, "-m", "dlrun", "tensorboard", str(runs), "--port", str(port)]
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)  # fmt: skip
    started: set[int] = set()
    try:
        wait_for_port(port, process)
        started = descendants(process.pid)
        yield process, port
    finally:
        for pid in [process.pid, *started]:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        process.communicate(timeout=30)


def test_listens_on_loopback_only_and_prints_that_url(
    dlrun_tensorboard: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = dlrun_tensorboard
    assert listening(port) == {"0100007F"}  # 127.0.0.1; not 0.0.0.0 nor :: (every interface)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert f"runs: http://127.0.0.1:{port}/ (Ctrl-C stops it)" in output


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stopping_dlrun_stops_tensorboard(
    dlrun_tensorboard: tuple[subprocess.Popen[str], int], stop: signal.Signals
) -> None:
    process, port = dlrun_tensorboard
    below = descendants(process.pid)
    assert below, "TensorBoard runs as a child process"
    process.send_signal(stop)  # to dlrun alone, as a service manager or `kill` would
    process.communicate(timeout=30)
    assert process.returncode == 0
    deadline = time.monotonic() + 15
    while any(running(pid) for pid in below) and time.monotonic() < deadline:
        time.sleep(0.1)  # TensorBoard's data server leaves once TensorBoard has gone
    assert not [pid for pid in below if running(pid)]
    assert not listening(port)


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "dlrun", "tensorboard", str(tmp_path), "--port", str(port)],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port"
    )
    assert done.stdout == ""  # no address printed as if it were served


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--port", "99999"], "Invalid value for '--port'"),
        (["--host", "999.1.1.1"], "cannot listen on 999.1.1.1: "),
    ],
)
def test_a_port_or_host_that_cannot_be_is_refused_without_a_traceback(
    tmp_path: Path, options: list[str], message: str
) -> None:
    result = runner.invoke(app, ["tensorboard", str(tmp_path), *options])
    assert result.exit_code == 2 and message in result.output
    assert not isinstance(result.exception, OverflowError)  # bind() raised it before
    if "--host" in options:
        assert "give --host an address of this machine" in " ".join(result.output.split())
