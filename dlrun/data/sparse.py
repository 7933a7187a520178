"""Multi-hot rows kept as their column indices: IMDB's 10,000-word vectors are 98.8 % zeros.

On the host a multi-hot array is an :class:`IndexRows` (each row the sorted indices of its ones,
so it splits and subsets like any per-sample array); on the device it is a sparse CSR tensor
``(rows, width)``. A dense layer fed by one computes its product as a sum of the weight
columns of each row's indices (``embedding_bag``), the same numbers as the dense product.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

# dlrun builds its CSR tensors itself, valid by construction; opting out of the invariant
# checks explicitly also keeps DataLoader workers handing them over from warning each time.
torch.sparse.check_sparse_tensor_invariants.disable()


class IndexRows(np.ndarray):
    """A 0/1 matrix ``(rows, width)`` stored as one index array per row (an object array)."""

    width: int

    def __new__(cls, rows: Sequence[np.ndarray] | np.ndarray, width: int) -> IndexRows:
        array = np.empty(len(rows), dtype=object)
        array[:] = list(rows) if len(rows) else []
        out = array.view(cls)
        out.width = width
        return out

    def __array_finalize__(self, obj: Any) -> None:
        self.width = getattr(obj, "width", 0)

    @property
    def nbytes(self) -> int:
        """The indices' bytes (what the rows really take), not the pointers'."""
        return int(sum(row.nbytes for row in self)) + 8 * len(self)

    def dense(self) -> np.ndarray:
        """The 0/1 float32 matrix these rows stand for."""
        out = np.zeros((len(self), self.width), dtype=np.float32)
        lengths = [len(row) for row in self]
        if sum(lengths):
            out[np.repeat(np.arange(len(self)), lengths), np.concatenate(list(self))] = 1.0
        return out


def csr_tensor(rows: IndexRows) -> torch.Tensor:
    """All rows as one sparse CSR tensor of ones (int64 indices)."""
    lengths = torch.tensor([len(row) for row in rows], dtype=torch.int64)
    crow = torch.zeros(len(rows) + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=crow[1:])
    parts = [row for row in rows if len(row)]
    cols = torch.from_numpy(np.concatenate(parts).astype(np.int64)) if parts else crow[:0]
    return _csr(crow, cols, len(rows), rows.width)


def gather_rows(matrix: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The rows ``index`` of a CSR ``matrix``, in that order, as a new CSR tensor."""
    crow, cols = matrix.crow_indices(), matrix.col_indices()
    starts = crow[index]
    lengths = crow[index + 1] - starts
    new_crow = torch.zeros(len(index) + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(lengths, 0, out=new_crow[1:])
    # each picked entry's position: its row's start, plus its place within that row
    shift = torch.repeat_interleave(starts - new_crow[:-1], lengths)
    picked = cols.index_select(0, shift + torch.arange(len(shift), device=cols.device))
    return _csr(new_crow, picked, len(index), matrix.shape[1])


def slice_rows(matrix: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """The rows ``start:stop`` of a CSR ``matrix`` as a new CSR tensor sharing its column
    indices (what a batch of a scoring pass, taken in order, needs: nothing to gather)."""
    crow = matrix.crow_indices()[start : stop + 1]
    first, last = crow[[0, -1]].tolist()  # one read, even from a GPU
    return _csr(crow - first, matrix.col_indices()[first:last], stop - start, matrix.shape[1])


def _csr(crow: torch.Tensor, cols: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    values = torch.ones(len(cols), dtype=torch.float32, device=cols.device)
    with warnings.catch_warnings():  # "beta": row gathers and the bag sum are all dlrun uses
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, (rows, width), check_invariants=False)


class _BagSum(torch.autograd.Function):
    """``x @ weight.T`` for CSR rows of ones, with a backward that gathers instead of scattering.

    The forward sums, per row, the kernel rows (``weight.T``) its indices pick:
    ``embedding_bag``. The weight's gradient is the same sum the other way round: per column,
    the output gradients of the rows that picked it. So the backward orders the batch's
    entries by column (a stable sort: each column adds its rows in the order the scatter
    would) and runs ``embedding_bag`` again. Both passes read and write whole kernel rows, so
    a ``weight`` stored as its kernel's transpose (as dense layers keep it) needs no copy
    either way. ``embedding_bag``'s own backward sorts too but runs several times slower;
    scattering into the gradient with ``index_add_`` costs twice as long on the CPU.
    """

    @staticmethod
    def forward(ctx: Any, cols: torch.Tensor, crow: torch.Tensor, weight: torch.Tensor) -> Any:
        ctx.save_for_backward(cols, crow)
        ctx.width = weight.shape[1]
        kernel = weight.t().contiguous()  # free when the weight is kept as a kernel
        return torch.nn.functional.embedding_bag(cols, kernel, crow[:-1], mode="sum")

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        cols, crow = ctx.saved_tensors
        rows = torch.repeat_interleave(
            torch.arange(len(crow) - 1, device=grad.device), crow.diff()
        )
        firsts = torch.zeros(ctx.width, dtype=torch.int64, device=grad.device)
        torch.cumsum(torch.bincount(cols, minlength=ctx.width)[:-1], 0, out=firsts[1:])
        by_column = rows[_column_order(cols, ctx.width)]
        kernel_grad = torch.nn.functional.embedding_bag(by_column, grad, firsts, mode="sum")
        return None, None, kernel_grad.t()


def _column_order(cols: torch.Tensor, width: int) -> torch.Tensor:
    """The stable order that sorts ``cols``. On the CPU, numpy's radix sort of 16-bit keys
    takes a quarter of torch's comparison sort for vocabularies up to 65,536 words."""
    if cols.device.type == "cpu" and width <= 1 << 16:
        keys = cols.numpy().astype(np.uint16)
        return torch.from_numpy(np.argsort(keys, kind="stable"))
    return torch.sort(cols, stable=True).indices


def sparse_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``x @ weight.T + bias`` for a CSR ``x`` of ones: per row, the sum of its weight columns."""
    out = _BagSum.apply(x.col_indices(), x.crow_indices(), weight)
    return out if bias is None else out + bias
