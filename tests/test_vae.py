"""Variational autoencoders: the drawn code, its divergence added to every loss, the book's
loss scale, the means as codes, and the samples decoded from a grid of codes."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch.distributions import Normal
from torch.distributions import kl_divergence

from dlrun.api import run_experiment
from dlrun.api import validate_experiment
from dlrun.config.load import config_from_data
from dlrun.config.load import load_config
from dlrun.errors import ConfigError
from dlrun.evaluation.fitting import task_for
from dlrun.models.build import build_model
from dlrun.models.variational import GaussianCode
from dlrun.reuse import evaluate_run
from dlrun.reuse import predict_file
from dlrun.tasks.vae import VariationalAutoencoder
from dlrun.training.batches import FieldSpec
from dlrun.training.loop import collect
from dlrun.training.metrics import Reconstructions
from tests.conftest import REPO
from tests.conftest import tiny_config


def digits_vae(**changes: Any) -> dict[str, Any]:
    """sklearn's 8x8 digits through a drawn code of two values (Beginners ch. 9, in miniature)."""
    config = tiny_config(
        task={"name": "vae", "code_layer": 1, "grid": 4},
        data={"dataset": "digits"},
        preprocess=[{"rescale": {"scale": 1 / 16}}],
        model={"layers": [{"dense": {"units": 32, "activation": "relu"}},
                          {"gaussian_sampling": 2},
                          {"dense": {"units": 32, "activation": "relu"}},
                          {"dense": {"units": 64, "activation": "sigmoid"}}]},
        loss="mse", optimizer={"name": "adam", "lr": 0.003}, metrics=["mse"],
        train={"epochs": 6, "batch_size": 64, "progress": "none"},
        evaluation={"validation": {"count": 300}},
    )  # fmt: skip
    config.update(changes)
    return config


def built_vae(**changes: Any) -> VariationalAutoencoder:
    task = task_for(config_from_data(digits_vae(**changes)))
    assert isinstance(task, VariationalAutoencoder)
    torch.manual_seed(0)
    task.build({"x": FieldSpec((64,), torch.float32)}, torch.device("cpu"))
    return task


def test_the_code_is_drawn_from_its_gaussian_and_scored_by_its_divergence() -> None:
    model = build_model(config_from_data(digits_vae()).model.layers, (64,))
    code = model.network[1]
    assert isinstance(code, GaussianCode)
    assert model.rows[1].params == 2 * (32 * 2 + 2)  # Keras's two Dense(2) heads
    hidden = torch.randn(20000, 32)
    with torch.no_grad():
        drawn = code(hidden[:1].expand(20000, 32))
        mean, log_var = code.mean_head(hidden[:1]), code.log_var_head(hidden[:1])
    std = torch.exp(0.5 * log_var)
    torch.testing.assert_close(drawn.mean(0), mean[0], atol=4 * float(std.max()) / 141, rtol=0)
    torch.testing.assert_close(drawn.std(0), std[0], rtol=0.03, atol=0)

    code(hidden[:50])
    divergence = code.take_added_loss()
    assert divergence is not None and code.take_added_loss() is None  # handed over once
    mean, std = code.mean_head(hidden[:50]), torch.exp(0.5 * code.log_var_head(hidden[:50]))
    closed_form = kl_divergence(Normal(mean, std), Normal(0.0, 1.0)).sum(dim=1).mean()
    torch.testing.assert_close(divergence, closed_form)
    divergence.backward()  # the heads learn from it: the draw is differentiable
    assert code.mean_head.weight.grad is not None and code.log_var_head.weight.grad is not None


@pytest.mark.parametrize("step", ["train_step", "eval_step"])
def test_the_loss_sums_each_samples_reconstruction_and_adds_the_divergence(step: str) -> None:
    """The book's vae_loss: mean over the batch of (784 * mse + KL), in evaluation as in
    training (Keras's add_loss)."""
    task = built_vae()
    network = task.model.network
    before = {k: v.clone() for k, v in network.state_dict().items()}
    x = torch.rand(10, 64)
    torch.manual_seed(1)
    loss = getattr(task, step)({"x": x}).loss
    network.load_state_dict(before)  # the loss of the weights the step started from
    torch.manual_seed(1)  # the same draw again
    with torch.no_grad():
        drawn = network[:2](x)
        code = task.code
        mean, log_var = code.mean_head(network[0](x)), code.log_var_head(network[0](x))
        rebuilt = network[2:](drawn)
    squared = ((rebuilt - x) ** 2).sum(dim=1)
    divergence = -0.5 * (1 + log_var - mean**2 - log_var.exp()).sum(dim=1)
    torch.testing.assert_close(loss, (squared + divergence).mean())


def test_a_vae_learns_and_reports_means_reconstructions_and_samples(tmp_path: Path) -> None:
    result = run_experiment(config_from_data(digits_vae()), tmp_path)
    run = result.run_dir
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    assert float(rows[-1]["loss"]) > 64 * float(rows[-1]["mse"])  # summed, plus a divergence
    for png in ("reconstructions.png", "code_space.png", "generated.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in (run / "report.md").read_text()
    assert "## Generated samples" in (run / "report.md").read_text()

    # codes are the means, not draws: the same at every prediction
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).integers(0, 17, (5, 64)))
    for name in ("a.csv", "b.csv"):
        assert predict_file(run, tmp_path / "x.npz", tmp_path / name) == 5
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert (tmp_path / "a.csv").read_text().startswith("code_0,code_1\n")


def test_a_two_value_code_decodes_a_grid_spanning_the_range() -> None:
    layers = [{"dense": {"units": 32, "activation": "relu"}}, {"gaussian_sampling": 2},
              {"dense": 32}, {"dropout": 0.5}, {"batchnorm": {}}, {"activation": "relu"},
              {"dense": {"units": 64, "activation": "sigmoid"}}]  # fmt: skip
    task = built_vae(task={"name": "vae", "code_layer": 1, "grid": 3, "grid_range": 2},
                     model={"layers": layers})  # fmt: skip
    task.model.network.train()
    task.train_step({"x": torch.rand(20, 64)})  # batch norm's statistics move off their start
    made = task.generate(2)
    assert torch.equal(made.samples, task.generate(2).samples)  # dropout off, running stats
    assert made.samples.shape == (9, 64) and made.side == 3
    assert made.chosen == "codes from -2 to 2 in both values"
    # row by row: left to right the first value grows, top to bottom the second falls
    expected = [[-2, 2], [0, 2], [2, 2], [-2, 0], [0, 0], [2, 0], [-2, -2], [0, -2], [2, -2]]
    assert made.codes.tolist() == expected
    assert float(made.samples.min()) >= 0 and float(made.samples.max()) <= 1  # sigmoid outputs
    task.model.network.eval()
    torch.testing.assert_close(made.samples[4], task.decode(torch.zeros(1, 2))[0].detach())


def test_a_wider_code_decodes_seeded_draws_and_table_rows_go_to_a_csv(tmp_path: Path) -> None:
    changes = {
        "task": {"name": "vae", "code_layer": 1, "grid": 2},
        "data": {"dataset": "iris"},
        "preprocess": [{"standardize": {}}],
        "model": {"layers": [{"dense": {"units": 8, "activation": "relu"}},
                             {"gaussian_sampling": 3},
                             {"dense": 4}]},
        "evaluation": {"validation": {"count": 30}},
    }  # fmt: skip
    result = run_experiment(config_from_data(digits_vae(**changes)), tmp_path)
    rows = list(csv.reader((result.run_dir / "generated.csv").open()))
    assert rows[0] == ["code_0", "code_1", "code_2", "value_0", "value_1", "value_2", "value_3"]
    codes = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose([[float(v) for v in row[:3]] for row in rows[1:]], codes.numpy(),
                               rtol=1e-6)  # fmt: skip
    assert not (result.run_dir / "generated.png").exists()


def test_the_evaluated_codes_are_the_means() -> None:
    task = built_vae()
    x = torch.rand(6, 64)
    outputs, kept = task.evaluated({"x": x})
    with torch.no_grad():
        means = task.code.mean_head(task.model.network[0](x))
    torch.testing.assert_close(kept["code"], means)
    assert outputs.shape == (6, 64)
    results = [task.eval_step({"x": x})]
    scored = task.scored_predictions(results)
    assert isinstance(scored, Reconstructions) and scored.generated is not None
    epoch = task.predictions(results)  # an epoch's metrics: no samples decoded
    assert isinstance(epoch, Reconstructions) and epoch.generated is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": {"layers": [{"dense": 8}, {"dense": 2}, {"dense": 64}]}},
         r"model\.layers\[1\]\.dense: is the code of a vae, which must be drawn: make it a "
         r"gaussian_sampling layer \(or use task: autoencoder\)"),
        ({"task": {"name": "vae", "code_layer": 1, "grid": 0}}, r"task\.grid"),
        ({"task": {"name": "vae", "code_layer": 1, "grid_range": -1}}, r"task\.grid_range"),
        ({"task": {"name": "vae", "code_layer": 1, "grid_range": 3, "grid_spacing": "normal_quantiles"}},
         r"task: grid_range spans an even grid; normal_quantiles sets its own"),
        ({"evaluation": {"protocol": "kfold", "k": 3, "parallel_folds": True}},
         r"model\.layers\[1\]\.gaussian_sampling: parallel folds cannot stack gaussian_sampling"),
    ],
)  # fmt: skip
def test_vae_config_mistakes_are_one_line(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        config_from_data(digits_vae(**changes))
    assert "\n" not in str(caught.value).strip()


def test_a_drawn_code_adds_its_divergence_in_any_task() -> None:
    """Keras's add_loss is the layer's, not the VAE's: a regression through a drawn code is
    scored with the divergence too."""
    cfg = config_from_data(tiny_config(
        task="regression", data={"dataset": "diabetes"}, loss="mse", preprocess=["standardize"],
        metrics=["mae"], model={"layers": [{"dense": 4}, {"gaussian_sampling": 2}, {"dense": 1}]},
        evaluation={"validation": {"fraction": 0.2}},
    ))  # fmt: skip
    task = task_for(cfg)
    torch.manual_seed(0)
    task.build({"x": FieldSpec((10,), torch.float32), "y": FieldSpec((1,), torch.float32)},
               torch.device("cpu"))  # fmt: skip
    x, y = torch.rand(8, 10), torch.rand(8, 1)
    torch.manual_seed(3)
    loss = task.eval_step({"x": x, "y": y}).loss
    torch.manual_seed(3)
    with torch.no_grad():
        model = task.models["model"]
        plain = torch.nn.functional.mse_loss(model.network(x), y)
    divergence = model.take_penalty()
    assert divergence is not None and float(divergence) > 0
    torch.testing.assert_close(loss, plain + divergence)


def test_the_shipped_heart_vae_runs_on_the_cleveland_file(tmp_path: Path) -> None:
    """Beginners E28 as shipped, on a file in the UCI format: '?' rows dropped, the diagnosis
    kept only to colour the codes, 16 patients generated into a table of codes and features."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(60):
        values = [f"{v:.1f}" for v in rng.normal(50, 10, 13)]
        values[11] = "?" if i % 20 == 3 else values[11]  # the file's missing 'ca' values
        lines.append(",".join([*values, str(i % 5)]))
    path = tmp_path / "processed.cleveland.data"
    path.write_text("\n".join(lines) + "\n")
    overrides = [f"data.path={path}", "train.epochs=3", "train.progress=none"]
    cfg = load_config(REPO / "configs/beginners/ch9_heart_vae.yaml", overrides)
    result = run_experiment(cfg, tmp_path / "runs")
    assert result.results["test"] is not None
    rows = list(csv.reader((result.run_dir / "generated.csv").open()))
    assert len(rows) == 1 + 16 and len(rows[0]) == 2 + 13
    assert [float(v) for v in rows[1][:2]] == [-2.0, 2.0]  # the grid's top left corner
    assert (result.run_dir / "code_space.png").exists()
    assert "57 rows" in result.results["data"]["description"]  # 3 incomplete rows dropped


def test_an_undrawn_code_is_named_beside_other_problems() -> None:
    changes = {"loss": "sparse_categorical_crossentropy",
               "model": {"layers": [{"dense": 8}, {"dense": 2}, {"dense": 64}]}}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        config_from_data(digits_vae(**changes))
    assert "scores class labels" in str(caught.value)
    assert "model.layers[1].dense: is the code of a vae, which must be drawn" in str(caught.value)


def test_a_code_of_several_axes_or_a_wrapped_draw_is_refused() -> None:
    shaped = digits_vae(
        preprocess=[{"rescale": {"scale": 1 / 16}}, {"reshape": {"shape": [8, 8]}}],
        model={"layers": [{"dense": 16}, {"gaussian_sampling": 2}, {"dense": 8}]},
    )
    with pytest.raises(ConfigError, match=r"model\.layers\[1\]\.gaussian_sampling: gives codes "
                       r"shaped \[8, 2\] per sample, but a vae's code is one row of values: add "
                       r"a flatten before it"):  # fmt: skip
        validate_experiment(config_from_data(shaped))
    wrapped = tiny_config(
        task="regression", data={"dataset": "diabetes"}, loss="mse", preprocess=["standardize"],
        metrics=["mae"], evaluation={"validation": {"fraction": 0.2}},
        model={"input_shape": [10], "layers": [{"reshape": {"target_shape": [5, 2]}},
                                               {"time_distributed": {"layer": {"gaussian_sampling": 2}}},
                                               "flatten", {"dense": 1}]},
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"model\.layers\[1\]\.time_distributed: cannot wrap "
                       "gaussian_sampling: a drawn code stands on its own"):  # fmt: skip
        validate_experiment(config_from_data(wrapped), use_data=False)


def test_evaluating_a_vae_twice_gives_the_same_loss_and_leaves_trainings_stream(
    tmp_path: Path,
) -> None:
    """Its evaluation draws from the run's seed: ``dlrun eval`` reproduces the run's test
    loss, and validating does not move the stream training draws from."""
    result = run_experiment(config_from_data(digits_vae()), tmp_path)
    recorded = result.results["test"]["loss"]
    first, second = (_test_loss(result.run_dir) for _ in range(2))
    assert first == second == pytest.approx(recorded, rel=1e-6)

    task = built_vae()
    batches = SimpleNamespace(epoch=lambda: [{"x": torch.rand(5, 64)}])
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    collect(task, batches)  # type: ignore[arg-type]  # a source of one batch
    assert torch.equal(torch.random.get_rng_state(), state)


def _test_loss(run: Path) -> float:
    scored = evaluate_run(run).test
    assert scored is not None
    return scored.metrics["loss"]


def test_dlwp_draw_and_divergence_weight_are_options_of_the_layer() -> None:
    """DLwP 8.4's code: z = mean + exp(log_var) * eps, and -5e-4 * mean(1 + log_var - mean^2
    - exp(log_var)) over the two values of its code."""
    layer = {"gaussian_sampling": {"units": 2, "log_scale": 1.0, "divergence_weight": 5e-4}}
    model = build_model(config_from_data(digits_vae(model={"layers": [
        {"dense": 8}, layer, {"dense": 64}]})).model.layers, (64,))  # fmt: skip
    code = model.network[1]
    assert isinstance(code, GaussianCode)
    hidden = torch.randn(1, 8)
    with torch.no_grad():
        drawn = code(hidden.expand(20000, 8))
        log_var = code.log_var_head(hidden)[0]
    torch.testing.assert_close(drawn.std(0), torch.exp(log_var), rtol=0.03, atol=0)
    code(hidden[:1].expand(4, 8))
    mean, log_var = code.mean_head(hidden), code.log_var_head(hidden)
    dlwp = -5e-4 * (1 + log_var - mean.square() - log_var.exp()).mean(dim=-1).mean()
    torch.testing.assert_close(code.take_added_loss(), dlwp)


def test_dlwp_averages_the_reconstruction_and_spaces_its_grid_at_normal_quantiles() -> None:
    from scipy.stats import norm

    task = built_vae(task={"name": "vae", "code_layer": 1, "grid": 15,
                           "grid_spacing": "normal_quantiles", "reconstruction": "mean"})  # fmt: skip
    x = torch.rand(10, 64)
    torch.manual_seed(1)
    loss = task.eval_step({"x": x}).loss
    torch.manual_seed(1)
    with torch.no_grad():
        rebuilt = task.model.network(x)
    divergence = task.model.take_penalty()
    assert divergence is not None
    torch.testing.assert_close(loss, ((rebuilt - x) ** 2).mean() + divergence)

    made = task.generate(2)
    steps = norm.ppf(np.linspace(0.05, 0.95, 15))
    np.testing.assert_allclose(made.codes[:15, 0].numpy(), steps, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(made.codes[::15, 1].numpy(), steps[::-1], rtol=1e-6, atol=1e-7)
    assert made.chosen == "codes at the N(0, 1) quantiles 0.05 to 0.95 in both values"
