"""Training on CUDA gives the CPU's numbers: every book model's forward and gradients, the sparse
multi-hot kernels, a whole run and vectorized K-fold; streamed, augmented images train there,
and training steps queue work without waiting for the GPU.

These run only where CUDA is available (CI has none; `bench/gpu_check.sh` runs them on a GPU
machine). ``DLRUN_TEST_DEVICE=cpu`` runs the same code CPU against CPU: that only checks the
tests' own code on a machine without a GPU, since both sides are then the same computation.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.data.sparse import IndexRows
from dlrun.data.sparse import csr_tensor
from dlrun.data.sparse import gather_rows
from dlrun.data.sparse import sparse_linear
from dlrun.evaluation.fitting import task_for
from dlrun.models.build import build_model
from dlrun.training.batches import InMemorySource
from tests.conftest import tiny_config
from tests.image_folder import image_folder_config
from tests.image_folder import make_image_folder
from tests.test_book_models import BOOK_MODELS
from tests.test_book_models import book_config

DEVICE = torch.device(os.environ.get("DLRUN_TEST_DEVICE", "cuda"))
CPU = torch.device("cpu")

pytestmark = pytest.mark.skipif(
    DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device"
)


@pytest.fixture(autouse=True)
def full_float32() -> Iterator[None]:
    """Plain float32 products on the GPU (no TF32), so CPU and GPU differ only in the order of
    additions."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def assert_close(ours: torch.Tensor, reference: torch.Tensor, what: str) -> None:
    """Equal up to float32 rounding, relative to the reference's largest value."""
    gap = (ours.detach().to(CPU) - reference.detach()).abs().max().item()
    scale = reference.detach().abs().max().item()
    assert gap <= 1e-4 * scale + 1e-6, f"{what}: differs by {gap:.3g} (largest value {scale:.3g})"


def book_input(name: str) -> torch.Tensor:
    input_shape, layers, *_ = BOOK_MODELS[name]
    generator = torch.Generator().manual_seed(0)
    if "embedding" in layers[0]:
        vocabulary = layers[0]["embedding"]["input_dim"]
        return torch.randint(0, vocabulary, (4, *input_shape), generator=generator)
    return torch.rand(4, *input_shape, generator=generator)


@pytest.mark.parametrize("name", sorted(BOOK_MODELS))
def test_every_book_model_computes_the_cpu_outputs_and_gradients(name: str) -> None:
    cfg = config_from_data(book_config(name))
    torch.manual_seed(0)
    network = build_model(cfg.model.layers, tuple(BOOK_MODELS[name][0])).network
    for module in network.modules():  # training mode (cuDNN's recurrent backward needs it),
        if isinstance(module, torch.nn.Dropout):  # without the devices' different masks
            module.p = 0.0
    on_device = copy.deepcopy(network).to(DEVICE)
    x = book_input(name)
    outputs = []
    for net, inputs in ((network, x), (on_device, x.to(DEVICE))):
        out = net(inputs)
        out.square().sum().backward()
        outputs.append(out)
    assert outputs[1].device.type == DEVICE.type
    assert_close(outputs[1], outputs[0], f"{name} output")
    for (param, ours), theirs in zip(
        on_device.named_parameters(), network.parameters(), strict=True
    ):
        if theirs.grad is not None:
            assert ours.grad is not None, param
            assert_close(ours.grad, theirs.grad, f"{name} gradient of {param}")


def test_sparse_rows_give_the_dense_product_and_gradients() -> None:
    generator = torch.Generator().manual_seed(0)
    dense = (torch.rand(64, 500, generator=generator) < 0.05).float()
    rows = IndexRows([row.nonzero().flatten().numpy() for row in dense], 500)
    pick = torch.randperm(64, generator=generator)[:40]
    weight = torch.randn(16, 500, generator=generator)
    bias = torch.randn(16, generator=generator)
    theirs = [weight.clone().requires_grad_(), bias.clone().requires_grad_()]
    reference = (dense[pick] @ theirs[0].T + theirs[1]).square().sum()
    reference.backward()
    ours = [weight.to(DEVICE).requires_grad_(), bias.to(DEVICE).requires_grad_()]
    batch = gather_rows(csr_tensor(rows).to(DEVICE), pick.to(DEVICE))
    loss = sparse_linear(batch, ours[0], ours[1]).square().sum()
    loss.backward()
    assert_close(loss, reference, "bag-sum loss")
    for name, mine, reference_param in zip(("weight", "bias"), ours, theirs, strict=True):
        assert mine.grad is not None and reference_param.grad is not None
        assert_close(mine.grad, reference_param.grad, f"bag-sum {name} gradient")


def on(device: torch.device, config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "train": {**config["train"], "device": str(device)}}


def run_on_both(config: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    return [
        run_experiment(config_from_data(on(device, config)), tmp_path / device.type).results
        for device in (CPU, DEVICE)
    ]


def test_a_run_scores_alike_on_both_devices(tmp_path: Path) -> None:
    """The iris run without dropout: the same splits, weights and batches, so the same test
    loss up to float32 rounding and the same accuracy but for a rounding-close sample."""
    config = tiny_config(train={"epochs": 5, "batch_size": 16, "progress": "none"})
    cpu, gpu = run_on_both(config, tmp_path)
    assert gpu["device"].startswith(DEVICE.type)
    assert set(gpu["test"]) == set(cpu["test"]) == {"loss", "accuracy"}
    assert abs(gpu["test"]["loss"] - cpu["test"]["loss"]) <= 1e-4 * cpu["test"]["loss"]
    assert abs(gpu["test"]["accuracy"] - cpu["test"]["accuracy"]) <= 1 / 30 + 1e-6  # 30 rows


def test_vectorized_folds_score_alike_on_both_devices(tmp_path: Path) -> None:
    config = tiny_config(
        task="regression", loss="mse", metrics=["mae"], preprocess=["standardize"],
        data={"dataset": "regression", "n_samples": 120, "n_features": 5, "noise": 5.0},
        model={"layers": [{"dense": {"units": 8, "activation": "relu"}}, {"dense": 1}]},
        evaluation={"protocol": "kfold", "k": 3, "parallel_folds": True},
        train={"epochs": 4, "batch_size": 8, "progress": "none"},
    )  # fmt: skip
    cpu, gpu = run_on_both(config, tmp_path)
    assert gpu["parallel_folds"] is True
    assert len(gpu["folds"]) == 3
    for ours, theirs in zip(gpu["folds"], cpu["folds"], strict=True):
        for name in ("loss", "mae"):
            assert abs(ours[name] - theirs[name]) <= 1e-4 * abs(theirs[name]), (ours, theirs)


def test_streamed_augmented_images_train_on_the_device(tmp_path: Path) -> None:
    """DataLoader workers hand pinned batches over and augmentation draws on the device (from
    the device's own generator, so the scores are not the CPU's): two epochs of finite losses
    and a scored test split."""
    folder = make_image_folder(tmp_path / "pets")
    cfg = image_folder_config(
        folder, in_memory=False, workers=2,
        train={"epochs": 2, "batch_size": 8, "progress": "none", "device": str(DEVICE)},
    )  # fmt: skip
    result = run_experiment(cfg, tmp_path / "runs")
    assert result.results["device"].startswith(DEVICE.type)
    rows = [
        json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    fit = [row for row in rows if row.get("phase") == "fit"]
    assert [row["epoch"] for row in fit] == [1, 2]
    assert all(math.isfinite(row["loss"]) and math.isfinite(row["val_loss"]) for row in fit)
    assert result.results["evaluation"]["split"] == "test"
    assert math.isfinite(result.results["test"]["loss"])


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam", "sgd"])
def test_training_steps_never_wait_for_the_gpu(optimizer: str) -> None:
    """After an epoch's first batch, steps only queue GPU work: any call that waits for the
    device (a host copy, reading a value) raises under torch's sync debug mode."""
    if DEVICE.type != "cuda":
        pytest.skip("only a GPU runs ahead of the host")
    cfg = config_from_data(tiny_config(optimizer={"name": optimizer}))
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, 4, generator=generator), torch.eye(3)[torch.arange(256) % 3]
    source = InMemorySource({"x": x, "y": y}, 16, DEVICE, shuffle=True)
    task = task_for(cfg)
    task.build(source.fields(), DEVICE)
    batches = source.epoch()
    task.train_step(next(batches))  # the epoch's indices move to the GPU here, once
    torch.cuda.set_sync_debug_mode("error")
    try:
        results = [task.train_step(batch) for batch in batches]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(results) == 15
