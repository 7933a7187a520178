"""image_folder, the Dogs-vs-Cats subset builder and GloVe embedding matrices, on generated files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.config.load import config_from_data
from dlrun.data.glove import embedding_matrix
from dlrun.data.images import build_subset
from dlrun.data.load import load_data
from dlrun.errors import DataError
from tests.conftest import tiny_config

BINARY = {"task": "binary", "loss": "binary_crossentropy", "preprocess": ["flatten"],
          "model": {"layers": [{"dense": {"units": 1, "activation": "sigmoid"}}]}}  # fmt: skip


def _image(path: Path, value: int, size: tuple[int, int] = (20, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size[1], size[0]), (value, 255 - value, 7)).save(path)


def test_image_folder_keeps_train_validation_test_and_resizes(tmp_path: Path) -> None:
    root = tmp_path / "small"
    for split, count in (("train", 3), ("validation", 2), ("test", 1)):
        for cls, value in (("cats", 10), ("dogs", 200)):
            for i in range(count):
                _image(root / split / cls / f"{cls[:-1]}.{i}.png", value)
    data = load_data(config_from_data(tiny_config(data={"dataset": "image_folder", "path": str(root),
                                                        "target_size": [8, 6]}, **BINARY)))  # fmt: skip
    assert data.train.x.shape == (10, 8, 6, 3) and data.train.x.dtype == np.uint8
    assert data.class_names == ["cats", "dogs"]
    assert data.train.y.tolist() == [0, 0, 1, 1, 0, 0, 0, 1, 1, 1]  # 4 validation images first
    assert data.train.x[0, 0, 0].tolist() == [10, 245, 7]
    assert data.test_split is not None and data.test_split.unseal().y.tolist() == [0, 1]
    assert "4 validation images first" in data.description


def test_image_folder_without_split_folders_splits_off_a_test_part(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        for i in range(5):
            _image(tmp_path / cls / f"{i}.jpg", 50)
    (tmp_path / "a" / "notes.txt").write_text("ignored")
    data = load_data(config_from_data(tiny_config(
        data={"dataset": "image_folder", "path": str(tmp_path), "target_size": [4, 4], "color": "grayscale",
              "test_fraction": 0.2}, **BINARY)))  # fmt: skip
    assert data.train.x.shape == (8, 4, 4, 1) and len(data.test_split or []) == 2


def test_image_folder_reports_a_broken_image(tmp_path: Path) -> None:
    _image(tmp_path / "a" / "good.png", 1)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot read image .*bad\.jpg"):
        load_data(
            config_from_data(
                tiny_config(data={"dataset": "image_folder", "path": str(tmp_path)}, **BINARY)
            )
        )


def test_subset_builds_the_dlwp_5_2_split(tmp_path: Path) -> None:
    kaggle = tmp_path / "train"
    for cls in ("cat", "dog"):
        for i in range(8):
            _image(kaggle / f"{cls}.{i}.jpg", i)
    target = tmp_path / "cats_and_dogs_small"
    result = CliRunner().invoke(app, ["datasets", "subset", str(kaggle), str(target),
                                      "--train", "4", "--validation", "2", "--test", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    names = lambda split, cls: sorted(p.name for p in (target / split / cls).iterdir())  # noqa: E731
    assert names("train", "cats") == [f"cat.{i}.jpg" for i in range(4)]
    assert names("validation", "dogs") == ["dog.4.jpg", "dog.5.jpg"]
    assert names("test", "cats") == ["cat.6.jpg", "cat.7.jpg"]
    with pytest.raises(DataError, match="already exists"):
        build_subset(kaggle, target, {"train": 1})
    with pytest.raises(DataError, match=r"lacks cat\.8\.jpg \(9 per class needed\)"):
        build_subset(kaggle, tmp_path / "other", {"train": 9})
    assert not (tmp_path / "other").exists()


GLOVE_TEXT = "the 0.1 0.2 0.3\ngood 1.0 1.0 1.0\nfilm -1.0 0.5 2.0\nrare 9 9 9\n"


def test_embedding_matrix_rows_follow_the_word_index(tmp_path: Path) -> None:
    path = tmp_path / "glove.6B.3d.txt"
    path.write_text(GLOVE_TEXT)
    index = {"the": 1, "film": 2, "unseen": 3, "rare": 10}
    result = embedding_matrix(path, 3, index, num_words=7, index_from=3)
    assert result.matrix.shape == (7, 3)
    assert result.matrix[4].tolist() == pytest.approx([0.1, 0.2, 0.3])  # "the": rank 1 + 3
    assert result.matrix[5].tolist() == [-1.0, 0.5, 2.0]
    assert not result.matrix[6].any() and not result.matrix[:4].any()  # unseen word, reserved rows
    assert (result.found, result.rows) == (2, 3)  # "rare" (row 13) is beyond num_words
    with zipfile.ZipFile(tmp_path / "glove.6B.zip", "w") as archive:
        archive.writestr("glove.6B.3d.txt", GLOVE_TEXT)
    zipped = embedding_matrix(tmp_path / "glove.6B.zip", 3, index, 7, 3)
    assert np.array_equal(zipped.matrix, result.matrix)
    with pytest.raises(DataError, match="line 1: 3 values, expected 4"):
        embedding_matrix(path, 4, index, 7, 3)


def test_embed_cli_writes_the_matrix(tmp_path: Path) -> None:
    (tmp_path / "glove.6B.3d.txt").write_text(GLOVE_TEXT)
    (tmp_path / "index.json").write_text(json.dumps({"the": 1, "good": 2}))
    out = tmp_path / "m.npy"
    result = CliRunner().invoke(app, ["datasets", "embed", "--path", str(tmp_path / "glove.6B.3d.txt"),
                                      "--word-index", str(tmp_path / "index.json"), "--dim", "3",
                                      "--num-words", "6", "-o", str(out)], terminal_width=200)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "vectors for 2 of 2 words" in result.output
    assert np.load(out)[5].tolist() == [1.0, 1.0, 1.0]
