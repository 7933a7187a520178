"""Do runs repeat bit for bit on this CPU? Trains the same small sparse network in fresh
processes and counts the distinct final weights, with and without dlrun's vector-math warm-up.

In a process, torch's first vector math call taken by several threads at once sometimes
rounded the main thread's share differently (RMSprop's square root in step 1), so one process
in five or so ended with other weights. ``dlrun.utils.seed_everything`` now warms the vector
math up first. Usage::

    python bench/repeatability.py [--processes 12]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import subprocess
import sys

import torch

from dlrun.data.sparse import IndexRows
from dlrun.data.sparse import csr_tensor
from dlrun.data.sparse import gather_rows
from dlrun.data.sparse import sparse_linear
from dlrun.utils import warm_vector_math


def train_once(warm: bool) -> str:
    """Four epochs of a 10000-16-16-1 network on 6,000 random multi-hot rows: a weight hash."""
    if warm:
        warm_vector_math(torch.get_num_threads())
    gen = torch.Generator().manual_seed(0)
    dense = torch.rand(6000, 10000, generator=gen) < 0.013
    x = csr_tensor(IndexRows([row.nonzero().flatten().numpy() for row in dense], 10000))
    y = torch.randint(0, 2, (6000, 1), generator=gen).float()
    torch.manual_seed(0)
    first = torch.nn.Linear(10000, 16)
    first.weight = torch.nn.Parameter(first.weight.detach().t().contiguous().t())
    rest = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 1))  # fmt: skip
    params = [*first.parameters(), *rest.parameters()]
    opt = torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, eps=1e-7)
    for _ in range(4):
        for idx in torch.randperm(6000, generator=gen).split(512):
            out = rest(sparse_linear(gather_rows(x, idx), first.weight, first.bias))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return hashlib.md5(b"".join(p.detach().numpy().tobytes() for p in params)).hexdigest()[:8]


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(train_once(sys.argv[2] == "warm"))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=12, help="fresh processes per arm")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for arm in ("cold", "warm"):
        hashes = collections.Counter(
            subprocess.run(
                [sys.executable, __file__, "--child", arm],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            for _ in range(args.processes)
        )
        print(
            f"{arm}: {len(hashes)} distinct outcome(s) in {args.processes} processes {dict(hashes)}"
        )


if __name__ == "__main__":
    main()
