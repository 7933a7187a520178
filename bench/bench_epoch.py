"""Per-epoch time of dlrun's trainer against a minimal hand-written PyTorch loop.

Both run in this process on the same synthetic data of the real shapes, the same model, the same
initial weights and the same optimizer; dlrun runs as a run does, with metrics, metric files,
TensorBoard, the progress reporter and the per-epoch resume state on. The two loops take turns
epoch by epoch (a callback runs one hand-written epoch after each dlrun epoch), so whatever the
machine is doing hits both alike; the first pair warms up and is left out. Prints the median of
the per-pair ratios dlrun / hand-written for each case (target: at most 1.07;
for sparse multi-hot rows against the dense hand-written loop, at most 1/3).

The sparse case also times a third loop, hand-written on the sparse rows with dlrun's bag-sum
kernel and nothing else of dlrun (no metrics, files or callbacks): its ratio to the dense loop
is what any trainer built on these torch kernels can reach on this machine.

The loops taking turns make glibc's allocator hand each loop's freed batch memory back to the
system and fault it in again, at random and more for one loop than the other (tens of
thousands of page faults an epoch, measured); the benchmark fixes the allocator's thresholds
(``mallopt``) so neither loop pays for the other's memory.

On CUDA (``--device cuda``) both loops keep their data on the GPU and every epoch ends with
its validation scores read back to the host, so the times are the GPU's finished work.

    python bench/bench_epoch.py [--epochs 8] [--only sparse] [--device cuda]
"""

from __future__ import annotations

import argparse
import ctypes
import io
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console

from dlrun.config.load import config_from_data
from dlrun.data.sparse import IndexRows
from dlrun.data.sparse import csr_tensor
from dlrun.data.sparse import gather_rows
from dlrun.data.sparse import sparse_linear
from dlrun.evaluation.fitting import task_for
from dlrun.reporting.loggers import MetricsFileLogger
from dlrun.reporting.loggers import TensorBoardLogger
from dlrun.reporting.progress import ProgressReporter
from dlrun.tasks.base import Task
from dlrun.training.batches import InMemorySource
from dlrun.training.batches import evaluation_batch_size
from dlrun.training.callbacks import Callback
from dlrun.training.callbacks import CallbackList
from dlrun.training.loop import fit
from dlrun.training.snapshots import Snapshots
from dlrun.training.state import TrainState

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
    "tiny 2-3-2 (ch. 6 spirals size), batch 60": {
        "n": 540, "n_val": 60, "features": 2, "classes": 2, "batch": 60,
        "layers": [{"dense": {"units": 3, "activation": "relu"}},
                   {"dense": {"units": 2, "activation": "softmax"}}],
        "task": "multiclass", "loss": "categorical_crossentropy",
        "epoch_factor": 40,  # epochs of milliseconds: 40x the pairs for a steady median
    },
    "imdb sparse multi-hot (dlrun) vs dense (hand-written), batch 512": {
        "n": 15000, "n_val": 10000, "features": 10000, "classes": 1, "batch": 512,
        "layers": [{"dense": {"units": 16, "activation": "relu"}},
                   {"dense": {"units": 16, "activation": "relu"}},
                   {"dense": {"units": 1, "activation": "sigmoid"}}],
        "task": "binary", "loss": "binary_crossentropy", "sparse": True,
    },
}  # fmt: skip


@dataclass(frozen=True)
class TensorData:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)


def make_data(case: dict[str, Any], n: int, gen: torch.Generator) -> TensorData:
    if case["features"] == 10000:
        # IMDB reviews hold 131 distinct words of the 10,000 on average (1.3 % ones)
        x = (torch.rand(n, case["features"], generator=gen) < 0.013).float()
    else:
        x = torch.rand(n, case["features"], generator=gen)
    if case["classes"] == 1:
        y = torch.randint(0, 2, (n, 1), generator=gen).float()
    else:
        y = torch.eye(case["classes"])[torch.randint(0, case["classes"], (n,), generator=gen)]
    return TensorData(x, y)


def make_sources(
    case: dict[str, Any], train: TensorData, val: TensorData, device: torch.device
) -> list[InMemorySource]:
    """As dlrun makes them: the training one shuffled, the validation one in larger batches;
    multi-hot rows as sparse CSR tensors in the sparse case."""
    batch = case["batch"]
    x_train, x_val = train.x, val.x
    if case.get("sparse"):
        x_train, x_val = sparse_rows(train.x), sparse_rows(val.x)
    return [
        InMemorySource({"x": x_train, "y": train.y}, batch, device, shuffle=True),
        InMemorySource({"x": x_val, "y": val.y}, evaluation_batch_size(batch), device),
    ]


def sparse_rows(dense: torch.Tensor) -> torch.Tensor:
    """The 0/1 rows as dlrun's multi_hot keeps them (their indices, then one CSR tensor)."""
    rows = [np.flatnonzero(row) for row in dense.cpu().numpy()]
    return csr_tensor(IndexRows(rows, dense.shape[1]))


def training_set_bytes(source: InMemorySource) -> int:
    x = source.tensors["x"]
    if x.layout == torch.sparse_csr:
        parts = (x.crow_indices(), x.col_indices(), x.values())
        return sum(t.untyped_storage().nbytes() for t in parts)
    return x.numel() * x.element_size()


def dlrun_task(case: dict[str, Any], source: InMemorySource, device: torch.device) -> Task:
    """The case's model as dlrun builds it (Keras initialisation from seed 0)."""
    cfg = config_from_data({
        "name": "bench", "task": case["task"], "data": {"dataset": "iris"},
        "model": {"layers": case["layers"]}, "loss": case["loss"], "metrics": ["accuracy"],
        "preprocess": ["one_hot"] if case["classes"] > 1 else [],
    })  # fmt: skip
    torch.manual_seed(0)
    task = task_for(cfg)
    task.build(source.fields(), device)
    return task


class HandWritten:
    """The loop a user would write: shuffle, batch by index, step; then score validation.

    It starts from dlrun's initial weights: the cost of an epoch depends on the numbers being
    trained (values drifting into the slow denormal range of CPU floats), so both loops must
    train the same ones.
    """

    def __init__(self, case: dict[str, Any], train: TensorData, val: TensorData, start: Task):
        self.case, self.train, self.val = case, train, val
        self.device = train.x.device
        hidden = [layer["dense"]["units"] for layer in case["layers"]]
        modules: list[torch.nn.Module] = []
        width = case["features"]
        for units in hidden[:-1]:
            modules += [torch.nn.Linear(width, units), torch.nn.ReLU()]
            width = units
        modules.append(torch.nn.Linear(width, hidden[-1]))
        self.net = torch.nn.Sequential(*modules)
        weights = start.model_state()["model"]  # dense layer i is module 2i here (ReLUs between)
        self.net.load_state_dict({
            f"{2 * int(name.split('.')[0])}.{name.rsplit('.', 1)[1]}": value.clone()
            for name, value in weights.items()
        })  # fmt: skip
        self.net.to(self.device)
        self.opt = self.optimizer()
        self.gen = torch.Generator().manual_seed(0)
        self.binary = case["classes"] == 1

    def optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(self.net.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.binary:
            return F.binary_cross_entropy_with_logits(out, y)
        return F.cross_entropy(out, y.argmax(1))

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """The training inputs of one batch."""
        return self.train.x[idx]

    def val_inputs(self) -> torch.Tensor:
        return self.val.x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def epoch(self) -> float:
        started = time.perf_counter()
        train, val, batch = self.train, self.val, self.case["batch"]
        self.net.train()
        order = torch.randperm(len(train), generator=self.gen).to(self.device)
        for i in range(0, len(train), batch):
            idx = order[i : i + batch]
            loss = self.loss(self.forward(self.rows(idx)), train.y[idx])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.net.eval()
        with torch.no_grad():
            out = self.forward(self.val_inputs())
            float(self.loss(out, val.y))
            hits = (out > 0).float() == val.y if self.binary else out.argmax(1) == val.y.argmax(1)
            float(hits.float().mean())
        return time.perf_counter() - started


class HandWrittenSparse(HandWritten):
    """The same loop on multi-hot rows kept as CSR tensors: rows gathered by index, the first
    layer a bag sum of its weight columns (dlrun's kernel, with the weight kept as its
    kernel's transpose, as dlrun's dense layers keep it), the rest as in the dense loop."""

    def __init__(self, case: dict[str, Any], train: TensorData, val: TensorData, start: Task):
        super().__init__(case, train, val, start)
        first = self.net[0]
        assert isinstance(first, torch.nn.Linear)
        first.weight = torch.nn.Parameter(first.weight.detach().t().contiguous().t())
        self.opt = self.optimizer()
        self.x_train = sparse_rows(train.x).to(self.device)
        self.x_val = sparse_rows(val.x).to(self.device)

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        return gather_rows(self.x_train, idx)

    def val_inputs(self) -> torch.Tensor:
        return self.x_val

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.net[0]
        assert isinstance(first, torch.nn.Linear)
        return self.net[1:](sparse_linear(x, first.weight, first.bias))


class TakeTurns(Callback):
    """Last in dlrun's chain: times dlrun's epoch, then runs and times a hand-written one."""

    def __init__(self, others: list[HandWritten]) -> None:
        super().__init__()
        self.others = others
        self.ours: list[float] = []
        self.theirs: list[list[float]] = [[] for _ in others]
        self.resumed = time.perf_counter()

    def on_epoch_end(self, state: TrainState, logs: dict[str, float]) -> None:
        self.ours.append(time.perf_counter() - self.resumed)  # includes the previous snapshot
        for other, times in zip(self.others, self.theirs, strict=True):
            times.append(other.epoch())
        self.resumed = time.perf_counter()


def paired_epochs(
    case: dict[str, Any], epochs: int, device: torch.device
) -> tuple[list[float], list[list[float]]]:
    """dlrun's epoch times, and each hand-written loop's (the dense one first)."""
    gen = torch.Generator().manual_seed(0)
    train, val = make_data(case, case["n"], gen), make_data(case, case["n_val"], gen)
    sources = make_sources(case, train, val, device)
    task = dlrun_task(case, sources[0], device)
    train, val = data_on(train, device), data_on(val, device)
    others = [HandWritten(case, train, val, task)]
    if case.get("sparse"):
        others.append(HandWrittenSparse(case, train, val, task))
        dense = train.x.numel() * train.x.element_size()
        kept = training_set_bytes(sources[0])
        print(f"  training set in memory: dense {dense / 1e6:.0f} MB, sparse "
              f"{kept / 1e6:.1f} MB ({dense / kept:.0f}x less)")  # fmt: skip
    turns = TakeTurns(others)
    with tempfile.TemporaryDirectory() as tmp:
        progress = ProgressReporter("bar", Console(file=io.StringIO(), force_terminal=True))
        events = TensorBoardLogger(Path(tmp))
        chain = [MetricsFileLogger(Path(tmp)), events, progress, turns]
        snapshots = Snapshots(Path(tmp) / "resume-fit.pt", "auto")
        fit(task, sources[0], sources[1], epochs + 1, CallbackList(chain), snapshots)
        events.close()
    return turns.ours[1:], [times[1:] for times in turns.theirs]


def data_on(data: TensorData, device: torch.device) -> TensorData:
    """The hand-written loops' copy of the data, on their device."""
    return TensorData(data.x.to(device), data.y.to(device))


def steady_allocator() -> None:
    """Keep freed memory for reuse instead of trimming it or mapping large blocks (glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to steady
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_trim_threshold, 2**31 - 1)
    libc.mallopt(m_mmap_threshold, 2**30)


def main() -> None:
    steady_allocator()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--epochs", type=int, default=8, help="timed pairs per case (x its factor)"
    )
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both loops)")
    args = parser.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {where}, {torch.get_num_threads()} threads, {args.epochs} "
          "timed epoch pairs per case (times the case's factor)")  # fmt: skip
    for name, case in CASES.items():
        if args.only not in name:
            continue
        epochs = args.epochs * case.get("epoch_factor", 1)
        ours, (theirs, *floor) = paired_epochs(case, epochs, device)
        ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
        print(f"{name}: dlrun {statistics.median(ours):.4f} s/epoch, hand-written "
              f"{statistics.median(theirs):.4f} s/epoch, ratio {ratio:.3f}")  # fmt: skip
        for bare in floor:
            bare_ratio = statistics.median(a / b for a, b in zip(bare, theirs, strict=True))
            print(f"  hand-written sparse loop {statistics.median(bare):.4f} s/epoch, ratio to "
                  f"the dense loop {bare_ratio:.3f} (the floor of the bag-sum kernels)")  # fmt: skip


if __name__ == "__main__":
    main()
