"""Windows of a time series (DLwP 6.3, Jena): contents, training-only statistics, memory, leaks.

The Jena CSV is not on the development machines; the tests write small files in its format.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from dlrun.api import run_experiment
from dlrun.config.load import config_from_data
from dlrun.data.base import LoadedData
from dlrun.data.load import load_data
from dlrun.data.windows import WindowConfig
from dlrun.data.windows import WindowRows
from dlrun.data.windows import WindowTargets
from dlrun.data.windows import windowed
from dlrun.evaluation.protocols import TimeSplit
from dlrun.training.batches import InMemorySource
from dlrun.training.batches import host_tensors
from dlrun.training.batches import to_device
from tests.conftest import tiny_config

JENA_COLUMNS = ["p (mbar)", "T (degC)", "Tpot (K)", "Tdew (degC)", "rh (%)", "VPmax (mbar)",
                "VPact (mbar)", "VPdef (mbar)", "sh (g/kg)", "H2OC (mmol/mol)", "rho (g/m**3)",
                "wv (m/s)", "max. wv (m/s)", "wd (deg)"]  # fmt: skip


def write_jena(path: Path, rows: int, seed: int = 0) -> np.ndarray:
    """A CSV in the Jena file's format (quoted header, a date column, 14 numbers every 10 min)."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    values = rng.normal(size=(rows, 14)).cumsum(axis=0) * 0.1 + np.arange(14) * 10
    values[:, 1] = 8 + 6 * np.sin(2 * np.pi * t / 144) + rng.normal(scale=0.3, size=rows)
    header = ",".join(f'"{name}"' for name in ["Date Time", *JENA_COLUMNS])
    lines = [header]
    for i, row in enumerate(values):
        stamp = f"{1 + i // 144:02d}.01.2009 {(i % 144) // 6:02d}:{(i % 6) * 10:02d}:00"
        lines.append(stamp + "," + ",".join(f"{v:.2f}" for v in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, 15), dtype=np.float32)


def dlwp_generator(data: np.ndarray, lookback: int, delay: int, min_index: int,
                   max_index: int, step: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """DLwP listing 6.33 in order (``shuffle=False``), every window at once, target column 1."""
    rows = np.arange(min_index + lookback, max_index)
    samples = np.zeros((len(rows), lookback // step, data.shape[-1]), dtype=np.float32)
    targets = np.zeros((len(rows),), dtype=np.float32)
    for j in range(len(rows)):
        indices = range(rows[j] - lookback, rows[j], step)
        samples[j] = data[indices]
        targets[j] = data[rows[j] + delay][1]
    return samples, targets


def planned(arrays_data: LoadedData, **spans: object) -> tuple[TimeSplit, LoadedData]:
    protocol = TimeSplit(TimeSplit.Config.model_validate(spans))
    return protocol, protocol.prepare(arrays_data)


def test_windows_equal_the_dlwp_generator() -> None:
    series = np.random.default_rng(1).normal(size=(120, 3)).astype(np.float32)
    config = WindowConfig(lookback=12, step=3, delay=5, standardize=False)
    arrays = windowed(series, 1, "T", config)
    samples, targets = dlwp_generator(series, 12, 5, 0, len(series) - 5, 3)
    windows = arrays.x
    assert isinstance(windows, WindowRows) and len(windows) == len(samples)
    np.testing.assert_array_equal(windows.dense(), samples)
    np.testing.assert_array_equal(arrays.y, targets)
    # on the device: a strided view of the series; a shuffled batch gathers the same windows
    _, data = planned(LoadedData(arrays, None, "series"), train=1.0)
    source = InMemorySource(host_tensors(data.train), 7, torch.device("cpu"), shuffle=True)
    order = source.next_order()[:7]
    source.generator.set_state(source._epoch_start)
    batch = next(source.epoch())
    np.testing.assert_array_equal(batch["x"].numpy(), samples[order.numpy()])
    np.testing.assert_array_equal(batch["y"].numpy().reshape(-1), targets[order.numpy()])


def test_standardisation_uses_training_rows_only() -> None:
    series = np.random.default_rng(2).normal(3.0, 2.0, size=(400, 4)).astype(np.float32)
    config = WindowConfig(lookback=8, step=2, delay=3)
    spans = {"train": [0, 200], "validation": [200, 300], "test": [300, None]}

    def fitted(values: np.ndarray) -> WindowRows:
        data = LoadedData(windowed(values, 1, "T", config), None, "series")
        _, prepared = planned(data, **spans)
        windows = prepared.train.x
        assert isinstance(windows, WindowRows)
        return windows

    before = fitted(series)
    changed = series.copy()
    changed[200:300] += 1000.0  # validation and test rows only
    changed[300:] -= 500.0
    after = fitted(changed)
    np.testing.assert_array_equal(before.series.values[:200], after.series.values[:200])
    assert before.series.scale == after.series.scale == pytest.approx(series[:200, 1].std())
    np.testing.assert_allclose(before.series.values[:200].mean(axis=0), 0, atol=1e-5)
    assert not np.allclose(after.series.values[200:].mean(axis=0), 0, atol=1)


def test_windows_hold_far_less_than_the_materialised_windows() -> None:
    series = np.zeros((100_000, 14), dtype=np.float32)
    arrays = windowed(series, 1, "T", WindowConfig(lookback=1440, step=6, delay=144))
    windows = arrays.x
    assert isinstance(windows, WindowRows)
    materialised = len(windows) * 240 * 14 * 4
    assert windows.nbytes < 2 * series.nbytes < materialised / 100
    _, data = planned(LoadedData(arrays, None, "series"), train=1.0)
    view = host_tensors(data.train)["x"]
    assert tuple(view.shape) == (len(windows), 240, 14)
    assert view.untyped_storage().nbytes() <= series.nbytes
    # to another device (meta stands in for a GPU): the rows move once, the view stays a view
    moved = to_device(view, torch.device("meta"))
    assert moved.device.type == "meta" and moved.stride() == view.stride()
    assert moved.untyped_storage().nbytes() == view.untyped_storage().nbytes()


def test_no_window_reaches_its_target_or_a_later_split() -> None:
    series = np.random.default_rng(3).normal(size=(1000, 2)).astype(np.float32)
    arrays = windowed(series, 0, "T", WindowConfig(lookback=30, step=6, delay=12))
    protocol, data = planned(
        LoadedData(arrays, None, "series"), train=[0, 500], validation=[501, 800],
        test=[801, None],
    )  # fmt: skip
    (fold,) = protocol.folds(data.train, type(None), 0)  # type: ignore[arg-type]
    assert data.test_split is not None and fold.val_idx is not None
    parts = {
        (0, 500): data.train.x[fold.train_idx],
        (501, 800): data.train.x[fold.val_idx],
        (801, 1000): data.test_split.unseal().x,
    }
    for (start, stop), windows in parts.items():
        assert isinstance(windows, WindowRows) and len(windows)
        inputs, target = windows.input_rows(), windows.target_rows()
        assert np.all(target > inputs.max(axis=1))
        assert inputs.min() >= start and target.max() < stop
    # the near-boundary windows are dropped, not moved: each range keeps what fits
    assert len(parts[(0, 500)]) == 500 - 30 - 12


def test_common_sense_baseline_is_the_last_input_value() -> None:
    series = np.random.default_rng(4).normal(size=(200, 2)).astype(np.float32)
    arrays = windowed(series, 1, "T (degC)", WindowConfig(lookback=10, step=5, delay=4))
    _, data = planned(LoadedData(arrays, None, "series"), train=0.5, validation=0.5)
    y = data.train.y
    assert isinstance(y, WindowTargets) and y.current is not None
    x = data.train.x
    assert isinstance(x, WindowRows)
    picked = y[np.array([3, 0, 7])]
    np.testing.assert_array_equal(picked.current, x.dense()[[3, 0, 7], -1, 1])
    # pickled for DataLoader workers: the series and the aligned last values travel along
    again = pickle.loads(pickle.dumps(picked))
    assert again.series is not None and again.series.unit == "T (degC)"
    np.testing.assert_array_equal(again.current, picked.current)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(x)).dense(), x.dense())


def test_jena_gru_run_reports_the_common_sense_baseline_in_both_units(tmp_path: Path) -> None:
    path = tmp_path / "jena_climate_2009_2016.csv"
    table = write_jena(path, 700)
    windows = {"lookback": 36, "step": 6, "delay": 12}
    cfg = tiny_config(
        name="jena_tiny", task="regression", loss="mae", metrics=["mae"], preprocess=[],
        data={"dataset": "jena_climate", "path": str(path), "windows": windows},
        model={"layers": [{"gru": 4}, {"dense": 1}]},
        optimizer={"name": "rmsprop"},
        train={"epochs": 2, "batch_size": 32, "progress": "none"},
        evaluation={"protocol": "time_split", "train": [0, 400], "validation": [401, 550],
                    "test": [551, None]},
    )  # fmt: skip
    loaded = load_data(config_from_data(cfg))
    assert len(loaded.train) == 700 - 36 - 12
    result = run_experiment(config_from_data(cfg), tmp_path / "runs")
    results = result.results
    assert results["data"]["sizes"] == {"train": 400 - 48, "validation": 149 - 48,
                                        "test": 149 - 48}  # fmt: skip
    assert results["test"]["mae"] > 0
    scale = table[:400, 1].std()  # the model's MAE in degrees too, beside the baseline's
    assert results["test"]["mae in T (degC)"] == pytest.approx(results["test"]["mae"] * scale)
    last = next(b for b in results["baselines"] if b["name"] == "last value (common sense)")
    std = table[:400, 1].std()
    ends = np.arange(551 + 36, 700 - 12)
    expected = np.abs(table[ends + 12, 1] - table[ends - 6, 1]).mean()
    assert last["mae in T (degC)"] == pytest.approx(expected, rel=1e-4)
    assert last["mae"] == pytest.approx(expected / std, rel=1e-4)
    report = (result.run_dir / "report.md").read_text()
    assert "last value (common sense)" in report and "mae in T (degC)" in report
