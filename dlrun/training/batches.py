"""Batch sources: one interface for an epoch's batches, whatever holds the data.

A batch maps names to tensors (``x``, ``y``, or a multi-input model's own names), each keeping
its dtype: token ids stay int64, images may stay uint8 until their batch is on the device.

* :class:`InMemorySource` keeps every array on the training device and gathers each batch by
  index: no per-sample Python work (the fast path for the book experiments).
* :class:`StreamingSource` feeds a ``torch.utils.data.DataLoader`` with worker processes that
  read and preprocess one batch at a time, for data that should not sit in memory.

Both shuffle with their own seeded generator, can keep one shard of every epoch (rank and world
size, for DDP), apply a training-only per-batch transform, and save their position so a resumed
run sees exactly the batches the uninterrupted one would have seen.
"""

from __future__ import annotations

import math
import os
from abc import ABC
from abc import abstractmethod
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dlrun.data.base import Arrays
from dlrun.data.sparse import IndexRows
from dlrun.data.sparse import csr_tensor
from dlrun.data.sparse import gather_rows
from dlrun.data.sparse import slice_rows
from dlrun.data.windows import WindowRows
from dlrun.errors import DataError
from dlrun.preprocess.base import Step

Batch = dict[str, torch.Tensor]
Chunk = torch.Tensor | slice  # the sample indices of one batch
MASK = "_mask"  # a stacked batch's (K, batch) rows: 1 real, 0 padding evening out unequal folds
EVALUATION_BATCHES = 4  # an evaluation batch holds this many training batches' rows


def evaluation_batch_size(batch_size: int) -> int:
    """Rows per batch when only scoring (validation, test, predict).

    Without gradients a forward pass keeps one layer's activations at a time where training
    keeps every layer's and their gradients, so a few training batches fit in the same memory;
    larger products run faster (an IMDB validation pass: 39 ms in batches of 512, 32 ms in
    2048). Scores are unchanged but for the order of float additions in the mean loss.
    """
    return batch_size * EVALUATION_BATCHES


BatchTransform = Callable[[Batch, torch.Generator], Batch]
"""A training-only change to a batch (augmentation), drawing randomness from the generator."""


@dataclass(frozen=True)
class FieldSpec:
    """What one named input of a batch looks like, per sample, once it is on the device."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    sparse: bool = False  # rows of a CSR tensor (multi-hot rows kept as their indices)

    def to_dict(self) -> dict[str, Any]:
        dtype = str(self.dtype).removeprefix("torch.")
        return {"shape": list(self.shape), "dtype": dtype, "sparse": self.sparse}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FieldSpec:
        # checkpoints written before "sparse" was recorded load as dense inputs
        return cls(tuple(data["shape"]), getattr(torch, data["dtype"]), data.get("sparse", False))


Fields = dict[str, FieldSpec]


def host_tensors(arrays: Arrays) -> Batch:
    """Each array as a CPU tensor of its own kind: floats as float32, integers as int64,
    uint8 kept as it is (images, made float per batch), booleans as float32."""
    tensors = {}
    for name, array in arrays.fields.items():
        if isinstance(array, WindowRows):  # windows of a series: a view sharing its rows
            tensors[name] = array.tensor()
            continue
        if isinstance(array, IndexRows):  # sparse multi-hot rows: one CSR tensor
            tensors[name] = csr_tensor(array)
            continue
        if array.dtype == object:
            raise DataError(
                f"the '{name}' arrays are ragged sequences; add a multi_hot (or padding) step "
                "to preprocess"
            )
        if array.dtype == np.uint8:
            dtype: Any = np.uint8
        elif array.dtype.kind in "iu":
            dtype = np.int64
        else:
            dtype = np.float32
        tensors[name] = torch.as_tensor(np.ascontiguousarray(array, dtype=dtype))
    return tensors


def _batch_seed(seed: int, epoch: int, batch: int) -> int:
    """A generator seed per (epoch, batch), so transforms do not depend on what ran before."""
    return (seed * 1_000_003 + epoch * 10_007 + batch) % (2**63)


class BatchSource(ABC):
    """An epoch's batches in a seeded order; subclasses only say how a batch is fetched."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        device: torch.device,
        shuffle: bool = False,
        seed: int = 0,
        device_steps: dict[str, list[Step]] | None = None,
        train_transforms: Sequence[BatchTransform] = (),
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.size = size
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        self.seed = seed
        self.device_steps = device_steps or {}
        self.train_transforms = list(train_transforms)
        self.rank = rank
        self.world_size = world_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch_index = 0  # epochs started
        self.position = 0  # batches handed out in the current epoch
        self._epoch_start: torch.Tensor = self.generator.get_state()

    def __len__(self) -> int:
        """Samples per epoch in this shard."""
        return math.ceil(self.size / self.world_size)

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self) / self.batch_size)

    def next_order(self) -> torch.Tensor:
        """This shard's sample order for a new epoch (advances the generator when shuffling)."""
        self._epoch_start = self.generator.get_state()
        n = self.size
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.world_size > 1:  # pad by wrapping, then every world_size-th sample (DDP's rule)
            order = torch.cat([order, order[: len(self) * self.world_size - n]])
            order = order[self.rank :: self.world_size]
        return order

    def epoch(self) -> Iterator[Batch]:
        """One pass; a source restored mid-epoch resumes after the batches already seen."""
        skip, self.position = self.position, 0
        if skip:
            self.generator.set_state(self._epoch_start)
        order = self.next_order()
        chunks: list[Chunk]
        if not self.shuffle and self.world_size == 1:  # in order: slices, no gathering copies
            chunks = [slice(i, i + self.batch_size) for i in range(0, self.size, self.batch_size)]
        else:
            chunks = list(order.split(self.batch_size))
        fetched = self._fetch(chunks[skip:])
        for index in range(skip, len(chunks)):
            self.position = index + 1
            # No local keeps the batch: the consumer holds the only reference, so its memory
            # is free (and reused) before the next batch is gathered.
            yield self._finish(next(fetched), index)
        self.position = 0
        self.epoch_index += 1

    def peek(self) -> Batch:
        """The first sample as a one-row batch, exactly as training would see it."""
        (batch,) = list(self._fetch([torch.zeros(1, dtype=torch.long)]))
        return self._finish(batch, None)

    def check_view(self) -> Batch:
        """What :meth:`Task.check_batch` looks at: the first batch (all the data in memory)."""
        (batch,) = list(self._fetch([torch.arange(min(self.batch_size, self.size))]))
        return batch

    def fields(self) -> Fields:
        return {
            name: FieldSpec(tuple(t.shape[1:]), t.dtype, t.layout == torch.sparse_csr)
            for name, t in self.peek().items()
        }

    def _finish(self, batch: Batch, index: int | None) -> Batch:
        """Device-side steps (uint8 to float), then the training-only transforms."""
        for name, tensor in batch.items():
            for step in self.device_steps.get(name, ()):
                tensor = step.torch_transform(tensor)
            if tensor.dtype == torch.uint8:
                tensor = tensor.to(torch.float32)  # images without a rescale step
            batch[name] = tensor
        if index is not None and self.train_transforms:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(_batch_seed(self.seed, self.epoch_index, index))
            for transform in self.train_transforms:
                batch = transform(batch, generator)
        return batch

    @abstractmethod
    def _fetch(self, chunks: list[Chunk]) -> Iterator[Batch]:
        """The batches for these index chunks, in order, on the device."""

    def state_dict(self) -> dict[str, Any]:
        state = self._epoch_start if self.position else self.generator.get_state()
        return {"generator": state, "position": self.position, "epoch": self.epoch_index}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])
        self.epoch_index = int(state["epoch"])
        self.generator.set_state(state["generator"])
        self._epoch_start = state["generator"]


class InMemorySource(BatchSource):
    """Every array on the device; a batch is one gather per array."""

    def __init__(self, tensors: Batch, batch_size: int, device: torch.device, **options: Any):
        self.tensors = {name: to_device(t, device) for name, t in tensors.items()}
        size = next(iter(self.tensors.values())).shape[0] if self.tensors else 0
        super().__init__(size, batch_size, device, **options)

    def _fetch(self, chunks: list[Chunk]) -> Iterator[Batch]:
        for index in chunks_on_device(chunks, self.device):
            yield {name: _rows(t, index) for name, t in self.tensors.items()}

    def check_view(self) -> Batch:
        return dict(self.tensors)


def chunks_on_device(chunks: list[Chunk], device: torch.device) -> Iterator[Chunk]:
    """Each chunk ready to index tensors on ``device``: the index tensors moved in one copy.

    A copy per batch from the host's pageable memory would wait until the GPU has finished
    the previous step, every step. Indices already on ``device`` (the CPU's) are used as they
    are, without gathering them into one tensor.
    """
    picks = [chunk for chunk in chunks if not isinstance(chunk, slice)]
    if not picks or picks[0].device == device:
        yield from chunks
        return
    moved = iter(torch.cat(picks).to(device).split([len(c) for c in picks]))
    for chunk in chunks:
        yield chunk if isinstance(chunk, slice) else next(moved)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``. A view whose rows overlap (windows of one series) moves its
    storage and stays a view; ``Tensor.to`` would copy every window out (240x for Jena)."""
    storage = tensor.untyped_storage() if tensor.layout == torch.strided else None
    if storage is None or storage.nbytes() >= tensor.numel() * tensor.element_size():
        return tensor.to(device)
    rows = torch.empty(0, dtype=tensor.dtype).set_(storage).to(device)
    return rows.as_strided(tensor.shape, tensor.stride(), tensor.storage_offset())


def _rows(tensor: torch.Tensor, index: Chunk) -> torch.Tensor:
    """One batch's rows of a dense tensor (a view for a slice) or of a sparse CSR one."""
    if tensor.layout != torch.sparse_csr:
        return tensor[index]
    if isinstance(index, slice):
        start, stop, _ = index.indices(tensor.shape[0])
        return slice_rows(tensor, start, stop)
    return gather_rows(tensor, index)


class BatchReader(torch.utils.data.Dataset[Batch]):
    """Reads one batch of raw rows and preprocesses it (runs inside DataLoader workers).

    ``rows`` picks the split's rows out of ``raw`` by index, so the split is never copied.
    """

    def __init__(
        self, raw: Arrays, prepare: Callable[[Arrays], Arrays], rows: np.ndarray | None = None
    ) -> None:
        self.raw = raw
        self.prepare = prepare
        self.rows = np.arange(len(raw)) if rows is None else rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: torch.Tensor) -> Batch:
        return host_tensors(self.prepare(self.raw.subset(self.rows[index.numpy()])))


class _EpochChunks:
    """The sampler of a persistent DataLoader: this epoch's index chunks, replaced each epoch."""

    def __init__(self) -> None:
        self.chunks: list[torch.Tensor] = []

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)


class StreamingSource(BatchSource):
    """Batches read and preprocessed by DataLoader workers, moved to the device one at a time.

    The main process draws the order (so it is seeded and resumable like the in-memory one);
    workers receive whole index chunks, so preprocessing stays vectorized per batch. The workers
    start once and serve every epoch; their seeds come from the source's own generator, never
    from the global one that dropout draws from, so streaming changes no result.
    """

    def __init__(
        self, reader: BatchReader, batch_size: int, device: torch.device, workers: int = 2,
        **options: Any,
    ) -> None:  # fmt: skip
        super().__init__(len(reader), batch_size, device, **options)
        self.reader = reader
        self.workers = workers
        self._chunks = _EpochChunks()
        self._loader: torch.utils.data.DataLoader[Batch] | None = None

    def _fetch(self, chunks: list[Chunk]) -> Iterator[Batch]:
        every = torch.arange(self.size)
        self._chunks.chunks = [every[c] if isinstance(c, slice) else c for c in chunks]
        if self._loader is None:
            self._loader = torch.utils.data.DataLoader(
                self.reader,
                batch_size=None,  # each item already is a batch
                sampler=self._chunks,
                num_workers=self.workers,
                persistent_workers=self.workers > 0,
                pin_memory=self.device.type == "cuda",
                worker_init_fn=_one_thread,
                generator=torch.Generator().manual_seed(self.seed),
            )
        for batch in self._loader:
            yield {name: t.to(self.device, non_blocking=True) for name, t in batch.items()}


def _one_thread(worker: int) -> None:
    torch.set_num_threads(1)  # workers preprocess; the main process owns the cores for training


def memory_budget(device: torch.device) -> int:
    """Bytes a dataset may take in memory before ``in_memory: auto`` streams it."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free // 2)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return int(total // 4)


def estimated_bytes(sample: Arrays, rows: int) -> int:
    """The size of ``rows`` rows shaped like the prepared ``sample`` rows."""
    per_row = sum(array.nbytes for array in sample.fields.values()) / max(len(sample), 1)
    return int(per_row * rows)
