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

from dlrun.data.ragged import gather_segments

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

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its rows and width (numpy's own pickling would drop the width)."""
        return (IndexRows, (list(self), self.width))

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
    """All rows as one sparse CSR tensor of ones: int32 indices (half the memory, and what
    scipy's kernels take as they are) unless there are too many entries for them."""
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    dtype = np.int32 if lengths.sum() < 2**31 and rows.width < 2**31 else np.int64
    crow = np.zeros(len(rows) + 1, dtype=dtype)
    np.cumsum(lengths, out=crow[1:])
    parts = [row for row in rows if len(row)]
    cols = np.concatenate(parts).astype(dtype) if parts else crow[:0]
    return _csr(torch.from_numpy(crow), torch.from_numpy(cols), len(rows), rows.width)


def gather_rows(matrix: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The rows ``index`` of a CSR ``matrix``, in that order, as a new CSR tensor."""
    crow, cols = matrix.crow_indices(), matrix.col_indices()
    gather = _gather_on_host if crow.device.type == "cpu" else _gather_on_device
    new_crow, picked = gather(crow, cols, index)
    return _csr(new_crow, picked, len(index), matrix.shape[1])


def _gather_on_host(
    crow: torch.Tensor, cols: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The picked rows' pointers and columns, in numpy: its ``repeat`` takes half the time of
    torch's ``repeat_interleave`` on the CPU."""
    crow_np, picks = crow.numpy(), index.numpy()
    firsts = crow_np[picks]
    lengths = crow_np[picks + 1] - firsts
    new_crow = np.zeros(len(index) + 1, dtype=crow_np.dtype)
    np.cumsum(lengths, out=new_crow[1:])
    picked = gather_segments(cols.numpy(), firsts, lengths)
    return torch.from_numpy(new_crow), torch.from_numpy(picked)


def _gather_on_device(
    crow: torch.Tensor, cols: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same in torch, where the tensors live (a GPU)."""
    starts = crow[index]
    lengths = crow[index + 1] - starts
    new_crow = torch.zeros(len(index) + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(lengths, 0, out=new_crow[1:])
    shift = torch.repeat_interleave(starts - new_crow[:-1], lengths)
    picked = cols.index_select(0, shift + torch.arange(len(shift), device=cols.device))
    return new_crow, picked


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
    """``x @ weight.T`` for CSR rows of ones, with a backward that never scatters in torch.

    The forward sums, per row, the kernel rows (``weight.T``) its indices pick:
    ``embedding_bag``. The weight's gradient is the same sum the other way round: per column,
    the output gradients of the rows that picked it. On the CPU scipy's CSC product does that
    in one pass over the entries (the batch's CSR arrays read as the transpose's CSC ones, no
    copy, no sort): 0.36 ms for an IMDB batch, against 1.9 ms for sorting the entries by
    column and summing them with ``embedding_bag`` again, which other devices do (and several
    times more for ``embedding_bag``'s own backward).
    Either way the kernel's gradient comes out whole, so a ``weight`` stored as its kernel's
    transpose (as dense layers keep it) needs no copy.
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
        if grad.device.type == "cpu":
            kernel_grad = _column_sums_on_cpu(cols, crow, grad, ctx.width)
        else:
            kernel_grad = _column_sums_by_sorting(cols, crow, grad, ctx.width)
        return None, None, kernel_grad.t()


def _column_sums_on_cpu(
    cols: torch.Tensor, crow: torch.Tensor, grad: torch.Tensor, width: int
) -> torch.Tensor:
    """Per column, the sum of ``grad``'s rows that picked it: scipy's product of the batch's
    transpose (its CSR arrays read as CSC) and ``grad``."""
    from scipy.sparse import csc_matrix

    values = grad.detach().numpy()
    ones = np.ones(len(cols), dtype=values.dtype)  # int32 indices: scipy takes them as they are
    transposed = csc_matrix((ones, cols.numpy(), crow.numpy()), shape=(width, len(crow) - 1))
    return torch.from_numpy(np.ascontiguousarray(transposed @ values))


def _column_sums_by_sorting(
    cols: torch.Tensor, crow: torch.Tensor, grad: torch.Tensor, width: int
) -> torch.Tensor:
    """The same sums on any device: the entries ordered by column (a stable sort, so each
    column adds its rows in batch order) and summed with ``embedding_bag``."""
    rows = torch.repeat_interleave(torch.arange(len(crow) - 1, device=grad.device), crow.diff())
    firsts = torch.zeros(width, dtype=torch.int64, device=grad.device)
    torch.cumsum(torch.bincount(cols, minlength=width)[:-1], 0, out=firsts[1:])
    by_column = rows[torch.sort(cols, stable=True).indices]
    return torch.nn.functional.embedding_bag(by_column, grad, firsts, mode="sum")


def sparse_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``x @ weight.T + bias`` for a CSR ``x`` of ones: per row, the sum of its weight columns."""
    out = _BagSum.apply(x.col_indices(), x.crow_indices(), weight)
    return out if bias is None else out + bias
