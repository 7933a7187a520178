"""Sparse multi-hot rows: the same numbers as the dense 0/1 matrix, far less memory."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dlrun.api import run_experiment
from dlrun.api import validate_experiment
from dlrun.config.load import config_from_data
from dlrun.config.schema import StepEntry
from dlrun.data.sparse import IndexRows
from dlrun.data.sparse import _column_sums_by_sorting
from dlrun.data.sparse import _gather_on_device
from dlrun.data.sparse import _gather_on_host
from dlrun.data.sparse import csr_tensor
from dlrun.data.sparse import gather_rows
from dlrun.data.sparse import slice_rows
from dlrun.data.sparse import sparse_linear
from dlrun.errors import DataError
from dlrun.evaluation.fitting import task_for
from dlrun.models.build import build_model
from dlrun.preprocess.pipeline import Pipeline
from dlrun.preprocess.pipeline import build_pipeline
from dlrun.training.batches import FieldSpec
from tests.conftest import tiny_config

WIDTH = 50


def sequences(rows: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, WIDTH + 10, rng.integers(0, 30)).tolist() for _ in range(rows)]


def multi_hot(sparse: bool) -> object:
    entry = StepEntry.model_validate({"multi_hot": {"dim": WIDTH, "sparse": sparse}})
    return build_pipeline([entry]).steps[0][1]


def test_sparse_rows_are_the_dense_matrix_and_subset_like_arrays() -> None:
    data = np.empty(40, dtype=object)
    data[:] = sequences(40, 0)
    hot = multi_hot(True).transform(data)  # type: ignore[attr-defined]
    dense = multi_hot(False).transform(data)  # type: ignore[attr-defined]
    assert isinstance(hot, IndexRows) and dense.shape == (40, WIDTH)
    np.testing.assert_array_equal(hot.dense(), dense)
    picked = hot[np.array([7, 3, 3])]
    assert isinstance(picked, IndexRows) and picked.width == WIDTH
    np.testing.assert_array_equal(picked.dense(), dense[[7, 3, 3]])
    again = pickle.loads(pickle.dumps(hot))  # as a spawned DataLoader worker receives rows
    assert isinstance(again, IndexRows) and again.width == WIDTH
    np.testing.assert_array_equal(again.dense(), dense)
    matrix = csr_tensor(hot)
    index = torch.tensor([5, 0, 39, 5])
    assert torch.equal(gather_rows(matrix, index).to_dense(), torch.from_numpy(dense)[index])
    for start, stop in [(0, 40), (13, 27), (39, 40), (20, 20)]:  # scoring batches, in order
        rows = slice_rows(matrix, start, stop)
        assert rows.shape == (stop - start, WIDTH)
        assert torch.equal(rows.to_dense(), torch.from_numpy(dense)[start:stop])


def test_a_dense_layer_reads_sparse_rows_with_the_same_outputs_and_gradients() -> None:
    data = np.empty(64, dtype=object)
    data[:] = sequences(64, 1)
    hot = multi_hot(True).transform(data)  # type: ignore[attr-defined]
    layers = [{"dense": {"units": 8, "activation": "relu"}}, {"dense": 1}]
    from dlrun.config.schema import LayerEntry

    torch.manual_seed(0)
    model = build_model([LayerEntry.model_validate(e) for e in layers], (WIDTH,)).network
    sparse_out = model(csr_tensor(hot))
    sparse_grads = torch.autograd.grad(sparse_out.square().sum(), list(model.parameters()))
    dense_out = model(torch.from_numpy(hot.dense()))
    dense_grads = torch.autograd.grad(dense_out.square().sum(), list(model.parameters()))
    torch.testing.assert_close(sparse_out, dense_out, rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(sparse_grads, dense_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("width", [WIDTH, 70_000])  # column ids past 16 bits too
def test_the_bag_sum_gradient_adds_each_column_in_row_order(width: int) -> None:
    """The weight's gradient equals a scatter of each row's output gradient, bit for bit
    (the same additions in the same order), for empty rows and an empty batch too; so does
    the sorting form other devices use, run here on the CPU."""
    rng = np.random.default_rng(4)
    rows = [np.unique(rng.integers(0, width, rng.integers(0, 40))) for _ in range(64)]
    rows[5] = np.array([0, width - 1])
    for batch in (rows, rows[:0]):
        x = csr_tensor(IndexRows(batch, width))
        kernel = torch.randn(width, 6, requires_grad=True)  # as a first dense layer keeps it
        weight = kernel.t()
        out = sparse_linear(x, weight, None)
        grad = torch.randn(out.shape)
        (weight_grad,) = torch.autograd.grad(out, weight, grad)
        cols = x.col_indices()
        owners = torch.repeat_interleave(torch.arange(len(batch)), x.crow_indices().diff())
        expected = torch.zeros(width, 6).index_add_(0, cols, grad[owners]).t()
        assert torch.equal(weight_grad, expected)
        assert weight_grad.stride() == weight.stride()  # in the kernel's layout: no copy
        sorted_sums = _column_sums_by_sorting(cols, x.crow_indices(), grad, width)
        assert torch.equal(sorted_sums.t(), expected)


def test_rows_are_gathered_alike_on_the_host_and_on_a_device() -> None:
    """The numpy gather (the CPU's) and the torch one (a GPU's, run here on the CPU) pick the
    same rows, with the indices' 32-bit type kept (half of int64's memory)."""
    rng = np.random.default_rng(5)
    rows = [np.unique(rng.integers(0, WIDTH, rng.integers(0, 30))) for _ in range(40)]
    matrix = csr_tensor(IndexRows(rows, WIDTH))
    assert matrix.crow_indices().dtype == matrix.col_indices().dtype == torch.int32
    index = torch.tensor([39, 0, 7, 7, 12])
    ours = _gather_on_host(matrix.crow_indices(), matrix.col_indices(), index)
    theirs = _gather_on_device(matrix.crow_indices(), matrix.col_indices(), index)
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == torch.int32 and torch.equal(a, b)
    picked = IndexRows([rows[i] for i in index.tolist()], WIDTH)
    assert torch.equal(gather_rows(matrix, index).to_dense(), torch.from_numpy(picked.dense()))


def test_a_first_dense_layer_on_sparse_rows_keeps_its_kernel_as_keras_does() -> None:
    """On sparse rows its weight is its kernel's transposed view (the bag sum then copies
    nothing); on dense inputs it keeps torch's layout; the values are the same either way."""
    cfg = config_from_data(tiny_config(
        task="binary", model={"layers": [{"dense": 4}, {"dense": {"units": 1, "activation": "sigmoid"}}]},
        loss="binary_crossentropy",
    ))  # fmt: skip
    weights = {}
    for sparse in (True, False):
        fields = {
            "x": FieldSpec((WIDTH,), torch.float32, sparse),
            "y": FieldSpec((1,), torch.float32),
        }
        task = task_for(cfg)
        torch.manual_seed(0)
        task.build(fields, torch.device("cpu"))
        weights[sparse] = next(task.models["model"].network.parameters())
        assert weights[sparse].shape == (4, WIDTH)
        assert weights[sparse].t().is_contiguous() == sparse
    assert torch.equal(weights[True], weights[False])
    restored = FieldSpec.from_dict(FieldSpec((WIDTH,), torch.float32, True).to_dict())
    assert (
        restored.sparse and FieldSpec.from_dict({"shape": [3], "dtype": "float32"}).sparse is False
    )


def reviews(path: Path) -> Path:
    """A Keras-format imdb.npz whose labels follow two 'sentiment' words."""

    def ragged(rows: list[list[int]]) -> np.ndarray:
        array = np.empty(len(rows), dtype=object)
        array[:] = rows
        return array

    def labels(rows: list[list[int]]) -> np.ndarray:
        return np.array([int(row.count(7) > row.count(8)) for row in rows])

    train, test = sequences(300, 2), sequences(100, 3)
    np.savez(path / "imdb.npz", x_train=ragged(train), y_train=labels(train),
             x_test=ragged(test), y_test=labels(test))  # fmt: skip
    return path


@pytest.mark.parametrize("protocol", ["holdout", "kfold"])
def test_training_on_sparse_rows_gives_the_dense_runs_numbers(
    tmp_path: Path, protocol: str
) -> None:
    folder = reviews(tmp_path)
    runs = {}
    for sparse in (True, False):
        evaluation = (
            {"protocol": "kfold", "k": 2, "parallel_folds": True}
            if protocol == "kfold"
            else {"validation": {"fraction": 0.3}}
        )
        cfg = tiny_config(
            task="binary", data={"dataset": "imdb", "path": str(folder), "num_words": WIDTH},
            preprocess=[{"multi_hot": {"dim": WIDTH, "sparse": sparse}}],
            model={"layers": [{"dense": {"units": 8, "activation": "relu"}},
                              {"dense": {"units": 1, "activation": "sigmoid"}}]},
            loss="binary_crossentropy", optimizer="rmsprop", evaluation=evaluation,
            train={"epochs": 4, "batch_size": 32, "progress": "none"},
        )  # fmt: skip
        runs[sparse] = run_experiment(config_from_data(cfg), tmp_path / str(sparse))
    ours, theirs = runs[True].results, runs[False].results
    if protocol == "kfold":  # sparse inputs train fold by fold, the dense ones stacked
        a, b = ours["cross_validation"]["metrics"], theirs["cross_validation"]["metrics"]
        assert a["accuracy"]["values"] == pytest.approx(b["accuracy"]["values"], abs=1e-6)
        return
    assert ours["test"] == pytest.approx(theirs["test"], rel=1e-5)
    rows = [
        [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
        for run in (runs[True], runs[False])
    ]
    for mine, dense in zip(*rows, strict=True):
        assert mine["loss"] == pytest.approx(dense["loss"], rel=1e-5)
        assert mine["val_loss"] == pytest.approx(dense["val_loss"], rel=1e-5)


def test_sparse_rows_stream_through_worker_processes(tmp_path: Path) -> None:
    folder = reviews(tmp_path)
    tests = []
    for in_memory in (True, False):
        cfg = tiny_config(
            task="binary",
            data={"dataset": "imdb", "path": str(folder), "num_words": WIDTH, "in_memory": in_memory},
            preprocess=[{"multi_hot": WIDTH}],
            model={"layers": [{"dense": 8}, {"dense": {"units": 1, "activation": "sigmoid"}}]},
            loss="binary_crossentropy", train={"epochs": 2, "batch_size": 32, "progress": "none"},
        )  # fmt: skip
        tests.append(
            run_experiment(config_from_data(cfg), tmp_path / str(in_memory)).results["test"]
        )
    assert tests[0] == tests[1]


def test_a_first_layer_that_cannot_read_sparse_rows_is_named(tmp_path: Path) -> None:
    from dlrun.errors import DataError

    cfg = tiny_config(
        task="binary",
        data={"dataset": "imdb", "path": str(reviews(tmp_path)), "num_words": WIDTH},
        preprocess=[{"multi_hot": WIDTH}], loss="binary_crossentropy",
        model={"layers": [{"dropout": 0.5}, {"dense": {"units": 1, "activation": "sigmoid"}}]},
    )  # fmt: skip
    with pytest.raises(
        DataError, match=r"sparse multi-hot rows, which the first layer \(dropout\) cannot"
    ):
        run_experiment(config_from_data(cfg), tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_predict_reads_word_ids_by_position_and_refuses_missing_ones(tmp_path: Path) -> None:
    cfg = tiny_config(
        task="binary", data={"dataset": "imdb", "path": str(reviews(tmp_path)), "num_words": WIDTH},
        preprocess=[{"multi_hot": {"dim": WIDTH}}],
        model={"layers": [{"dense": {"units": 1, "activation": "sigmoid"}}]},
        loss="binary_crossentropy", train={"epochs": 1, "batch_size": 32, "progress": "none"},
    )  # fmt: skip
    run = run_experiment(config_from_data(cfg), tmp_path / "runs").run_dir
    given = tmp_path / "ids.csv"
    out = tmp_path / "predictions.csv"
    predict = [sys.executable, "-W", "error::RuntimeWarning", "-m", "dlrun", "predict", str(run),
               "-i", str(given), "-o", str(out), "--no-header"]  # fmt: skip
    given.write_text("1,14,3\n7,2,9\n")
    done = subprocess.run(predict, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 3  # the header and one row per review
    out.unlink()
    given.write_text("1,14,3\n7,,9\n")  # an empty cell: a missing id
    done = subprocess.run(predict, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: multi_hot acts on index sequences of whole numbers; got a missing value (NaN)"
    )
    assert not out.exists()
    done = subprocess.run(predict[:-1], capture_output=True, text=True)  # without --no-header
    assert done.returncode == 2 and done.stderr.strip().endswith(
        "had no column names to match a header against; pass --no-header to read the columns "
        "by position (and remove the file's header row, if it has one)"
    )


def test_validate_without_data_knows_that_multi_hot_rows_are_sparse() -> None:
    def pipeline(*entries: object) -> Pipeline:
        return build_pipeline([StepEntry.model_validate(entry) for entry in entries])

    hot = {"multi_hot": {"dim": WIDTH}}
    assert pipeline(hot).ends_sparse("x") and pipeline(hot, "one_hot").ends_sparse("x")
    assert not pipeline(hot, {"rescale": {"scale": 0.5}}).ends_sparse("x")  # the 0/1 matrix
    assert not pipeline({"multi_hot": {"dim": WIDTH, "sparse": False}}).ends_sparse("x")
    for sparse in (True, False):
        cfg = config_from_data(tiny_config(
            task="binary", data={"dataset": "imdb", "num_words": WIDTH},
            preprocess=[{"multi_hot": {"dim": WIDTH, "sparse": sparse}}],
            model={"input_shape": [WIDTH], "layers": [
                {"dropout": 0.5}, {"dense": {"units": 1, "activation": "sigmoid"}}]},
            loss="binary_crossentropy",
        ))  # fmt: skip
        if sparse:
            with pytest.raises(
                DataError, match=r"sparse multi-hot rows, which the first layer \(dropout\)"
            ):
                validate_experiment(cfg, use_data=False)
        else:
            assert validate_experiment(cfg, use_data=False).skipped_data == "--no-data"
