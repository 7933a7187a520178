"""Re-use a finished run: score its fold models and test split again, or predict on new inputs."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import numpy as np
import torch

from dlrun.config.load import config_from_text
from dlrun.config.schema import ExperimentConfig
from dlrun.config.schema import StepEntry
from dlrun.data.base import Arrays
from dlrun.data.files import MISSING_MARKERS
from dlrun.data.files import is_number
from dlrun.data.files import read_npz_arrays
from dlrun.data.files import read_table
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
from dlrun.preprocess.categorical import category_codes
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
    return LoadedRun(cfg, fitted, payload[ckpt.CLASS_NAMES_KEY], payload[ckpt.FEATURE_NAMES_KEY])


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


def read_inputs(
    path: Path,
    feature_names: list[str] | None,
    header: bool = True,
    categories: dict[int, list[str]] | None = None,
) -> np.ndarray:
    """Raw inputs from a CSV or an .npz file (see README, "Inputs for dlrun predict").

    A CSV's columns are matched to the training features by the names in its header row, so
    their order does not matter and extra columns (the target) are ignored; ``header=False``
    reads them by position instead, and only when their count is the training features' count.
    Guessing is never safe: a data row taken for a header scrambles every column silently.
    ``categories`` maps the positions of text-valued (categorical) features to the training
    vocabulary their cells are coded by.
    """
    if path.is_dir():
        raise DataError(f"input {path} is a directory; give a CSV or .npz file")
    if not path.exists():
        raise DataError(f"input file not found: {path}")
    if not path.is_file():  # /dev/null, a pipe: nothing to read rows from twice
        raise DataError(f"input {path} is not a regular file; give a CSV or .npz file")
    if path.suffix == ".npz":
        if not header:
            raise DataError(f"{path}: --no-header applies to CSV files; an .npz has no header")
        if categories:
            coded = [feature_names[j] if feature_names else str(j) for j in categories]
            raise DataError(f"{path}: this run codes text columns ({_listing(coded)}), which "
                            "an .npz cannot hold as trained; give the inputs as a CSV with a "
                            "header row")  # fmt: skip
        return _npz_inputs(path, feature_names)
    names, rows = read_table(str(path), ",", header=header)
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    if header:
        columns = _columns_by_name(path, names, feature_names)
    else:
        columns = _columns_by_position(path, rows[0], feature_names)
    table = np.array(rows, dtype=object)
    first_line = 2 if header else 1
    shown = feature_names or names
    categories = categories or {}
    return np.stack(
        [
            category_codes(table[:, i], categories[j], list(MISSING_MARKERS))
            if j in categories
            else _numbers(table[:, i], shown[j], path, first_line)
            for j, i in enumerate(columns)
        ],
        axis=1,
    )


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:12])
    return f"{shown}, ... ({len(names)} columns)" if len(names) > 12 else shown


def _columns_by_name(path: Path, header: list[str], features: list[str] | None) -> list[int]:
    if features is None:
        raise DataError(
            f"{path}: this run's training data had no column names to match a header against; "
            "pass --no-header to read the columns by position (and remove the file's header "
            "row, if it has one)"
        )
    missing = [name for name in features if name not in header]
    if len(missing) == len(features):
        raise DataError(
            f"{path}: the first row is not a header naming the training features; expected a "
            f"header row with {_listing(features)} (any order, other columns ignored), or pass "
            "--no-header to read the columns by position"
        )
    if missing:
        raise DataError(
            f"{path}: the header lacks training feature(s) {', '.join(missing)}; expected "
            f"{_listing(features)} (any order, other columns ignored)"
        )
    repeated = [name for name in features if header.count(name) > 1]
    if repeated:
        raise DataError(f"{path}: column '{repeated[0]}' appears more than once in the header")
    return [header.index(name) for name in features]


def _columns_by_position(path: Path, first: list[str], features: list[str] | None) -> list[int]:
    if features is None:
        return list(range(len(first)))  # the shape check after preprocessing still applies
    if set(features) <= {cell.strip() for cell in first}:
        raise DataError(f"{path}: the first row is a header; drop --no-header")
    if len(first) != len(features):
        raise DataError(
            f"{path}: {len(first)} columns, but the model was trained on {len(features)} "
            f"features; with --no-header the columns must be exactly {_listing(features)}, "
            "in this order"
        )
    return list(range(len(features)))


def _numbers(values: np.ndarray, name: str, path: Path, first_line: int) -> np.ndarray:
    """One column parsed to floats; missing markers become NaN."""
    text = np.char.strip(values.astype(str))
    present = ~np.isin(text, MISSING_MARKERS)
    out = np.full(len(text), np.nan)
    try:
        out[present] = text[present].astype(np.float64)
    except ValueError:
        row = next(int(r) for r in np.flatnonzero(present) if not is_number(str(text[r])))
        raise DataError(
            f"{path}, line {first_line + row}: column '{name}' holds '{text[row]}', not a "
            "number; predict reads the raw numeric features the run was trained on"
        ) from None
    return out


def _npz_inputs(path: Path, features: list[str] | None) -> np.ndarray:
    arrays = read_npz_arrays(path)
    keys = list(arrays)
    if "x" not in keys and len(keys) != 1:
        raise DataError(
            f"{path} holds arrays {', '.join(keys) or '(none)'}; predict reads the array "
            "named 'x' (or an archive's only array)"
        )
    x = arrays["x" if "x" in keys else keys[0]]
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: the array holds {x.dtype} values, not numbers; predict reads "
                        "the raw numeric features the run was trained on")  # fmt: skip
    if x.ndim < 2 or not len(x):
        raise DataError(f"{path}: the array has shape {list(x.shape)}; predict reads one row "
                        "per sample (rows first), and at least one row")  # fmt: skip
    if features is not None and x.ndim == 2 and x.shape[1] != len(features):
        raise DataError(
            f"{path}: array has {x.shape[1]} columns, but the model was trained on "
            f"{len(features)} features ({_listing(features)}, in this order)"
        )
    return x


def predict_file(
    run_path: str | Path, input_path: Path, output_path: Path, header: bool = True
) -> int:
    """Write one row of predictions per input row; returns the row count."""
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
    if len(fitted.task.inputs) != 1:
        raise RunError(f"predict reads one input array; this model takes {fitted.task.inputs}")
    name = fitted.task.inputs[0]
    coded = vocabularies(fitted.sources.pipeline.steps, name)
    raw = Arrays(**{name: read_inputs(input_path, loaded.feature_names, header, coded)})
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
    header_row, rows = fitted.task.prediction_table(outputs, loaded.class_names)
    write_csv(output_path, header_row, rows)
    return len(rows)
