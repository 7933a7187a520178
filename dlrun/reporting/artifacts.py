"""Write a finished (or stopped) run's results, plots, analysis and report."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlrun.config.schema import ExperimentConfig
from dlrun.evaluation.analysis import analyse_classification
from dlrun.evaluation.analysis import baseline
from dlrun.evaluation.analysis import residual_statistics
from dlrun.evaluation.holdout import HoldoutOutcome
from dlrun.models.summary import summary_text
from dlrun.reporting import plots
from dlrun.reporting.files import write_csv
from dlrun.reporting.files import write_json
from dlrun.reporting.files import write_text
from dlrun.reporting.markdown import render_report
from dlrun.reporting.rundir import RunDirectory
from dlrun.training.metrics import higher_is_better


def beats_baseline(metrics: dict[str, float], base: dict[str, Any]) -> bool | None:
    for key in ("accuracy", "mae", "mse"):
        if key in metrics and key in base:
            better = (
                metrics[key] > base[key] if higher_is_better(key) else metrics[key] < base[key]
            )
            return bool(better)
    return None


def write_analysis(
    run: RunDirectory,
    cfg: ExperimentConfig,
    outcome: HoldoutOutcome,
    class_names: list[str] | None,
) -> list[str]:
    """Confusion matrix and class report, or predicted-vs-true and residuals; returns file names."""
    scored = outcome.evaluation
    if scored is None:
        return []
    if cfg.task == "regression":
        y_true = scored.y_true.cpu().numpy().reshape(-1)
        y_pred = scored.y_pred.cpu().numpy().reshape(-1)
        plots.predicted_vs_true(
            y_true, y_pred, f"{cfg.name}: {scored.split} split", run.file("predictions.png")
        )
        write_json(run.file("residuals.json"), residual_statistics(y_true, y_pred))
        return ["predictions.png", "residuals.json"]
    analysis = analyse_classification(cfg.task, scored.y_true, scored.y_pred, class_names)
    rows = [
        [label, *row.tolist()] for label, row in zip(analysis.labels, analysis.matrix, strict=True)
    ]
    write_csv(run.file("confusion_matrix.csv"), ["true \\ predicted", *analysis.labels], rows)
    plots.confusion_matrix_plot(
        analysis.matrix,
        analysis.labels,
        f"{cfg.name}: {scored.split} split",
        run.file("confusion_matrix.png"),
    )
    header = f"Classification report, {scored.split} split ({len(scored.y_true)} samples)\n\n"
    write_text(run.file("classification_report.txt"), header + analysis.report)
    return ["confusion_matrix.png", "confusion_matrix.csv", "classification_report.txt"]


def build_results(
    cfg: ExperimentConfig, outcome: HoldoutOutcome, description: str, device: str, duration: float
) -> dict[str, Any]:
    state = outcome.fitted.state
    results: dict[str, Any] = {
        "name": cfg.name,
        "description": cfg.description,
        "status": outcome.status,
        "stop_reason": outcome.stop_reason,
        "task": cfg.task,
        "protocol": cfg.evaluation.protocol,
        "seed": cfg.seed,
        "loss": cfg.loss_name,
        "optimizer": cfg.optimizer_name,
        "epochs": cfg.train.epochs,
        "epochs_run": state.epoch,
        "batch_size": cfg.train.batch_size,
        "device": device,
        "duration_s": duration,
        "params": outcome.fitted.model.total_params,
        "data": {"description": description, "sizes": outcome.sizes},
        "validation": outcome.validation,
        "evaluation": None,
        "test": None,
    }
    scored = outcome.evaluation
    if scored is not None:
        results["evaluation"] = {"split": scored.split, "metrics": scored.metrics}
        if scored.split == "test":
            results["test"] = scored.metrics
        if outcome.y_train_raw is not None:
            base = baseline(cfg.task, np.asarray(outcome.y_train_raw), np.asarray(scored.y_raw))
            results["baseline"] = base
            results["beats_baseline"] = beats_baseline(scored.metrics, base)
    return results


def write_report(
    run: RunDirectory,
    results: dict[str, Any],
    history: list[dict[str, Any]],
    outcome: HoldoutOutcome,
) -> None:
    files = sorted(
        p.name
        for p in run.path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name != "report.md"
    )
    text = render_report(
        results, history, summary_text(outcome.fitted.model), [*files, "report.md"]
    )
    write_text(run.file("report.md"), text)
