"""The run directory: ``runs/<name>-<timestamp>/`` and its status marker.

``status.json`` is written ``running`` first and replaced at the end with a
:class:`~dlrun.training.status.RunStatus`. A run killed outright keeps ``running``, so
``dlrun runs list`` shows it as incomplete (and ``dlrun train --resume`` continues it).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dlrun.errors import RunError
from dlrun.reporting.files import refused_as
from dlrun.reporting.files import write_json
from dlrun.training.status import RunStatus

STATUS_FILE = "status.json"
INCOMPLETE = RunStatus.RUNNING.value  # what status.json keeps when a run is killed outright


@dataclass(frozen=True)
class RunDirectory:
    path: Path

    @classmethod
    def create(cls, root: Path, name: str, exact: bool = False) -> RunDirectory:
        """``root/<name>-<timestamp>`` (``-N`` added on a clash), or ``root/<name>`` if exact."""
        if exact:
            return cls(root).create_child(name)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        for attempt in range(1000):
            suffix = f"-{attempt}" if attempt else ""
            path = root / f"{name}-{stamp}{suffix}"
            try:
                with refused_as(f"cannot make a run directory in {root}"):
                    path.mkdir(parents=True, exist_ok=False)
            except FileExistsError:
                continue
            run = cls(path)
            run.set_status(RunStatus.RUNNING)
            return run
        raise RunError(f"could not create a run directory under {root}")

    def create_child(self, name: str, reuse: bool = False) -> RunDirectory:
        """A sub-run such as ``fold_01`` (or ``repeat_01/fold_01``) inside this run; ``reuse``
        reopens one that exists (a resumed run)."""
        path = self.path / name
        try:
            with refused_as(f"cannot make {path}"):
                path.mkdir(parents=True, exist_ok=reuse)
        except FileExistsError:
            raise RunError(f"{path} already exists") from None
        child = RunDirectory(path)
        child.set_status(RunStatus.RUNNING)
        return child

    @classmethod
    def open(cls, path: str | Path) -> RunDirectory:
        run = cls(Path(path))
        if not run.path.exists():
            raise RunError(f"{path} does not exist; dlrun runs list shows the runs there are")
        if not (run.path / "config.yaml").is_file():
            raise RunError(f"{path} is not a dlrun run directory (no config.yaml)")
        return run

    def file(self, name: str) -> Path:
        return self.path / name

    def recorded_environment(self) -> dict[str, Any]:
        """env.json as the run's first start wrote it ({} when there is none); a damaged one
        is refused in one line, before resuming or scoring the run changes anything."""
        file = self.file("env.json")
        try:
            record = json.loads(file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise RunError(f"{file} cannot be read ({exc}); it is not as dlrun wrote it") from None
        if not isinstance(record, dict):
            raise RunError(f"{file} holds no environment record; the file was changed")
        return record

    def run_above(self) -> Path | None:
        """The run a fold sub-run belongs to (``fold_02``, ``repeat_01/fold_02``), if it is
        one."""
        if not re.fullmatch(r"fold_\d+", self.path.resolve().name):
            return None  # a run in a folder that holds a config is no fold
        for parent in self.path.resolve().parents[:2]:
            if (parent / "config.yaml").is_file():
                return parent
        return None

    def holds_back_test(self) -> bool:
        """Whether this run is a sweep's trial, which never reads the test split."""
        return bool(self.recorded_environment().get("test_held_back"))

    def check_same_data(self, fingerprint: str, then: str) -> None:
        """Refuse to go on with this run if its data changed since it began (``then``: what
        going on would do); env.json holds the rows' fingerprint from the first start (a run
        from before fingerprints were recorded is not checked)."""
        began = self.recorded_environment().get("data_fingerprint")
        if began is not None and began != fingerprint:
            raise RunError(
                f"{self.path} was trained on other rows than the data reads now (data "
                f"fingerprint {began}, now {fingerprint}): the data file changed; {then}. "
                "Restore the data, or train a new run"
            )

    def set_status(self, status: RunStatus, reason: str | None = None) -> None:
        record = {
            "status": status.value,
            "reason": reason,
            "updated": dt.datetime.now().isoformat(),
        }
        write_json(self.file(STATUS_FILE), record)

    def status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.file(STATUS_FILE).read_text())
        except (OSError, ValueError):
            return {"status": "unknown"}
        return data


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: torch.device, command: list[str]) -> dict[str, Any]:
    """What produced this run: versions, device, commit and command line."""
    packages = ["dlrun", "torch", "numpy", "scikit-learn", "pydantic", "tensorboard", "matplotlib"]
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in packages},
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "command": command,
        "started": dt.datetime.now().isoformat(),
    }
