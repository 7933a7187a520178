"""Whole-process time of ``dlrun train`` against a hand-written PyTorch script of the same run.

A small book experiment costs more in its fixed part (start-up, imports, data, reports) than in
its epochs, which the per-epoch benchmark cannot see. Each case runs two processes, both from a
cold start: ``dlrun train CONFIG`` and the script a user would write for the same training (the
same splits, network, optimizer, batch size and epochs, validation loss and metrics after every
epoch, the test split scored once), written out below and run with the same interpreter. The
two alternate in pairs, the first going first in every other pair, after one untimed warm-up
each; the ratio is the median over the pairs of dlrun / hand-written (goal: at most 1.2), and
``extra`` the median difference in seconds, for the whole process and up to each one's last
line of output (dlrun prints its result, then draws its figures). For the 3-epoch iris case
that difference is dlrun's fixed cost (goal: at most 0.5 s).

Pima and Boston read the data mirror (``DLRUN_DATA_PATH``, else ``../shared/data``); a case
whose data is missing is skipped.

    DLRUN_DATA_PATH=../shared/data python bench/bench_process.py [--pairs 5] [--cases pima,iris]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

# What every hand-written script shares: Keras-style dense layers (Glorot-uniform weights, zero
# biases), seeded index splits, standardization fitted on the training rows, and a fit loop
# that scores training and validation after every epoch.
PRELUDE = '''
import os, sys
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(0)
RNG = np.random.RandomState(0)


def split(y, fraction, stratify):
    """Seeded (stratified) hold-out: returns (train_idx, held_idx), both sorted."""
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    held = []
    for rows in groups:
        held += list(RNG.permutation(rows)[: round(fraction * len(rows))])
    held = np.sort(np.array(held, dtype=np.int64))
    return np.setdiff1d(np.arange(len(y)), held), held


def standardize(train, *others):
    mean, std = train.mean(0), train.std(0)
    std[std == 0] = 1
    return [(a - mean) / std for a in (train, *others)]


def dense(sizes, hidden):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = torch.nn.Linear(n_in, n_out)
        torch.nn.init.xavier_uniform_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(hidden())
    return torch.nn.Sequential(*layers)


def binary_metrics(logits, y):
    prob = torch.sigmoid(logits).reshape(-1)
    y = y.reshape(-1)
    pred = (prob > 0.5).float()
    tp = float((pred * y).sum())
    order = torch.argsort(prob)
    ranks = torch.empty_like(prob)
    ranks[order] = torch.arange(1, len(prob) + 1, dtype=prob.dtype)
    pos = float(y.sum())
    neg = len(y) - pos
    auc = (float(ranks[y == 1].sum()) - pos * (pos + 1) / 2) / max(pos * neg, 1)
    return {"accuracy": float((pred == y).float().mean()),
            "precision": tp / max(float(pred.sum()), 1), "recall": tp / max(pos, 1),
            "roc_auc": auc}


def fit(net, opt, loss_fn, metrics, train, val, batch, epochs):
    x, y = train
    for epoch in range(epochs):
        net.train()
        outputs, total = [], 0.0
        for idx in torch.randperm(len(x)).split(batch):
            out = net(x[idx])
            loss = loss_fn(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            outputs.append(out.detach())
            total = total + loss.detach() * len(idx)
        logs = {"loss": float(total) / len(x), **metrics(torch.cat(outputs), y)}
        if val is not None:
            net.eval()
            with torch.no_grad():
                out = net(val[0])
                logs.update({"val_loss": float(loss_fn(out, val[1]))})
                logs.update({f"val_{k}": v for k, v in metrics(out, val[1]).items()})
    return logs


def score(net, loss_fn, metrics, test):
    net.eval()
    with torch.no_grad():
        out = net(test[0])
    print("test", {"loss": float(loss_fn(out, test[1])), **metrics(out, test[1])})


def tensors(x, y, dtype=torch.float32):
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=dtype)


DATA = os.environ.get("BENCH_DATA", "")
'''

PIMA = """
table = np.loadtxt(os.path.join(DATA, "pima", "pima-indians-diabetes.data.csv"), delimiter=",")
x, y = table[:, :8], table[:, 8:]
rest, test = split(y[:, 0], 0.2, stratify=True)
train, val = split(y[rest, 0], 0.2, stratify=True)
train, val = rest[train], rest[val]
x_train, x_val, x_test = standardize(x[train], x[val], x[test])
net = dense([8, 12, 8, 1], torch.nn.ReLU)
opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
loss_fn = F.binary_cross_entropy_with_logits
fit(net, opt, loss_fn, binary_metrics, tensors(x_train, y[train]), tensors(x_val, y[val]), 10, 100)
score(net, loss_fn, binary_metrics, tensors(x_test, y[test]))
"""

BOSTON = """
with np.load(os.path.join(DATA, "boston_housing", "boston_housing.npz")) as f:
    x, y = f["x"], f["y"].reshape(-1, 1)
order = np.random.RandomState(113).permutation(len(x))  # the Keras split, 404 / 102
x, y = x[order], y[order]
cut = int(len(x) * 0.8)
x_train, x_test = standardize(x[:cut], x[cut:])
net = dense([13, 64, 64, 1], torch.nn.ReLU)
opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
mae = lambda out, target: {"mae": float((out - target).abs().mean())}
fit(net, opt, F.mse_loss, mae, tensors(x_train, y[:cut]), None, 16, 80)
score(net, F.mse_loss, mae, tensors(x_test, y[cut:]))
"""

SPIRALS = """
rng = np.random.RandomState(1)  # twoSpirals(300), as the book draws them
angle = np.sqrt(rng.rand(300, 1)) * 780 * (2 * np.pi) / 360
first = np.hstack((-np.cos(angle) * angle + rng.rand(300, 1) * 0.5,
                   np.sin(angle) * angle + rng.rand(300, 1) * 0.5))
x = np.vstack((first, -first))
labels = np.repeat([0, 1], 300)
y = np.eye(2)[labels]
train, val = split(labels, 0.1, stratify=False)
net = torch.nn.Sequential(dense([2, 3, 2], torch.nn.Sigmoid), torch.nn.Sigmoid())
opt = torch.optim.SGD(net.parameters(), lr=0.01)
accuracy = lambda out, target: {
    "accuracy": float((out.argmax(1) == target.argmax(1)).float().mean())}
logs = fit(net, opt, F.mse_loss, accuracy, tensors(x[train], y[train]), tensors(x[val], y[val]),
           60, 1000)
print("last epoch", logs)  # no test split: the book only trains
"""

# scikit-learn ships iris as a CSV; reading it directly keeps scikit-learn's import out of the
# floor this case measures.
IRIS = """
import importlib.util
root = importlib.util.find_spec("sklearn").submodule_search_locations[0]
table = np.loadtxt(os.path.join(root, "datasets", "data", "iris.csv"), delimiter=",", skiprows=1)
x, labels = table[:, :4], table[:, 4].astype(np.int64)
rest, test = split(labels, 0.2, stratify=True)
train, val = split(labels[rest], 0.2, stratify=True)
train, val = rest[train], rest[val]
x_train, x_val, x_test = standardize(x[train], x[val], x[test])
net = dense([4, 8, 3], torch.nn.ReLU)
opt = torch.optim.Adam(net.parameters(), lr=0.01, eps=1e-7)
accuracy = lambda out, target: {"accuracy": float((out.argmax(1) == target).float().mean())}
fit(net, opt, F.cross_entropy, accuracy, tensors(x_train, labels[train], torch.int64),
    tensors(x_val, labels[val], torch.int64), 16, 3)
score(net, F.cross_entropy, accuracy, tensors(x_test, labels[test], torch.int64))
"""

# The iris run of the tests' base config (tests/conftest.py), 3 epochs.
IRIS_CONFIG = {
    "name": "bench_iris", "seed": 0, "task": "multiclass",
    "data": {"dataset": "iris", "test_fraction": 0.2},
    "preprocess": ["standardize", "one_hot"],
    "model": {"layers": [{"dense": {"units": 8, "activation": "relu"}},
                         {"dense": {"units": 3, "activation": "softmax"}}]},
    "loss": "categorical_crossentropy", "optimizer": {"name": "adam", "lr": 0.01},
    "metrics": ["accuracy"], "train": {"epochs": 3, "batch_size": 16},
    "evaluation": {"validation": {"fraction": 0.2, "stratify": True}},
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    name: str
    config: str  # relative to the repository, or "iris" for IRIS_CONFIG
    script: str
    data: str | None  # the mirror folder the case reads, if any


CASES = {
    "pima": Case("pima, 100 epochs, batch 10", "configs/course/pima.yaml", PIMA, "pima"),
    "boston": Case("boston final, 80 epochs, batch 16", "configs/dlwp/ch3_boston_final.yaml",
                   BOSTON, "boston_housing"),
    "spirals": Case("ch.6 spirals, 1000 epochs, batch 60", "configs/beginners/ch6_spirals.yaml",
                    SPIRALS, None),
    "iris": Case("iris, 3 epochs (fixed cost)", "iris", IRIS, None),
}  # fmt: skip


def data_root() -> Path | None:
    roots = [Path(p) for p in os.environ.get("DLRUN_DATA_PATH", "").split(os.pathsep) if p]
    for root in [*roots, REPO.parent / "shared/data"]:
        if root.is_dir():
            return root.resolve()
    return None


@dataclass(frozen=True)
class Timing:
    seconds: float  # the whole process
    result: float  # until its last line of output: dlrun prints its result before drawing


def timed(command: list[str], env: dict[str, str]) -> Timing:
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert process.stdout is not None
    lines, result = [], started
    for line in process.stdout:
        lines.append(line)
        result = time.perf_counter()
    code = process.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}):\n{''.join(lines[-40:])}")
    return Timing(seconds, result - started)


def paired(
    case: Case, pairs: int, scratch: Path, root: Path | None
) -> list[tuple[Timing, Timing]]:
    """(dlrun, hand-written) timings per pair; the first of each pair alternates."""
    env = {**os.environ, "BENCH_DATA": str(root or "")}
    # Modules load from their bytecode caches, as from any installed package: where the
    # environment turns caching off, each run would compile dlrun's own sources (about 0.1 s)
    # while torch and numpy come from caches their installation wrote. The warm-up writes them.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if root is not None:
        env["DLRUN_DATA_PATH"] = str(root)
    config = REPO / case.config
    if case.config == "iris":
        config = scratch / "iris.yaml"
        config.write_text(yaml.safe_dump(IRIS_CONFIG, sort_keys=False))
    script = scratch / "handwritten.py"
    script.write_text(PRELUDE + case.script)
    ours = [sys.executable, "-m", "dlrun", "train", str(config), "--runs-dir",
            str(scratch / "runs")]  # fmt: skip
    theirs = [sys.executable, str(script)]
    timed(ours, env), timed(theirs, env)  # warm-up: file and bytecode caches
    times = []
    for index in range(pairs):
        if index % 2 == 0:
            times.append((timed(ours, env), timed(theirs, env)))
        else:
            theirs_first = timed(theirs, env)
            times.append((timed(ours, env), theirs_first))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    args = parser.parse_args()
    root = data_root()
    print(f"{args.pairs} pairs per case, data {root}")
    for key in args.cases.split(","):
        case = CASES[key.strip()]
        if case.data is not None and (root is None or not (root / case.data).is_dir()):
            print(f"{case.name}: skipped, no {case.data} in the data mirror")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            times = paired(case, args.pairs, Path(tmp), root)
        median = statistics.median
        print(f"{case.name}: dlrun {median(a.seconds for a, _ in times):.2f} s (result at "
              f"{median(a.result for a, _ in times):.2f} s), hand-written "
              f"{median(b.seconds for _, b in times):.2f} s, ratio "
              f"{median(a.seconds / b.seconds for a, b in times):.2f}, extra "
              f"{median(a.seconds - b.seconds for a, b in times):+.2f} s, to the result "
              f"{median(a.result - b.result for a, b in times):+.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
