"""results.json content as plain dicts: for the whole run and for each fold's sub-run."""

from __future__ import annotations

from typing import Any

from dlrun.config.schema import ExperimentConfig
from dlrun.evaluation.outcome import FoldOutcome
from dlrun.evaluation.outcome import ProtocolOutcome
from dlrun.tasks.base import TASKS
from dlrun.training.metrics import METRICS


def _baseline_fields(
    baselines: list[dict[str, Any]], verdict: dict[str, Any] | None
) -> dict[str, Any]:
    strongest = next((b for b in baselines if verdict and b["name"] == verdict["baseline"]), None)
    return {
        "baselines": baselines,
        "baseline": strongest,
        "beats_baseline": verdict["beats"] if verdict else None,
        "baseline_verdict": verdict,
    }


def fold_results(cfg: ExperimentConfig, outcome: FoldOutcome) -> dict[str, Any]:
    fold = outcome.fold
    state = outcome.fitted.state
    scored = outcome.evaluation
    return {
        "name": f"{cfg.name}/{fold.name}",
        "fold": fold.name,
        "status": state.status.value,
        "stop_reason": state.stop_reason,
        "task": cfg.task.name,
        "seed": fold.seed,
        "epochs_run": state.epoch,
        "resumed_from_epoch": state.resumed_from,
        "sizes": {"train": len(fold.train_idx),
                  "validation": 0 if fold.val_idx is None else len(fold.val_idx)},
        "evaluation": {"split": scored.split, "metrics": scored.metrics} if scored else None,
        **_baseline_fields(outcome.baselines, outcome.verdict),
    }  # fmt: skip


def metric_meanings(
    task: str, metrics: list[str], class_names: list[str] | None
) -> dict[str, str]:
    """Each metric in a sentence; those made of class scores say how the task combines them."""
    averaging = TASKS.get(task).averaging(class_names)
    meanings = {}
    for name in metrics:
        metric = METRICS.get(name)
        combined = metric.per_class and averaging is not None
        meanings[name] = f"{metric.meaning}, {averaging}" if combined else metric.meaning
    return meanings


def build_results(
    cfg: ExperimentConfig,
    outcome: ProtocolOutcome,
    description: str,
    device: str,
    duration: float,
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    model = outcome.model
    results: dict[str, Any] = {
        "name": cfg.name,
        "description": cfg.description,
        "source": cfg.source.citation() if cfg.source else None,
        "metric_meanings": metric_meanings(cfg.task.name, cfg.metrics, class_names),
        "status": outcome.status.value,
        "stop_reason": outcome.stop_reason,
        "task": cfg.task.name,
        "protocol": outcome.protocol,
        "parallel_folds": outcome.parallel,
        "seed": cfg.seed,
        "loss": TASKS.get(cfg.task.name).loss_description(cfg),
        "optimizer": cfg.optimizer.name,
        "learning_rate": cfg.optimizer.lr,
        "epochs": cfg.train.epochs,
        "epochs_run": model.state.epoch if model else 0,
        "resumed_from_epoch": resumed_fits(outcome),
        "final_epochs": outcome.final_epochs,
        "batch_size": cfg.train.batch_size,
        "device": device,
        "duration_s": duration,
        "params": model.task.total_params if model else None,
        "data": {"description": description, "sizes": outcome.sizes},
        "validation": outcome.validation,
        "cross_validation": {
            **outcome.cv.to_dict(),
            "layout": outcome.layout,
            "baselines": outcome.cv_baselines,
            "baseline_verdict": outcome.cv_verdict,
        }
        if outcome.cv
        else None,
        "folds": [fold_summary(f) for f in outcome.folds if f.fold.name],
        "evaluation": None,
        "test": None,
        "test_split_reads": outcome.test_reads,
        "leaks": {"duplicate_rows": outcome.duplicates},
        "warnings": outcome.warnings,
        **_baseline_fields(outcome.baselines, outcome.verdict),
    }
    scored = outcome.evaluation
    if scored is not None:
        results["evaluation"] = {"split": scored.split, "metrics": scored.metrics}
        if scored.split == "test":
            results["test"] = scored.metrics
    return results


def resumed_fits(outcome: ProtocolOutcome) -> dict[str, int]:
    """The epoch each resumed fit continued from (``fit`` or the fold's name, and ``final``)."""
    fits = {(f.fold.name or "fit"): f.fitted.state.resumed_from for f in outcome.folds}
    if outcome.final_epochs is not None and outcome.scored is not None:
        fits["final"] = outcome.scored.state.resumed_from
    return {name: epoch for name, epoch in fits.items() if epoch is not None}


def fold_summary(outcome: FoldOutcome) -> dict[str, Any]:
    metrics = outcome.evaluation.metrics if outcome.evaluation else {}
    state = outcome.fitted.state
    return {"fold": outcome.fold.name, "status": state.status.value, "epochs_run": state.epoch,
            **metrics}  # fmt: skip
