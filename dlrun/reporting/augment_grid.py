"""A picture of what ``data.augment`` does: the first training images and augmented copies
(DLwP figure 5.11), drawn by the same batch source and transform that training uses.

Rows are the first ``count`` images of the first fold's training part (after the validation
images a train/validation folder layout puts first); the first column is each image as the
model sees it without augmentation, the others are ``variants`` augmented draws, each the batch
of a later epoch, so the grid shows exactly what training epochs would show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlrun.config.schema import ExperimentConfig
from dlrun.data.load import load_data
from dlrun.errors import ConfigIssue
from dlrun.evaluation.fitting import check_augment
from dlrun.evaluation.fitting import fold_sources
from dlrun.evaluation.fitting import train_transforms
from dlrun.evaluation.runner import plan_protocol

GAP = 2  # white pixels between the cells


def augmented_samples(cfg: ExperimentConfig, count: int, variants: int) -> list[np.ndarray]:
    """The first ``count`` training images: unaugmented, then ``variants`` augmented batches,
    each channels-last ``(count, height, width, channels)`` as the model would see them."""
    if not train_transforms(cfg):
        issue = ConfigIssue("data.augment", "this config augments nothing; add e.g. "
                            "data.augment: {rotation_range: 40, horizontal_flip: true}")  # fmt: skip
        raise cfg.origin.error([issue])
    data = load_data(cfg)
    plan = plan_protocol(cfg, data)
    train_idx = plan.folds[0].train_idx
    first = train_idx[:count]
    sources = fold_sources(cfg, plan.data.train, train_idx, plan.data.implied_steps, len(first),
                           torch.device("cpu"))  # fmt: skip
    plain = sources(plan.data.train, first)
    augmented = sources(plan.data.train, first, training=True, seed=cfg.seed)
    name = cfg.data.augment.array if cfg.data.augment is not None else "x"
    check_augment(cfg, augmented.fields())
    batches = [b[name] for b in plain.epoch()]  # one batch: all ``count`` rows
    for _ in range(variants):  # each epoch seeds its batch anew: another draw
        batches += [b[name] for b in augmented.epoch()]
    return [b.unsqueeze(-1).numpy() if b.ndim == 3 else b.numpy() for b in batches]


def grid_image(columns: list[np.ndarray]) -> np.ndarray:
    """One RGB float image: a row per sample, a column per array; each cell scaled to [0, 1]
    by its own range (as Keras's ``array_to_img``)."""
    count, height, width, _ = columns[0].shape
    rows, cols = count, len(columns)
    grid = np.ones((rows * (height + GAP) - GAP, cols * (width + GAP) - GAP, 3))
    for c, images in enumerate(columns):
        for r in range(rows):
            cell = images[r].astype(np.float64)
            cell = cell - cell.min()
            cell = cell / cell.max() if cell.max() > 0 else cell
            if cell.shape[-1] != 3:
                cell = np.repeat(cell[..., :1], 3, axis=-1)
            top, left = r * (height + GAP), c * (width + GAP)
            grid[top : top + height, left : left + width] = cell
    return grid


def write_augment_grid(cfg: ExperimentConfig, output: Path, count: int = 4,
                       variants: int = 4) -> tuple[int, int]:  # fmt: skip
    """Write the grid as a PNG, one image pixel per screen pixel; returns (width, height)."""
    import matplotlib.pyplot as plt  # only this command draws

    grid = grid_image(augmented_samples(cfg, count, variants))
    output.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(output, grid)
    return grid.shape[1], grid.shape[0]
