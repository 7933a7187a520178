"""Evaluation protocols: index splits, config rules, fold sub-runs, aggregates, final test,
baselines and leak guards."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dlrun.api import run_experiment
from dlrun.cli import app
from dlrun.config.load import config_from_data
from dlrun.data.base import Arrays
from dlrun.data.base import LoadedData
from dlrun.data.base import SealedSplitError
from dlrun.data.load import load_data
from dlrun.errors import ConfigError
from dlrun.errors import DataError
from dlrun.evaluation import splits
from dlrun.evaluation.aggregate import average_curves
from dlrun.evaluation.aggregate import best_epoch
from dlrun.evaluation.aggregate import cross_validate
from dlrun.evaluation.aggregate import smooth
from dlrun.evaluation.baselines import Targets
from dlrun.evaluation.baselines import score_baselines
from dlrun.evaluation.fitting import FitHooks
from dlrun.evaluation.fitting import train_fold
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.guards import training_active
from dlrun.reuse import load_run
from dlrun.tasks.base import TASKS
from dlrun.training.callbacks import Callback
from dlrun.training.state import TrainState
from tests.conftest import tiny_config

KFOLD = {"protocol": "kfold", "k": 3, "final": {"epochs": "best"}}


def _run(tmp_path: Path, **changes: Any) -> tuple[Path, dict[str, Any]]:
    result = run_experiment(config_from_data(tiny_config(**changes)), tmp_path / "runs")
    return result.run_dir, json.loads((result.run_dir / "results.json").read_text())


# --- splits ---------------------------------------------------------------------------------


def test_contiguous_folds_are_the_slices_of_dlwp_listing_3_27() -> None:
    folds = splits.contiguous_folds(404, 4)
    for i, (train, val) in enumerate(folds):
        assert val.tolist() == list(range(i * 101, (i + 1) * 101))
        assert len(train) == 303 and not set(train) & set(val)
    assert splits.contiguous_folds(10, 3)[2][1].tolist() == [6, 7, 8]  # row 9 always trains


def test_last_fraction_is_the_tail_keras_validation_split_takes() -> None:
    """Keras keeps rows [:int(n * (1 - split))] for training, in file order, before shuffling."""
    train, val = splits.holdout_indices(600, np.zeros(600), 0, last_fraction=0.1)
    assert train.tolist() == list(range(540)) and val.tolist() == list(range(540, 600))
    train, val = splits.holdout_indices(7, np.zeros(7), 0, last_fraction=0.25)
    assert val.tolist() == [5, 6]  # int(7 * 0.75) = 5


def test_stratified_kfold_keeps_class_ratios_and_shuffling_follows_the_seed() -> None:
    y = np.array([0] * 30 + [1] * 15)
    folds = splits.kfold_indices(45, y, 3, shuffle=True, stratify=True, seed=0)
    assert [int(y[val].sum()) for _, val in folds] == [5, 5, 5]
    again = splits.kfold_indices(45, y, 3, shuffle=True, stratify=True, seed=0)
    other = splits.kfold_indices(45, y, 3, shuffle=True, stratify=True, seed=1)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again, strict=True))
    assert any((a[1] != b[1]).any() for a, b in zip(folds, other, strict=True))


def test_iterated_kfold_reshuffles_for_every_repetition() -> None:
    config = PROTOCOLS.get("iterated_kfold").Config.model_validate({"k": 3, "repeats": 2})
    folds = PROTOCOLS.get("iterated_kfold")(config).folds(
        Arrays(np.zeros((30, 1)), np.zeros(30)), TASKS.get("regression"), 0
    )
    assert [f.name for f in folds][:4] == [
        "repeat_01/fold_01",
        "repeat_01/fold_02",
        "repeat_01/fold_03",
        "repeat_02/fold_01",
    ]
    for repetition in (folds[:3], folds[3:]):
        assert sorted(np.concatenate([f.val_idx for f in repetition]).tolist()) == list(range(30))
    assert folds[0].val_idx.tolist() != folds[3].val_idx.tolist()  # type: ignore[union-attr]
    assert len({f.seed for f in folds}) == 6  # every model starts from its own initialisation


@pytest.mark.parametrize("shuffle", [True, False])
def test_iterated_kfold_refuses_contiguous_folds_without_circular_advice(shuffle: bool) -> None:
    evaluation = {"protocol": "iterated_kfold", "k": 3, "contiguous": True, "shuffle": shuffle}
    with pytest.raises(ConfigError) as caught:  # shuffle: false was advised, then refused
        config_from_data(tiny_config(evaluation=evaluation))
    assert str(caught.value).endswith(
        "evaluation.contiguous: iterated K-fold reshuffles for every repetition, and contiguous "
        "folds are fixed slices; for those use protocol: kfold"
    )


def test_fold_names_sort_in_order_for_a_hundred_folds_and_more() -> None:
    config = PROTOCOLS.get("kfold").Config.model_validate({"k": 100})
    folds = PROTOCOLS.get("kfold")(config).folds(
        Arrays(np.zeros((100, 1)), np.zeros(100)), TASKS.get("regression"), 0
    )
    names = [f.name for f in folds]
    assert names[0] == "fold_001" and names[-1] == "fold_100" and names == sorted(names)


def test_time_ranges_from_fractions_and_rows_refuse_overlap() -> None:
    train, val, test = splits.time_ranges(100, [0.6, 0.2, 0.2])
    assert (train[0], train[-1], val[0], val[-1], test[0], test[-1]) == (0, 59, 60, 79, 80, 99)  # type: ignore[index]
    train, val, _ = splits.time_ranges(1000, [[0, 500], [501, 800], [801, None]])
    assert (len(train), val[0], val[-1]) == (500, 501, 799)  # type: ignore[arg-type,index]
    with pytest.raises(Exception, match="overlap or go back in time"):
        splits.time_ranges(100, [[0, 60], [50, 80]])


# --- config rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        (
            {"protocol": "time_split", "train": 0.6, "validation": 0.2, "shuffle": True},
            "temporal leak",
        ),
        ({"protocol": "kfold", "contiguous": True}, "contiguous folds are unshuffled slices"),
        (
            {"protocol": "holdout", "validation": None, "final": {"epochs": "best"}},
            "'best' is chosen on validation data",
        ),
        ({"protocol": "kfold", "k": 1}, "greater than or equal to 2"),
        (
            {"validation": {"last_fraction": 0.1, "stratify": True}},
            "last_fraction takes samples in file order; it cannot be stratified",
        ),
        ({"validation": {"last_fraction": 0.1, "first": 3}}, "give exactly one of fraction"),
        (
            {"validation": 0.2},
            r"say which rows: \{fraction: 0.2\} draws them at random, \{last_fraction: 0.2\}",
        ),
        ({"validation": 10000}, r"\{count: 10000\} draws them at random, \{first: 10000\}"),
        ({"protocol": "kfold", "monitor": "val_mae"}, "cannot monitor 'val_mae'"),
        ({"protocol": "kfoldd"}, "kfold"),
    ],
)
def test_protocol_config_mistakes_are_one_line_errors(
    evaluation: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_data(tiny_config(evaluation=evaluation))


def test_parallel_folds_refuse_norm_clipping() -> None:
    with pytest.raises(ConfigError, match="norm clipping would mix the folds"):
        config_from_data(tiny_config(evaluation={"protocol": "kfold", "parallel_folds": True},
                                     optimizer={"name": "adam", "clipnorm": 1.0}))  # fmt: skip


def test_evaluation_without_protocol_is_holdout() -> None:
    cfg = config_from_data(tiny_config(evaluation={"validation": {"count": 10}}))
    assert cfg.evaluation.protocol == "holdout"


# --- K-fold runs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kfold_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return _run(tmp_path_factory.mktemp("kfold"), evaluation=KFOLD)


def test_every_fold_is_a_full_run(kfold_run: tuple[Path, dict[str, Any]]) -> None:
    run_dir, results = kfold_run
    for name in ("fold_01", "fold_02", "fold_03"):
        fold = run_dir / name
        files = {p.name for p in fold.iterdir()}
        assert {"config.yaml", "metrics.csv", "checkpoint.pt", "results.json", "report.md",
                "learning_curves.png", "confusion_matrix.csv", "status.json"} <= files  # fmt: skip
        assert any((fold / "validation").glob("events.out.tfevents.*"))  # its own curves
        fold_results = json.loads((fold / "results.json").read_text())
        assert (
            fold_results["evaluation"]["split"] == "validation"
            and fold_results["sizes"]["validation"] == 40
        )
        assert json.loads((fold / "status.json").read_text())["status"] == "completed"
    assert results["data"]["sizes"] == {
        "non_test": 120,
        "folds": 3,
        "train_per_fold": 80,
        "validation_per_fold": 40,
        "test": 30,
    }


def test_folds_of_unequal_sizes_state_their_range() -> None:
    from dlrun.evaluation.runner import Plan
    from dlrun.evaluation.runner import split_sizes
    from dlrun.reporting.markdown import sizes_text

    train = Arrays(np.zeros((50, 1)), np.zeros(50))
    config = PROTOCOLS.get("kfold").Config.model_validate({"k": 3})
    protocol = PROTOCOLS.get("kfold")(config)
    folds = protocol.folds(train, TASKS.get("regression"), 0)
    sizes = split_sizes(Plan("kfold", protocol, LoadedData(train, None, "fifty rows"), folds))
    assert sizes == {"non_test": 50, "folds": 3, "train_per_fold": "33-34",
                     "validation_per_fold": "16-17", "test": 0}  # fmt: skip  # was 33 and 17
    assert sizes_text(sizes) == ("non test 50, folds 3, train per fold 33-34, validation per "
                                 "fold 16-17, test 0")  # fmt: skip


def test_aggregate_holds_mean_std_and_per_fold_values(
    kfold_run: tuple[Path, dict[str, Any]],
) -> None:
    run_dir, results = kfold_run
    accuracy = results["cross_validation"]["metrics"]["accuracy"]
    per_fold = [
        json.loads((run_dir / f"fold_0{i}/results.json").read_text())["evaluation"]["metrics"][
            "accuracy"
        ]
        for i in (1, 2, 3)
    ]
    assert accuracy["values"] == pytest.approx(per_fold)
    assert accuracy["mean"] == pytest.approx(np.mean(per_fold)) and accuracy[
        "std"
    ] == pytest.approx(np.std(per_fold))
    rows = list(csv.reader((run_dir / "cv_summary.csv").open()))
    assert [r[0] for r in rows] == ["fold", "fold_01", "fold_02", "fold_03", "mean", "std"]
    assert float(rows[4][rows[0].index("accuracy")]) == pytest.approx(accuracy["mean"])
    assert (run_dir / "cv_curves.png").read_bytes()[:4] == b"\x89PNG"
    report = (run_dir / "report.md").read_text()
    assert "## Cross-validation (validation parts)" in report and "| fold_03 |" in report
    assert "- [fold_02/report.md](fold_02/report.md)" in report  # each fold's own report


def test_final_model_uses_the_best_epoch_and_reads_the_test_split_once(
    kfold_run: tuple[Path, dict[str, Any]],
) -> None:
    run_dir, results = kfold_run
    assert results["final_epochs"] == results["cross_validation"]["best_epoch"]
    assert 1 <= results["final_epochs"] <= 3
    assert results["evaluation"]["split"] == "test" and results["test_split_reads"] == 1
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows] == ["final"] * results["final_epochs"]
    assert (run_dir / "checkpoint.pt").is_file()
    assert {b["name"] for b in results["baselines"]} == {
        "majority class",
        "random guessing",
        "shuffled labels",
    }


def test_kfold_without_final_reports_validation_only(tmp_path: Path) -> None:
    run_dir, results = _run(tmp_path, evaluation={"protocol": "kfold", "k": 2})
    assert (
        results["test"] is None
        and results["evaluation"] is None
        and results["test_split_reads"] == 0
    )
    assert not (run_dir / "checkpoint.pt").exists()
    assert results["baseline_verdict"]["metric"] == "accuracy"  # fold-mean baselines still judged


def test_preprocessing_is_fitted_on_each_folds_training_part(
    kfold_run: tuple[Path, dict[str, Any]],
) -> None:
    run_dir, _ = kfold_run
    cfg = config_from_data(tiny_config(evaluation=KFOLD))
    data = load_data(cfg)
    folds = PROTOCOLS.get("kfold")(cfg.evaluation).folds(
        data.train, TASKS.get(cfg.task.name), cfg.seed
    )
    means = []
    for fold in folds:
        pipeline = load_run(run_dir / fold.name).fitted.pipeline
        name, standardize = pipeline.steps[0]
        assert name == "standardize"
        expected = data.train.x[fold.train_idx].mean(axis=0)
        assert np.allclose(standardize.mean_, expected, atol=1e-6)  # type: ignore[attr-defined]
        assert not np.allclose(standardize.mean_, data.train.x.mean(axis=0), atol=1e-4)  # type: ignore[attr-defined]
        means.append(standardize.mean_)  # type: ignore[attr-defined]
    assert not np.allclose(means[0], means[1])


def test_iterated_kfold_run_trains_p_times_k_models(tmp_path: Path) -> None:
    evaluation = {"protocol": "iterated_kfold", "k": 2, "repeats": 2}
    run_dir, results = _run(
        tmp_path, evaluation=evaluation, train={"epochs": 2, "batch_size": 32, "progress": "none"}
    )
    assert len(results["cross_validation"]["metrics"]["accuracy"]["values"]) == 4
    assert sorted(p.relative_to(run_dir).as_posix() for p in run_dir.glob("repeat_*/fold_*")) == [
        "repeat_01/fold_01",
        "repeat_01/fold_02",
        "repeat_02/fold_01",
        "repeat_02/fold_02",
    ]
    report = (run_dir / "report.md").read_text()
    assert "- [repeat_02/fold_01/report.md](repeat_02/fold_01/report.md)" in report
    assert "- [repeat_01/](repeat_01/)" not in report


def test_more_folds_than_samples_names_the_key_and_the_limit() -> None:
    for make in (lambda: splits.contiguous_folds(10, 11),
                 lambda: splits.kfold_indices(10, np.zeros(10), 11, False, False, 0)):  # fmt: skip
        with pytest.raises(DataError, match=r"^evaluation.k is 11, but there are only 10 "
                           r"training samples to fold; set k to at most 10 \(k = 10 is "
                           r"leave-one-out\)$"):  # fmt: skip
            make()


@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's all-NaN means say nothing
def test_leave_one_out_warns_that_r2_is_undefined_on_one_sample(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 2)).astype(np.float32)
    path = tmp_path / "tiny.csv"
    np.savetxt(path, np.column_stack([x, x.sum(1)]), delimiter=",", header="a,b,y", comments="")
    run_dir, results = _run(
        tmp_path, task="regression", loss="mse", metrics=["mae", "r2"], preprocess=[],
        data={"dataset": "csv", "path": str(path), "target": "y", "test_fraction": 0},
        model={"layers": [{"dense": 1}]}, evaluation={"protocol": "kfold", "k": 8},
        train={"epochs": 1, "batch_size": 4, "progress": "none"},
    )  # fmt: skip
    r2, mae = (results["cross_validation"]["metrics"][k] for k in ("r2", "mae"))
    assert r2["mean"] is None and r2["values"] == [None] * 8  # NaN, as strict JSON has it
    assert mae["mean"] > 0
    warning = (
        "r2 is undefined on 8 of 8 folds (too few validation samples, or all of one target "
        "value or class), so its mean and std are NaN; use larger folds or another metric"
    )
    assert results["warnings"] == [warning]
    assert f"## Warnings\n\n- {warning}\n" in (run_dir / "report.md").read_text()
    scored = CliRunner().invoke(app, ["eval", str(run_dir)], terminal_width=80)
    assert f"warning: {warning}\n" in scored.output  # re-scoring says so too, on one line


# --- time split -----------------------------------------------------------------------------


def test_time_split_carves_ordered_ranges_and_adds_the_last_value_baseline(tmp_path: Path) -> None:
    series = np.cumsum(np.random.default_rng(0).normal(size=200)).astype(np.float32)
    x = np.stack([series[:-1], np.arange(199, dtype=np.float32) / 199], axis=1)
    path = tmp_path / "series.csv"
    np.savetxt(
        path, np.column_stack([x, series[1:]]), delimiter=",", header="prev,t,next", comments=""
    )
    _, results = _run(
        tmp_path, task="regression", loss="mse", metrics=["mae"], preprocess=["standardize"],
        data={"dataset": "csv", "path": str(path), "target": "next", "test_fraction": 0},
        model={"layers": [{"dense": 8}, {"dense": 1}]},
        evaluation={"protocol": "time_split", "train": 0.6, "validation": 0.2, "test": 0.2},
    )  # fmt: skip
    assert results["data"]["sizes"] == {"train": 119, "validation": 40, "test": 40}
    names = [b["name"] for b in results["baselines"]]
    assert "last value (common sense)" in names
    last = next(b for b in results["baselines"] if b["name"].startswith("last value"))
    test_targets = series[1:][159:]
    expected = np.abs(
        test_targets - np.concatenate([series[1:][158:159], test_targets[:-1]])
    ).mean()
    assert last["mae"] == pytest.approx(expected, rel=1e-5)


# --- leak guards ----------------------------------------------------------------------------


def test_duplicate_rows_across_splits_are_counted_and_warned(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(50, 3)).round(3)
    rows[32] = rows[3]
    rows[35] = rows[4]  # two validation rows copy training rows
    rows[45] = rows[10]  # one test row copies a training row
    labels = (rows[:, 0] > 0).astype(int)
    path = tmp_path / "dup.csv"
    np.savetxt(
        path,
        np.column_stack([rows, labels]),
        delimiter=",",
        header="a,b,c,y",
        comments="",
        fmt="%.3f",
    )
    run_dir, results = _run(
        tmp_path, task="binary", loss="binary_crossentropy", preprocess=[],
        data={"dataset": "csv", "path": str(path), "target": "y", "test_fraction": 0},
        model={"layers": [{"dense": {"units": 1, "activation": "sigmoid"}}]},
        evaluation={"protocol": "time_split", "train": 0.6, "validation": 0.2, "test": 0.2},
    )  # fmt: skip
    assert results["leaks"]["duplicate_rows"] == {"train_validation": 2, "train_test": 1}
    assert any("2 validation rows are exact duplicates" in w for w in results["warnings"])
    assert (
        "exact duplicate rows across splits: train/validation 2, train/test 1"
        in (run_dir / "report.md").read_text()
    )
    assert any("1 test row is an exact duplicate of training rows" in w
               for w in results["warnings"])  # fmt: skip
    _, unvalidated = _run(
        tmp_path, task="binary", loss="binary_crossentropy", preprocess=[],
        data={"dataset": "csv", "path": str(path), "target": "y", "test_fraction": 0.2},
        model={"layers": [{"dense": {"units": 1, "activation": "sigmoid"}}]},
        evaluation={"validation": None},
    )  # fmt: skip
    assert list(unvalidated["leaks"]["duplicate_rows"]) == ["train_test"]  # no validation rows


def test_test_rows_are_sealed_until_the_final_evaluation() -> None:
    data = LoadedData(
        Arrays(np.zeros((4, 2)), np.zeros(4)), Arrays(np.ones((2, 2)), np.ones(2)), "toy"
    )
    assert data.test_split is not None and len(data.test_split) == 2
    with pytest.raises(SealedSplitError):
        _ = data.test_split.x
    with training_active(), pytest.raises(SealedSplitError, match="while a model is training"):
        data.test_split.unseal()
    assert data.test_split.unseal().x.shape == (2, 2) and data.test_split.reads == 1


def test_training_code_cannot_open_the_test_split() -> None:
    cfg = config_from_data(tiny_config())
    data = load_data(cfg)
    caught: list[Exception] = []

    class Peek(Callback):
        def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
            try:
                data.test_split.unseal()  # type: ignore[union-attr]
            except SealedSplitError as exc:
                caught.append(exc)

    train_fold(
        cfg,
        data.train,
        np.arange(len(data.train)),
        None,
        2,
        torch.device("cpu"),
        FitHooks(Peek()),
        [],
        0,
    )
    assert len(caught) == 2 and data.test_split.reads == 0  # type: ignore[union-attr]


# --- baselines and aggregates ---------------------------------------------------------------


def test_classification_baselines() -> None:
    y_train = np.array([0] * 70 + [1] * 30)
    y_eval = np.array([0] * 60 + [1] * 40)
    rows = {
        r["name"]: r
        for r in score_baselines(TASKS.get("binary").baselines, Targets(y_train, y_eval, seed=0))
    }
    assert rows["majority class"]["accuracy"] == pytest.approx(0.6)
    assert rows["random guessing"]["accuracy"] == pytest.approx(0.5)
    assert rows["shuffled labels"]["accuracy"] == pytest.approx(0.6**2 + 0.4**2, abs=0.04)
    assert rows["majority class"]["accuracy"] == pytest.approx(0.6)


def test_regression_baselines_use_training_targets_only() -> None:
    rows = {
        r["name"]: r
        for r in score_baselines(
            TASKS.get("regression").baselines,
            Targets(np.array([1.0, 2.0, 9.0]), np.array([2.0, 4.0]), 0),
        )
    }
    assert rows["mean predictor"]["mae"] == pytest.approx(1.0)  # mean 4 -> |2-4|, |4-4|
    assert rows["median predictor"]["mse"] == pytest.approx(2.0)  # median 2 -> 0, 4
    assert "last value (common sense)" not in rows  # only for time-ordered data


def test_curve_averaging_smoothing_and_best_epoch() -> None:
    assert smooth([1.0, 2.0, 3.0], 0.5) == [1.0, 1.5, 2.25]
    curves = average_curves([[{"val_loss": 1.0}, {"val_loss": 3.0}], [{"val_loss": 3.0}]])
    assert curves["val_loss"] == [2.0, 3.0]  # the second fold stopped after one epoch
    assert best_epoch([5.0, 2.0, 4.0], higher=False, offset=10) == (12, 2.0)


def test_the_best_epoch_is_read_where_every_fold_trained() -> None:
    stopped_early = [[{"val_loss": v} for v in (1.0, 0.8, 0.7)],
                     [{"val_loss": v} for v in (1.0, 0.8, 0.7, 0.75, 0.2)]]  # fmt: skip
    cv = cross_validate([{}], stopped_early, "val_loss", False, 0.9, 0)
    assert cv.best_epoch == 3 and cv.best_value == pytest.approx(0.7)  # not 5: one fold's alone
    assert cv.curves["val_loss"] == pytest.approx([1.0, 0.8, 0.7, 0.75, 0.2])  # drawn whole


def test_a_short_curve_picks_its_best_epoch_unsmoothed_and_a_long_one_smoothed() -> None:
    def folds(curve: list[float]) -> list[list[dict[str, float]]]:
        return [[{"val_loss": v} for v in curve], [{"val_loss": v + 0.1} for v in curve]]

    short = cross_validate([{}], folds([1.0, 0.8, 0.6]), "val_loss", False, 0.9, 10)
    assert (short.best_epoch, short.smoothing, short.skip_first) == (3, 0.0, 0)  # EMA: epoch 1
    assert short.best_value == pytest.approx(0.65) and short.to_dict()["smoothing"] == 0.0
    trend = [1 + ((epoch - 40) / 40) ** 2 for epoch in range(1, 61)]
    trend[11] = 0.5  # one lucky epoch (12), the raw minimum; the EMA reads the trend instead
    long = cross_validate([{}], folds(trend), "val_loss", False, 0.9, 10)
    assert (long.smoothing, long.skip_first) == (0.9, 10)
    assert long.smoothed == pytest.approx(smooth([v + 0.05 for v in trend[10:]], 0.9))
    assert long.best_epoch == best_epoch(long.smoothed, False, offset=10)[0]
    assert long.best_epoch is not None and long.best_epoch > 40  # past the trend's low point


def test_report_flags_a_model_that_does_not_beat_its_baseline() -> None:
    from dlrun.reporting.markdown import render_report

    results = {"name": "weak", "status": "completed", "fold": "fold_01", "seed": 0, "epochs_run": 1,
               "sizes": {"train": 10, "validation": 5},
               "evaluation": {"split": "validation", "metrics": {"accuracy": 0.5}},
               "baselines": [{"name": "majority class", "accuracy": 0.6}],
               "baseline_verdict": {"metric": "accuracy", "model": 0.5, "baseline": "majority class",
                                    "baseline_value": 0.6, "beats": False, "p_value": 0.9,
                                    "test": "exact binomial"}}  # fmt: skip
    text = render_report(results, [], "", ["report.md"])
    assert (
        "**The model (accuracy 0.5000) is no better than the majority class baseline at 0.6000: "
        "one-sided exact binomial test, p = 0.9; it has no statistical power yet.**" in text
    )


def _time_split_npz(tmp_path: Path, official: bool, **data: Any) -> dict[str, Any]:
    """A 20-row regression series in an npz: with its own test split (the last 5 rows) or not."""
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    arrays = ({"x_train": x[:15], "y_train": x[:15, 0], "x_test": x[15:], "y_test": x[15:, 0]}
              if official else {"x": x, "y": x[:, 0]})  # fmt: skip
    np.savez(tmp_path / "series.npz", **arrays)  # type: ignore[arg-type]
    return {"task": "regression", "preprocess": [], "loss": "mse", "metrics": ["mae"],
            "model": {"layers": [{"dense": 1}]},
            "data": {"dataset": "npz", "path": str(tmp_path / "series.npz"), **data}}  # fmt: skip


def test_time_split_test_range_conflicts_with_a_dataset_test_split(tmp_path: Path) -> None:
    evaluation = {"protocol": "time_split", "train": 0.5, "validation": 0.2, "test": 0.3}
    with pytest.raises(DataError, match=r"has a test split of its own; leave evaluation\.test "
                       r"out to test on that one"):  # fmt: skip
        _run(tmp_path, evaluation=evaluation, **_time_split_npz(tmp_path, official=True))
    assert not (tmp_path / "runs").exists()  # refused before any run directory was made
    evaluation = {"protocol": "time_split", "train": 0.7, "validation": 0.3}
    _, results = _run(tmp_path, evaluation=evaluation, **_time_split_npz(tmp_path, official=True))
    assert results["data"]["sizes"] == {"train": 10, "validation": 4, "test": 5}  # its own


@pytest.mark.parametrize("test", [0.3, None])
def test_time_split_refuses_a_test_split_drawn_at_random(
    tmp_path: Path, test: float | None
) -> None:
    evaluation = {"protocol": "time_split", "train": 0.5, "validation": 0.2, "test": test}
    with pytest.raises(DataError) as caught:  # data.test_fraction 0.2 by default
        _run(tmp_path, evaluation=evaluation, **_time_split_npz(tmp_path, official=False))
    assert str(caught.value) == (
        "the rows are kept in time order, but data.test_fraction (0.2) draws test rows at "
        "random from the whole series, so the model would train on rows from after them; set "
        "data.test_fraction: 0 and carve the last rows with evaluation.test"
    )
    assert not (tmp_path / "runs").exists()


def test_time_split_fractions_under_one_say_what_they_leave_out(tmp_path: Path) -> None:
    data = _time_split_npz(tmp_path, official=False, test_fraction=0)
    evaluation = {"protocol": "time_split", "train": 0.5, "validation": 0.25}
    _, results = _run(tmp_path / "a", evaluation=evaluation, **data)
    assert results["data"]["sizes"] == {"train": 10, "validation": 5, "test": 0}
    assert results["warnings"] == [
        "the time_split fractions leave the last 5 rows to no part; raise evaluation.train, "
        "validation or test to use them"
    ]
    evaluation = {"protocol": "time_split", "train": 0.75, "validation": 0.25}
    _, results = _run(tmp_path / "b", evaluation=evaluation, **data)
    assert results["warnings"] == []  # every row has its part


@pytest.mark.parametrize("final", [None, {"epochs": 1}])
def test_test_rows_duplicating_training_rows_are_warned_of_only_when_tested(
    tmp_path: Path, final: dict[str, int] | None
) -> None:
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.savez(tmp_path / "dup.npz", x_train=x, y_train=x[:, 0], x_test=x[:4], y_test=x[:4, 0])
    evaluation = {"protocol": "kfold", "k": 2, **({"final": final} if final else {})}
    _, results = _run(tmp_path, task="regression", preprocess=[], loss="mse", metrics=["mae"],
                      model={"layers": [{"dense": 1}]}, evaluation=evaluation,
                      data={"dataset": "npz", "path": str(tmp_path / "dup.npz")})  # fmt: skip
    said = [w for w in results["warnings"] if "test rows" in w]
    assert said == (["4 test rows are exact duplicates of training rows; their scores are "
                     "optimistic (deduplicate the data to fix this)"] if final else [])  # fmt: skip


def test_time_split_fractions_fit_in_the_rows() -> None:
    evaluation = {"protocol": "time_split", "train": 0.6, "validation": 0.3, "test": 0.3}
    with pytest.raises(ConfigError, match=r"add up to more than the rows there are "
                       r"\(0\.6 \+ 0\.3 \+ 0\.3 = 1\.2\); make them add up to at most 1"):  # fmt: skip
        config_from_data(tiny_config(data={"dataset": "iris", "test_fraction": 0},
                                     evaluation=evaluation))  # fmt: skip


def test_validation_rows_of_a_single_class_are_warned_about(tmp_path: Path) -> None:
    """Iris is stored class by class: its last fifth is all virginica, where any constant
    guess is perfect (the shuffled-labels baseline scored 1.0 and the verdict blamed power)."""
    _, results = _run(
        tmp_path, data={"dataset": "iris", "test_fraction": 0},
        evaluation={"validation": {"last_fraction": 0.2}},
    )  # fmt: skip
    assert [w for w in results["warnings"] if "single class" in w] == [
        "the validation rows (30) hold a single class: any constant guess scores them "
        "perfectly; draw them at random (evaluation.validation: {fraction: ..., stratify: "
        "true}) or shuffle the data"
    ]
    folds = {"protocol": "kfold", "k": 3, "contiguous": True, "shuffle": False}
    _, kfold = _run(tmp_path, evaluation=folds, preprocess=["standardize"],
                    loss="sparse_categorical_crossentropy",
                    data={"dataset": "iris", "test_fraction": 0})  # fmt: skip
    assert len([w for w in kfold["warnings"] if "validation rows (50) hold a single" in w]) == 3
    _, mixed = _run(tmp_path)
    assert not [w for w in mixed["warnings"] if "single class" in w]
