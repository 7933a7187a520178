"""A run's record for TensorBoard's HParams tab: flat hyperparameters and its session summaries.

TensorBoard's protobuf modules are imported when a run writes its record, not with this module.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from typing import Any

from dlrun.config.schema import ExperimentConfig
from dlrun.training.status import RunStatus

if TYPE_CHECKING:
    from tensorboard.compat.proto.summary_pb2 import Summary

SECTIONS = ("model", "optimizer", "loss", "train", "preprocess", "evaluation")

# What TensorBoard's HParams plugin reads a session by: its name, its data's version and the
# two records' tags (its ``metadata`` module holds them too, but importing that loads
# TensorBoard's TensorFlow stand-ins, 0.4 s; a test holds these equal to it).
PLUGIN_NAME = "hparams"
PLUGIN_DATA_VERSION = 0
SESSION_START_TAG = "_hparams_/session_start_info"
SESSION_END_TAG = "_hparams_/session_end_info"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as dotted keys: ``{"model.layers.0.dense.units": 16, ...}``."""
    flat: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}.{index}"))
    elif value is not None:
        flat[prefix] = value
    return flat


def hparams_of(cfg: ExperimentConfig) -> dict[str, Any]:
    """Flat hyperparameters for TensorBoard's HParams tab.

    The config's name, task and dataset come first: in a runs directory that mixes experiments
    they tell the rows apart (TensorBoard lists the settings that differ between runs first).
    """
    dumped = cfg.model_dump(mode="json")
    flat: dict[str, Any] = {
        "name": cfg.name,
        "task": cfg.task.name,
        "data.dataset": cfg.data.dataset,
    }
    flat.update(
        {k: v for section in SECTIONS for k, v in flatten(dumped[section], section).items()}
    )
    flat["seed"] = cfg.seed
    return flat


# How a run's end reads in the HParams table's Status column (it has no "stopped" value:
# an interrupted or pruned run shows as unknown).
SESSION_STATUS = {
    RunStatus.RUNNING: "STATUS_RUNNING",
    RunStatus.COMPLETED: "STATUS_SUCCESS",
    RunStatus.STOPPED_EARLY: "STATUS_SUCCESS",
    RunStatus.DIVERGED: "STATUS_FAILURE",
    RunStatus.FAILED: "STATUS_FAILURE",
    RunStatus.INTERRUPTED: "STATUS_UNKNOWN",
    RunStatus.PRUNED: "STATUS_UNKNOWN",
}


def session_summaries(params: dict[str, Any], status: RunStatus) -> list[Summary]:
    """The HParams plugin's session start and end records for one run.

    Built from TensorBoard's own protobufs (its ``hparams.summary`` helpers need TensorFlow, and
    torch's ``hparams()`` stores booleans as numbers and always adds an experiment summary, which
    would hide every other run's columns). Values other than booleans, numbers and strings are
    written as their ``str``.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.compat.proto.summary_pb2 import SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.compat.proto.types_pb2 import DT_FLOAT
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    from tensorboard.plugins.hparams.plugin_data_pb2 import SessionEndInfo
    from tensorboard.plugins.hparams.plugin_data_pb2 import SessionStartInfo

    now = time.time()
    start = SessionStartInfo(start_time_secs=now)
    for name, value in params.items():
        field = start.hparams[name]
        if isinstance(value, bool):
            field.bool_value = value
        elif isinstance(value, int | float):
            field.number_value = value
        else:
            field.string_value = str(value)
    end = SessionEndInfo(status=Status.Value(SESSION_STATUS[status]), end_time_secs=now)
    records = [
        (
            SESSION_START_TAG,
            HParamsPluginData(version=PLUGIN_DATA_VERSION, session_start_info=start),
        ),
        (SESSION_END_TAG, HParamsPluginData(version=PLUGIN_DATA_VERSION, session_end_info=end)),
    ]
    # the records live in the metadata; the value is an empty float vector, the shortest tensor
    empty = TensorProto(
        dtype=DT_FLOAT, tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=0)])
    )
    return [
        Summary(
            value=[
                Summary.Value(
                    tag=tag,
                    metadata=SummaryMetadata(
                        plugin_data=SummaryMetadata.PluginData(
                            plugin_name=PLUGIN_NAME, content=data.SerializeToString()
                        )
                    ),
                    tensor=empty,
                )
            ]
        )
        for tag, data in records
    ]
