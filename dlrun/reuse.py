"""Re-use a finished run: re-evaluate its test split, or predict on new inputs."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlrun.config.load import config_from_text
from dlrun.config.schema import ExperimentConfig
from dlrun.config.schema import StepEntry
from dlrun.data.files import MISSING_MARKERS
from dlrun.data.files import read_table
from dlrun.data.files import to_numeric
from dlrun.data.load import load_data
from dlrun.errors import DataError
from dlrun.errors import RunError
from dlrun.evaluation.fitting import FittedModel
from dlrun.evaluation.fitting import build_for
from dlrun.evaluation.fitting import make_loss
from dlrun.evaluation.fitting import make_step
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.evaluation.scoring import Evaluation
from dlrun.evaluation.scoring import evaluate_split
from dlrun.preprocess.pipeline import build_pipeline
from dlrun.reporting.files import write_csv
from dlrun.reporting.rundir import RunDirectory
from dlrun.training import checkpoint as ckpt
from dlrun.training.metrics import to_labels
from dlrun.training.state import TrainState


@dataclass
class LoadedRun:
    config: ExperimentConfig
    fitted: FittedModel
    class_names: list[str] | None
    feature_names: list[str] | None


def load_run(path: str | Path, checkpoint: str = "checkpoint.pt") -> LoadedRun:
    """Rebuild the preprocessing pipeline and model of a run from its checkpoint."""
    run = RunDirectory.open(path)
    payload = ckpt.load_checkpoint(run.file(checkpoint))
    cfg = config_from_text(payload[ckpt.CONFIG_KEY], str(run.file(checkpoint)), [])
    pipeline = build_pipeline(
        [StepEntry.model_validate(s) for s in payload[ckpt.PIPELINE_SPEC_KEY]]
    )
    pipeline.load_state_dict(payload[ckpt.PREPROCESS_KEY])
    loss = make_loss(cfg)
    model = build_for(cfg, payload[ckpt.INPUT_SHAPE_KEY], loss)
    model.network.load_state_dict(payload[ckpt.MODEL_KEY])
    step = make_step(cfg, model, loss)
    state = TrainState(
        step, epochs=0, batches_per_epoch=0, epoch=payload[ckpt.EPOCH_KEY], status="completed"
    )
    fitted = FittedModel(pipeline, model, step, state)
    return LoadedRun(cfg, fitted, payload[ckpt.CLASS_NAMES_KEY], payload[ckpt.FEATURE_NAMES_KEY])


def evaluate_run(path: str | Path) -> Evaluation:
    """Score the run's model on its dataset's test split again (same seed, same split)."""
    loaded = load_run(path)
    cfg = loaded.config
    data = PROTOCOLS.get(cfg.protocol_name)(cfg.evaluation).prepare(load_data(cfg))
    if data.test_split is None:
        raise RunError(f"the dataset of {path} has no test split to evaluate")
    return evaluate_split(loaded.fitted, data.test_split.unseal(), loaded.config, "test")


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
    cfg, fitted = loaded.config, loaded.fitted
    x_raw = read_inputs(input_path, loaded.feature_names)
    expected = fitted.model.input_shape
    x, _ = fitted.pipeline.transform(x_raw, None)
    if tuple(x.shape[1:]) != tuple(expected):
        raise DataError(
            f"{input_path}: inputs become shape {list(x.shape[1:])} after preprocessing; the model expects {list(expected)}"
        )
    device = next(fitted.model.network.parameters()).device
    probs = fitted.step.predict(
        torch.as_tensor(np.asarray(x, dtype=np.float32), device=device), cfg.train.batch_size
    )
    header, rows = prediction_rows(cfg.task, probs, loaded.class_names)
    write_csv(output_path, header, rows)
    return len(rows)


def prediction_rows(
    task: str, probs: torch.Tensor, class_names: list[str] | None
) -> tuple[list[str], list[list[Any]]]:
    values = probs.detach().cpu().numpy()
    if task == "regression":
        width = values.shape[1] if values.ndim == 2 else 1
        header = ["prediction"] if width == 1 else [f"prediction_{i}" for i in range(width)]
        return header, values.reshape(len(values), -1).tolist()
    labels = to_labels(task, probs, threshold_targets=False).cpu().numpy()
    if task == "multilabel":
        header = [f"label_{i}" for i in range(values.shape[1])] + [
            f"prob_{i}" for i in range(values.shape[1])
        ]
        return header, [
            [*lab.tolist(), *p.tolist()] for lab, p in zip(labels, values, strict=True)
        ]
    names = class_names or [
        str(i) for i in range(max(2, values.shape[1] if values.ndim == 2 else 2))
    ]
    named = [names[int(label)] if int(label) < len(names) else str(int(label)) for label in labels]
    if task == "binary":
        return ["prediction", "probability"], [
            [n, float(p)] for n, p in zip(named, values.reshape(-1), strict=True)
        ]
    header = ["prediction"] + [f"prob_{name}" for name in names[: values.shape[1]]]
    return header, [[n, *p.tolist()] for n, p in zip(named, values, strict=True)]
