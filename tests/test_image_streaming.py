"""image_folder with data.in_memory: false: images decoded a batch at a time by DataLoader
workers, never all up front, giving exactly the batches of the in-memory path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import dlrun.data.images
from dlrun.api import run_experiment
from dlrun.data.images import ImageFiles
from dlrun.data.images import decoded
from dlrun.data.load import load_data
from dlrun.errors import DataError
from dlrun.evaluation.fitting import prepare_fold
from dlrun.training.batches import InMemorySource
from dlrun.training.batches import StreamingSource
from tests.image_folder import image_folder_config
from tests.image_folder import make_image_folder

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("pets"))


def test_streamed_images_are_decoded_a_batch_at_a_time(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes = []
    read = dlrun.data.images.read_image

    def counted(path: Path, size: tuple[int, int], mode: str) -> np.ndarray:
        decodes.append(path)
        return read(path, size, mode)

    monkeypatch.setattr(dlrun.data.images, "read_image", counted)
    # workers: 0, so decoding is in this process
    cfg = image_folder_config(folder, in_memory=False)
    data = load_data(cfg)
    assert isinstance(data.train.x, ImageFiles) and len(data.train) == 32 and not decodes
    fold = prepare_fold(cfg, data.train, np.arange(8, 32), np.arange(8), CPU, [], 0)
    assert isinstance(fold.train, StreamingSource)
    up_front = len(decodes)
    assert up_front == 2 + 1 + 8  # a row per source (its device steps), a peeked row, a batch
    sizes = [len(batch["y"]) for batch in fold.train.epoch()]
    assert sizes == [8, 8, 8] and len(decodes) == up_front + 24  # each training image once


def test_streamed_images_give_the_in_memory_batches_augmented_alike(folder: Path) -> None:
    streamed, kept = (
        image_folder_config(folder, in_memory=False, workers=2),
        image_folder_config(folder, in_memory=True),
    )
    loaded = load_data(kept)
    assert loaded.train.x.dtype == np.uint8  # in memory: the decoded images, one byte a pixel
    folds = [prepare_fold(cfg, load_data(cfg).train, np.arange(8, 32), np.arange(8), CPU, [], 3)
             for cfg in (streamed, kept)]  # fmt: skip
    assert isinstance(folds[0].train, StreamingSource)
    assert isinstance(folds[1].train, InMemorySource)
    assert folds[1].train.tensors["x"].dtype == torch.uint8
    for _ in range(2):
        pairs = zip(folds[0].train.epoch(), folds[1].train.epoch(), strict=True)
        assert all(torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"]) for a, b in pairs)
    assert folds[0].val is not None and folds[1].val is not None
    for a, b in zip(folds[0].val.epoch(), folds[1].val.epoch(), strict=True):
        assert torch.equal(a["x"], b["x"])


def test_a_streamed_image_folder_trains_and_scores_its_test_split(
    folder: Path, tmp_path: Path
) -> None:
    result = run_experiment(image_folder_config(folder, in_memory=False), tmp_path / "runs")
    assert result.results["evaluation"]["split"] == "test"


def test_a_step_that_learns_from_every_image_is_refused_when_streaming(
    folder: Path, tmp_path: Path
) -> None:
    cfg = image_folder_config(folder, in_memory=False, preprocess=["standardize"])
    data = load_data(cfg)
    with pytest.raises(DataError, match="standardize learns from every training image") as caught:
        prepare_fold(cfg, data.train, np.arange(8, 32), np.arange(8), CPU, [], 0)
    assert "\n" not in str(caught.value)
    with pytest.raises(DataError, match="standardize learns from every training image") as run:
        run_experiment(cfg, tmp_path / "runs")  # refused by the pre-run checks
    assert "\n" not in str(run.value) and not (tmp_path / "runs").exists()


def test_image_files_keep_their_size_through_subsets_and_pickling(folder: Path) -> None:
    files = ImageFiles([str(p) for p in sorted(folder.glob("*/*.jpg"))], (6, 5), "L")
    part = pickle.loads(pickle.dumps(files[[3, 1]]))
    assert isinstance(part, ImageFiles) and part.image_size == (6, 5) and part.color_mode == "L"
    assert part.decode().shape == (2, 6, 5, 1) and part.decode().dtype == np.uint8
    assert decoded(load_data(image_folder_config(folder, in_memory=False)).train).x.shape == (
        32,
        12,
        12,
        3,
    )
