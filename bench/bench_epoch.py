"""Per-epoch time of dlrun's trainer against a minimal hand-written PyTorch loop.

Both run in this process on the same synthetic data of the real shapes, the same model and the
same optimizer; dlrun runs with metrics, metric files, TensorBoard and the progress reporter on.
Prints the ratio dlrun / hand-written per case (target: at most 1.10).

    python bench/bench_epoch.py [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console

from dlrun.config.load import config_from_data
from dlrun.evaluation.fitting import task_for
from dlrun.reporting.loggers import MetricsFileLogger
from dlrun.reporting.loggers import TensorBoardLogger
from dlrun.reporting.progress import ProgressReporter
from dlrun.training.batches import InMemorySource
from dlrun.training.callbacks import CallbackList
from dlrun.training.loop import fit
from dlrun.training.snapshots import Snapshots


@dataclass(frozen=True)
class TensorData:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)


CASES: dict[str, dict[str, Any]] = {
    "mnist dense 784-512-10, batch 128": {
        "n": 48000, "n_val": 12000, "features": 784, "classes": 10, "batch": 128,
        "layers": [{"dense": {"units": 512, "activation": "relu"}},
                   {"dense": {"units": 10, "activation": "softmax"}}],
        "task": "multiclass", "loss": "categorical_crossentropy",
    },
    "imdb multi-hot 10000-16-16-1, batch 512": {
        "n": 15000, "n_val": 10000, "features": 10000, "classes": 1, "batch": 512,
        "layers": [{"dense": {"units": 16, "activation": "relu"}},
                   {"dense": {"units": 16, "activation": "relu"}},
                   {"dense": {"units": 1, "activation": "sigmoid"}}],
        "task": "binary", "loss": "binary_crossentropy",
    },
}  # fmt: skip


def make_data(case: dict[str, Any], n: int, gen: torch.Generator) -> TensorData:
    if case["features"] == 10000:
        x = (torch.rand(n, case["features"], generator=gen) < 0.02).float()
    else:
        x = torch.rand(n, case["features"], generator=gen)
    if case["classes"] == 1:
        y = torch.randint(0, 2, (n, 1), generator=gen).float()
    else:
        y = torch.eye(case["classes"])[torch.randint(0, case["classes"], (n,), generator=gen)]
    return TensorData(x, y)


def dlrun_epochs(case: dict[str, Any], train: TensorData, val: TensorData, epochs: int) -> float:
    """dlrun's loop as a run uses it: metric files, TensorBoard, progress bar, resume state."""
    cfg = config_from_data({
        "name": "bench", "task": case["task"], "data": {"dataset": "iris"},
        "model": {"layers": case["layers"]}, "loss": case["loss"], "metrics": ["accuracy"],
        "preprocess": ["one_hot"] if case["classes"] > 1 else [],
    })  # fmt: skip
    torch.manual_seed(0)
    task = task_for(cfg)
    device = torch.device("cpu")
    sources = [
        InMemorySource({"x": d.x, "y": d.y}, case["batch"], device, shuffle=shuffle, seed=0)
        for d, shuffle in ((train, True), (val, False))
    ]
    task.build(sources[0].fields(), device)
    with tempfile.TemporaryDirectory() as tmp:
        progress = ProgressReporter("bar", Console(file=io.StringIO(), force_terminal=True))
        callbacks = CallbackList(
            [MetricsFileLogger(Path(tmp)), TensorBoardLogger(Path(tmp)), progress]
        )
        snapshots = Snapshots(Path(tmp) / "resume-fit.pt")
        started = time.perf_counter()
        fit(task, sources[0], sources[1], epochs, callbacks, snapshots)
        return (time.perf_counter() - started) / epochs


def handwritten_epochs(
    case: dict[str, Any], train: TensorData, val: TensorData, epochs: int
) -> float:
    """The loop a user would write: shuffle, batch by index, step; then score validation."""
    torch.manual_seed(0)
    hidden = [layer["dense"]["units"] for layer in case["layers"]]
    modules: list[torch.nn.Module] = []
    width = case["features"]
    for units in hidden[:-1]:
        modules += [torch.nn.Linear(width, units), torch.nn.ReLU()]
        width = units
    modules.append(torch.nn.Linear(width, hidden[-1]))
    net = torch.nn.Sequential(*modules)
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    binary = case["classes"] == 1
    gen = torch.Generator().manual_seed(0)

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if binary:
            return F.binary_cross_entropy_with_logits(out, y)
        return F.cross_entropy(out, y.argmax(1))

    started = time.perf_counter()
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), case["batch"]):
            idx = order[i : i + case["batch"]]
            loss = loss_fn(net(train.x[idx]), train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            out = net(val.x)
            float(loss_fn(out, val.y))
            hits = (out > 0).float() == val.y if binary else out.argmax(1) == val.y.argmax(1)
            float(hits.float().mean())
    return (time.perf_counter() - started) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.epochs} epochs x {args.repeats} repeats"
    )
    for name, case in CASES.items():
        gen = torch.Generator().manual_seed(0)
        train, val = make_data(case, case["n"], gen), make_data(case, case["n_val"], gen)
        ours, theirs = [], []
        for _ in range(args.repeats):  # interleaved so machine noise hits both alike
            theirs.append(handwritten_epochs(case, train, val, args.epochs))
            ours.append(dlrun_epochs(case, train, val, args.epochs))
        a, b = min(ours), min(theirs)  # noise only ever adds time: compare the best runs
        print(f"{name}: dlrun {a:.3f} s/epoch, hand-written {b:.3f} s/epoch, ratio {a / b:.3f}")


if __name__ == "__main__":
    main()
