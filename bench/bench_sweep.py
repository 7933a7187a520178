"""Sweep throughput: the same 8-trial grid with 1 and with 2 worker processes, in one run.

Each trial is a small digits classifier (64-32-10, a few epochs), so the comparison shows how
well workers overlap and what process start-up costs. Prints trials per minute for each and the
scaling efficiency, (time with 1 worker / time with 2) / 2.

    python bench/bench_sweep.py [--epochs 60]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from dlrun.config.load import config_from_data
from dlrun.sweep.run import run_sweep


def config(epochs: int, name: str) -> dict[str, object]:
    return {
        "name": name, "task": "multiclass", "data": {"dataset": "digits"},
        "preprocess": [{"rescale": {"scale": "1/16"}}, "one_hot"],
        "model": {"layers": [{"dense": {"units": 32, "activation": "relu"}},
                             {"dense": {"units": 10, "activation": "softmax"}}]},
        "loss": "categorical_crossentropy", "optimizer": {"name": "adam", "lr": 0.002},
        "metrics": ["accuracy"], "train": {"epochs": epochs, "batch_size": 32, "progress": "none"},
        "sweep": {"method": "grid", "objective": {"metric": "accuracy"}, "parameters": {
            "optimizer.lr": {"choice": [0.001, 0.002, 0.005, 0.01]},
            "model.layers.0.dense.units": {"choice": [32, 64]}}},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    seconds = {}
    with tempfile.TemporaryDirectory() as scratch:
        for workers in (1, 2):
            cfg = config_from_data(config(args.epochs, f"bench_{workers}"))
            started = time.perf_counter()
            result = run_sweep(cfg, Path(scratch), workers=workers)
            seconds[workers] = time.perf_counter() - started
            assert sum(r.state == "complete" for r in result.rows) == 8
    print(f"8-trial grid, digits 64-32-10, {args.epochs} epochs per trial, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads per process")  # fmt: skip
    for workers, value in seconds.items():
        print(f"  {workers} worker(s): {value:6.1f} s, {8 * 60 / value:5.1f} trials/min")
    print(f"  scaling efficiency with 2 workers: {seconds[1] / seconds[2] / 2:.2f}")


if __name__ == "__main__":
    main()
