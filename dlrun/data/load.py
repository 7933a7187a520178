"""Load the dataset a config names."""

from __future__ import annotations

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import DATASETS
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.tasks.base import TASKS


def load_data(cfg: ExperimentConfig) -> LoadedData:
    source = DATASETS.get(cfg.data.dataset)(cfg.data)
    task = TASKS.get(cfg.task.name)
    time_ordered = PROTOCOLS.get(cfg.evaluation.protocol).time_ordered
    context = LoadContext(cfg.seed, task.class_labels, task.single_label, time_ordered)
    return source.load(context)
