"""TensorBoard's view of a runs directory that mixes experiments, read through its own HTTP API.

Two hold-out runs of one config (different ``optimizer.lr``) and a K-fold run of another config
with a final retrain share one log directory, as in ``dlrun tensorboard runs``. The assertions
are about what a user sees: training and validation curves overlaid (same tag, sibling
sub-runs), curves before single-number cards, and one HParams row per run and fold with its
hyperparameters and scores.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.reporting.hparams import session_summaries
from dlrun.training.status import RunStatus
from tests.conftest import tiny_config

Scalars = dict[str, dict[str, list[tuple[int, float]]]]
ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


def read_scalars(run_dir: Path) -> Scalars:
    """``{sub-run: {tag: [(step, value), ...]}}`` of one run directory's own events: the
    directory itself (``"."``) and its TensorBoard sub-runs, not its folds (runs of their own)."""
    folders = [run_dir, *(p for p in run_dir.iterdir() if p.is_dir())]
    found: Scalars = {}
    for folder in folders:
        if folder != run_dir and (folder / "config.yaml").is_file():
            continue
        events = EventAccumulator(str(folder))
        events.Reload()
        tags = events.Tags()["scalars"]
        if tags:
            name = folder.relative_to(run_dir).as_posix()
            found[name] = {t: [(e.step, e.value) for e in events.Scalars(t)] for t in tags}
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[Any], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "TensorBoard exited before it listened"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {seconds} s")


class TensorBoardServer:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, route: str, request: dict[str, Any] | None = None) -> Any:
        query = "" if request is None else "?request=" + urllib.parse.quote(json.dumps(request))
        with urllib.request.urlopen(self.base + route + query, timeout=30) as response:
            return json.load(response)

    def experiment(self) -> Any:
        return self.get("/data/plugin/hparams/experiment", {"experimentName": ""})

    def session_groups(self) -> dict[str, Any]:
        request = {"allowedStatuses": ALL_STATUSES, "startIndex": 0, "sliceSize": 1000}
        groups = self.get("/data/plugin/hparams/session_groups", request)["sessionGroups"]
        return {group["name"]: group for group in groups}


@pytest.fixture(scope="module")
def mixed_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two hold-out runs of ``tiny`` (lr 0.01, 0.05) and a 2-fold ``tiny_kfold`` run."""
    runs = tmp_path_factory.mktemp("runs")
    quiet = Console(quiet=True)
    made = {}
    for lr in (0.01, 0.05):
        cfg = tiny_config(optimizer={"name": "adam", "lr": lr})
        made[f"lr={lr}"] = run_experiment(config_from_data(cfg), runs, quiet).run_dir
    kfold = tiny_config(
        name="tiny_kfold",
        model={"layers": [{"dense": {"units": 3, "activation": "softmax"}}]},
        evaluation={"protocol": "kfold", "k": 2, "final": {"epochs": 2}},
    )
    made["kfold"] = run_experiment(config_from_data(kfold), runs, quiet).run_dir
    return made


@pytest.fixture(scope="module")
def server(mixed_runs: dict[str, Path]) -> Iterator[TensorBoardServer]:
    logdir = mixed_runs["kfold"].parent
    port = free_port()
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
               "--port", str(port), "--host", "127.0.0.1", "--load_fast=false"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        board = TensorBoardServer(port)
        expected = {
            f"{mixed_runs['kfold'].name}/fold_02/results",
            f"{mixed_runs['kfold'].name}/results",
        }
        deadline = time.monotonic() + 60
        while not expected <= set(board.get("/data/runs")) and time.monotonic() < deadline:
            time.sleep(0.5)  # the first load of the log directory runs in the background
        yield board
    finally:
        process.terminate()
        process.wait(timeout=30)


def _run(mixed_runs: dict[str, Path], key: str, sub: str = "") -> str:
    """A TensorBoard run name: the path below the log directory."""
    path = mixed_runs[key] / sub if sub else mixed_runs[key]
    return path.relative_to(mixed_runs[key].parent).as_posix()


def test_training_and_validation_curves_overlay(
    server: TensorBoardServer, mixed_runs: dict[str, Path]
) -> None:
    tags = server.get("/data/plugin/scalars/tags")
    fits = [("lr=0.01", ""), ("lr=0.05", ""), ("kfold", "fold_01/"), ("kfold", "fold_02/")]
    for key, fit in fits:
        train = tags[_run(mixed_runs, key, f"{fit}train")]
        validation = tags[_run(mixed_runs, key, f"{fit}validation")]
        assert {"epoch/loss", "epoch/accuracy"} <= set(train) & set(validation)
        assert "epoch/lr" in train and "epoch/lr" not in validation
    final = tags[_run(mixed_runs, "kfold", "final")]  # the retrain joins the same charts
    assert {"epoch/loss", "epoch/accuracy", "epoch/lr"} == set(final)
    holdout = _run(mixed_runs, "lr=0.01")
    assert holdout not in tags  # the run directory itself holds no scalars
    on_disk = read_scalars(mixed_runs["lr=0.01"])
    assert set(on_disk) == {"train", "validation", "results"}
    assert [step for step, _ in on_disk["validation"]["epoch/loss"]] == [1, 2, 3]


def test_learning_curves_come_before_single_numbers(
    server: TensorBoardServer, mixed_runs: dict[str, Path]
) -> None:
    """Time Series sorts cards by tag and groups them by the part before the first ``/``."""
    tags = server.get("/data/plugin/scalars/tags")
    every = sorted({tag for run_tags in tags.values() for tag in run_tags})
    groups = list(dict.fromkeys(tag.split("/", 1)[0] for tag in every))
    assert groups == ["epoch", "results"]
    for run, run_tags in tags.items():
        single = [t for t in run_tags if t.startswith("results/")]
        assert not single or run.endswith("/results"), run


def test_hparams_rows_for_every_run_and_fold(
    server: TensorBoardServer, mixed_runs: dict[str, Path]
) -> None:
    groups = server.session_groups()
    kfold = _run(mixed_runs, "kfold")
    expected = {
        _run(mixed_runs, "lr=0.01", "results"): ("tiny", 0.01),
        _run(mixed_runs, "lr=0.05", "results"): ("tiny", 0.05),
        f"{kfold}/results": ("tiny_kfold", 0.01),
        f"{kfold}/fold_01/results": ("tiny_kfold", 0.01),
        f"{kfold}/fold_02/results": ("tiny_kfold", 0.01),
    }
    assert set(groups) == set(expected)
    for name, (config, lr) in expected.items():
        hparams = groups[name]["hparams"]
        assert (hparams["name"], hparams["optimizer.lr"]) == (config, pytest.approx(lr))
    folds_shown = {name: groups[name]["hparams"].get("fold") for name in expected}
    assert folds_shown[f"{kfold}/fold_02/results"] == "fold_02"  # a column to filter folds by
    assert folds_shown[f"{kfold}/results"] is None
    scores = {
        name: {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        for name, group in groups.items()
    }
    holdout = json.loads((mixed_runs["lr=0.05"] / "results.json").read_text())
    lr_005 = scores[_run(mixed_runs, "lr=0.05", "results")]
    assert lr_005["results/test_accuracy"] == pytest.approx(holdout["test"]["accuracy"])
    # its validation values too, so hold-out runs share columns with sweep trials (no test)
    assert lr_005["results/validation_accuracy"] == pytest.approx(
        holdout["validation"]["val_accuracy"]
    )
    folds = [scores[f"{kfold}/fold_0{i}/results"] for i in (1, 2)]
    for fold in folds:  # a fold's row shows its validation scores
        assert set(fold) == {"results/validation_accuracy", "results/validation_loss"}
    parent = scores[f"{kfold}/results"]  # the K-fold run: the folds' mean, and the test split
    mean = sum(fold["results/validation_accuracy"] for fold in folds) / 2
    assert parent["results/validation_accuracy"] == pytest.approx(mean)
    assert set(parent) == {*folds[0], "results/test_accuracy", "results/test_loss"}


def test_hparams_columns_are_the_union_with_differing_settings_first(
    server: TensorBoardServer,
) -> None:
    experiment = server.experiment()
    infos = experiment["hparamInfos"]
    names = [info["name"] for info in infos]
    assert {"evaluation.k", "evaluation.validation.fraction", "model.layers.1.dense.units"} <= set(
        names
    )  # K-fold only, hold-out only, the hold-out's second layer
    differs = [bool(info.get("differs")) for info in infos]
    assert differs == sorted(differs, reverse=True)  # what differs between runs comes first
    assert {"name", "optimizer.lr", "evaluation.protocol"} <= {
        info["name"] for info in infos if info.get("differs")
    }
    metrics = [m["name"] for m in experiment["metricInfos"]]
    assert all(m["group"] == "" and m["tag"].startswith("results/") for m in metrics)
    assert {m["tag"] for m in metrics} == {
        "results/test_accuracy",
        "results/test_loss",
        "results/validation_accuracy",
        "results/validation_loss",
    }  # scores only: no curve's last value crowds the table's first five metric columns


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (RunStatus.COMPLETED, "STATUS_SUCCESS"),
        (RunStatus.STOPPED_EARLY, "STATUS_SUCCESS"),
        (RunStatus.DIVERGED, "STATUS_FAILURE"),
        (RunStatus.INTERRUPTED, "STATUS_UNKNOWN"),
    ],
)
def test_hparams_session_status_follows_the_run(status: RunStatus, expected: str) -> None:
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import metadata

    end = session_summaries({"optimizer.lr": 0.01}, status)[1].value[0]
    info = metadata.parse_session_end_info_plugin_data(end.metadata.plugin_data.content)
    assert api_pb2.Status.Name(info.status) == expected


def test_hparams_records_equal_what_tensorboards_own_helpers_build() -> None:
    """dlrun spells out the plugin's name, data version, tags and empty tensor (importing the
    plugin's helpers costs 0.4 s); here they are held to those helpers."""
    from tensorboard.plugins.hparams import metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    summaries = session_summaries({"optimizer.lr": 0.01, "name": "x", "flag": True},
                                  RunStatus.COMPLETED)  # fmt: skip
    start = HParamsPluginData.FromString(summaries[0].value[0].metadata.plugin_data.content)
    assert start.session_start_info.hparams["flag"].bool_value is True
    tags = [metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG]
    for summary, tag in zip(summaries, tags, strict=True):
        (value,) = summary.value
        data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
        assert value.tag == tag
        expected = metadata.create_summary_metadata(data)
        # map entries serialize in no fixed order: compare the content parsed, the rest as is
        assert HParamsPluginData.FromString(expected.plugin_data.content) == data
        assert data.version == metadata.PLUGIN_DATA_VERSION
        value.metadata.plugin_data.content = expected.plugin_data.content = b""
        assert value.metadata == expected
        assert value.tensor == metadata.NULL_TENSOR
