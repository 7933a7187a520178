"""Slow reproduction runs on the real book datasets (``make test-all``; excluded from CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlrun.api import run_experiment
from dlrun.config.load import load_config
from tests.conftest import REPO

SHARED = REPO.parent / "shared" / "data"


@pytest.mark.slow
def test_dlwp_ch2_mnist_dense_reaches_the_book_accuracy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (SHARED / "mnist").is_dir():
        pytest.skip("MNIST is not in ../shared/data")
    monkeypatch.setenv("DLRUN_DATA_PATH", str(SHARED))
    cfg = load_config(REPO / "configs/dlwp/ch2_mnist_dense.yaml", ["train.progress=none"])
    result = run_experiment(cfg, tmp_path)
    assert result.results["test"]["accuracy"] == pytest.approx(0.9785, abs=0.006)  # book: 0.9785
