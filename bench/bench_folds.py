"""K-fold wall time: the Boston 4-fold config (DLwP 3.6.4) with folds trained one after another
vs all four at once (``evaluation.parallel_folds``), in this process, same data, same seeds.

Uses ../shared/data/boston_housing when present (or DLRUN_DATA_PATH), else a generated file of
the same shape: speed does not depend on the values. Prints seconds per variant, the speed
ratio (target: parallel at least 2.5x faster on 2 CPU cores) and the largest difference between
the two variants' per-fold validation MAE. Then it times one stacked training step of the same
network both ways a stack can run it: batched matmuls (dense layers' direct form) and
``torch.func.vmap`` over ``functional_call`` (the general form, for layers without one).

    python bench/bench_folds.py [--epochs 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dlrun.api import run_experiment
from dlrun.config.load import load_config
from dlrun.config.schema import LayerEntry
from dlrun.models.build import build_model
from dlrun.models.stacked import StackedNetwork

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs/dlwp/ch3_boston_kfold.yaml"


def boston_file(scratch: Path) -> Path:
    roots = [Path(p) for p in os.environ.get("DLRUN_DATA_PATH", "").split(os.pathsep) if p]
    for root in [*roots, REPO.parent / "shared/data"]:
        candidate = root / "boston_housing/boston_housing.npz"
        if candidate.is_file():
            return candidate
    rng = np.random.default_rng(0)
    path = scratch / "boston_housing.npz"
    np.savez(path, x=rng.normal(size=(506, 13)) * 10, y=rng.uniform(5, 50, size=506))
    return path


def timed(parallel: bool, epochs: int, data: Path, runs: Path) -> tuple[float, list[float]]:
    overrides = [f"data.path={data}", f"train.epochs={epochs}", "train.progress=none",
                 f"evaluation.parallel_folds={str(parallel).lower()}"]  # fmt: skip
    cfg = load_config(CONFIG, overrides)
    started = time.perf_counter()
    result = run_experiment(cfg, runs)
    seconds = time.perf_counter() - started
    assert result.results["parallel_folds"] is parallel
    return seconds, result.results["cross_validation"]["metrics"]["mae"]["values"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100, help="the config's own: 100")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data = boston_file(Path(scratch))
        runs = Path(scratch) / "runs"
        times: dict[bool, list[float]] = {False: [], True: []}
        maes: dict[bool, list[float]] = {}
        for _ in range(args.repeats):
            for parallel in (False, True):  # alternate so both see the same machine load
                seconds, maes[parallel] = timed(parallel, args.epochs, data, runs)
                times[parallel].append(seconds)
    sequential, stacked = min(times[False]), min(times[True])
    gap = max(abs(a - b) for a, b in zip(maes[False], maes[True], strict=True))
    print(f"Boston 4-fold 13-64-64-1, batch 1, {args.epochs} epochs, "
          f"{torch.get_num_threads()} torch threads, data {data.name}")  # fmt: skip
    print(f"  fastest of {args.repeats} alternating repeats each")
    print(f"  sequential folds: {sequential:7.2f} s")
    print(f"  parallel folds:   {stacked:7.2f} s")
    print(f"  speed ratio sequential/parallel: {sequential / stacked:.2f}x (target >= 2.5)")
    print(f"  largest per-fold validation MAE difference: {gap:.2e}")
    direct, vmapped = step_times()
    print(
        f"  one stacked step (4 folds, batch 1): batched matmul {direct * 1e6:.0f} us, "
        f"vmap {vmapped * 1e6:.0f} us, vmap/matmul {vmapped / direct:.2f}x"
    )


def step_times(steps: int = 2000) -> tuple[float, float]:
    """Seconds per stacked training step of Boston's 13-64-64-1 network, K=4, batch 1."""
    layers = [LayerEntry.model_validate(layer) for layer in (
        {"dense": {"units": 64, "activation": "relu"}},
        {"dense": {"units": 64, "activation": "relu"}}, {"dense": 1})]  # fmt: skip
    models = []
    for seed in range(4):
        torch.manual_seed(seed)
        models.append(build_model(layers, (13,)))
    x, y = torch.randn(4, 1, 13), torch.randn(4, 1, 1)
    times = []
    for use_vmap in (False, True):
        network = StackedNetwork(models, use_vmap)
        optimizer = torch.optim.RMSprop(list(network.params.values()), lr=1e-3)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(steps):
                loss = (network(x) - y).square().mean(dim=(1, 2)).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            best = min(best, (time.perf_counter() - started) / steps)
        times.append(best)
    return times[0], times[1]


if __name__ == "__main__":
    main()
