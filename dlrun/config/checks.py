"""Cross-field rules, each a small pure function returning the issues it finds.

Rules that depend on the kind of task live on the registered task
(:meth:`dlrun.tasks.base.Task.check_config`) and on its capabilities; rules that depend on the
protocol ask the registered protocol. Nothing here branches on a task or protocol name.
"""

from __future__ import annotations

from collections.abc import Callable

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import DATASETS
from dlrun.errors import ConfigIssue
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.models.build import last_activation
from dlrun.models.layers import LAYERS
from dlrun.tasks.base import TASKS
from dlrun.training.callbacks import MonitorConfig
from dlrun.training.losses import LOSSES
from dlrun.training.metrics import METRICS

Check = Callable[[ExperimentConfig], list[ConfigIssue]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


def run_checks(cfg: ExperimentConfig) -> list[ConfigIssue]:
    return [issue for fn in CHECKS for issue in fn(cfg)]


@check
def check_task_rules(cfg: ExperimentConfig) -> list[ConfigIssue]:
    """The task's own rules (for the supervised tasks: DLwP table 4.1)."""
    return TASKS.get(cfg.task.name).check_config(cfg)


@check
def check_dataset_rules(cfg: ExperimentConfig) -> list[ConfigIssue]:
    """The dataset's own rules that need no data (a table's target column, for a task that
    learns targets)."""
    reads_targets = TASKS.get(cfg.task.name).target is not None
    return DATASETS.get(cfg.data.dataset).check_config(cfg.data, reads_targets)


@check
def check_loss_matches_output(cfg: ExperimentConfig) -> list[ConfigIssue]:
    """Cross-entropies need the output activation they are defined on."""
    if cfg.loss is None:
        return []
    required = LOSSES.get(cfg.loss.name)(cfg.loss).required_activations()
    final = last_activation(cfg.model.layers)
    if required and final not in required:
        wanted = " or ".join(sorted(required))
        return [
            ConfigIssue(
                f"model.layers[{len(cfg.model.layers) - 1}]",
                f"{cfg.loss.name} expects a {wanted} output, but the model ends with "
                f"{final or 'no activation'}; set activation: {wanted} on the last layer",
            )
        ]
    return []


@check
def check_target_encoding(cfg: ExperimentConfig) -> list[ConfigIssue]:
    """A one-hot loss wants one-hot targets; an integer-label loss wants them left alone."""
    one_hot = cfg.one_hot_labels
    if one_hot and not TASKS.get(cfg.task.name).single_label:
        return [
            ConfigIssue(
                "preprocess",
                f"one_hot encodes class labels; it does not apply to task {cfg.task.name}",
            )
        ]
    if cfg.loss is None:
        return []
    loss = LOSSES.get(cfg.loss.name)
    if loss.one_hot_targets and not one_hot:
        return [
            ConfigIssue(
                "loss",
                f"{cfg.loss.name} needs one-hot targets: add '- one_hot' to preprocess, "
                "or use sparse_categorical_crossentropy with integer labels",
            )
        ]
    if loss.integer_targets and one_hot:
        return [
            ConfigIssue(
                "loss",
                f"{cfg.loss.name} takes integer labels: remove one_hot from preprocess, or use "
                "categorical_crossentropy",
            )
        ]
    return []


@check
def check_metrics_fit_task(cfg: ExperimentConfig) -> list[ConfigIssue]:
    task = TASKS.get(cfg.task.name)
    return [
        ConfigIssue(
            f"metrics[{index}]",
            f"{name} does not apply to task {cfg.task.name} "
            f"(it needs {METRICS.get(name).kind.value})",
        )
        for index, name in enumerate(cfg.metrics)
        if not task.supports_metric(name)
    ]


def monitorable(cfg: ExperimentConfig) -> list[str]:
    names = ["loss", *cfg.metrics]
    if cfg.evaluation.has_validation:
        names += [f"val_{name}" for name in names]
    return names


@check
def check_monitors_exist(cfg: ExperimentConfig) -> list[ConfigIssue]:
    issues = []
    allowed = monitorable(cfg)
    for index, entry in enumerate(cfg.train.callbacks):
        name, config = entry.selected()
        if not isinstance(config, MonitorConfig) or config.monitor in allowed:
            continue
        hint = (
            "; this protocol has no validation data"
            if config.monitor.startswith("val_") and not cfg.evaluation.has_validation
            else ""
        )
        issues.append(
            ConfigIssue(
                f"train.callbacks[{index}].{name}.monitor",
                f"cannot monitor '{config.monitor}'{hint}; available: {', '.join(allowed)}",
            )
        )
    return issues


@check
def check_stratify_needs_classes(cfg: ExperimentConfig) -> list[ConfigIssue]:
    key = PROTOCOLS.get(cfg.evaluation.protocol)(cfg.evaluation).stratify_key()
    if key is None or TASKS.get(cfg.task.name).single_label:
        return []
    return [ConfigIssue(key, f"stratifying needs class labels; task {cfg.task.name} has none")]


@check
def check_protocol_monitor(cfg: ExperimentConfig) -> list[ConfigIssue]:
    """The monitor that picks the best epoch must be a validation quantity the run records."""
    monitor = cfg.evaluation.monitor
    allowed = [name for name in monitorable(cfg) if name.startswith("val_")]
    issues = []
    if monitor not in allowed and cfg.evaluation.has_validation:
        issues.append(
            ConfigIssue(
                "evaluation.monitor",
                f"cannot monitor '{monitor}'; available: {', '.join(allowed)}",
            )
        )
    final = cfg.evaluation.final
    if final is not None and final.epochs == "best" and not cfg.evaluation.has_validation:
        issues.append(
            ConfigIssue(
                "evaluation.final.epochs",
                "'best' is chosen on validation data, and this protocol has none",
            )
        )
    return issues  # fmt: skip


@check
def check_parallel_folds(cfg: ExperimentConfig) -> list[ConfigIssue]:
    """Stacked fold models share one optimizer, so per-tensor gradient norms would mix folds;
    layers whose modules keep state from each forward (batch norm's statistics, a variational
    code's divergence) cannot be stacked at all."""
    if not PROTOCOLS.get(cfg.evaluation.protocol)(cfg.evaluation).parallel_folds:
        return []
    layers = [entry.selected()[0] for entry in cfg.model.layers]
    unstackable = [
        ConfigIssue(
            f"model.layers[{index}].{name}",
            f"parallel folds cannot stack {name} (it keeps state from each forward); set "
            "evaluation.parallel_folds: false",
        )
        for index, name in enumerate(layers)
        if not LAYERS.get(name).vmappable
    ]
    clipping = {
        "clipnorm": cfg.optimizer.clipnorm,
        "global_clipnorm": cfg.optimizer.global_clipnorm,
    }
    return unstackable + [
        ConfigIssue(
            f"optimizer.{name}",
            "norm clipping would mix the folds' gradients under parallel_folds; "
            "use clipvalue or parallel_folds: false",
        )
        for name, value in clipping.items()
        if value is not None
    ]


@check
def check_sweep(cfg: ExperimentConfig) -> list[ConfigIssue]:
    """A sweep's objective is a validation value its trials record; pruning needs one curve."""
    if cfg.sweep is None:
        return []
    issues = []
    metric = cfg.sweep.objective.metric
    if metric != "loss" and metric not in cfg.metrics:
        listed = ", ".join(cfg.metrics) or "none"
        issues.append(
            ConfigIssue(
                "sweep.objective.metric",
                f"'{metric}' is not recorded by the trials (metrics: {listed}); add it to "
                "metrics, or optimise loss",
            )
        )
    if not cfg.evaluation.has_validation:
        issues.append(
            ConfigIssue(
                "sweep.objective.metric",
                "the objective is scored on validation data, and this protocol has none; set "
                "evaluation.validation",
            )
        )
    protocol = cfg.evaluation.protocol
    if cfg.sweep.pruner != "none" and not PROTOCOLS.get(protocol).single_split:
        issues.append(
            ConfigIssue(
                "sweep.pruner",
                f"pruning judges one validation curve per trial, and protocol {protocol} "
                "trains several models; set pruner: none or use a single split",
            )
        )
    paths = list(cfg.sweep.parameters)
    issues += [
        ConfigIssue(
            f"sweep.parameters.{inner}",
            f"{inner} lies inside {outer}, which is swept too: each trial would set it twice "
            "and report one of the values; sweep one of the two",
        )
        for inner in paths
        for outer in paths
        if inner.startswith(outer + ".")
    ]
    return issues
