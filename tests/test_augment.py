"""data.augment: Keras ImageDataGenerator geometry on the device, training batches only,
per-sample parameters, exact replay after a resume, and the `dlrun augment` grid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dlrun.api import run_experiment
from dlrun.cli import app
from dlrun.config.load import config_from_data
from dlrun.data.load import load_data
from dlrun.errors import ConfigError
from dlrun.errors import DataError
from dlrun.evaluation.fitting import prepare_fold
from dlrun.preprocess.augment import AffineParams
from dlrun.preprocess.augment import Augment
from dlrun.preprocess.augment import AugmentConfig
from dlrun.preprocess.augment import warp
from dlrun.training.batches import InMemorySource
from tests.conftest import tiny_config

CPU = torch.device("cpu")
CONVNET = [{"conv2d": {"filters": 2, "kernel_size": 3, "activation": "relu"}},
           {"max_pooling2d": 2}, {"flatten": {}}, {"dense": {"units": 1, "activation": "sigmoid"}}]  # fmt: skip


def params(batch: int = 1, **values: float) -> AffineParams:
    """Keras parameters, identity unless given, the same for every sample."""
    given = {"theta": 0.0, "tx": 0.0, "ty": 0.0, "shear": 0.0, "zx": 1.0, "zy": 1.0, **values}
    return AffineParams(**{k: torch.full((batch,), float(v)) for k, v in given.items()})


def images(batch: int = 4, size: int = 8, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, size, size, channels, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fill_mode", ["nearest", "constant", "reflect", "wrap"])
@pytest.mark.parametrize(("interpolation", "order"), [("bilinear", 1), ("nearest", 0)])
def test_one_affine_transform_equals_keras_apply_affine_transform(
    fill_mode: Any, interpolation: Any, order: int
) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    legacy = pytest.importorskip("keras.src.legacy.preprocessing.image")
    image = np.random.default_rng(0).random((9, 9, 2))
    keras_out = legacy.apply_affine_transform(
        image, theta=23, tx=1.3, ty=-0.7, shear=12, zx=0.9, zy=1.15, row_axis=0, col_axis=1,
        channel_axis=2, fill_mode=fill_mode, cval=0.5, order=order,
    )  # fmt: skip
    p = params(theta=23, tx=1.3, ty=-0.7, shear=12, zx=0.9, zy=1.15)
    ours = warp(torch.tensor(image[None], dtype=torch.float32), p, fill_mode, 0.5, interpolation)
    np.testing.assert_allclose(ours[0].numpy(), keras_out, atol=1e-4)


def test_a_horizontal_flip_equals_torch_flip() -> None:
    augment = Augment(AugmentConfig(horizontal_flip=True))
    x = images(batch=16)
    out = augment({"x": x}, torch.Generator().manual_seed(3))["x"]
    _, flipped, _ = augment.sample(16, 8, 8, torch.Generator().manual_seed(3))
    assert 0 < int(flipped.sum()) < 16  # some flipped, some not
    for i in range(16):
        assert torch.equal(out[i], x[i].flip(1) if flipped[i] else x[i])


@pytest.mark.parametrize("k", [1, 3])
def test_a_shift_by_k_pixels_with_fill_nearest_equals_a_hand_shift(k: int) -> None:
    x = images()
    index = torch.clamp(torch.arange(8) + k, max=7)  # output pixel p reads p + k, edge repeated
    across = warp(x, params(4, tx=k), "nearest", interpolation="bilinear")
    assert torch.allclose(across, x[:, :, index], atol=1e-6)
    down = warp(x, params(4, ty=k), "nearest", interpolation="nearest")
    assert torch.equal(down, x[:, index])


def test_a_rotation_by_90_degrees_equals_rot90() -> None:
    x = images(size=7)
    assert torch.equal(warp(x, params(4, theta=90), interpolation="nearest"),
                       torch.rot90(x, 1, dims=(1, 2)))  # fmt: skip
    bilinear = warp(x, params(4, theta=90), interpolation="bilinear")
    assert torch.allclose(bilinear, torch.rot90(x, 1, dims=(1, 2)), atol=1e-5)


def test_every_sample_gets_its_own_parameters_and_a_seed_repeats_the_batch() -> None:
    config = AugmentConfig(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
                           shear_range=11.46, zoom_range=0.2, horizontal_flip=True)  # fmt: skip
    augment = Augment(config)
    p, _, _ = augment.sample(8, 16, 16, torch.Generator().manual_seed(0))
    for values in (p.theta, p.tx, p.ty, p.shear, p.zx, p.zy):
        assert len(set(values.tolist())) == 8
    assert float(p.theta.abs().max()) <= 40 and float(p.tx.abs().max()) <= 0.2 * 16
    assert float(p.zx.min()) >= 0.8 and float(p.zy.max()) <= 1.2
    same = images(batch=1, size=16).expand(8, -1, -1, -1)  # one image, eight times
    out = augment({"x": same}, torch.Generator().manual_seed(1))["x"]
    assert all(not torch.allclose(out[0], out[i]) for i in range(1, 8))
    again = augment({"x": same}, torch.Generator().manual_seed(1))["x"]
    other = augment({"x": same}, torch.Generator().manual_seed(2))["x"]
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_augment_settings_are_checked_when_the_config_is_read() -> None:
    for bad in ({"zoom_range": 1.5}, {"zoom_range": [1.2, 0.8]}, {"rotation_range": -1},
                {"fill_mode": "mirror"}, {"rotate": 10}):  # fmt: skip
        with pytest.raises(ConfigError, match=r"data\.augment"):
            config_from_data(tiny_config(data={"dataset": "iris", "augment": bad}))
    assert AugmentConfig(zoom_range=0.2).zoom_bounds == pytest.approx((0.8, 1.2))
    assert AugmentConfig(zoom_range=[0.5, 1.0]).zoom_bounds == (0.5, 1.0)
    assert not AugmentConfig().active and AugmentConfig(vertical_flip=True).active


def _digits(tmp_path: Path, n: int = 24) -> Path:
    """MNIST-shaped uint8 images (n, 28, 28) with binary labels, in an .npz."""
    rng = np.random.default_rng(0)
    path = tmp_path / "digits.npz"
    np.savez(path, x=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
             y=rng.integers(0, 2, n))  # fmt: skip
    return path


def _conv_config(path: Path, **changes: Any) -> dict[str, Any]:
    settings: dict[str, Any] = dict(
        task="binary", loss="binary_crossentropy", metrics=["accuracy"],
        data={"dataset": "npz", "path": str(path), "test_fraction": 0.25,
              "augment": {"rotation_range": 30, "zoom_range": 0.1, "horizontal_flip": True}},
        preprocess=[{"reshape": [28, 28, 1]}, {"rescale": "1/255"}],
        model={"layers": CONVNET}, optimizer={"name": "rmsprop", "lr": 1e-3},
        train={"epochs": 1, "batch_size": 8, "progress": "none"},
        evaluation={"validation": {"first": 6}},
    )  # fmt: skip
    return tiny_config(**{**settings, **changes})


def test_mnist_shaped_uint8_images_stay_uint8_and_reach_a_conv2d_as_floats(
    tmp_path: Path,
) -> None:
    cfg = config_from_data(_conv_config(_digits(tmp_path)))
    data = load_data(cfg)
    fold = prepare_fold(cfg, data.train, np.arange(6, 18), np.arange(6), CPU, [], 0)
    assert isinstance(fold.train, InMemorySource) and isinstance(fold.val, InMemorySource)
    assert fold.train.tensors["x"].dtype == torch.uint8  # one byte per pixel in memory
    assert tuple(fold.train.tensors["x"].shape) == (12, 28, 28, 1)
    (batch,) = list(fold.val.epoch())
    expected = torch.from_numpy(data.train.x[:6]).unsqueeze(-1).float() * (1 / 255)
    assert batch["x"].dtype == torch.float32 and torch.equal(batch["x"], expected)
    result = run_experiment(cfg, tmp_path / "runs")  # conv2d trains on them, test scored once
    assert result.results["evaluation"]["split"] == "test"


def test_only_training_batches_are_augmented_and_a_restored_source_replays_them(
    tmp_path: Path,
) -> None:
    cfg = config_from_data(_conv_config(_digits(tmp_path)))
    data = load_data(cfg)
    fold = prepare_fold(cfg, data.train, np.arange(6, 18), np.arange(6), CPU, [], 0)
    assert fold.train.train_transforms and fold.val is not None and not fold.val.train_transforms
    scored = fold.sources(data.train, np.arange(6, 18))  # how test and predict rows are read
    assert not scored.train_transforms
    plain = next(scored.epoch())["x"]
    state = fold.train.state_dict()
    first = list(fold.train.epoch())
    rows = torch.cat([b["x"] for b in first])
    assert rows.shape == plain.shape and not torch.allclose(rows.sum(0), plain.sum(0))
    replay = prepare_fold(cfg, data.train, np.arange(6, 18), np.arange(6), CPU, [], 0).train
    replay.load_state_dict(state)
    assert all(torch.equal(a["x"], b["x"]) for a, b in zip(first, replay.epoch(), strict=True))


def test_augmenting_flat_samples_is_refused_before_training(tmp_path: Path) -> None:
    raw = _conv_config(_digits(tmp_path), preprocess=["flatten", {"rescale": "1/255"}],
                       model={"layers": [{"dense": {"units": 1, "activation": "sigmoid"}}]})  # fmt: skip
    cfg = config_from_data(raw)
    data = load_data(cfg)
    with pytest.raises(DataError, match=r"data\.augment: .*shape \[784\].*reshape") as caught:
        prepare_fold(cfg, data.train, np.arange(6, 18), np.arange(6), CPU, [], 0)
    assert "\n" not in str(caught.value)
    with pytest.raises(DataError, match=r"data\.augment: .*shape \[784\].*reshape") as run:
        run_experiment(cfg, tmp_path / "runs")  # refused by the pre-run checks
    assert "\n" not in str(run.value) and not (tmp_path / "runs").exists()


def _folder(root: Path, per_class: int = 5, size: int = 12) -> Path:
    rng = np.random.default_rng(1)
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name[:-1]}.{i}.png")
    return root


def test_dlrun_augment_writes_a_grid_and_refuses_a_config_without_augmentation(
    tmp_path: Path, write_config: Any
) -> None:
    data = {"dataset": "image_folder", "path": str(_folder(tmp_path / "pics")),
            "target_size": [10, 10], "test_fraction": 0.2,
            "augment": {"rotation_range": 40, "horizontal_flip": True}}  # fmt: skip
    raw = _conv_config(tmp_path / "unused.npz", data=data, preprocess=[{"rescale": "1/255"}],
                       evaluation={"validation": {"first": 2}})  # fmt: skip
    path = write_config(raw)  # 6 training images: 10 less 2 test and 2 validation
    grid = tmp_path / "grid.png"
    done = CliRunner().invoke(app, ["augment", str(path), "-o", str(grid), "-n", "3"])
    assert done.exit_code == 0, done.output
    with Image.open(grid) as image:  # 3 rows; the original + 4 augmented columns; 2-px gaps
        assert image.size == (5 * 10 + 4 * 2, 3 * 10 + 2 * 2)
    plain = write_config({**raw, "data": {k: v for k, v in data.items() if k != "augment"}},
                         name="plain.yaml")  # fmt: skip
    refused = CliRunner().invoke(app, ["augment", str(plain), "-o", str(tmp_path / "no.png")])
    assert refused.exit_code == 2 and not (tmp_path / "no.png").exists()
    assert "data.augment" in refused.output and len(refused.output.strip().splitlines()) == 1
