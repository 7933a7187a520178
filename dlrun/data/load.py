"""Load the dataset a config names, and refuse values no model can train on."""

from __future__ import annotations

import numpy as np

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.errors import DataError
from dlrun.evaluation.fitting import preprocess_entries
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.preprocess.steps import STEPS
from dlrun.tasks.base import TASKS


def load_data(cfg: ExperimentConfig) -> LoadedData:
    source = DATASETS.get(cfg.data.dataset)(cfg.data)
    task = TASKS.get(cfg.task.name)
    time_ordered = PROTOCOLS.get(cfg.evaluation.protocol).time_ordered
    context = LoadContext(cfg.seed, task.class_labels, task.single_label, time_ordered,
                          task.max_classes)  # fmt: skip
    data = source.load(context)
    steps = [entry.selected()[0] for entry in preprocess_entries(cfg, data.implied_steps)]
    filled = any(STEPS.get(name).fills_missing for name in steps)
    _check_finite(data.train, "training", task.target, filled)
    if data.test_split is not None:
        data.test_split.check(lambda test: _check_finite(test, "test", task.target, filled))
    return data


def _check_finite(arrays: Arrays, part: str, target: str | None, filled: bool) -> None:
    """Infinite values anywhere, and NaN in targets (or in inputs no ``impute`` step fills),
    make the first loss NaN: refused here, named, before a run directory exists, rather than
    reported as a divergence with a learning rate to blame."""
    for name, array in arrays.fields.items():
        if array.dtype.kind != "f":
            continue
        infinite = np.isinf(array)
        missing = np.isnan(array) if name == target or not filled else None
        fill = "drop those rows" if name == target else "add an impute step, or drop those rows"
        for bad, what, fix in (
            (infinite, "infinite", "a number beyond float32's range (about 3.4e38) reads so too"),
            (missing, "missing (NaN)", fill),
        ):
            if bad is None or not bad.any():
                continue
            rows = np.flatnonzero(bad.reshape(len(array), -1).any(axis=1))
            many = f"{len(rows):,} {part} rows hold" if len(rows) > 1 else f"1 {part} row holds"
            raise DataError(
                f"{many} {what} values in '{name}' (the first: row {rows[0]} of the {part} "
                f"part); {fix}"
            )
