"""Re-use a finished run: score its fold models and test split again, or predict on new inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import torch

from dlrun.config.load import config_from_text
from dlrun.config.schema import ExperimentConfig
from dlrun.config.schema import StepEntry
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.load import load_data
from dlrun.errors import DataError
from dlrun.errors import RunError
from dlrun.evaluation.fitting import FittedModel
from dlrun.evaluation.fitting import Sources
from dlrun.evaluation.fitting import task_for
from dlrun.evaluation.protocols import Fold
from dlrun.evaluation.runner import plan_protocol
from dlrun.evaluation.scoring import Evaluation
from dlrun.evaluation.scoring import evaluate_split
from dlrun.evaluation.thresholds import validation_row
from dlrun.predict_inputs import holds_texts
from dlrun.predict_inputs import read_inputs
from dlrun.predict_inputs import read_texts
from dlrun.preprocess.categorical import vocabularies
from dlrun.preprocess.pipeline import build_pipeline
from dlrun.reporting.files import write_csv
from dlrun.reporting.rundir import INCOMPLETE
from dlrun.reporting.rundir import RunDirectory
from dlrun.training import checkpoint as ckpt
from dlrun.training.batches import FieldSpec
from dlrun.training.state import TrainState
from dlrun.training.status import RunStatus


@dataclass
class LoadedRun:
    config: ExperimentConfig
    fitted: FittedModel
    class_names: list[str] | None
    feature_names: list[str] | None
    vocabulary: list[str] | None = None  # the words behind inputs of word ids


def load_run(path: str | Path, checkpoint: str = "checkpoint.pt") -> LoadedRun:
    """Rebuild the preprocessing pipeline and the task's models from a run's checkpoint."""
    run = RunDirectory.open(path)
    payload = ckpt.load_checkpoint(run.file(checkpoint))
    cfg = config_from_text(payload[ckpt.CONFIG_KEY], str(run.file(checkpoint)), [])
    pipeline = build_pipeline(
        [StepEntry.model_validate(s) for s in payload[ckpt.PIPELINE_SPEC_KEY]]
    )
    pipeline.load_state_dict(payload[ckpt.PREPROCESS_KEY])
    fields = {name: FieldSpec.from_dict(spec) for name, spec in payload[ckpt.FIELDS_KEY].items()}
    task = task_for(cfg)
    device = torch.device("cpu")
    task.build(fields, device)
    task.load_state_dict(payload[ckpt.TASK_KEY])
    sources = Sources(pipeline, task, cfg.train.batch_size, device, streaming=False)
    state = TrainState(task, epochs=0, batches_per_epoch=0, epoch=payload[ckpt.EPOCH_KEY],
                       status=RunStatus(payload[ckpt.STATUS_KEY]))  # fmt: skip
    fitted = FittedModel(sources, fields, state)
    return LoadedRun(cfg, fitted, payload[ckpt.CLASS_NAMES_KEY], payload[ckpt.FEATURE_NAMES_KEY],
                     payload.get(ckpt.VOCABULARY_KEY))  # fmt: skip


@dataclass
class RunEvaluation:
    """What ``dlrun eval`` scored: each fold model on its own validation part, and the run's
    model on the test split; ``notes`` say what was not scored and why."""

    folds: list[tuple[str, Evaluation]] = field(default_factory=list)
    test: Evaluation | None = None
    notes: list[str] = field(default_factory=list)


def finished_run(path: str | Path, command: str) -> RunDirectory:
    """The run at ``path`` if it ended normally; a halted or unfinished run's model is not
    the one its config asked for, and ``eval``/``predict`` (``command``) refuse it."""
    run = RunDirectory.open(path)
    status = run.status().get("status")
    if status not in (RunStatus.COMPLETED.value, RunStatus.STOPPED_EARLY.value):
        known = {s.value: s for s in RunStatus}
        resumable = status not in known or known[status].resumable
        then = "continue it with dlrun train --resume first" if resumable else "train a new run"
        ended = ("is incomplete (still training, or killed)" if status == INCOMPLETE
                 else f"ended as {status}")  # fmt: skip  # as runs list says it
        raise RunError(f"{path} {ended}, so {command} does not use it; {then}")
    return run


def evaluate_run(path: str | Path) -> RunEvaluation:
    """Score a finished run again with the same seed, hence the same splits.

    A run of several folds (K-fold) has one model per fold sub-directory, scored on the fold's
    validation part; the model at the top (a single split's, or K-fold's final retrain) is scored
    on the test split. Only a run that ended normally is scored: a halted or unfinished run never
    read its test split, and ``eval`` must not read it for it either.
    """
    run = finished_run(path, "eval")
    above = run.run_above()
    if above is not None:
        raise RunError(f"{path} is one fold of the run {above}; eval that run, which scores "
                       "every fold's model on its validation part")  # fmt: skip
    if run.holds_back_test():
        raise RunError(f"{path} is a sweep's trial: its test split stays held back, so that no "
                       "candidate is chosen on it; test the chosen config with dlrun train "
                       "SWEEP_DIR/best_config.yaml")  # fmt: skip
    text = run.file("config.yaml").read_text(encoding="utf-8")
    cfg = config_from_text(text, str(run.file("config.yaml")), [])
    data = load_data(cfg)
    run.check_same_data(data.fingerprint(), "eval would score other rows")
    plan = plan_protocol(cfg, data)
    folds = [_score_fold(run, fold, plan.data.train) for fold in plan.folds if fold.name]
    has_model = run.file("checkpoint.pt").is_file()
    if not folds and not has_model:
        raise RunError(f"{path} holds no checkpoint.pt and no fold models; nothing to evaluate")
    result = RunEvaluation(folds)
    if has_model and plan.data.test_split is not None:
        result.test = evaluate_split(load_run(path).fitted, plan.data.test_split.unseal(), "test")
    elif not folds:
        raise RunError(f"the dataset of {path} has no test split to evaluate")
    elif has_model:
        result.notes.append("test split not scored: the dataset has no test split")
    else:
        result.notes.append(
            "test split not scored: the run has no final model (evaluation.final trains one)"
        )
    return result


def _score_fold(run: RunDirectory, fold: Fold, train: Arrays) -> tuple[str, Evaluation]:
    """One fold's model on the validation rows it never trained on."""
    if not run.file(fold.name).joinpath("checkpoint.pt").is_file():
        raise RunError(
            f"{run.path} finished but {fold.name}/checkpoint.pt is missing; the fold directory "
            "was changed after the run"
        )
    assert fold.val_idx is not None  # a fold sub-run always has its validation part
    fitted = load_run(run.file(fold.name)).fitted
    return fold.name, evaluate_split(fitted, train.subset(fold.val_idx), "validation")


def predict_file(
    run_path: str | Path,
    input_path: Path,
    output_path: Path,
    header: bool = True,
    threshold: str | None = None,
) -> int:
    """Write one row of predictions per input row; returns the row count. ``threshold`` (a
    number, or ``validation``) sets a binary run's decision threshold."""
    if output_path.resolve() == input_path.resolve():
        raise DataError(f"--output {output_path} is the input file; name another file")
    run = finished_run(run_path, "predict")
    folds = sorted(str(p.parent.relative_to(run.path)) for p in run.path.rglob("checkpoint.pt")
                   if p.parent != run.path)  # fmt: skip
    if not run.file("checkpoint.pt").is_file() and folds:
        raise RunError(f"{run_path} has a model per fold and no final model (evaluation.final "
                       f"trains one); predict with a fold's: dlrun predict {run.file(folds[0])}")  # fmt: skip
    loaded = load_run(run_path)
    fitted = loaded.fitted
    cut = None if threshold is None else decision_threshold(run, loaded, threshold)
    if len(fitted.task.inputs) != 1:
        raise RunError(f"predict reads one input array; this model takes {fitted.task.inputs}")
    name = fitted.task.inputs[0]
    pipeline = fitted.sources.pipeline
    if pipeline.starts_from_text(name):  # e.g. tokenize: the texts themselves
        inputs = read_texts(input_path, header)
    elif loaded.vocabulary is not None and holds_texts(input_path, header):  # word ids
        dataset = DATASETS.get(loaded.config.data.dataset)(loaded.config.data)
        inputs = dataset.encode_texts(read_texts(input_path, header), loaded.vocabulary)
    else:
        coded = vocabularies(pipeline.steps, name)
        inputs = read_inputs(input_path, loaded.feature_names, header, coded)
    raw = Arrays(**{name: inputs})
    expected = fitted.fields[name].shape
    source = fitted.sources(raw)
    got = source.fields()[name].shape
    if got != expected:
        raise DataError(
            f"{input_path}: inputs become shape {list(got)} after preprocessing; the model "
            f"expects {list(expected)}"
        )
    fitted.sources.check(source)  # e.g. token ids beyond an embedding's rows
    with torch.no_grad():
        outputs = torch.cat([fitted.task.predict_step(batch) for batch in source.epoch()])
    unusable = ~torch.isfinite(outputs.reshape(len(outputs), -1)).all(dim=1)
    if unusable.any():
        raise DataError(
            f"{input_path}: {int(unusable.sum())} of {len(outputs)} rows give no finite "
            f"prediction (first: data row {int(unusable.nonzero()[0, 0]) + 1}); missing values "
            "are filled only when the run was trained with data.missing or an impute step"
        )
    header_row, rows = fitted.task.prediction_table(outputs, loaded.class_names, cut)
    write_csv(output_path, header_row, rows)
    return len(rows)


def decision_threshold(run: RunDirectory, loaded: LoadedRun, given: str) -> float:
    """``--threshold``: a number, or ``validation`` for the one the run chose on its
    validation split (Youden's, in thresholds.json)."""
    task = loaded.config.task.name
    if not loaded.fitted.task.decision_threshold:
        raise RunError(f"--threshold applies to runs whose labels come from one score (task "
                       f"binary); {run.path} is a {task} run")  # fmt: skip
    if given == "validation":
        row = validation_row(run.path)
        if row is None:
            raise RunError(f"{run.path} chose no threshold on a validation split (thresholds.json "
                           "has none: a run without one, or a model retrained on all the "
                           "non-test data); give a number")  # fmt: skip
        return float(str(row["threshold"]))
    try:
        value = float(given)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise RunError(f"--threshold {given}: give a number, or 'validation' for the threshold "
                       "the run chose on its validation split")  # fmt: skip
    return value
