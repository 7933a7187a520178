"""Load the dataset a config names."""

from __future__ import annotations

from dlrun.config.entries import tag_of
from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import DATASETS
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData


def load_data(cfg: ExperimentConfig) -> LoadedData:
    source = DATASETS.get(tag_of(cfg.data, "dataset"))(cfg.data)
    return source.load(LoadContext(seed=cfg.seed, task=cfg.task))
