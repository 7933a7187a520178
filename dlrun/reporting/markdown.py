"""report.md: a readable summary of one run (or one fold), built as a pure function of its results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from dlrun.evaluation.aggregate import LONG_CURVE
from dlrun.evaluation.analysis import ClassScores
from dlrun.evaluation.thresholds import ThresholdScore
from dlrun.reporting.curves import CurveMarks
from dlrun.training.status import RunStatus

HISTORY_ROWS_SHOWN = 30  # a longer per-epoch table is folded (metrics.csv has every row)


def _fmt(value: Any) -> str:
    if isinstance(value, float):  # four decimals; a small value (a learning rate) in figures
        return f"{value:.4g}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    return "" if value is None else str(value)


def _table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def sizes_text(sizes: dict[str, int | str]) -> str:
    """``train 1,149, validation 288, test 360``: how the report and the start line say them."""
    return ", ".join(
        f"{key.replace('_', ' ')} {f'{value:,}' if isinstance(value, int) else value}"
        for key, value in sizes.items()
    )


def _sizes(sizes: dict[str, int | str]) -> str:
    return f"- sizes: {sizes_text(sizes)}"


def _setup(results: dict[str, Any]) -> list[str]:
    if "data" not in results:  # a fold's sub-run
        sizes = results.get("sizes", {})
        return ["## Setup", "", f"- {results.get('fold')}: a fold of the run above it; "
                f"seed {results.get('seed')}; epochs run {results.get('epochs_run')}",
                _sizes(sizes), ""]  # fmt: skip
    final = (
        f"; final retrain: {results['final_epochs']} epochs" if results.get("final_epochs") else ""
    )
    parallel = " (folds trained in parallel)" if results.get("parallel_folds") else ""
    return [
        "## Setup",
        "",
        *([f"- reproduces: {results['source']}"] if results.get("source") else []),
        f"- task: {results['task']}; protocol: {results['protocol']}{parallel}; "
        f"seed: {results['seed']}",
        f"- data: {results['data']['description']}",
        # a data file that differs from its registered checksum ("note: ..." or "warning: ...")
        *(f"- {note}" for note in results["data"].get("notes", [])),
        _sizes(results["data"]["sizes"]),
        f"- loss: {results['loss'] or 'defined by the task'}; optimizer: {results['optimizer']}{_rate(results)}; "
        f"epochs: {results['epochs']}; batch size: {results['batch_size']}{final}",
        f"- device: {results['device']}; duration: {results['duration_s']:.1f} s",
        "",
    ]


def _rate(results: dict[str, Any]) -> str:
    rate = results.get("learning_rate")
    return f" (learning rate {rate:g})" if isinstance(rate, int | float) else ""


def verdict_sentence(verdict: dict[str, Any], markdown: bool = False) -> str:
    """The model against its strongest baseline, with the test behind "beats": a sentence for
    report.md, a clause after ``warning:`` (lower case, as every warning) for the terminal."""
    model = f"{'The' if markdown else 'the'} model ({verdict['metric']} {_fmt(verdict['model'])})"
    baseline = f"{verdict['baseline']} baseline at {_fmt(verdict['baseline_value'])}"
    p_value = verdict.get("p_value")
    if p_value is None:
        test = "no test was possible on these rows"
    else:
        shown = "p < 1e-16" if p_value < 1e-16 else f"p = {p_value:.2g}"
        test = f"one-sided {verdict['test']} test, {shown}"
    if verdict["beats"]:
        strongest = f"{verdict['baseline']} at {_fmt(verdict['baseline_value'])}"
        return f"{model} beats the strongest baseline ({strongest}): {test}."
    text = f"{model} is no better than the {baseline}: {test}"
    return f"**{text}; it has no statistical power yet.**" if markdown else text


def _baselines(results: dict[str, Any]) -> list[str]:
    baselines = results.get("baselines") or []
    if not baselines:
        return []
    keys = list(dict.fromkeys(k for b in baselines for k in b if k != "name"))
    lines = [
        "### Baselines (models that ignore the inputs)",
        "",
        _table(baselines, ["name", *keys]),
    ]
    verdict = results.get("baseline_verdict")
    if verdict:
        lines += ["", verdict_sentence(verdict, markdown=True)]
    return [*lines, ""]


def _cross_validation(results: dict[str, Any]) -> list[str]:
    cv = results.get("cross_validation")
    if not cv:
        return []
    folds = results.get("folds") or []
    keys = list(cv["metrics"])
    summary = [{"metric": k, "mean": v["mean"], "std": v["std"]} for k, v in cv["metrics"].items()]
    lines = [
        "## Cross-validation (validation parts)",
        "",
        _table(summary, ["metric", "mean", "std"]),
    ]
    lines += ["", _table(folds, ["fold", "epochs_run", *keys]), ""]
    lines += _baselines(cv)
    return lines


def _metric_meanings(results: dict[str, Any]) -> list[str]:
    meanings = results.get("metric_meanings") or {}
    if not meanings:
        return []
    lines = ["### What the metrics are", ""]
    return [*lines, *(f"- {name}: {text}" for name, text in meanings.items()), ""]


def _leaks(results: dict[str, Any]) -> list[str]:
    duplicates = (results.get("leaks") or {}).get("duplicate_rows")
    if duplicates is None:
        return []
    counts = ", ".join(f"{k.replace('_', '/')} {v}" for k, v in duplicates.items()) or (
        "none to count (no validation or test rows)"
    )
    lines = ["## Leak checks", "", "- preprocessing fitted on each training part only",
             f"- exact duplicate rows across splits: {counts}"]  # fmt: skip
    if results.get("test_held_back"):
        lines.append(f"- test split held back ({results['test_held_back']:,} rows): a sweep's "
                     "trials never read it")  # fmt: skip
    else:
        lines.append(f"- {_test_reads(results)}")
    return [*lines, ""]


def _test_reads(results: dict[str, Any]) -> str:
    reads = int(results.get("test_split_reads") or 0)
    if not (results.get("data") or {}).get("sizes", {}).get("test"):
        return "no test split"
    if reads == 0:
        return "test split never read: no model of this run was scored on it"
    if reads == 1:
        return "test split read once, after all training"
    return f"test split read {reads} times: the run was resumed after a test score"


def _warnings(results: dict[str, Any]) -> list[str]:
    """What the run warned about on the console, kept with its report."""
    warnings = results.get("warnings") or []
    return ["## Warnings", "", *(f"- {w}" for w in warnings), ""] if warnings else []


@dataclass(frozen=True)
class ReportExtras:
    """What report.md shows beside results.json: the figures' marks and the analyses' tables.

    Attributes:
        marks: the epochs the learning curves mark (best, restored) and their smoothing.
        class_scores: per-class precision/recall/F1/support (classification).
        residuals: residual statistics of the scored split (regression).
        thresholds: the scored split at each decision threshold considered (binary).
    """

    marks: CurveMarks = field(default_factory=CurveMarks)
    class_scores: list[ClassScores] = field(default_factory=list)
    residuals: dict[str, float] | None = None
    thresholds: list[ThresholdScore] = field(default_factory=list)


def _curve_notes(results: dict[str, Any], extras: ReportExtras) -> list[str]:
    marks = extras.marks
    notes = []
    if marks.best_epoch is not None:
        notes.append(f"Best epoch by {marks.monitor}: {marks.best_epoch} "
                     f"({_fmt(marks.best_value)}), the dotted line.")  # fmt: skip
    if marks.restored_epoch is not None:
        notes.append(f"Early stopping restored the weights of epoch {marks.restored_epoch}; "
                     "the model scored and saved is that epoch's.")  # fmt: skip
    if marks.smoothing:
        start = f" from epoch {marks.skip_first + 1}" if marks.skip_first else ""
        notes.append(f"With {LONG_CURVE} epochs or more, the validation curve is drawn faint "
                     f"under its exponential moving average{start} (factor {marks.smoothing:g}, "
                     "as in DLwP 3.6.4).")  # fmt: skip
    if marks.final:
        folds = [f"[{f['fold']}]({f['fold']}/report.md)" for f in results.get("folds") or []]
        where = f"; each fold's are in its own report: {', '.join(folds)}" if folds else ""
        notes.append("These are the final retrain's curves, on training and validation data "
                     f"together, so without a validation curve{where}.")  # fmt: skip
    return [" ".join(notes)] if notes else []


def _cv_curve_notes(results: dict[str, Any], extras: ReportExtras) -> list[str]:
    cv = results.get("cross_validation") or {}
    if not cv.get("best_epoch"):
        return []
    smoothed = "smoothed " if cv.get("smoothing") else ""
    return [f"Best epoch by the {smoothed}fold-averaged {cv['monitor']}: {cv['best_epoch']} "
            f"({_fmt(cv['best_smoothed_value'])})."]  # fmt: skip


def _class_notes(results: dict[str, Any], extras: ReportExtras) -> list[str]:
    if not extras.class_scores:
        return []
    split = (results.get("evaluation") or {}).get("split", "scored")
    rows = [vars(row) for row in extras.class_scores]
    return [f"Per class ({split} split; also in classification_report.txt):", "",
            _table(rows, ["label", "precision", "recall", "f1", "support"])]  # fmt: skip


def _residual_notes(results: dict[str, Any], extras: ReportExtras) -> list[str]:
    if not extras.residuals:
        return []
    return ["Residuals (predicted - true):", "",
            _table([extras.residuals], list(extras.residuals))]  # fmt: skip


def _threshold_notes(results: dict[str, Any], extras: ReportExtras) -> list[str]:
    if not extras.thresholds:
        return []
    split = (results.get("evaluation") or {}).get("split", "scored")
    rows = [{"threshold": f"{row.threshold:.4g}", "chosen by": row.rule.label,
             "chosen on": row.chosen_on or "-", "balanced accuracy": row.balanced_accuracy,
             **{k: v for k, v in row.as_dict().items() if k in ("tn", "fp", "fn", "tp")}}
            for row in extras.thresholds]  # fmt: skip
    notes = [f"The {split} split at each decision threshold (also in thresholds.json); a "
             "Youden threshold calls a score of at least it positive:", "",
             _table(rows, list(rows[0]))]  # fmt: skip
    if any(row.in_sample for row in extras.thresholds):
        notes += ["", f"A threshold chosen on the {split} split itself has seen the answers it "
                  "is scored on: its balanced accuracy is optimistic."]  # fmt: skip
    if split == "test" and not any(row.chosen_on == "validation" for row in extras.thresholds):
        notes += ["", "No threshold was chosen on a validation split: the scored model has "
                  "none of its own (it was retrained on all the non-test data), or its "
                  "validation split holds one class."]  # fmt: skip
    return notes


def _no_notes(results: dict[str, Any], extras: ReportExtras) -> list[str]:
    return []


@dataclass(frozen=True)
class FigureSection:
    """A figure a run may write, its heading, and the text read beside it."""

    file: str
    heading: str
    notes: Callable[[dict[str, Any], ReportExtras], list[str]]


# In the order report.md shows them; a figure not listed here gets a plain section.
FIGURES = (
    FigureSection("learning_curves.png", "Learning curves", _curve_notes),
    FigureSection("cv_curves.png", "Cross-validation curves", _cv_curve_notes),
    FigureSection("confusion_matrix.png", "Confusion matrix", _class_notes),
    FigureSection("roc_curve.png", "ROC curve and decision thresholds", _threshold_notes),
    FigureSection("predictions.png", "Predictions against true values", _residual_notes),
    FigureSection("reconstructions.png", "Reconstructions", _no_notes),
    FigureSection("code_space.png", "Code space", _no_notes),
    FigureSection("generated.png", "Generated samples", _no_notes),
)


def _title(file: str) -> str:
    return Path(file).stem.replace("_", " ")


def image(file: str) -> str:
    """``![learning curves](learning_curves.png)``: a relative link, so the report works
    wherever the run directory is copied."""
    return f"![{_title(file)}]({file})"


def _figures(results: dict[str, Any], files: list[str], extras: ReportExtras) -> list[str]:
    known = {section.file: section for section in FIGURES}
    other = [name for name in files if name.endswith(".png") and name not in known]
    sections = [known[f.file] for f in FIGURES if f.file in files]
    sections += [FigureSection(name, _title(name), _no_notes) for name in other]
    lines: list[str] = []
    for section in sections:
        lines += [f"## {section.heading}", "", image(section.file), ""]
        notes = section.notes(results, extras)
        lines += [*notes, ""] if notes else []
    return lines


def _history(history: list[dict[str, Any]]) -> list[str]:
    """Every epoch's row; a long table is folded away so the report stays readable."""
    if not history:
        return []
    keys = list(dict.fromkeys(k for row in history for k in row))
    if all(r.get("phase") == "fit" for r in history):
        keys.remove("phase")
    table = [_table(history, keys), ""]
    if len(history) <= HISTORY_ROWS_SHOWN:
        return ["## Per-epoch history", "", *table]
    summary = f"<details><summary>{len(history)} rows (metrics.csv holds them too)</summary>"
    return ["## Per-epoch history", "", summary, "", *table, "</details>", ""]


def render_report(
    results: dict[str, Any],
    history: list[dict[str, Any]],
    model_summary: str,
    files: list[str],
    extras: ReportExtras | None = None,
) -> str:
    """report.md: setup, model, metrics and baselines, figures with their tables, history.

    ``files`` are the run directory's files (figures still to be drawn included); each figure
    among them is shown inline.
    """
    extras = extras or ReportExtras()
    status = results["status"]
    lines = [f"# {results['name']}", ""]
    if status != "completed":
        said = RunStatus(status).said
        lines += [f"> **Run {said}**: {results.get('stop_reason') or 'see status.json'}", ""]
    if results.get("description"):
        lines += [results["description"], ""]
    lines += _setup(results)
    if model_summary:
        lines += ["## Model", "", model_summary, ""]
    scored = results.get("evaluation")
    if scored:
        how = "evaluated once" if scored["split"] == "test" else "scored every epoch"
        lines += [f"## Final metrics ({scored['split']} split, {how})", ""]
        lines += [_table([scored["metrics"]], list(scored["metrics"])), ""]
        lines += _baselines(results)
    lines += _cross_validation(results)
    lines += _metric_meanings(results)
    if results.get("validation") and not results.get("cross_validation"):
        lines += [
            "## Validation",
            "",
            _table([results["validation"]], list(results["validation"])),
            "",
        ]
    lines += _figures(results, files, extras)
    lines += _leaks(results)
    lines += _warnings(results)
    lines += _history(history)
    lines += ["## Files", ""] + [f"- [{name}]({name})" for name in files] + [""]
    return "\n".join(lines)
