"""Import every module that registers components, so the registries are complete.

The config schema is generated from the registries; importing this module first guarantees a
layer, step, dataset, loss, optimizer or callback registered anywhere in dlrun is part of it.
"""

from __future__ import annotations

import dlrun.data.bundled
import dlrun.data.cifar
import dlrun.data.files
import dlrun.data.idx
import dlrun.data.images
import dlrun.data.keras_npz
import dlrun.data.synthetic
import dlrun.data.tables
import dlrun.data.text
import dlrun.data.word_sequences
import dlrun.models.convolution
import dlrun.models.embedding
import dlrun.models.layers
import dlrun.models.pooling
import dlrun.models.recurrent
import dlrun.models.regularization
import dlrun.models.variational
import dlrun.models.wrappers
import dlrun.preprocess.categorical
import dlrun.preprocess.sequences
import dlrun.preprocess.steps
import dlrun.preprocess.tokenizer
import dlrun.tasks.autoencoder
import dlrun.tasks.classic
import dlrun.tasks.vae
import dlrun.training.callbacks
import dlrun.training.losses
import dlrun.training.metrics
import dlrun.training.optimizers  # noqa: F401
from dlrun.plugins import load_plugins

load_plugins()  # user modules register their own components next to these
