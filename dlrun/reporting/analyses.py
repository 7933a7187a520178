"""Analyses written beside a scored split's metrics; a task names the ones that apply to it.

Each analysis takes the run directory, a title and the split's predictions, writes its files and
returns what it found: their names and the tables report.md shows beside its figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

from dlrun.evaluation.analysis import ClassScores
from dlrun.evaluation.analysis import analyse_classification
from dlrun.evaluation.analysis import residual_statistics
from dlrun.evaluation.scoring import Evaluation
from dlrun.registry import Registry
from dlrun.reporting import plots
from dlrun.reporting.drawing import draw
from dlrun.reporting.files import write_csv
from dlrun.reporting.files import write_json
from dlrun.reporting.files import write_text
from dlrun.reporting.rundir import RunDirectory


@dataclass(frozen=True)
class Analysed:
    """What analyses wrote (file names) and what report.md shows from them.

    Attributes:
        files: the files written, in the run directory.
        class_scores: per-class precision/recall/F1/support (classification).
        residuals: residual statistics of the scored split (regression), as residuals.json.
    """

    files: list[str] = field(default_factory=list)
    class_scores: list[ClassScores] = field(default_factory=list)
    residuals: dict[str, float] | None = None

    def __add__(self, other: Analysed) -> Analysed:
        residuals = other.residuals if other.residuals is not None else self.residuals
        return Analysed(
            [*self.files, *other.files], [*self.class_scores, *other.class_scores], residuals
        )


Analysis = Callable[[RunDirectory, str, Evaluation, "list[str] | None"], Analysed]
ANALYSES: Registry[Analysis] = Registry("analysis")


@ANALYSES.register("confusion_matrix")
def confusion_matrix(
    run: RunDirectory, title: str, scored: Evaluation, class_names: list[str] | None
) -> Analysed:
    """Confusion matrix (CSV and PNG) and the per-class report with BER."""
    assert scored.predictions is not None
    analysis = analyse_classification(scored.predictions, class_names)
    rows = [
        [label, *row.tolist()] for label, row in zip(analysis.labels, analysis.matrix, strict=True)
    ]
    write_csv(run.file("confusion_matrix.csv"), ["true \\ predicted", *analysis.labels], rows)
    draw(plots.confusion_matrix_plot, analysis.matrix, analysis.labels, title,
         target=run.file("confusion_matrix.png"))  # fmt: skip
    header = f"Classification report, {scored.split} split ({scored.size} samples)\n\n"
    write_text(run.file("classification_report.txt"), header + analysis.report)
    files = ["confusion_matrix.png", "confusion_matrix.csv", "classification_report.txt"]
    return Analysed(files, class_scores=analysis.class_scores)


@ANALYSES.register("residuals")
def residuals(
    run: RunDirectory, title: str, scored: Evaluation, class_names: list[str] | None
) -> Analysed:
    """Predicted against true values (PNG) and residual statistics (JSON)."""
    assert scored.predictions is not None
    y_true = scored.predictions.y_true.cpu().numpy().reshape(-1)
    y_pred = scored.predictions.y_pred.cpu().numpy().reshape(-1)
    draw(plots.predicted_vs_true, y_true, y_pred, title, target=run.file("predictions.png"))
    statistics = residual_statistics(y_true, y_pred)
    write_json(run.file("residuals.json"), statistics)
    return Analysed(["predictions.png", "residuals.json"], residuals=statistics)
