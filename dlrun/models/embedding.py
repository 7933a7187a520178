"""Keras ``Embedding``: integer token ids to learned (or pre-trained, frozen) vectors.

A pre-trained matrix is read from a ``.npy`` file, such as the GloVe matrix ``dlrun datasets
embed`` writes (row ``i`` is the vector of token id ``i``), or from a ``.npz`` holding one array
(or one named ``embeddings``). DLwP 6.1.3 loads GloVe this way and sets ``trainable: false``;
the frozen matrix then counts as non-trainable parameters, as in Keras's summary.
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path

import numpy as np
import torch
from pydantic import PositiveInt
from torch import nn
from torch.nn import functional

from dlrun.config.base import FilePath
from dlrun.config.base import StrictModel
from dlrun.errors import DataError
from dlrun.models.initializers import INITIALIZERS
from dlrun.models.layers import LAYERS
from dlrun.models.layers import BuiltLayer
from dlrun.models.layers import InitializerName
from dlrun.models.layers import Layer
from dlrun.models.layers import RegularizerConfig
from dlrun.models.layers import Shape
from dlrun.models.layers import penalties
from dlrun.models.masking import MaskAware


class _Embedding(MaskAware):
    def __init__(self, weight: nn.Parameter, mask_zero: bool) -> None:
        super().__init__()
        self.weight = weight
        self.makes_mask = mask_zero

    def forward_masked(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.is_floating_point():
            raise DataError(
                f"an embedding reads integer token ids, but the inputs are {x.dtype}; keep the "
                "ids integers (int32/int64 arrays, and no rescale or standardize step)"
            )
        ids = x if x.dtype in (torch.int32, torch.int64) else x.long()
        return functional.embedding(ids, self.weight), (x != 0) if self.makes_mask else None


def read_matrix(path: str) -> np.ndarray:
    """The matrix in a ``.npy`` file, or the single (or ``embeddings``) array of a ``.npz``.

    A model is built for the pre-run check, for every fold and for a final retrain; the file is
    read once while it is unchanged (its size and modification time are the cache key).
    """
    try:
        stat = Path(path).stat()
    except OSError as exc:
        raise ValueError(f"cannot read an embedding matrix from {path}: {exc}") from None
    return _read_matrix(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _read_matrix(path: str, mtime_ns: int, size: int) -> np.ndarray:
    matrix = _load_matrix(path)
    matrix.flags.writeable = False  # shared by every build that reads it
    return matrix


def _load_matrix(path: str) -> np.ndarray:
    try:
        if not zipfile.is_zipfile(path):
            return np.asarray(np.load(path, allow_pickle=False))
        with np.load(path, allow_pickle=False) as arrays:
            names = list(arrays.files)
            if "embeddings" in names or len(names) == 1:
                return np.asarray(arrays["embeddings" if "embeddings" in names else names[0]])
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read an embedding matrix from {path}: {exc}") from None
    raise ValueError(f"{path} holds {', '.join(names)}; name the matrix 'embeddings'")


@LAYERS.register("embedding")
class Embedding(Layer):
    """Token ids ``(steps,)`` per sample to vectors ``(steps, output_dim)``.

    Example (DLwP 6.1): ``- embedding: {input_dim: 10000, output_dim: 8}``; with GloVe:
    ``{input_dim: 10000, output_dim: 100, weights: glove_matrix.npy, trainable: false}``.
    ``mask_zero`` marks id 0 as padding that recurrent layers skip (dlrun/models/masking.py).
    """

    keras_name = "Embedding"
    reads_integers = True

    class Config(StrictModel):
        input_dim: PositiveInt
        output_dim: PositiveInt
        embeddings_initializer: InitializerName = "uniform"  # Keras: uniform in [-0.05, 0.05]
        embeddings_regularizer: RegularizerConfig | None = None
        weights: FilePath | None = None
        trainable: bool = True
        mask_zero: bool = False
        input_length: PositiveInt | None = None  # Keras 2's argument; checked, not needed

    config: Config

    def id_limit(self) -> int:
        return self.config.input_dim

    def build(self, input_shape: Shape, keras_init: bool, strip_activation: bool) -> BuiltLayer:
        c = self.config
        if c.input_length is not None and input_shape[-1:] != (c.input_length,):
            raise ValueError(
                f"input_length is {c.input_length} but the sequences are {input_shape}"
            )
        weight = nn.Parameter(torch.empty(c.input_dim, c.output_dim), requires_grad=c.trainable)
        if c.weights is not None:
            matrix = read_matrix(c.weights)
            if matrix.shape != (c.input_dim, c.output_dim):
                raise ValueError(
                    f"the matrix in {Path(c.weights).name} is {matrix.shape}, but input_dim and "
                    f"output_dim make ({c.input_dim}, {c.output_dim})"
                )
            with torch.no_grad():
                weight.copy_(torch.tensor(matrix, dtype=torch.float32))
        elif keras_init:
            INITIALIZERS.get(c.embeddings_initializer)(weight)
        else:
            nn.init.normal_(weight)  # torch's nn.Embedding default
        regularized = penalties(("weight", c.embeddings_regularizer))
        frozen = 0 if c.trainable else weight.numel()
        module = _Embedding(weight, c.mask_zero)
        return BuiltLayer(module, (*input_shape, c.output_dim), regularized, frozen)
