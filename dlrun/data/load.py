"""Load the dataset a config names."""

from __future__ import annotations

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import DATASETS
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.tasks.base import TASKS


def load_data(cfg: ExperimentConfig) -> LoadedData:
    source = DATASETS.get(cfg.data.dataset)(cfg.data)
    context = LoadContext(seed=cfg.seed, class_labels=TASKS.get(cfg.task.name).class_labels)
    return source.load(context)
