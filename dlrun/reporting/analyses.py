"""Analyses written beside a scored split's metrics; a task names the ones that apply to it.

Each analysis takes the run directory and what was scored (:class:`Scored`), writes its files
and returns what it found: their names and the tables report.md shows beside its figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from dlrun.evaluation.analysis import ClassScores
from dlrun.evaluation.analysis import analyse_classification
from dlrun.evaluation.analysis import residual_statistics
from dlrun.evaluation.scoring import Evaluation
from dlrun.evaluation.thresholds import FIXED
from dlrun.evaluation.thresholds import SAVED
from dlrun.evaluation.thresholds import ThresholdRule
from dlrun.evaluation.thresholds import ThresholdScore
from dlrun.evaluation.thresholds import binary_scores
from dlrun.evaluation.thresholds import roc_curve
from dlrun.evaluation.thresholds import score_labels
from dlrun.evaluation.thresholds import youden_threshold
from dlrun.registry import Registry
from dlrun.reporting import plots
from dlrun.reporting.drawing import draw
from dlrun.reporting.files import write_csv
from dlrun.reporting.files import write_json
from dlrun.reporting.files import write_text
from dlrun.reporting.rundir import RunDirectory
from dlrun.training.metrics import Reconstructions
from dlrun.training.metrics import roc_auc


@dataclass(frozen=True)
class Analysed:
    """What analyses wrote (file names) and what report.md shows from them.

    Attributes:
        files: the files written, in the run directory.
        class_scores: per-class precision/recall/F1/support (classification).
        residuals: residual statistics of the scored split (regression), as residuals.json.
        thresholds: the scored split at each decision threshold considered (binary).
    """

    files: list[str] = field(default_factory=list)
    class_scores: list[ClassScores] = field(default_factory=list)
    residuals: dict[str, float] | None = None
    thresholds: list[ThresholdScore] = field(default_factory=list)

    def __add__(self, other: Analysed) -> Analysed:
        residuals = other.residuals if other.residuals is not None else self.residuals
        return Analysed(
            [*self.files, *other.files],
            [*self.class_scores, *other.class_scores],
            residuals,
            [*self.thresholds, *other.thresholds],
        )


@dataclass(frozen=True)
class Scored:
    """What an analysis reads: the scored split, and the same model's validation split when
    that is another one (a hold-out run's, beside its test split)."""

    title: str
    evaluation: Evaluation
    class_names: list[str] | None
    validation: Evaluation | None = None


Analysis = Callable[[RunDirectory, Scored], Analysed]
ANALYSES: Registry[Analysis] = Registry("analysis")


@ANALYSES.register("confusion_matrix")
def confusion_matrix(run: RunDirectory, given: Scored) -> Analysed:
    """Confusion matrix (CSV and PNG) and the per-class report with BER."""
    scored, title = given.evaluation, given.title
    assert scored.predictions is not None
    analysis = analyse_classification(scored.predictions, given.class_names)
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
def residuals(run: RunDirectory, given: Scored) -> Analysed:
    """Predicted against true values (PNG) and residual statistics (JSON)."""
    scored, title = given.evaluation, given.title
    assert scored.predictions is not None
    y_true = scored.predictions.y_true.cpu().numpy().reshape(-1)
    y_pred = scored.predictions.y_pred.cpu().numpy().reshape(-1)
    draw(plots.predicted_vs_true, y_true, y_pred, title, target=run.file("predictions.png"))
    statistics = residual_statistics(y_true, y_pred)
    write_json(run.file("residuals.json"), statistics)
    return Analysed(["predictions.png", "residuals.json"], residuals=statistics)


@ANALYSES.register("roc_curve")
def roc(run: RunDirectory, given: Scored) -> Analysed:
    """The ROC curve (PNG, CSV) and the split scored at the run's own 0.5 and at Youden's
    threshold: chosen on the validation split where that is another one, and on the scored
    split itself (marked in-sample)."""
    scored = given.evaluation
    assert scored.predictions is not None
    pair = binary_scores(scored.predictions)
    if pair is None:
        return Analysed()  # no curve: see binary_scores
    positive, scores = pair
    curve = roc_curve(positive, scores)
    rows = [score_labels(positive, scores > FIXED, FIXED, ThresholdRule.FIXED)]
    validation = given.validation
    chosen = None
    if validation is not None and validation.predictions is not None:
        chosen = binary_scores(validation.predictions)
    if validation is not None and chosen is not None:
        cut = youden_threshold(roc_curve(*chosen))
        rows.append(score_labels(positive, scores >= cut, cut, ThresholdRule.YOUDEN,
                                 validation.split))  # fmt: skip
    cut = youden_threshold(curve)
    rows.append(score_labels(positive, scores >= cut, cut, ThresholdRule.YOUDEN, scored.split,
                             in_sample=True))  # fmt: skip
    auc = roc_auc(scored.predictions)
    write_csv(run.file("roc_curve.csv"), ["fpr", "tpr", "threshold"],
              np.column_stack([curve.fpr, curve.tpr, curve.thresholds]).tolist())  # fmt: skip
    write_json(run.file(SAVED), {"split": scored.split, "samples": scored.size, "roc_auc": auc,
               "thresholds": [row.as_dict() for row in rows]})  # fmt: skip
    draw(plots.roc_curve_plot, curve.fpr, curve.tpr, auc,
         [(_label(row), row.fpr, row.tpr) for row in rows], given.title,
         target=run.file("roc_curve.png"))  # fmt: skip
    return Analysed(["roc_curve.png", "roc_curve.csv", SAVED], thresholds=rows)


def _label(row: ThresholdScore) -> str:
    """A threshold's legend entry: its value and where it was chosen."""
    where = f", chosen on {row.chosen_on}" if row.chosen_on else " (the run's labels)"
    return f"threshold {row.threshold:.3g}{where}"


RECONSTRUCTED = 8  # samples shown, as Beginners ch. 7 shows the first 8 test digits


@ANALYSES.register("reconstructions")
def reconstructions(run: RunDirectory, given: Scored) -> Analysed:
    """The scored split's first samples, or those the task chose, above their reconstructions
    (PNG)."""
    predictions = given.evaluation.predictions
    assert predictions is not None
    chosen = predictions.shown if isinstance(predictions, Reconstructions) else None
    rows = list(chosen) if chosen else list(range(min(RECONSTRUCTED, len(predictions.y_true))))
    originals = predictions.y_true[rows].cpu().float().numpy()
    rebuilt = predictions.y_pred[rows].cpu().float().numpy()
    draw(plots.reconstructions_plot, originals, rebuilt, given.title,
         target=run.file("reconstructions.png"))  # fmt: skip
    return Analysed(["reconstructions.png"])


@ANALYSES.register("code_space")
def code_space(run: RunDirectory, given: Scored) -> Analysed:
    """Each sample of the scored split at its code (PNG), coloured by the dataset's labels; a
    code of more than two values is shown by its first two principal components."""
    predictions = given.evaluation.predictions
    if not isinstance(predictions, Reconstructions) or predictions.codes is None:
        return Analysed()
    codes, labels = predictions.codes, predictions.classes
    points = codes.cpu().double().numpy().reshape(len(codes), -1)
    axes = "code"
    if points.shape[1] > 2:
        points, axes = principal_components(points, 2), "principal component"
    classes = None if labels is None else labels.cpu().numpy().reshape(len(labels), -1)
    names = given.class_names
    draw(plots.code_space_plot, points, classes, names, axes, given.title,
         target=run.file("code_space.png"))  # fmt: skip
    return Analysed(["code_space.png"])


@ANALYSES.register("generated")
def generated(run: RunDirectory, given: Scored) -> Analysed:
    """Samples a generative model decoded from codes of its choosing: a mosaic when they are
    images (PNG), else a table of their values (CSV)."""
    predictions = given.evaluation.predictions
    made = predictions.generated if isinstance(predictions, Reconstructions) else None
    if made is None:
        return Analysed()
    samples = made.samples.float().numpy()
    title = f"{given.title}: decoded from {made.chosen}"
    if plots.as_image(samples[0]).shape[0] > 1:
        draw(plots.mosaic_plot, samples, made.side, title, target=run.file("generated.png"))
        return Analysed(["generated.png"])
    codes = made.codes.double().numpy()
    values = samples.reshape(len(samples), -1)
    header = [*(f"code_{i}" for i in range(codes.shape[1])),
              *(f"value_{i}" for i in range(values.shape[1]))]  # fmt: skip
    write_csv(run.file("generated.csv"), header, np.hstack([codes, values]).tolist())
    return Analysed(["generated.csv"])


def principal_components(points: np.ndarray, count: int) -> np.ndarray:
    """``points`` projected on their first ``count`` principal axes (centred, by SVD); fewer
    points than that span fewer axes, and the missing ones are 0."""
    centred = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ axes[:count].T
    return np.pad(projected, ((0, 0), (0, count - projected.shape[1])))
