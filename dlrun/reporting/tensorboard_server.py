"""Serve a runs directory with TensorBoard as a child process that never outlives dlrun.

TensorBoard runs as ``python -m tensorboard.main`` (this module imports nothing of it). Ctrl-C
and SIGTERM both stop the wait; the child is then asked to terminate, and killed if it is still
there after :data:`STOP_TIMEOUT` seconds.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from pathlib import Path

from dlrun.errors import OutputError

STOP_TIMEOUT = 10.0  # seconds TensorBoard gets to exit after SIGTERM before it is killed


def tensorboard_url(host: str, port: int) -> str:
    """The address to print: this machine's name when listening on every interface."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown  # an IPv6 address in a URL
    return f"http://{shown}:{port}/"


def serve_tensorboard(directory: Path, port: int, host: str) -> int:
    """Run TensorBoard on ``directory`` bound to ``host``:``port`` until it exits or this
    process gets Ctrl-C or SIGTERM; return TensorBoard's exit code (0 when stopped here)."""
    check_port_free(host, port)
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(directory),
               "--port", str(port), "--host", host]  # fmt: skip

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM ends the wait below as Ctrl-C does

    previous = signal.signal(signal.SIGTERM, interrupt)
    child = subprocess.Popen(command)
    code = 0
    try:
        with contextlib.suppress(KeyboardInterrupt):
            code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not orphan it
        _stop(child)
        signal.signal(signal.SIGTERM, previous)
    return code


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another server holds in one line, before TensorBoard starts (it would
    print its own log and exit 255)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            probe.bind((host, port))
        except socket.gaierror as exc:  # not an address of this machine, or no address at all
            raise OutputError(f"cannot listen on {host}: {exc.strerror or exc}; give --host an "
                              "address of this machine (127.0.0.1, or 0.0.0.0 for all)") from None  # fmt: skip
        except OSError as exc:
            raise OutputError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port"
            ) from None


def _stop(child: subprocess.Popen[bytes]) -> None:
    """Terminate ``child``; kill it if it has not exited within :data:`STOP_TIMEOUT`."""
    child.terminate()
    try:
        child.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
