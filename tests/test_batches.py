"""Named typed batches and batch sources: dtypes kept, seeded orders, shards, resumable
positions, training-only transforms, and streaming equal to in-memory."""

from __future__ import annotations

import csv
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.config.schema import StepEntry
from dlrun.data.base import Arrays
from dlrun.errors import DataError
from dlrun.evaluation import fitting
from dlrun.evaluation.fitting import PreparedRows
from dlrun.preprocess.pipeline import fit_pipeline
from dlrun.training.batches import Batch
from dlrun.training.batches import BatchReader
from dlrun.training.batches import InMemorySource
from dlrun.training.batches import StreamingSource
from dlrun.training.batches import host_tensors
from tests.conftest import tiny_config

CPU = torch.device("cpu")


def source(n: int = 10, batch_size: int = 4, **options: Any) -> InMemorySource:
    tensors = {"x": torch.arange(n, dtype=torch.float32).unsqueeze(1), "y": torch.arange(n)}
    return InMemorySource(tensors, batch_size, CPU, **options)


def order_of(batches: list[Batch]) -> list[int]:
    return [int(v) for b in batches for v in b["y"]]


def test_arrays_keep_their_kind_token_ids_stay_integers() -> None:
    tensors = host_tensors(Arrays(np.array([[1, 2], [3, 4]], dtype=np.int32), np.array([0.5, 1.5]),
                                  image=np.zeros((2, 3, 3), dtype=np.uint8)))  # fmt: skip
    assert tensors["x"].dtype == torch.int64 and tensors["y"].dtype == torch.float32
    assert tensors["image"].dtype == torch.uint8
    batch = next(InMemorySource(tensors, 2, CPU).epoch())
    assert batch["x"].dtype == torch.int64 and batch["image"].dtype == torch.float32
    with pytest.raises(DataError, match="'x' arrays are ragged sequences"):
        host_tensors(Arrays(np.array([[1], [2, 3]], dtype=object), np.zeros(2)))


def test_uint8_images_stay_uint8_and_become_the_same_floats_on_the_device() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    raw = Arrays(images, rng.integers(0, 10, 50))
    steps = [StepEntry.model_validate(s) for s in ("flatten", {"rescale": {"scale": "1/255"}})]
    pipeline = fit_pipeline(steps, raw, np.arange(50))
    kept, deferred = pipeline.transform_deferring(raw)
    assert kept.x.dtype == np.uint8 and kept.x.shape == (50, 784)  # 4x less memory than float32
    assert [type(s).__name__ for s in deferred["x"]] == ["Rescale"]
    on_device = next(InMemorySource(host_tensors(kept), 50, CPU, device_steps=deferred).epoch())
    on_host = pipeline.transform(raw).x
    assert on_device["x"].dtype == torch.float32
    assert torch.equal(on_device["x"], torch.from_numpy(on_host))  # bit for bit


def test_a_step_can_name_the_array_it_transforms() -> None:
    raw = Arrays(np.ones((4, 2)), np.zeros(4), age=np.array([[20.0], [30.0], [40.0], [50.0]]))
    pipeline = fit_pipeline(
        [StepEntry.model_validate({"standardize": {"array": "age"}})], raw, np.arange(4)
    )
    out = pipeline.transform(raw)
    assert np.allclose(out["age"].ravel(), (raw["age"].ravel() - 35) / np.std([20, 30, 40, 50]))
    assert np.array_equal(out.x, raw.x)
    with pytest.raises(DataError, match="no array 'agee' to transform"):
        fit_pipeline(
            [StepEntry.model_validate({"standardize": {"array": "agee"}})], raw, np.arange(4)
        )


def test_shuffled_order_is_seeded_and_every_sample_comes_once_per_epoch() -> None:
    first, again, other = (source(shuffle=True, seed=s) for s in (3, 3, 4))
    orders = [order_of(list(s.epoch())) for s in (first, again, other)]
    assert orders[0] == orders[1] and orders[0] != orders[2]
    assert sorted(orders[0]) == list(range(10))
    assert order_of(list(first.epoch())) != orders[0]  # a new order each epoch
    assert order_of(list(source().epoch())) == list(range(10))  # unshuffled: file order


def test_a_source_restored_mid_epoch_hands_out_the_remaining_batches() -> None:
    uninterrupted = source(shuffle=True, seed=1)
    list(uninterrupted.epoch())
    expected = order_of(list(uninterrupted.epoch()))
    interrupted = source(shuffle=True, seed=1)
    list(interrupted.epoch())
    epoch = interrupted.epoch()
    seen = order_of([next(epoch)])  # one batch, then the process dies
    restored = source(shuffle=True, seed=1)
    restored.load_state_dict(interrupted.state_dict())
    assert seen + order_of(list(restored.epoch())) == expected


def test_shards_split_every_epoch_between_ranks() -> None:
    shards = [source(n=10, shuffle=True, seed=0, rank=r, world_size=2) for r in (0, 1)]
    orders = [order_of(list(s.epoch())) for s in shards]
    assert len(orders[0]) == len(orders[1]) == 5 and shards[0].batches_per_epoch == 2
    assert sorted(orders[0] + orders[1]) == list(range(10))
    uneven = [order_of(list(source(n=7, rank=r, world_size=3).epoch())) for r in range(3)]
    assert [len(o) for o in uneven] == [3, 3, 3] and {i for o in uneven for i in o} == set(
        range(7)
    )


def test_training_transforms_touch_training_batches_only_and_repeat_after_a_restore() -> None:
    def noise(batch: Batch, generator: torch.Generator) -> Batch:
        return {**batch, "x": batch["x"] + torch.rand(batch["x"].shape, generator=generator)}

    train = source(shuffle=True, seed=0, train_transforms=[noise])
    first = list(train.epoch())
    assert not torch.equal(first[0]["x"].squeeze(1), first[0]["y"].float())  # changed
    plain = source(train_transforms=[])
    assert all(torch.equal(b["x"].squeeze(1), b["y"].float()) for b in plain.epoch())
    state = train.state_dict()
    second = list(train.epoch())
    replay = source(shuffle=True, seed=0, train_transforms=[noise])
    replay.load_state_dict(state)
    assert all(torch.equal(a["x"], b["x"]) for a, b in zip(second, replay.epoch(), strict=True))


def test_streaming_source_gives_the_in_memory_batches() -> None:
    rng = np.random.default_rng(0)
    raw = Arrays(rng.normal(size=(37, 3)), rng.integers(0, 2, 37))
    pipeline = fit_pipeline([StepEntry.model_validate("standardize")], raw, np.arange(37))
    prepare = PreparedRows(pipeline, lambda arrays: arrays)
    memory = InMemorySource(host_tensors(prepare(raw)), 8, CPU, shuffle=True, seed=5)
    stream = StreamingSource(BatchReader(raw, prepare), 8, CPU, workers=2, shuffle=True, seed=5)
    for _ in range(2):
        for a, b in zip(memory.epoch(), stream.epoch(), strict=True):
            assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])


def _as_they_are(arrays: Arrays) -> Arrays:
    return arrays


def test_a_batch_reader_survives_the_pickling_of_a_spawned_worker() -> None:
    """A sweep's workers are spawned, so their DataLoader workers are too and receive the
    reader pickled: arrays that refused to unpickle killed each loader at its start (a sweep of
    IMDB with in_memory: false and 2 workers hung for good)."""
    rows = np.empty(6, dtype=object)
    rows[:] = [np.array(r) for r in ([1, 2], [3], [], [4, 1, 4], [0], [2, 2])]
    raw = Arrays(rows, np.arange(6) % 2)
    pipeline = fit_pipeline([StepEntry.model_validate({"multi_hot": 5})], raw, np.arange(6))
    reader = BatchReader(raw, PreparedRows(pipeline, _as_they_are), np.arange(1, 6))
    loaded = ForkingPickler.loads(ForkingPickler.dumps(reader))
    index = torch.tensor([0, 2, 3])
    ours, theirs = reader[index], loaded[index]
    assert torch.equal(ours["x"].to_dense(), theirs["x"].to_dense())
    assert theirs["x"].to_dense().tolist() == [[0, 0, 0, 1, 0], [0, 1, 0, 0, 1], [1, 0, 0, 0, 0]]
    assert torch.equal(ours["y"], theirs["y"])


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


def test_a_streamed_run_equals_the_in_memory_run(tmp_path: Path) -> None:
    """Dropout draws from torch's global generator: streaming must not draw from it too."""
    model = {"layers": [{"dense": {"units": 8, "activation": "relu"}}, {"dropout": 0.5},
                        {"dense": {"units": 3, "activation": "softmax"}}]}  # fmt: skip
    runs = {}
    for in_memory in (True, False):
        data = {"dataset": "iris", "test_fraction": 0.2, "in_memory": in_memory}
        config = tiny_config(data=data, model=model)
        runs[in_memory] = run_experiment(config_from_data(config), tmp_path / str(in_memory))
    assert _metrics(runs[True].run_dir) == _metrics(runs[False].run_dir)
    assert runs[True].results["test"] == runs[False].results["test"]


def test_in_memory_auto_streams_data_larger_than_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    real = fitting.Sources.__call__

    def spy(self: fitting.Sources, *args: Any, **kwargs: Any) -> Any:
        made = real(self, *args, **kwargs)
        built.append(type(made).__name__)
        return made

    monkeypatch.setattr(fitting.Sources, "__call__", spy)
    run_experiment(config_from_data(tiny_config()), tmp_path / "small")
    assert set(built) == {"InMemorySource"}
    built.clear()
    monkeypatch.setattr(fitting, "memory_budget", lambda device: 1000)  # bytes
    run_experiment(config_from_data(tiny_config()), tmp_path / "large")
    assert set(built) == {"StreamingSource"}
