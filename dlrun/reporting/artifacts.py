"""Write a run directory's files: checkpoint, results, plots, analysis, HParams and report.

The same writer serves the top run and every fold's sub-run, so a fold is a complete run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import LoadedData
from dlrun.evaluation.aggregate import CrossValidation
from dlrun.evaluation.fitting import FittedModel
from dlrun.evaluation.outcome import FoldOutcome
from dlrun.evaluation.scoring import Evaluation
from dlrun.models.summary import summary_text
from dlrun.reporting import plots
from dlrun.reporting.analyses import ANALYSES
from dlrun.reporting.analyses import Analysed
from dlrun.reporting.analyses import Scored
from dlrun.reporting.curves import curve_marks
from dlrun.reporting.drawing import draw
from dlrun.reporting.drawing import pending_names
from dlrun.reporting.files import write_csv
from dlrun.reporting.files import write_json
from dlrun.reporting.files import write_text
from dlrun.reporting.hparams import hparams_of
from dlrun.reporting.loggers import TensorBoardLogger
from dlrun.reporting.markdown import ReportExtras
from dlrun.reporting.markdown import render_report
from dlrun.reporting.rundir import RunDirectory
from dlrun.tasks.base import TASKS
from dlrun.training.checkpoint import DataNames
from dlrun.training.checkpoint import save_checkpoint
from dlrun.training.status import RunStatus


@dataclass
class RunFiles:
    """One directory being written, with what was recorded in it during training."""

    run: RunDirectory
    rows: list[dict[str, Any]]
    tensorboard: TensorBoardLogger
    config_yaml: str


def write_analysis(
    run: RunDirectory,
    cfg: ExperimentConfig,
    scored: Evaluation | None,
    class_names: list[str] | None,
    fold: str = "",
    validation: Evaluation | None = None,
) -> Analysed:
    """The analyses the task names (confusion matrix, residuals, ...): their files and tables.
    A ``fold``'s figures name it: the folds' figures look alike otherwise. ``validation`` is
    the scored model's validation split, when the scored split is another."""
    if scored is None or scored.predictions is None:
        return Analysed()
    title = f"{cfg.name}{f' {fold}' if fold else ''}: {scored.split} split"
    given = Scored(title, scored, class_names, validation)
    written = Analysed()
    for name in TASKS.get(cfg.task.name).analyses:
        written += ANALYSES.get(name)(run, given)
    return written


def validation_of(
    fitted: FittedModel | None, scored: Evaluation | None, folds: list[FoldOutcome] | None
) -> Evaluation | None:
    """The validation split the scored model was scored on, when it is not the scored split
    (a hold-out run scores its one model on both; a K-fold run's final retrain has none)."""
    for outcome in folds or []:
        if outcome.fitted is fitted and outcome.evaluation is not scored:
            return outcome.evaluation
    return None


def write_run_files(
    files: RunFiles,
    cfg: ExperimentConfig,
    data: LoadedData,
    results: dict[str, Any],
    fitted: FittedModel | None,
    scored: Evaluation | None,
    cv: CrossValidation | None = None,
    folds: list[FoldOutcome] | None = None,
    summary_model: FittedModel | None = None,
) -> None:
    """``fitted`` is saved as checkpoint.pt; ``summary_model`` (default: it) is described."""
    run = files.run
    described = summary_model or fitted
    if fitted is not None:
        names = DataNames(data.class_names, data.feature_names, data.vocabulary)
        save_checkpoint(run.file("checkpoint.pt"), fitted.task, fitted.pipeline, files.config_yaml,
                        fitted.state, fitted.fields, names)  # fmt: skip
    write_json(run.file("results.json"), results)
    marks = curve_marks(cfg, files.rows, restored_epoch(fitted, folds))
    if files.rows:
        draw(plots.learning_curves, list(files.rows), marks,
             target=run.file("learning_curves.png"))  # fmt: skip
    if cv is not None and folds:
        write_cv_files(run, cv, folds, cfg.name)
    fold = str(results.get("fold") or "")  # a fold's sub-run: its name
    validation = validation_of(fitted, scored, folds)
    analysed = write_analysis(run, cfg, scored, data.class_names, fold, validation)
    scores = {scored.split: scored.metrics} if scored else {}
    if cv is not None:  # the folds' mean, under the name each fold gives its own score
        scores["validation"] = {k: s.mean for k, s in cv.metrics.items()}
    elif "validation" not in scores:  # a hold-out run's kept epoch: a column trials share
        kept = results.get("validation") or {}
        scores["validation"] = {k.removeprefix("val_"): v for k, v in kept.items()
                                if k.startswith("val_") and isinstance(v, float)}  # fmt: skip
    params = {**hparams_of(cfg), **({"fold": fold} if fold else {})}  # a column to filter on
    files.tensorboard.write_hparams(params, scores, RunStatus(results["status"]))
    files.tensorboard.close()
    written = (p.name for p in run.path.iterdir() if p.is_file() and not p.name.startswith("."))
    listed = sorted({*written, *pending_names(run.path)} - {"report.md"})
    folders = [entry for p in sorted(run.path.iterdir()) for entry in _folder_entries(p)]
    summary = (
        "\n\n".join(summary_text(model) for model in described.task.models.values())
        if described is not None
        else ""
    )
    extras = ReportExtras(marks, analysed.class_scores, analysed.residuals, analysed.thresholds)
    text = render_report(results, files.rows, summary, [*listed, "report.md", *folders], extras)
    write_text(run.file("report.md"), text)


def _folder_entries(folder: Path) -> list[str]:
    """A sub-run (a fold) by its own report, a folder of them (a repetition) by theirs, any
    other folder (TensorBoard's) by its name; hidden ones not at all."""
    if folder.name.startswith(".") or not folder.is_dir():
        return []
    if (folder / "report.md").is_file():
        return [f"{folder.name}/report.md"]
    reports = sorted(p.relative_to(folder.parent).as_posix() for p in folder.glob("*/report.md"))
    return reports or [f"{folder.name}/"]


def restored_epoch(fitted: FittedModel | None, folds: list[FoldOutcome] | None) -> int | None:
    """The epoch early stopping restored in the fit whose curves the directory shows: a single
    split's fit (a final retrain after it restores nothing), else ``fitted``'s."""
    single = folds is not None and len(folds) == 1 and not folds[0].fold.name
    fit = folds[0].fitted if folds and single else fitted
    return fit.state.restored_epoch if fit is not None else None


def write_cv_files(
    run: RunDirectory, cv: CrossValidation, folds: list[FoldOutcome], name: str
) -> None:
    """cv_summary.csv (one row per fold, then mean and std) and the averaged curves plot."""
    keys = list(cv.metrics)
    rows: list[list[Any]] = [
        [f.fold.name, *(f.evaluation.metrics.get(k, "") for k in keys)]
        for f in folds
        if f.evaluation is not None
    ]
    rows.append(["mean", *(cv.metrics[k].mean for k in keys)])
    rows.append(["std", *(cv.metrics[k].std for k in keys)])
    write_csv(run.file("cv_summary.csv"), ["fold", *keys], rows)
    draw(plots.cv_curves, cv, f"{name}: {len(folds)} folds", target=run.file("cv_curves.png"))
