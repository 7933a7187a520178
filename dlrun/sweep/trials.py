"""One trial: suggested values set into the config, a normal run, the validation objective.

Choices that are not plain scalars (a whole ``model.layers`` list) are suggested by index, so
Optuna stores a number and the run directory's config holds the real value.
"""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path
from typing import Any
from typing import Literal

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from rich.console import Console

from dlrun.config.checks import check_sweep
from dlrun.config.load import SHORTHAND_TAGS
from dlrun.config.load import config_from_data
from dlrun.config.load import config_from_text
from dlrun.config.overrides import dotted
from dlrun.config.overrides import set_path
from dlrun.config.resume import check_resume_changes
from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import LoadedData
from dlrun.data.load import load_data
from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue
from dlrun.errors import RunError
from dlrun.evaluation.preflight import check_with_data
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.evaluation.runner import plan_protocol
from dlrun.reporting.recorder import check_resumable
from dlrun.reporting.rundir import RunDirectory
from dlrun.sweep.names import trial_folder
from dlrun.sweep.space import ParameterSpace
from dlrun.sweep.space import SweepConfig
from dlrun.training.callbacks import Callback
from dlrun.training.metrics import higher_is_better
from dlrun.training.state import TrainState
from dlrun.training.status import RunStatus
from dlrun.utils import resolve_device

SCALARS = (str, int, float, bool, type(None))
# What decides a trial's model and the data it is checked against (not the optimizer, say).
MODEL_SECTIONS = {"seed", "task", "data", "preprocess", "model", "loss", "evaluation"}
HEARTBEAT_SECONDS = 30  # stale-trial detection (study.STALE_SECONDS) allows 20 missed beats


def by_index(space: ParameterSpace) -> bool:
    return space.choice is not None and not all(isinstance(c, SCALARS) for c in space.choice)


def encoded_choices(space: ParameterSpace) -> list[Any]:
    assert space.choice is not None
    return list(range(len(space.choice))) if by_index(space) else list(space.choice)


def decode(space: ParameterSpace, value: Any) -> Any:
    return space.choice[int(value)] if by_index(space) else value  # type: ignore[index]


def label(space: ParameterSpace, value: Any) -> Any:
    """What tables show for a stored value: the choice's label, else the value itself."""
    if space.labels is not None and space.choice is not None:
        encoded = encoded_choices(space)
        if value in encoded:
            return space.labels[encoded.index(value)]
    return decode(space, value)


def grid_points(sweep: SweepConfig) -> list[dict[str, Any]]:
    """Every grid point in Optuna's encoding (choice indices for non-scalar choices)."""
    encoded = SweepConfig.model_validate(
        {**sweep.model_dump(), "parameters": {
            k: ({"choice": encoded_choices(v)} if v.choice is not None
                else v.model_dump(exclude={"labels"}))
            for k, v in sweep.parameters.items()}}
    )  # fmt: skip
    return encoded.grid()


def distribution(space: ParameterSpace) -> BaseDistribution:
    """The Optuna distribution :func:`suggest` draws ``space`` from."""
    if space.choice is not None:
        return CategoricalDistribution(encoded_choices(space))
    if space.int is not None:
        r = space.int
        return IntDistribution(r.low, r.high, log=r.log, step=r.step)
    assert space.float is not None
    f = space.float
    return FloatDistribution(f.low, f.high, log=f.log, step=f.step)


def suggest(trial: optuna.Trial, path: str, space: ParameterSpace) -> Any:
    """``trial``'s value for ``path``, drawn from :func:`distribution` (the one mapping)."""
    drawn = distribution(space)
    if isinstance(drawn, CategoricalDistribution):
        return decode(space, trial.suggest_categorical(path, list(drawn.choices)))
    if isinstance(drawn, IntDistribution):
        return trial.suggest_int(path, drawn.low, drawn.high, step=drawn.step, log=drawn.log)
    assert isinstance(drawn, FloatDistribution)
    return trial.suggest_float(path, drawn.low, drawn.high, step=drawn.step, log=drawn.log)


def trial_config(
    cfg: ExperimentConfig, values: dict[str, Any], trained: bool = False
) -> ExperimentConfig:
    """The sweep's base config with ``values`` set at their dotted paths (sweep section dropped).

    A key may list several paths separated by commas; each gets the value (one dropout rate for
    two layers). Only the values the user wrote are kept before setting, so switching
    ``optimizer.name`` does not carry the old optimizer's defaulted settings along. The config
    a trial ``trained`` also drops ``evaluation.final``: a trial is judged on validation data
    and never tested, so a final retrain would be trained for nothing.
    """
    data = cfg.model_dump(mode="json", exclude_defaults=True, exclude={"sweep"})
    if trained:
        data.get("evaluation", {}).pop("final", None)
        data["description"] = _trial_description(cfg, values)
    for key, value in values.items():
        for path in key.split(","):
            set_path(data, dotted(path.strip()), value, SHORTHAND_TAGS)
    return config_from_data(data, f"sweep values {values}")


def _trial_description(cfg: ExperimentConfig, values: dict[str, Any]) -> str:
    """What a trial's report opens with: its sweep and values (the base config's description
    describes the base model, which the values may have changed)."""
    shown = ", ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in values.items()
    )
    base = f" The sweep's base config: {cfg.description}" if cfg.description else ""
    return f"A trial of sweep {cfg.name}: {shown}.{base}"


def check_space(cfg: ExperimentConfig, with_data: bool = False) -> None:
    """The sweep's own settings, and every choice and both ends of every range, must give a
    valid config, and (``with_data``) a model that fits the data, before anything is created."""
    assert cfg.sweep is not None
    issues = check_sweep(cfg)  # already checked when read, unless the sweep came from a file
    examples = []
    for path, space in cfg.sweep.parameters.items():
        for value in space.examples():
            try:
                examples.append((path, value, trial_config(cfg, {path: value})))
            except ConfigError as exc:
                issues.append(_value_issue(path, value, exc))
    if not issues and with_data:
        issues = _check_models_with_data(examples)
    if issues:
        raise cfg.origin.error(issues)


def _value_issue(path: str, value: Any, exc: ConfigError) -> ConfigIssue:
    problems = "; ".join(f"{i.path}: {i.message}" for i in exc.issues)
    return ConfigIssue(f"sweep.parameters.{path}", f"value {value!r}: {problems}")


def _check_models_with_data(
    examples: list[tuple[str, Any, ExperimentConfig]],
) -> list[ConfigIssue]:
    """Each distinct model the examples give, built for the data (on the meta device, so
    nothing is allocated) and checked against its targets and the memory; each dataset is
    read once."""
    issues = []
    seen: set[str] = set()
    datasets: dict[str, LoadedData] = {}
    for path, value, config in examples:
        key = config.model_dump_json(include=MODEL_SECTIONS)
        if key in seen:
            continue
        seen.add(key)
        source = config.model_dump_json(include={"data", "task", "seed"})
        if source not in datasets:
            datasets[source] = load_data(config)
        try:
            plan = plan_protocol(config, datasets[source])
            check_with_data(config, plan.data, resolve_device(config.train.device))
        except ConfigError as exc:
            issues.append(_value_issue(path, value, exc))
    return issues


def direction(sweep: SweepConfig) -> Literal["maximize", "minimize"]:
    if sweep.objective.direction != "auto":
        return sweep.objective.direction
    return "maximize" if higher_is_better(sweep.objective.metric) else "minimize"


def objective_value(results: dict[str, Any], metric: str) -> float:
    """The validation value of ``metric``: the cross-validated mean, or the hold-out value."""
    cv = results.get("cross_validation")
    if cv:
        summary = cv["metrics"].get(metric)
        return float(summary["mean"]) if summary else math.nan
    value = (results.get("validation") or {}).get(f"val_{metric}")
    return float(value) if value is not None else math.nan


class TrialReporter(Callback):
    """Per epoch: a heartbeat for stale-trial detection, and the value pruners judge."""

    def __init__(self, trial: optuna.Trial, monitor: str, prune: bool) -> None:
        super().__init__()
        self.trial = trial
        self.monitor = monitor
        self.prune = prune
        self.pruned = False
        self.beat = time.time()

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        if time.time() - self.beat > HEARTBEAT_SECONDS:  # each beat is a write to the study
            self.beat = time.time()
            self.trial.set_user_attr("heartbeat", self.beat)
        value = logs.get(self.monitor)
        if not self.prune or value is None or not math.isfinite(value):
            return
        self.trial.report(value, step=state.epoch)
        if self.trial.should_prune():
            self.pruned = True
            state.stop(
                RunStatus.PRUNED, f"pruned after epoch {state.epoch} ({self.monitor} {value:.4g})"
            )


def resumable(run_dir: Path, config: ExperimentConfig) -> bool:
    """Whether ``run_dir`` holds a run of ``config`` that may continue (the sweep's base
    config may have been edited since the worker died, to other settings or fewer epochs
    than a fit trained, or a saved fit may be damaged: then the trial starts over)."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return False
    try:
        check_resume_changes(
            config_from_text(saved.read_text(), str(saved), []), config, str(saved)
        )
        check_resumable(RunDirectory(run_dir), config)
    except (ConfigError, RunError):
        return False
    return True


def run_trial(cfg: ExperimentConfig, trial: optuna.Trial, sweep_dir: Path) -> float:
    """Train the trial's config as a normal run in ``sweep_dir/trial-NNNN``.

    A trial queued again after its worker died (``resume_dir``) continues that run from its
    last saved epoch instead of starting over.
    """
    from dlrun.api import run_experiment

    sweep = cfg.sweep
    assert sweep is not None
    values = {path: suggest(trial, path, space) for path, space in sweep.parameters.items()}
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("heartbeat", time.time())
    single_split = PROTOCOLS.get(cfg.evaluation.protocol).single_split
    reporter = TrialReporter(trial, f"val_{sweep.objective.metric}",
                             sweep.pruner != "none" and single_split)  # fmt: skip
    config = trial_config(cfg, values, trained=True)
    resume_dir = trial.user_attrs.get("resume_dir")
    resume = isinstance(resume_dir, str) and resumable(sweep_dir / resume_dir, config)
    name = resume_dir if resume else trial_folder(trial.number)
    trial.set_user_attr("run_dir", name)  # set first, so a dead worker's trial can be resumed
    result = run_experiment(config, sweep_dir, Console(quiet=True), run_name=name,
                            extra_callbacks=[reporter], resume=resume,
                            hold_back_test=True)  # fmt: skip
    cv = result.results.get("cross_validation") or {}
    spread = cv.get("metrics", {}).get(sweep.objective.metric, {}).get("std")
    if spread is not None:
        trial.set_user_attr("std", spread)
    if result.status is RunStatus.INTERRUPTED:
        raise KeyboardInterrupt
    if result.status is RunStatus.DIVERGED:  # the leaderboard says so, with the reason
        trial.set_user_attr("run_status", result.status.value)
        trial.set_user_attr("error", result.results["stop_reason"])
    if reporter.pruned:
        raise optuna.TrialPruned()
    return objective_value(result.results, sweep.objective.metric)
