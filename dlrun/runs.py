"""Summaries of the run directories under a runs folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dlrun.errors import RunError
from dlrun.reporting.rundir import INCOMPLETE
from dlrun.reporting.rundir import RunDirectory


@dataclass(frozen=True)
class RunRow:
    name: str
    status: str
    task: str
    metric: str
    value: str


def list_runs(directory: Path) -> list[RunRow]:
    if not directory.is_dir():
        raise RunError(f"no runs directory at {directory}")
    rows = []
    for path in sorted(p for p in directory.iterdir() if (p / "config.yaml").is_file()):
        status = RunDirectory(path).status().get("status", "unknown")
        if status == INCOMPLETE:
            status = "incomplete"
        task, metric, value = "", "", ""
        results_file = path / "results.json"
        if results_file.is_file():
            results = json.loads(results_file.read_text())
            task = results.get("task", "")
            scored = results.get("evaluation") or {}
            metrics = scored.get("metrics") or {}
            if metrics:
                key = next((k for k in metrics if k != "loss"), "loss")
                metric, value = f"{scored['split']} {key}", f"{metrics[key]:.4f}"
        rows.append(RunRow(path.name, status, task, metric, value))
    return rows
