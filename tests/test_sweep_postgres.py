"""Two sweep workers on a real PostgreSQL server: every grid point runs exactly once.

The test finds PostgreSQL's server binaries (``.ci/run`` installs Debian's package), starts a
throwaway server on 127.0.0.1 in a temporary directory and stops it afterwards. PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import csv
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import REPO
from tests.conftest import tiny_config

pytestmark = pytest.mark.postgres


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def postgres() -> Iterator[str]:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries not found (.ci/run installs them)")
    pytest.importorskip("psycopg2")
    root = Path(tempfile.mkdtemp(prefix="dlrun-pg-"))  # under /tmp: reachable by postgres
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    data = root / "data"
    run = lambda *args: subprocess.run([*as_user, *args], check=True, capture_output=True)  # noqa: E731
    try:
        run(initdb, "-D", str(data), "-U", "dlrun", "--auth=trust", "-E", "UTF8")
        port = _free_port()
        options = f"-h 127.0.0.1 -p {port} -k {root}"
        run(pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
        try:
            yield f"postgresql+psycopg2://dlrun@127.0.0.1:{port}/postgres"
        finally:
            run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(postgres: str, tmp_path: Path) -> None:
    grid = {"method": "grid", "objective": {"metric": "accuracy"},
            "parameters": {"optimizer.lr": {"choice": [0.005, 0.01, 0.02]},
                           "model.layers.0.dense.units": {"choice": [4, 8]}}}  # fmt: skip
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(tiny_config(name="pg_sweep", sweep=grid), sort_keys=False))
    command = [sys.executable, "-m", "dlrun", "sweep", str(config), "--storage", postgres,
               "--study", "shared", "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for _ in range(2)]  # fmt: skip
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=postgres)
    trials = study.get_trials()
    assert [t.state for t in trials].count(optuna.trial.TrialState.COMPLETE) == 6
    points = sorted(
        (t.params["optimizer.lr"], t.params["model.layers.0.dense.units"]) for t in trials
    )
    assert points == sorted((lr, u) for lr in (0.005, 0.01, 0.02) for u in (4, 8))  # each once
    hosts = {t.user_attrs["pid"] for t in trials}
    assert len(hosts) == 2, "both workers should have taken trials"
    rows = list(csv.DictReader((tmp_path / "runs" / "pg_sweep" / "leaderboard.csv").open()))
    assert len(rows) == 6 and all(r["state"] == "complete" for r in rows)
