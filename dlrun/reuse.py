"""Re-use a finished run: re-evaluate its test split, or predict on new inputs."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlrun.config.load import config_from_text
from dlrun.config.schema import ExperimentConfig
from dlrun.config.schema import StepEntry
from dlrun.data.base import Arrays
from dlrun.data.files import MISSING_MARKERS
from dlrun.data.files import read_table
from dlrun.data.files import to_numeric
from dlrun.data.load import load_data
from dlrun.errors import DataError
from dlrun.errors import RunError
from dlrun.evaluation.fitting import FittedModel
from dlrun.evaluation.fitting import Sources
from dlrun.evaluation.fitting import task_for
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.evaluation.scoring import Evaluation
from dlrun.evaluation.scoring import evaluate_split
from dlrun.preprocess.pipeline import build_pipeline
from dlrun.reporting.files import write_csv
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


def evaluate_run(path: str | Path) -> Evaluation:
    """Score the run's model on its dataset's test split again (same seed, same split).

    Only a run that ended normally is scored: a halted or unfinished run never read its test
    split, and ``eval`` must not read it for it either.
    """
    status = RunDirectory.open(path).status().get("status")
    if status not in (RunStatus.COMPLETED.value, RunStatus.STOPPED_EARLY.value):
        raise RunError(
            f"{path} ended as {status}, so its test split stays sealed; continue it with "
            "dlrun train --resume first"
        )
    loaded = load_run(path)
    cfg = loaded.config
    data = PROTOCOLS.get(cfg.evaluation.protocol)(cfg.evaluation).prepare(load_data(cfg))
    if data.test_split is None:
        raise RunError(f"the dataset of {path} has no test split to evaluate")
    return evaluate_split(loaded.fitted, data.test_split.unseal(), "test")


def read_inputs(path: Path, feature_names: list[str] | None) -> np.ndarray:
    """Raw inputs from a CSV (columns selected by the training feature names when present)
    or an .npz file (array ``x``, or its only array)."""
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                key = "x" if "x" in archive.files else archive.files[0]
                return archive[key]
        except (OSError, ValueError, IndexError, zipfile.BadZipFile) as exc:
            raise DataError(f"cannot read {path} as an .npz archive: {exc}") from None
    names, rows = read_table(str(path), ",", header=True)
    table = np.array(rows, dtype=object)
    wanted = feature_names if feature_names and set(feature_names) <= set(names) else names
    columns = [names.index(name) for name in wanted]
    return np.stack(
        [to_numeric(table[:, i], list(MISSING_MARKERS), names[i], str(path)) for i in columns],
        axis=1,
    )


def predict_file(run_path: str | Path, input_path: Path, output_path: Path) -> int:
    """Write one row of predictions per input row; returns the row count."""
    loaded = load_run(run_path)
    fitted = loaded.fitted
    if len(fitted.task.inputs) != 1:
        raise RunError(f"predict reads one input array; this model takes {fitted.task.inputs}")
    name = fitted.task.inputs[0]
    raw = Arrays(**{name: read_inputs(input_path, loaded.feature_names)})
    expected = fitted.fields[name].shape
    source = fitted.sources(raw)
    got = source.fields()[name].shape
    if got != expected:
        raise DataError(
            f"{input_path}: inputs become shape {list(got)} after preprocessing; the model "
            f"expects {list(expected)}"
        )
    with torch.no_grad():
        outputs = torch.cat([fitted.task.predict_step(batch) for batch in source.epoch()])
    header, rows = fitted.task.prediction_table(outputs, loaded.class_names)
    write_csv(output_path, header, rows)
    return len(rows)
