"""Slow reproduction runs on the real book datasets (``make test-all``; excluded from CI)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from dlrun.api import run_experiment
from dlrun.config.load import load_config
from tests.conftest import REPO

SHARED = REPO.parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "config", "book", "tolerance"),
    [
        ("mnist", "ch2_mnist_dense.yaml", 0.9785, 0.006),  # book: 0.9785
        ("mnist", "ch5_mnist_convnet.yaml", 0.9908, 0.003),  # book: 0.9908; 80 s here
        # the book gives no number (somewhat below the LSTM's 0.89 validation accuracy); dlrun
        # measured 0.882 validation and 0.862 test accuracy after epoch 10; 4 minutes here
        ("imdb", "ch6_imdb_conv1d.yaml", 0.86, 0.02),
    ],
)
def test_dlwp_test_accuracy_is_the_books(
    dataset: str,
    config: str,
    book: float,
    tolerance: float,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not (SHARED / dataset).is_dir():
        pytest.skip(f"{dataset} is not in ../shared/data")
    monkeypatch.setenv("DLRUN_DATA_PATH", str(SHARED))
    cfg = load_config(REPO / "configs/dlwp" / config, ["train.progress=none"])
    accuracy = run_experiment(cfg, tmp_path).results["test"]["accuracy"]
    assert accuracy == pytest.approx(book, abs=tolerance)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "auc", "balanced"),
    [
        ("ch13_imdb_simple_rnn.yaml", 0.92, 0.8382),  # dlrun: 0.929, 0.848; a minute here
        ("ch13_imdb_lstm.yaml", 0.93, 0.8544),
    ],
)
def test_beginners_ch13_auc_and_balanced_accuracy_are_the_books(
    config: str, auc: float, balanced: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The book scores the test reviews at the threshold it chose on them; dlrun's figure is
    the test split at the threshold chosen on the validation split."""
    if not (SHARED / "imdb").is_dir():
        pytest.skip("imdb is not in ../shared/data")
    monkeypatch.setenv("DLRUN_DATA_PATH", str(SHARED))
    cfg = load_config(REPO / "configs/beginners" / config, ["train.progress=none"])
    result = run_experiment(cfg, tmp_path)
    assert result.results["test"]["roc_auc"] == pytest.approx(auc, abs=0.015)
    rows = json.loads((result.run_dir / "thresholds.json").read_text())["thresholds"]
    (chosen,) = [row for row in rows if row["chosen_on"] == "validation"]
    assert chosen["balanced_accuracy"] == pytest.approx(balanced, abs=0.02)


def _boston(tmp_path: Path, config: str, *overrides: str) -> dict:
    data = SHARED / "boston_housing" / "boston_housing.npz"
    if not data.is_file():
        pytest.skip("Boston housing is not in ../shared/data")
    cfg = load_config(
        REPO / "configs/dlwp" / config, [f"data.path={data}", "train.progress=none", *overrides]
    )
    return run_experiment(cfg, tmp_path).results


@pytest.mark.slow
def test_dlwp_ch3_boston_kfold_mean_mae_lies_in_the_books_range(tmp_path: Path) -> None:
    results = _boston(tmp_path, "ch3_boston_kfold.yaml")
    mae = results["cross_validation"]["metrics"]["mae"]
    assert len(mae["values"]) == 4 and results["parallel_folds"] is True
    assert 2.2 <= mae["mean"] <= 3.2  # book: 2.99 (Python), 2.39 (R edition); folds 2.6 to 3.2
    assert results["baseline_verdict"]["beats"] is True


@pytest.mark.slow
def test_dlwp_ch3_boston_final_test_mae_is_near_the_book(tmp_path: Path) -> None:
    results = _boston(tmp_path, "ch3_boston_final.yaml")
    assert results["test"]["mae"] == pytest.approx(2.55, abs=0.35)  # book: 2.55
    assert results["test_split_reads"] == 1


def test_ci_reproduction_subset_is_within_tolerance(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI's quick subset: MNIST dense, the IMDB and Boston final models on the real data and
    the ch. 6 spirals network, one seed each."""
    if not all((SHARED / name).is_dir() for name in ("mnist", "imdb", "boston_housing")):
        pytest.skip("MNIST, IMDB or Boston housing is not in ../shared/data")
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproduce", REPO / "bench" / "reproduce.py")
    assert spec is not None and spec.loader is not None
    reproduce = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "reproduce", reproduce)  # dataclasses look their module up
    spec.loader.exec_module(reproduce)
    monkeypatch.setenv("DLRUN_DATA_PATH", str(SHARED))
    rows, skipped = reproduce.reproduce(quick=True, seeds=None)
    assert not skipped and len(rows) == 4
    for row in rows:
        assert row.within, row.markdown()


@pytest.mark.slow
def test_beginners_e19_memorizes_its_vector_and_fails_on_the_inverse(tmp_path: Path) -> None:
    """Book: MSE 0.0066 on the trained 00100111, 0.844 on 11011000 (seed 0 here: 0.0066 and
    0.8446; seeds 1 and 2: 0.0083 / 0.8263 and 0.0075 / 0.8345)."""
    cfg = load_config(REPO / "configs/beginners/ch7_bits_autoencoder.yaml")
    result = run_experiment(cfg, tmp_path)
    with (result.run_dir / "metrics.csv").open() as handle:
        last = list(csv.DictReader(handle))[-1]
    assert float(last["loss"]) == pytest.approx(0.0066, abs=0.003)
    assert result.results["test"]["loss"] == pytest.approx(0.8445, abs=0.03)
