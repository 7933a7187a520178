"""One contract per registry, run over every registered entry: built from its example config,
its config survives a round trip, and its basic invariant holds. Registering a component
without an example here fails ``test_every_registered_name_has_an_example``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import BaseModel

from dlrun.config.load import config_from_data
from dlrun.config.schema import LayerEntry
from dlrun.config.schema import StepEntry
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import LoadContext
from dlrun.data.load import load_data
from dlrun.data.sparse import IndexRows
from dlrun.errors import DataError
from dlrun.evaluation.fitting import prepare_fold
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.models.build import build_model
from dlrun.models.layers import LAYERS
from dlrun.models.stacked import StackedNetwork
from dlrun.preprocess.pipeline import build_pipeline
from dlrun.preprocess.steps import STEPS
from dlrun.tasks.base import TASKS
from dlrun.training.callbacks import CALLBACKS
from dlrun.training.losses import LOSSES
from dlrun.training.metrics import METRICS
from dlrun.training.metrics import MetricKind
from dlrun.training.optimizers import OPTIMIZERS
from dlrun.training.state import TrainState
from tests.conftest import tiny_config
from tests.test_layers_contract import LAYER_CASES

LOSS_EXAMPLES: dict[str, dict[str, Any]] = {
    "binary_crossentropy": {}, "categorical_crossentropy": {},
    "sparse_categorical_crossentropy": {}, "mse": {}, "mae": {}, "huber": {"delta": 0.5},
}  # fmt: skip
OPTIMIZER_EXAMPLES: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.1, "momentum": 0.5, "nesterov": True}, "rmsprop": {"lr": 0.01},
    "adam": {"lr": 0.05, "amsgrad": True}, "adamw": {"lr": 0.05}, "adamax": {"lr": 0.05},
    "nadam": {"lr": 0.05}, "adagrad": {"lr": 0.5}, "adadelta": {"lr": 5.0, "clipvalue": 1.0},
}  # fmt: skip
CALLBACK_EXAMPLES: dict[str, dict[str, Any]] = {
    "early_stopping": {"patience": 2, "restore_best": True},
    "reduce_lr_on_plateau": {"patience": 1, "factor": 0.5},
    "checkpoint": {"save": "best"},
}
PROTOCOL_EXAMPLES: dict[str, dict[str, Any]] = {
    "holdout": {"validation": {"fraction": 0.25, "stratify": True}},
    "kfold": {"k": 4}, "iterated_kfold": {"k": 2, "repeats": 3},
    "time_split": {"train": 0.5, "validation": 0.25},
}  # fmt: skip
STEP_EXAMPLES: dict[str, tuple[dict[str, Any], np.ndarray]] = {
    "standardize": ({}, np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 8.0]])),
    "minmax": ({"feature_range": [-1, 1]}, np.array([[1.0], [3.0], [5.0]])),
    "rescale": (
        {"scale": "1/255", "offset": -0.5},
        np.array([[0, 128], [255, 7]], dtype=np.uint8),
    ),
    "binarize": ({"threshold": 2.0}, np.array([[1.0, 3.0]])),
    "flatten": ({}, np.zeros((2, 3, 4))),
    "reshape": ({"shape": [2, 3]}, np.arange(12.0).reshape(2, 6)),
    "multi_hot": ({"dim": 5}, np.array([[1, 3], [4]], dtype=object)),
    "one_hot": ({"num_classes": 4}, np.array([0, 3, 1])),
    "impute": ({"strategy": "median"}, np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 8.0]])),
    "categorical": (
        {"columns": [1], "categories": [["f", "m"]]},
        np.array([[1.0, 0.0], [3.0, 1.0], [2.0, -1.0]]),
    ),
    "tokenize": ({"num_words": 4, "oov_token": "?"}, np.array(["a b", "b c d", ""], dtype=object)),
    "pad_sequences": ({"padding": "post"}, np.array([[1, 3], [4], []], dtype=object)),
    "reverse": ({}, np.array([[1, 3], [4]], dtype=object)),
}
LAYER_EXAMPLES: dict[str, dict[str, Any]] = {
    "dense": {"units": 5, "activation": "relu", "kernel_regularizer": "l2"},
    "dropout": {"rate": 0.3}, "batchnorm": {}, "activation": {"activation": "tanh"},
    "flatten": {}, "reshape": {"target_shape": [2, 6]},
    "gaussian_sampling": {"units": 2, "log_scale": 1.0, "divergence_weight": 5e-4},
}  # fmt: skip
TASK_EXAMPLES: dict[str, dict[str, Any]] = {
    "binary": {"data": {"dataset": "breast_cancer"}, "preprocess": ["standardize"], "loss": "binary_crossentropy",
               "metrics": ["accuracy", "roc_auc"],
               "model": {"layers": [{"dense": 4}, {"dense": {"units": 1, "activation": "sigmoid"}}]}},
    "multiclass": {},  # tiny_config itself
    "multilabel": {"data": {"dataset": "classification", "n_samples": 60}, "loss": "binary_crossentropy",
                   "preprocess": ["standardize"], "metrics": ["accuracy", "f1"],
                   "model": {"layers": [{"dense": 4}, {"dense": {"units": 1, "activation": "sigmoid"}}]},
                   "evaluation": {"validation": {"fraction": 0.2}}},
    "regression": {"data": {"dataset": "diabetes"}, "preprocess": ["standardize"], "loss": "mse",
                   "metrics": ["mae", "r2"], "model": {"layers": [{"dense": 4}, {"dense": 1}]},
                   "evaluation": {"validation": {"fraction": 0.2}}},
    "autoencoder": {"task": {"name": "autoencoder", "code_layer": 0}, "preprocess": ["standardize"],
                    "loss": "mse", "metrics": ["mae"],
                    "model": {"layers": [{"dense": {"units": 2, "activation": "tanh"}}, {"dense": 4}]},
                    "evaluation": {"validation": {"fraction": 0.2}}},
    "vae": {"task": {"name": "vae", "code_layer": 1, "grid": 3}, "preprocess": ["standardize"],
            "loss": "mse", "metrics": ["mae"],
            "model": {"layers": [{"dense": 3}, {"gaussian_sampling": 2}, {"dense": 4}]},
            "evaluation": {"validation": {"fraction": 0.2}}},
}  # fmt: skip
DATASET_EXAMPLES: dict[str, dict[str, Any]] = {
    "breast_cancer": {}, "diabetes": {}, "digits": {}, "iris": {}, "wine": {},
    "classification": {"n_samples": 40}, "regression": {"n_samples": 40}, "linear": {"n_samples": 40},
    "moons": {"n_samples": 40}, "spirals": {"n_points": 40}, "bits": {"train": [3, 5], "width": 4},
    "csv": {"path": "{tmp}/table.csv", "target": "label"}, "npz": {"path": "{tmp}/arrays.npz"},
    "image_folder": {"path": "{tmp}/images", "target_size": [8, 8]},
    "boston_housing": {}, "cifar10": {}, "cifar100": {}, "fashion_mnist": {}, "heart": {}, "imdb": {},
    "jena_climate": {}, "mnist": {}, "nietzsche": {}, "pima": {}, "reuters": {},
    "char_text": {"path": "{tmp}/table.csv", "maxlen": 10},
}  # fmt: skip

REGISTRIES: dict[str, tuple[Any, dict[str, Any]]] = {
    "loss": (LOSSES, LOSS_EXAMPLES), "optimizer": (OPTIMIZERS, OPTIMIZER_EXAMPLES),
    "callback": (CALLBACKS, CALLBACK_EXAMPLES), "protocol": (PROTOCOLS, PROTOCOL_EXAMPLES),
    "step": (STEPS, STEP_EXAMPLES), "layer": (LAYERS, {**LAYER_EXAMPLES, **LAYER_CASES}), "task": (TASKS, TASK_EXAMPLES),
    "dataset": (DATASETS, DATASET_EXAMPLES), "metric": (METRICS, {name: {} for name in METRICS.names()}),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_registered_name_has_an_example(kind: str) -> None:
    registry, examples = REGISTRIES[kind]
    builtin = {
        name
        for name, obj in registry.items()
        if getattr(obj, "__module__", "dlrun").startswith("dlrun")
    }
    assert builtin <= set(examples), f"{kind}: add examples for {sorted(builtin - set(examples))}"


def round_trips(config: BaseModel) -> None:
    again = type(config).model_validate(config.model_dump(mode="json"))
    assert again == config


@pytest.mark.parametrize("name", sorted(LOSS_EXAMPLES))
def test_loss_contract(name: str) -> None:
    loss_cls = LOSSES.get(name)
    config = loss_cls.Config.model_validate(LOSS_EXAMPLES[name])
    round_trips(config)
    loss = loss_cls(config)
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    if loss_cls.integer_targets:
        targets = torch.tensor([0, 2, 1, 1, 0, 2])
    elif loss_cls.classification:
        targets = torch.eye(3)[torch.tensor([0, 2, 1, 1, 0, 2])]
    else:
        targets = torch.randn(6, 3)
    values = loss.per_sample(logits, targets, fused=bool(loss_cls.fuses))
    assert (
        values.shape == (6,) and bool(torch.isfinite(values).all()) and bool((values >= 0).all())
    )
    stacked = loss.per_member(
        logits.reshape(2, 3, 3), targets.reshape(2, 3, *targets.shape[1:]), True
    )
    assert torch.allclose(
        stacked, loss.per_sample(logits, targets, True).reshape(2, 3).mean(dim=1)
    )
    for activation in loss_cls.fuses:  # the fused logit form equals the probability form
        probs = logits.softmax(-1) if activation == "softmax" else logits.sigmoid()
        assert torch.allclose(loss(logits, targets, True), loss(probs, targets, False), atol=1e-5)


KERAS3_RMSPROP = {"lr": 0.01, "epsilon_in_sqrt": True, "centered": True, "momentum": 0.9}


@pytest.mark.parametrize(("name", "example"),
                         [*sorted(OPTIMIZER_EXAMPLES.items()), ("rmsprop", KERAS3_RMSPROP)])  # fmt: skip
def test_optimizer_contract(name: str, example: dict[str, Any]) -> None:
    spec_cls = OPTIMIZERS.get(name)
    config = spec_cls.Config.model_validate(example)
    round_trips(config)
    spec = spec_cls(config)
    param = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    optimizer = spec.create([param])
    first = float(param.detach().square().sum())
    for _ in range(20):
        spec.step(optimizer, [param], param.square().sum())
    assert float(param.detach().square().sum()) < first  # it descends a quadratic
    twin = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    by_torch = spec.create([twin])
    for _ in range(20):
        by_torch.zero_grad()
        twin.square().sum().backward()
        if spec.clips:
            spec.clip([twin])
        by_torch.step()
    assert torch.equal(param.detach(), twin.detach())  # the update of torch's own step()
    again = spec.create([torch.nn.Parameter(param.detach().clone())])
    again.load_state_dict(optimizer.state_dict())
    assert again.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]


def test_an_optimizer_with_step_hooks_is_stepped_through_torchs_wrapper() -> None:
    spec = OPTIMIZERS.get("sgd")(OPTIMIZERS.get("sgd").Config.model_validate({"lr": 0.1}))
    param = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = spec.create([param])
    calls: list[int] = []
    optimizer.register_step_post_hook(lambda *args: calls.append(1))
    spec.step(optimizer, [param], param.square().sum())
    assert calls == [1] and float(param.detach()) == pytest.approx(0.8)  # 1 - 0.1 * 2


class _Weights:
    """The part of a task callbacks use: learning rate and weights."""

    def __init__(self) -> None:
        self.lr, self.weights = 0.1, {"w": torch.zeros(1)}

    def learning_rate(self) -> float:
        return self.lr

    def set_learning_rate(self, lr: float) -> None:
        self.lr = lr

    def model_state(self) -> dict[str, Any]:
        return self.weights

    def load_model_state(self, state: dict[str, Any]) -> None:
        self.weights = state


def _drive(callback: Any, values: list[float], state: TrainState, saved: Path) -> list[str]:
    events = []
    for value in values:
        state.task.weights = {"w": torch.tensor([value])}  # type: ignore[attr-defined]
        state.epoch += 1
        callback.on_epoch_end(state, {"val_loss": value})
        events.append(
            f"{state.epoch}:{state.should_stop}:{state.task.learning_rate():.4f}:{sorted(p.name for p in saved.iterdir())}"
        )
        if state.should_stop:
            break
    return events


@pytest.mark.parametrize("name", sorted(CALLBACK_EXAMPLES))
def test_callback_contract_state_dict_continues_exactly(name: str, tmp_path: Path) -> None:
    """Stopped after 3 epochs and restored into a fresh instance, a callback decides what an
    uninterrupted one decides."""
    values = [1.0, 0.8, 0.9, 0.95, 0.7, 0.75, 0.8, 0.85]
    cls = CALLBACKS.get(name)
    config = cls.Config.model_validate(CALLBACK_EXAMPLES[name])
    round_trips(config)

    def fresh(folder: Path) -> tuple[Any, TrainState]:
        folder.mkdir()
        state = TrainState(_Weights(), epochs=len(values), batches_per_epoch=1)  # type: ignore[arg-type]

        def save(file: str, state: TrainState) -> None:
            (folder / file).write_text("x")

        state.save_checkpoint = save
        callback = cls(config)
        callback.on_fit_start(state)
        return callback, state

    whole, state = fresh(tmp_path / "whole")
    expected = _drive(whole, values, state, tmp_path / "whole")
    first, state_a = fresh(tmp_path / "split")
    head = _drive(first, values[:3], state_a, tmp_path / "split")
    second, state_b = fresh(tmp_path / "unused")
    second.load_state_dict(first.state_dict())
    state_b.epoch, state_b.task = state_a.epoch, state_a.task
    tail = _drive(second, values[3:], state_b, tmp_path / "split")
    assert head + tail == expected
    whole.on_fit_end(state)
    second.on_fit_end(state_b)
    assert torch.equal(state.task.model_state()["w"], state_b.task.model_state()["w"])


@pytest.mark.parametrize("name", sorted(PROTOCOL_EXAMPLES))
def test_protocol_contract_folds_are_disjoint_and_in_range(name: str) -> None:
    protocol_cls = PROTOCOLS.get(name)
    config = protocol_cls.Config.model_validate(PROTOCOL_EXAMPLES[name])
    round_trips(config)
    data = Arrays(np.arange(40.0).reshape(40, 1), np.array([0, 1] * 20))
    folds = protocol_cls(config).folds(data, TASKS.get("binary"), seed=0)
    assert folds and len({f.name for f in folds}) == len(folds)
    for fold in folds:
        assert fold.val_idx is not None and not set(fold.train_idx) & set(fold.val_idx)
        assert set(fold.train_idx) | set(fold.val_idx) <= set(range(40))


def _values(out: np.ndarray) -> np.ndarray:
    """A step's output as plain values (sparse multi-hot rows as their 0/1 matrix; ragged
    sequences as every row's values, then the row lengths)."""
    if isinstance(out, IndexRows):
        return out.dense()
    if out.dtype == object:
        return np.concatenate([*(np.asarray(r).ravel() for r in out), [len(r) for r in out]])
    return out


@pytest.mark.parametrize("name", sorted(STEP_EXAMPLES))
def test_step_contract_fits_transforms_and_restores(name: str) -> None:
    params, data = STEP_EXAMPLES[name]
    entry = StepEntry.model_validate({name: params})
    assert StepEntry.model_validate(entry.model_dump(mode="json")) == entry
    step = build_pipeline([entry]).steps[0][1]
    out = step.fit(data).transform(data)
    assert len(out) == len(data)
    restored = build_pipeline([entry]).steps[0][1]
    restored.load_state_dict(step.state_dict())
    np.testing.assert_array_equal(_values(restored.transform(data)), _values(out))
    if step.elementwise:  # the device form computes the same float32 values, from no state
        assert not step.fitted_attributes
        assert torch.equal(step.torch_transform(torch.from_numpy(data)), torch.from_numpy(out))


@pytest.mark.parametrize("name", sorted(LAYER_EXAMPLES))
def test_layer_contract_stacked_forms_match_each_copy(name: str) -> None:
    entry = LayerEntry.model_validate({name: LAYER_EXAMPLES[name]})
    models = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        models.append(build_model([entry], (3, 4)))
    layer = models[0].layers[0][1]
    if not layer.vmappable:
        return  # refused by parallel folds, with its name (tests/test_parallel.py)
    x = torch.randn(3, 5, 3, 4)
    for model in models:
        model.network.eval()
    expected = torch.stack([m.network(x[k]) for k, m in enumerate(models)])
    for use_vmap in (False, True):
        stacked = StackedNetwork(models, use_vmap)
        stacked.train(False)
        assert torch.allclose(stacked(x), expected, atol=1e-6)


@pytest.mark.parametrize("name", sorted(TASK_EXAMPLES))
def test_task_contract_trains_a_step_and_restores_its_state(name: str) -> None:
    cfg = config_from_data(tiny_config(**{"task": name, **TASK_EXAMPLES[name]}))
    assert type(cfg).model_validate(cfg.model_dump(mode="json")) == cfg
    task_cls = TASKS.get(name)
    assert task_cls.check_config(cfg) == []
    data = load_data(cfg)
    index = np.arange(len(data.train))
    fold = prepare_fold(cfg, data.train, index, None, torch.device("cpu"), data.implied_steps, 0)
    task = fold.task
    results = [task.train_step(batch) for batch in fold.train.epoch()]
    logs = task.epoch_logs(results)
    assert set(logs) == {"loss", *cfg.metrics} and all(math.isfinite(v) for v in logs.values())
    again = prepare_fold(cfg, data.train, index, None, torch.device("cpu"), data.implied_steps, 1)
    again.task.load_state_dict(task.state_dict())
    batch = next(fold.sources(data.train, index).epoch())
    assert torch.equal(task.predict_step(batch), again.task.predict_step(batch))
    header, rows = task.prediction_table(task.predict_step(batch), data.class_names)
    assert len(rows) == len(batch["x"]) and all(len(row) == len(header) for row in rows)


LABELS = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
PREDICTION_EXAMPLES: dict[str, Any] = {  # targets and outputs as each task produces them
    "binary": lambda: ((LABELS % 2).float().unsqueeze(1), torch.rand(8, 1)),
    "multiclass": lambda: (torch.eye(3)[LABELS], torch.rand(8, 3).softmax(dim=1)),
    "multilabel": lambda: (torch.randint(0, 2, (8, 3)).float(), torch.rand(8, 3)),
    "regression": lambda: (torch.randn(8, 1), torch.randn(8, 1)),
    "autoencoder": lambda: (torch.rand(8, 4), torch.rand(8, 4)),  # inputs and reconstructions
    "vae": lambda: (torch.rand(8, 4), torch.rand(8, 4)),
}


@pytest.mark.parametrize("name", sorted(METRICS.names()))
def test_metric_contract_scores_every_task_that_feeds_it(name: str) -> None:
    metric = METRICS.get(name)
    assert isinstance(metric.higher_is_better, bool) and isinstance(metric.kind, MetricKind)
    fed = [task for task in TASK_EXAMPLES if TASKS.get(task).supports_metric(name)]
    assert fed, f"no task feeds {name}"
    torch.manual_seed(0)
    for task_name in fed:
        y_true, y_pred = PREDICTION_EXAMPLES[task_name]()
        assert math.isfinite(metric.compute(TASKS.get(task_name).label(y_true, y_pred)))  # type: ignore[attr-defined]


def _dataset_files(tmp: Path) -> None:
    (tmp / "table.csv").write_text(
        "a,b,label\n" + "".join(f"{i},{i % 3},{'xy'[i % 2]}\n" for i in range(20))
    )
    np.savez(tmp / "arrays.npz", x=np.arange(40.0).reshape(20, 2), y=np.arange(20) % 2)
    for label in ("cat", "dog"):
        (tmp / "images" / label).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (12, 10), (i * 40, 0, 0)).save(tmp / "images" / label / f"{i}.png")


@pytest.mark.parametrize("name", sorted(DATASET_EXAMPLES))
def test_dataset_contract_loads_equal_length_arrays_or_says_where_files_go(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLRUN_DATA_PATH", str(tmp_path / "no-mirror"))
    source_cls = DATASETS.get(name)
    params = {
        k: v.format(tmp=tmp_path) if isinstance(v, str) else v
        for k, v in DATASET_EXAMPLES[name].items()
    }
    config = source_cls.Config.model_validate(params)
    round_trips(config)
    _dataset_files(tmp_path)
    source = source_cls(config)
    if source_cls.resources:
        assert all(r.url.startswith("https://") and (r.sha256 is None or len(r.sha256) == 64)
                   for r in source_cls.resources)  # fmt: skip
        with pytest.raises(DataError, match=name):  # offline and not cached: one clear error
            source.load(LoadContext(seed=0, class_labels=True, single_label=True))
        return
    classes = name not in ("diabetes", "regression", "linear")
    data = source.load(LoadContext(seed=0, class_labels=classes, single_label=classes))
    assert len(data.train.x) == len(data.train.y) > 0
    if data.test_split is not None:
        assert len(data.test_split) > 0 and data.test_split.reads == 0
