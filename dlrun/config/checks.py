"""Cross-field rules, each a small pure function returning the issues it finds.

The task/activation/loss rules follow DLwP table 4.1: binary -> sigmoid + binary_crossentropy,
single-label multiclass -> softmax + categorical_crossentropy, multilabel -> sigmoid +
binary_crossentropy, regression -> no activation + mse.
"""

from __future__ import annotations

from collections.abc import Callable

from dlrun.config.schema import ExperimentConfig
from dlrun.errors import ConfigIssue
from dlrun.models.build import last_activation
from dlrun.training.losses import LOSSES
from dlrun.training.metrics import METRICS

Check = Callable[[ExperimentConfig], list[ConfigIssue]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


def run_checks(cfg: ExperimentConfig) -> list[ConfigIssue]:
    return [issue for fn in CHECKS for issue in fn(cfg)]


def _output_path(cfg: ExperimentConfig) -> str:
    return f"model.layers[{len(cfg.model.layers) - 1}]"


@check
def check_loss_matches_output(cfg: ExperimentConfig) -> list[ConfigIssue]:
    """Cross-entropies need the output activation they are defined on."""
    loss = LOSSES.get(cfg.loss_name)
    final = last_activation(cfg.model.layers)
    if loss.fuses and final not in loss.fuses:
        wanted = " or ".join(sorted(loss.fuses))
        return [
            ConfigIssue(
                _output_path(cfg),
                f"{cfg.loss_name} expects a {wanted} output, but the model ends with "
                f"{final or 'no activation'}; set activation: {wanted} on the last layer",
            )
        ]
    return []


@check
def check_task_matches_model(cfg: ExperimentConfig) -> list[ConfigIssue]:
    loss = LOSSES.get(cfg.loss_name)
    final = last_activation(cfg.model.layers)
    where = _output_path(cfg)
    if cfg.task == "regression" and loss.classification:
        return [
            ConfigIssue(
                "loss",
                f"{cfg.loss_name} is a classification loss; for task: regression use mse, mae or huber",
            )
        ]
    if cfg.task == "regression" and final == "softmax":
        return [
            ConfigIssue(
                where, "a softmax output cannot predict regression targets; remove the activation"
            )
        ]
    if cfg.task == "multiclass" and final == "sigmoid" and cfg.loss_name == "binary_crossentropy":
        return [
            ConfigIssue(
                where,
                "sigmoid with binary_crossentropy scores each class independently; for one label "
                "per sample use softmax with categorical_crossentropy, or set task: multilabel",
            )
        ]
    if cfg.task in ("binary", "multilabel") and final == "softmax":
        return [
            ConfigIssue(
                where,
                f"task {cfg.task} needs independent per-output probabilities: use activation: sigmoid "
                "with binary_crossentropy (softmax is for task: multiclass)",
            )
        ]
    if cfg.task == "multilabel" and cfg.loss_name in (
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
    ):
        return [ConfigIssue("loss", "multilabel targets need binary_crossentropy")]
    return []


@check
def check_target_encoding(cfg: ExperimentConfig) -> list[ConfigIssue]:
    """categorical_crossentropy wants one-hot targets; the sparse variant wants integer labels."""
    one_hot = any(entry.selected()[0] == "one_hot" for entry in cfg.preprocess)
    if cfg.loss_name == "categorical_crossentropy" and not one_hot:
        return [
            ConfigIssue(
                "loss",
                "categorical_crossentropy needs one-hot targets: add '- one_hot' to preprocess, "
                "or use sparse_categorical_crossentropy with integer labels",
            )
        ]
    if cfg.loss_name == "sparse_categorical_crossentropy" and one_hot:
        return [
            ConfigIssue(
                "loss",
                "sparse_categorical_crossentropy takes integer labels: remove one_hot from "
                "preprocess, or use categorical_crossentropy",
            )
        ]
    if one_hot and cfg.task not in ("multiclass", "binary"):
        return [
            ConfigIssue(
                "preprocess", f"one_hot encodes class labels; it does not apply to task {cfg.task}"
            )
        ]
    return []


@check
def check_metrics_fit_task(cfg: ExperimentConfig) -> list[ConfigIssue]:
    issues = []
    for index, name in enumerate(cfg.metrics):
        tasks = METRICS.get(name).tasks
        if cfg.task not in tasks:
            issues.append(
                ConfigIssue(
                    f"metrics[{index}]",
                    f"{name} does not apply to task {cfg.task} (it needs {', '.join(sorted(tasks))})",
                )
            )
    return issues


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
        monitor = getattr(config, "monitor", None)
        if monitor is None or monitor in allowed:
            continue
        hint = (
            "; this protocol has no validation data"
            if monitor.startswith("val_") and not cfg.evaluation.has_validation
            else ""
        )
        issues.append(
            ConfigIssue(
                f"train.callbacks[{index}].{name}.monitor",
                f"cannot monitor '{monitor}'{hint}; available: {', '.join(allowed)}",
            )
        )
    return issues


@check
def check_stratify_needs_classes(cfg: ExperimentConfig) -> list[ConfigIssue]:
    validation = getattr(cfg.evaluation, "validation", None)
    wants = (getattr(validation, "stratify", False), "evaluation.validation.stratify")
    if getattr(cfg.evaluation, "stratify", None):
        wants = (True, "evaluation.stratify")
    if wants[0] and cfg.task not in ("binary", "multiclass"):
        return [ConfigIssue(wants[1], f"stratifying needs class labels; task {cfg.task} has none")]
    return []


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
    """Stacked fold models share one optimizer, so per-tensor gradient norms would mix folds."""
    if not getattr(cfg.evaluation, "parallel_folds", False):
        return []
    clipping = [n for n in ("clipnorm", "global_clipnorm") if getattr(cfg.optimizer, n, None)]
    return [
        ConfigIssue(
            f"optimizer.{name}",
            "norm clipping would mix the folds' gradients under parallel_folds; "
            "use clipvalue or parallel_folds: false",
        )
        for name in clipping
    ]
