"""Load the dataset a config names, and refuse values no model can train on."""

from __future__ import annotations

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import DATASETS
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.base import NonFinite
from dlrun.data.base import Unusable
from dlrun.data.base import nonfinite
from dlrun.errors import DataError
from dlrun.evaluation.fitting import preprocess_entries
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.preprocess.base import StepConfig
from dlrun.preprocess.steps import STEPS
from dlrun.tasks.base import TASKS


def load_data(cfg: ExperimentConfig) -> LoadedData:
    source = DATASETS.get(cfg.data.dataset)(cfg.data)
    task = TASKS.get(cfg.task.name)
    time_ordered = PROTOCOLS.get(cfg.evaluation.protocol).time_ordered
    context = LoadContext(cfg.seed, task.class_labels, task.single_label, time_ordered,
                          task.max_classes, reads_targets=task.target is not None)  # fmt: skip
    data = source.load(context)
    filled = _imputed_arrays(cfg, data)
    found = nonfinite(data.train, task.target, filled)
    part = "training"
    if found is None and data.test_split is not None:
        found, part = data.test_split.nonfinite(task.target, filled), "test"
    if found is not None:
        raise DataError(_refusal(found, part, task.target))
    return data


def _imputed_arrays(cfg: ExperimentConfig, data: LoadedData) -> set[str]:
    """The arrays an imputation step fills: NaN in them is what it is for."""
    filled = set()
    for entry in preprocess_entries(cfg, data.implied_steps):
        name, config = entry.selected()
        step = STEPS.get(name)
        if step.fills_missing:
            chosen = config.array if isinstance(config, StepConfig) else None
            filled.add(chosen or step.applies_to)
    return filled


def _refusal(found: NonFinite, part: str, target: str | None) -> str:
    """Infinite values anywhere, and NaN in targets or in inputs no step fills, make the first
    loss NaN: refused before a run directory exists, rather than reported as a divergence
    with a learning rate to blame."""
    rows = f"{found.rows:,} {part} rows hold" if found.rows > 1 else f"1 {part} row holds"
    where = f"column {found.column} of " if found.column is not None else ""
    if found.kind is Unusable.INFINITE:
        fix = "a number beyond float32's range (about 3.4e38) reads as infinite too"
    elif found.array == target:
        fix = "drop those rows"
    else:
        fix = "add an impute step, or drop those rows"
    return (
        f"{rows} {found.kind} values in '{found.array}' (the first, {found.value:g}, in "
        f"{where}row {found.first_row} of the {part} rows as split); {fix}"
    )
