"""The autoencoder task: trained on its own inputs, it reports reconstructions and the code
space, predicts codes, and refuses a model that cannot give its inputs back."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.data.load import load_data
from dlrun.errors import ConfigError
from dlrun.errors import DataError
from dlrun.evaluation.scoring import Evaluation
from dlrun.reporting import plots
from dlrun.reporting.analyses import Scored
from dlrun.reporting.analyses import principal_components
from dlrun.reporting.analyses import reconstructions
from dlrun.reporting.plots import as_image
from dlrun.reporting.rundir import RunDirectory
from dlrun.reuse import load_run
from dlrun.reuse import predict_file
from dlrun.tasks.autoencoder import _first_of_each_class
from dlrun.training.loop import collect
from dlrun.training.metrics import Reconstructions
from tests.conftest import tiny_config
from tests.test_text import archive


def digits_autoencoder(**changes: Any) -> dict[str, Any]:
    """sklearn's 8x8 digits squeezed through two numbers (Beginners ch. 7, in miniature)."""
    config = tiny_config(
        task={"name": "autoencoder", "code_layer": 1},
        data={"dataset": "digits"},
        preprocess=[{"rescale": {"scale": 1 / 16}}],
        model={"layers": [{"dense": {"units": 16, "activation": "relu"}},
                          {"dense": {"units": 2, "activation": "tanh"}},
                          {"dense": {"units": 16, "activation": "relu"}},
                          {"dense": {"units": 64, "activation": "sigmoid"}}]},
        loss="binary_crossentropy", optimizer={"name": "adam", "lr": 0.01}, metrics=["mse"],
        train={"epochs": 5, "batch_size": 64, "progress": "none"},
        evaluation={"validation": {"count": 300}},
    )  # fmt: skip
    config.update(changes)
    return config


def test_autoencoder_learns_its_inputs_and_draws_codes(tmp_path: Path) -> None:
    result = run_experiment(config_from_data(digits_autoencoder()), tmp_path)
    run = result.run_dir
    rows = (run / "metrics.csv").read_text().splitlines()
    first, last = (dict(zip(rows[0].split(","), r.split(","), strict=True)) for r in rows[1::4])
    assert float(last["val_loss"]) < float(first["val_loss"])  # it learns to reconstruct
    assert set(result.results["test"]) == {"loss", "mse"}
    for png in ("reconstructions.png", "code_space.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in (run / "report.md").read_text()
    assert result.results["baselines"] == []  # nothing to guess from: no targets of its own

    loaded = load_run(run)
    test = load_data(config_from_data(digits_autoencoder())).test_split
    assert test is not None
    source = loaded.fitted.sources(test.unseal())
    predictions = loaded.fitted.task.predictions(collect(loaded.fitted.task, source))
    assert isinstance(predictions, Reconstructions)
    assert predictions.codes is not None and predictions.codes.shape == (len(test), 2)
    assert predictions.classes is not None and set(predictions.classes.tolist()) == set(range(10))
    scaled = test.unseal().x / 16
    np.testing.assert_allclose(predictions.y_true.numpy(), scaled, rtol=1e-6)
    assert predictions.y_pred.min() >= 0 and predictions.y_pred.max() <= 1  # sigmoid outputs


def test_predict_writes_each_samples_code(tmp_path: Path) -> None:
    run = run_experiment(config_from_data(digits_autoencoder()), tmp_path).run_dir
    x = load_data(config_from_data(digits_autoencoder())).train.x[:5]
    np.savez(tmp_path / "x.npz", x=x)
    assert predict_file(run, tmp_path / "x.npz", tmp_path / "codes.csv") == 5
    with (tmp_path / "codes.csv").open() as f:
        written = list(csv.reader(f))
    assert written[0] == ["code_0", "code_1"]
    network = load_run(run).fitted.task.models["model"].network.eval()
    with torch.no_grad():
        expected = network[:2](torch.as_tensor(x / 16, dtype=torch.float32))
    np.testing.assert_allclose(np.array(written[1:], dtype=float), expected.numpy(), rtol=1e-5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": {"name": "autoencoder", "code_layer": 3}},
         r"task\.code_layer: is 3, but the code must come before the last layer, which gives "
         r"the reconstruction \(model\.layers holds 4\)"),
        ({"task": "autoencoder"}, r"task\.code_layer"),
        ({"loss": "sparse_categorical_crossentropy"},
         r"loss: sparse_categorical_crossentropy scores class labels; an autoencoder's targets "
         r"are its inputs"),
    ],
)  # fmt: skip
def test_config_mistakes_are_one_line(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_data(digits_autoencoder(**changes))


def test_a_model_that_cannot_give_its_inputs_back_is_refused(tmp_path: Path) -> None:
    layers = [{"dense": {"units": 2, "activation": "tanh"}},
              {"dense": {"units": 10, "activation": "sigmoid"}}]  # fmt: skip
    cfg = config_from_data(digits_autoencoder(task={"name": "autoencoder", "code_layer": 0},
                                              model={"layers": layers}))  # fmt: skip
    with pytest.raises(ConfigError, match=r"model\.layers\[1\]\.dense\.units: the model outputs "
                       r"shape \[10\] per sample, but an autoencoder gives back its inputs, "
                       r"shaped \[64\]"):  # fmt: skip
        run_experiment(cfg, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before a run directory exists


@pytest.mark.parametrize(
    ("shape", "drawn"),
    [((28, 28), (28, 28)), ((28, 28, 1), (28, 28)), ((32, 32, 3), (32, 32, 3)),
     ((784,), (28, 28)), ((3072,), (32, 32, 3)), ((64,), (8, 8)),
     ((4,), (1, 4)), ((9,), (1, 9)), ((12,), (1, 12)), ((30,), (1, 30))],
)  # fmt: skip
def test_samples_are_drawn_as_images_only_when_they_are_images(
    shape: tuple[int, ...], drawn: tuple[int, ...]
) -> None:
    """A table row of 4, 9 or 12 values is no picture, however square its size."""
    assert as_image(np.zeros(shape)).shape == drawn


def _drawn(monkeypatch: pytest.MonkeyPatch, function: Any, *args: Any) -> Any:
    """The figure ``function`` would save."""
    saved: list[Any] = []
    monkeypatch.setattr(plots, "_save", lambda fig, target: saved.append(fig))
    function(*args, Path("unused.png"))
    return saved[0]


def test_code_space_colours_each_class_or_the_labels_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    points = np.random.default_rng(0).normal(size=(60, 2))
    twelve = (np.arange(60) % 12)[:, None]
    names = [f"class {i}" for i in range(12)]
    fig = _drawn(monkeypatch, plots.code_space_plot, points, twelve, names, "code", "t")
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == names  # one entry each, in order
    colours = {tuple(h.get_color()) for h in legend.legend_handles}
    assert len(colours) == 12  # tab20: no two classes share a colour
    floats = np.linspace(0, 1, 60)[:, None]  # a regression target: a colour scale
    fig = _drawn(monkeypatch, plots.code_space_plot, points, floats, None, "code", "t")
    assert fig.axes[0].get_legend() is None and len(fig.axes) == 2  # the plot and its colorbar


def test_reconstructions_share_their_inputs_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    """A faint reconstruction stays faint: each pair is drawn on the input's range."""
    originals = np.stack([np.linspace(0, 1, 64), np.linspace(0, 0.5, 64)])
    faint = np.full((2, 64), 0.3) + np.linspace(0, 0.01, 64)
    fig = _drawn(monkeypatch, plots.reconstructions_plot, originals, faint, "t")
    limits = [ax.images[0].get_clim() for ax in fig.axes]
    assert limits == [(0.0, 1.0), (0.0, 0.5), (0.0, 1.0), (0.0, 0.5)]  # top row, then bottom


def test_sparse_multi_hot_rows_are_reconstructed(tmp_path: Path) -> None:
    """Multi-hot rows kept as indices (the default) are the targets as 0/1 rows; before, the
    loss raised a RuntimeError on the sparse tensor."""
    archive(tmp_path)
    cfg = digits_autoencoder(
        data={"dataset": "imdb", "source": "raw", "path": str(tmp_path), "num_words": 14},
        preprocess=[{"multi_hot": 14}], metrics=["mae"],
        model={"layers": [{"dense": {"units": 3, "activation": "tanh"}},
                          {"dense": {"units": 14, "activation": "sigmoid"}}]},
        task={"name": "autoencoder", "code_layer": 0}, evaluation={"validation": {"count": 20}},
    )  # fmt: skip
    result = run_experiment(config_from_data(cfg), tmp_path / "runs")
    assert np.isfinite(result.results["test"]["loss"]) and 0 < result.results["test"]["mae"] < 1


def test_one_sample_codes_still_have_two_axes() -> None:
    """One sample spans no direction: its projection is padded, not a single column."""
    assert principal_components(np.ones((1, 5)), 2).shape == (1, 2)


def test_principal_components_keep_the_most_variance() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 2)) @ np.array([[3.0, 0, 0, 1], [0, 1.0, 0, 0]])
    projected = principal_components(points + 5, 2)
    np.testing.assert_allclose(projected.mean(axis=0), 0, atol=1e-9)
    variances = projected.var(axis=0)
    assert variances[0] > variances[1] > 0
    total = ((points - points.mean(axis=0)) ** 2).sum(axis=1).mean()
    assert variances.sum() == pytest.approx(total)  # the data lie in a plane: all of it kept


@pytest.mark.parametrize("keys", [("x",), ("x_train", "x_test")])
def test_inputs_without_labels_train_an_autoencoder(keys: tuple[str, ...], tmp_path: Path) -> None:
    """An archive of inputs only: before, the npz source demanded a 'y' array of every task."""
    x = load_data(config_from_data(digits_autoencoder())).train.x.astype(np.float32)
    parts = {"x": x} if keys == ("x",) else {"x_train": x[:1000], "x_test": x[1000:1100]}
    np.savez(tmp_path / "inputs.npz", **parts)  # type: ignore[arg-type]  # stubs: allow_pickle
    data = {"dataset": "npz", "path": str(tmp_path / "inputs.npz")}
    result = run_experiment(config_from_data(digits_autoencoder(data=data)), tmp_path / "runs")
    assert np.isfinite(result.results["test"]["loss"])
    assert (result.run_dir / "code_space.png").is_file()  # one colour: there are no labels
    supervised = tiny_config(data=data, preprocess=["standardize", "one_hot"])
    refusal = (
        r"has no array 'y' \(it has: x\)"
        if keys == ("x",)
        else r"has 'x_train' but no y_train, y_test"
    )
    with pytest.raises(DataError, match=refusal):
        run_experiment(config_from_data(supervised), tmp_path / "refused")


def test_reconstructions_show_the_first_of_each_label_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = digits_autoencoder(task={"name": "autoencoder", "code_layer": 1, "shown": "per_class"},
                                train={"epochs": 1, "batch_size": 64, "progress": "none"})  # fmt: skip
    loaded = load_run(run_experiment(config_from_data(config), tmp_path).run_dir)
    test = load_data(config_from_data(config)).test_split
    assert test is not None
    results = collect(loaded.fitted.task, loaded.fitted.sources(test.unseal()))
    scored = loaded.fitted.task.scored_predictions(results)
    assert isinstance(scored, Reconstructions) and scored.shown is not None
    labels = test.unseal().y.tolist()
    assert list(scored.shown) == [labels.index(digit) for digit in range(10)]
    plain = loaded.fitted.task.predictions(results)
    assert isinstance(plain, Reconstructions) and plain.shown is None  # an epoch draws nothing

    drawn: list[np.ndarray] = []
    monkeypatch.setattr(
        plots, "reconstructions_plot", lambda originals, *_, **__: drawn.append(originals)
    )
    (tmp_path / "figure").mkdir()
    scored_split = Evaluation("test", {}, scored, len(test))
    reconstructions(RunDirectory(tmp_path / "figure"), Scored("t", scored_split, None))
    np.testing.assert_array_equal(drawn[0], scored.y_true[list(scored.shown)].numpy())

    assert _first_of_each_class(torch.tensor([1.0, 0.5, 1.0])) is None  # not classes
    assert _first_of_each_class(torch.arange(30)) is None  # more classes than are drawn
    assert _first_of_each_class(torch.zeros(4, 2)) is None  # two labels per sample
    assert _first_of_each_class(torch.tensor([[2], [0], [2], [1]])) == (1, 3, 0)


def test_a_table_without_a_target_column_trains_an_autoencoder(tmp_path: Path) -> None:
    """An unlabelled CSV needs no dummy target for a task that reads none; a task that learns
    targets still asks for the column, and missing cells are dropped as usual."""
    x = load_data(config_from_data(digits_autoencoder())).train.x[:600]
    lines = [",".join(f"p{i}" for i in range(64))]
    lines += [",".join(str(int(v)) for v in row) for row in x]
    lines[5] = ",".join(["?", *lines[5].split(",")[1:]])
    path = tmp_path / "pixels.csv"
    path.write_text("\n".join(lines) + "\n")
    data = {"dataset": "csv", "path": str(path), "missing": "drop"}
    config = digits_autoencoder(data=data, evaluation={"validation": {"count": 100}})
    result = run_experiment(config_from_data(config), tmp_path / "runs")
    assert result.results["data"]["description"] == f"{path}: 599 rows, 64 features"
    assert np.isfinite(result.results["test"]["loss"])
    supervised = tiny_config(data=data, preprocess=["standardize", "one_hot"])
    with pytest.raises(ConfigError, match=r"data\.target: the task learns targets: set it to the "
                       r"column that holds them \(only autoencoder and vae need none\)"):  # fmt: skip
        config_from_data(supervised)  # before any data is read: validate --no-data says so too


def test_clipped_cross_entropy_scores_targets_beyond_one_as_keras_does() -> None:
    """Beginners E25 ends in relu and scores raw word ids with binary cross-entropy: Keras's
    formula on the clipped outputs; torch's own function refused targets outside [0, 1]."""
    from dlrun.training.losses import LOSSES

    loss_cls = LOSSES.get("binary_crossentropy")
    loss = loss_cls(loss_cls.Config.model_validate({"any_output": True}))
    outputs, targets = torch.tensor([[0.2, 0.9, 1.0, 0.0]]), torch.tensor([[3.0, 0.0, 5.0, 1.0]])
    p = outputs.clamp(1e-7, 1 - 1e-7)
    expected = -(targets * p.log() + (1 - targets) * (1 - p).log()).mean()
    assert loss(outputs, targets, fused=False) == pytest.approx(float(expected), rel=1e-6)
    assert float(loss(outputs, targets, fused=False)) < 0  # unbounded targets: negative losses
