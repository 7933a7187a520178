"""Summaries of run directories: list them, or compare several side by side."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import ClassVar

import yaml

from dlrun.errors import RunError
from dlrun.evaluation.aggregate import average_curves
from dlrun.reporting import plots
from dlrun.reporting.files import number
from dlrun.reporting.hparams import flatten
from dlrun.reporting.rundir import INCOMPLETE
from dlrun.reporting.rundir import RunDirectory
from dlrun.sweep.names import JOURNAL
from dlrun.sweep.names import LEADERBOARD

IGNORED_IN_DIFF = ("name", "description")


@dataclass(frozen=True)
class RunRow:
    """One line of ``dlrun runs list``: a run, or a sweep directory (``status`` ``sweep``)."""

    name: str
    date: str  # when it started, ``YYYY-MM-DD HH:MM``
    status: str
    task: str
    metric: str
    value: str

    COLUMNS: ClassVar[tuple[str, ...]] = ("run", "date", "status", "task", "metric", "value")

    def cells(self) -> list[str]:
        return [self.name, self.date, self.status, self.task, self.metric, self.value]


def read_results(path: Path) -> dict[str, Any]:
    """A run's results.json ({} before it has one); a damaged one is a one-line error."""
    results_file = path / "results.json"
    if not results_file.is_file():
        return {}
    data = _json_file(results_file, json.loads)
    if not isinstance(data, dict):
        raise RunError(f"{results_file} holds no results object; the file was changed")
    return data


def _json_file(file: Path, parse: Callable[[str], Any]) -> Any:
    """``parse`` of the file's text; a file that is not what dlrun wrote says so in one line."""
    try:
        return parse(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{file} cannot be read ({exc}); the file was damaged or changed") from None


def headline_metrics(results: dict[str, Any]) -> list[tuple[str, float]]:
    """The headline numbers: the once-scored split's first metric, then the CV mean (a K-fold
    run with a final retrain has both, so it shares a column with one without)."""
    found = []
    scored = results.get("evaluation") or {}
    metrics = scored.get("metrics") or {}
    if metrics:
        key = next((k for k in metrics if k != "loss"), "loss")
        found.append((f"{scored['split']} {key}", number(metrics[key])))
    cv = (results.get("cross_validation") or {}).get("metrics") or {}
    if cv:
        key = next((k for k in cv if k != "loss"), "loss")
        found.append((f"cv {key} (mean)", number(cv[key]["mean"])))
    return found


def key_metric(results: dict[str, Any]) -> tuple[str, float] | None:
    """The one number ``dlrun runs`` lists: the first headline metric."""
    return next(iter(headline_metrics(results)), None)


def list_runs(directory: Path) -> list[RunRow]:
    """Every run and sweep directory directly under ``directory``, by name."""
    if not directory.is_dir():
        raise RunError(f"no runs directory at {directory}")
    if (directory / "config.yaml").is_file():
        raise RunError(f"{directory} is a run, not a directory of runs; its report is "
                       f"{directory / 'report.md'}, and dlrun runs list {directory.parent} "
                       "lists it among the others")  # fmt: skip
    rows = []
    for path in sorted(p for p in directory.iterdir() if p.is_dir()):
        if (path / "config.yaml").is_file():
            rows.append(_run_row(path))
        elif is_sweep(path):
            rows.append(_sweep_row(path))
    return rows


def is_sweep(path: Path) -> bool:
    """A sweep directory: its journal or leaderboard, or trial runs (a database-backed sweep
    still running has only those)."""
    markers = (path / JOURNAL, path / LEADERBOARD)
    return any(m.is_file() for m in markers) or any(path.glob("trial-*/config.yaml"))


def _started(path: Path) -> dt.datetime:
    """When the run started (env.json), else when its directory was last changed."""
    try:
        return dt.datetime.fromisoformat(json.loads((path / "env.json").read_text())["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return dt.datetime.fromtimestamp(path.stat().st_mtime)


def _date(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _run_row(path: Path) -> RunRow:
    status = RunDirectory(path).status().get("status", "unknown")
    if status == INCOMPLETE:
        status = "incomplete"
    try:
        results = read_results(path)
    except RunError:  # one damaged run does not hide the others
        results, status = {}, "damaged"
    headline = key_metric(results)
    metric, value = (headline[0], f"{headline[1]:.4f}") if headline else ("", "")
    return RunRow(path.name, _date(_started(path)), status, results.get("task", ""), metric, value)


def _sweep_row(path: Path) -> RunRow:
    """A sweep: its first trial's start and task, its trial count and best objective."""
    trials = sorted(p.parent for p in path.glob("trial-*/config.yaml"))
    started = min((_started(t) for t in trials), default=_started(path))
    task = next((str(read_results(t).get("task", "")) for t in trials), "")
    leaderboard = path / LEADERBOARD
    best = ""
    if leaderboard.is_file():
        with leaderboard.open(newline="", encoding="utf-8") as handle:
            top = next(csv.DictReader(handle), None)
        if top and top.get("rank") == "1" and top.get("objective"):
            best = f"{float(top['objective']):.4g}"
    metric = f"best objective ({len(trials)} trials)" if best else f"{len(trials)} trials"
    return RunRow(path.name, _date(started), "sweep", task, metric, best)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    file = path / "metrics.jsonl"
    if not file.is_file():
        return []
    rows = _json_file(
        file, lambda text: [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    return [{k: number(v) if v is None else v for k, v in row.items()} for row in rows]


def training_curves(path: Path) -> list[dict[str, Any]]:
    """Per-epoch rows of the protocol's training; for K-fold runs, the fold average."""
    folds = sorted(p.parent for p in path.glob("**/fold_*/metrics.jsonl"))
    if folds:
        histories = [[r for r in _read_rows(f) if r.get("phase", "fit") == "fit"] for f in folds]
        histories = [[{k: v for k, v in r.items() if k != "phase"} for r in h] for h in histories]
        curves = average_curves(histories)
        length = max((len(v) for v in curves.values()), default=0)
        rows = [{k: v[i] for k, v in curves.items() if i < len(v)} for i in range(length)]
        return [{**row, "epoch": i + 1} for i, row in enumerate(rows)]
    return [r for r in _read_rows(path) if r.get("phase", "fit") == "fit"]


@dataclass(frozen=True)
class Comparison:
    names: list[str]
    differences: dict[str, list[Any]]  # config keys whose values differ, one value per run
    metrics: list[dict[str, Any]]  # per run: headline metric, best validation epoch
    figure: Path
    unrecorded: list[str]  # asked-for keys no run recorded per epoch (not drawn)
    losses: list[str]  # the different losses the runs train; empty when they train one


def compare_runs(paths: list[Path], output: Path, keys: list[str]) -> Comparison:
    """Overlay the runs' curves for ``keys`` in one PNG and diff their configs."""
    if len(paths) < 2:
        raise RunError("give at least two run directories to compare")
    if output.suffix.lower() != ".png" and not output.is_dir():  # a PNG, whatever its name
        raise RunError(f"--output {output}: the curves are written as a PNG; name a .png file")
    runs = [RunDirectory.open(p) for p in paths]
    names = _unique_names(runs)
    configs = [flatten(yaml.safe_load(r.file("config.yaml").read_text())) for r in runs]
    all_keys = list(dict.fromkeys(k for c in configs for k in c))
    differences = {
        key: [c.get(key) for c in configs]
        for key in all_keys
        if key not in IGNORED_IN_DIFF and len({json.dumps(c.get(key)) for c in configs}) > 1
    }
    histories = [training_curves(r.path) for r in runs]
    present = [k for k in keys if any(k in row for rows in histories for row in rows)]
    if not present:
        raise RunError(f"none of the runs recorded {', '.join(keys)} per epoch")
    trained = [str(c.get("loss.name")) for c in configs]
    losses = list(dict.fromkeys(trained)) if len(set(trained)) > 1 else []
    # loss curves on different scales: each run's label says which loss it is
    labels = [f"{n} ({loss})" if losses else n for n, loss in zip(names, trained, strict=True)]
    plots.compare_curves(dict(zip(labels, histories, strict=True)), present, output)
    metrics = [
        _run_metrics(name, r.path, rows)
        for name, r, rows in zip(names, runs, histories, strict=True)
    ]
    unrecorded = [k for k in keys if k not in present]
    return Comparison(names, differences, metrics, output, unrecorded, losses)


def _unique_names(runs: list[RunDirectory]) -> list[str]:
    """Experiment names when they tell the runs apart, else directory names, else paths."""
    for candidates in (
        [str(read_results(r.path).get("name", "")) for r in runs],
        [r.path.name for r in runs],
    ):
        if all(candidates) and len(set(candidates)) == len(candidates):
            return candidates
    return [str(r.path) for r in runs]


def _run_metrics(name: str, path: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {"run": name}
    row.update(headline_metrics(read_results(path)))
    # an epoch whose loss was not a number (written null, read back NaN) is never the best
    losses = [
        (r["val_loss"], r["epoch"]) for r in rows if not math.isnan(r.get("val_loss", math.nan))
    ]
    if losses:
        best, epoch = min(losses)
        row["min val_loss"] = best
        row["at epoch"] = epoch
    return row
