"""Image augmentation as Keras's ``ImageDataGenerator`` draws it, on the device, batch by batch.

Configured as ``data.augment`` and applied to training batches only (never validation, test or
predict), after the device-side steps (``rescale``): each sample of a batch gets its own random
rotation, shift, shear and zoom, composed as Keras composes them into one affine map about the
image centre and sampled with one ``grid_sample`` call for the whole batch, then its own flips.
Randomness comes from the batch source's generator, seeded per (epoch, batch), so a resumed run
augments exactly as the uninterrupted one did.

Geometry follows Keras 3's ``apply_affine_transform`` (``keras.src.legacy.preprocessing.image``):
``source = c + R(theta) @ (Shear(s) @ Zoom(zx, zy) @ (p - c) + (tx, ty))`` for every output
pixel ``p = (column, row)``, with the same fill modes as ``scipy.ndimage`` and order-1
(bilinear) interpolation by default. Two deliberate differences, both invisible on square
images with equal width and height shift ranges (every book experiment): ``width_shift_range``
shifts along the width (Keras 2.2+ draws ``tx`` from the height range, a known swap), and the
centre is the true one for non-square images (Keras 2.2+ swaps it).

Book notes: the Keras 2.0.8 of DLwP read ``shear_range`` in radians (0.2 rad = 11.46 degrees)
and sampled with nearest interpolation (order 0); ``interpolation: nearest`` and
``shear_range: 11.46`` reproduce it. Keras 2.2.4 and later read degrees and interpolate
bilinearly, the defaults here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field
from pydantic import field_validator

from dlrun.config.base import Number
from dlrun.config.base import StrictModel
from dlrun.errors import DataError

FillMode = Literal["nearest", "constant", "reflect", "wrap"]
BORDER_TOLERANCE = 1e-4  # pixels: float32 noise at an edge is not "outside" (fill_mode constant)


class AugmentConfig(StrictModel):
    """``data.augment``: Keras ``ImageDataGenerator`` arguments (DLwP listing 5.11).

    Example:
        ``augment: {rotation_range: 40, width_shift_range: 0.2, height_shift_range: 0.2,
        shear_range: 11.46, zoom_range: 0.2, horizontal_flip: true, fill_mode: nearest}``
    """

    array: str = Field(default="x", description="the image array to augment")
    rotation_range: Number = Field(default=0.0, ge=0, le=180, description="degrees, +/-")
    width_shift_range: Number = Field(
        default=0.0, ge=0, description="+/- fraction of the width (below 1) or pixels (1 or more)"
    )
    height_shift_range: Number = Field(
        default=0.0, ge=0, description="+/- fraction of the height (below 1) or pixels"
    )
    shear_range: Number = Field(
        default=0.0, ge=0, lt=90, description="degrees (Keras 2.2+); DLwP's Keras read radians"
    )
    zoom_range: Number | list[Number] = Field(
        default=0.0, description="z for [1-z, 1+z], or [low, high]; drawn per axis"
    )
    horizontal_flip: bool = False
    vertical_flip: bool = False
    fill_mode: FillMode = "nearest"
    cval: Number = Field(
        default=0.0, description="fill value for fill_mode constant, in the units the batch has "
        "after the device steps (after rescale)",
    )  # fmt: skip
    interpolation: Literal["bilinear", "nearest"] = Field(
        default="bilinear", description="Keras 2.2.4+ samples bilinearly (order 1)"
    )

    @field_validator("zoom_range")
    @classmethod
    def _zoom(cls, value: float | list[float]) -> float | list[float]:
        if isinstance(value, list):
            if len(value) != 2 or not 0 < value[0] <= value[1]:
                raise ValueError(f"expected [low, high] with 0 < low <= high, got {value}")
        elif not 0 <= value < 1:
            raise ValueError(f"expected a number in [0, 1) (zoom in [1-z, 1+z]), got {value}")
        return value

    @property
    def zoom_bounds(self) -> tuple[float, float]:
        z = self.zoom_range
        return (z[0], z[1]) if isinstance(z, list) else (1 - z, 1 + z)

    @property
    def geometric(self) -> bool:
        """Whether any affine parameter varies (flips alone need no resampling)."""
        ranges = (self.rotation_range, self.width_shift_range, self.height_shift_range,
                  self.shear_range)  # fmt: skip
        return any(ranges) or self.zoom_bounds != (1.0, 1.0)

    @property
    def active(self) -> bool:
        return self.geometric or self.horizontal_flip or self.vertical_flip


@dataclass(frozen=True)
class AffineParams:
    """Per-sample Keras parameters, each of shape (batch,): degrees, pixels and factors."""

    theta: torch.Tensor
    tx: torch.Tensor  # along the width (columns), pixels
    ty: torch.Tensor  # along the height (rows), pixels
    shear: torch.Tensor
    zx: torch.Tensor
    zy: torch.Tensor


def affine_matrices(params: AffineParams) -> torch.Tensor:
    """(batch, 2, 3) maps from output to input pixel offsets about the centre, (x, y) order:
    ``R @ [T] @ Shear @ Zoom``, the product Keras's ``apply_affine_transform`` builds."""
    theta, shear = torch.deg2rad(params.theta), torch.deg2rad(params.shear)
    zero, one = torch.zeros_like(theta), torch.ones_like(theta)
    rotation = _matrix(theta.cos(), -theta.sin(), theta.sin(), theta.cos())
    shearing = _matrix(one, -shear.sin(), zero, shear.cos())
    zoom = _matrix(params.zx, zero, zero, params.zy)
    linear = rotation @ shearing @ zoom
    offset = rotation @ torch.stack([params.tx, params.ty], dim=-1).unsqueeze(-1)
    return torch.cat([linear, offset], dim=-1)


def _matrix(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.stack([a, b], -1), torch.stack([c, d], -1)], -2)


def warp(
    images: torch.Tensor,
    params: AffineParams,
    fill_mode: FillMode = "nearest",
    cval: float = 0.0,
    interpolation: Literal["bilinear", "nearest"] = "bilinear",
) -> torch.Tensor:
    """Each channels-last image ``(batch, height, width[, channels])`` through its own affine map.

    The pixel-space maps become ``affine_grid`` matrices over ``align_corners=True``
    coordinates (pixel centres at -1 and 1, as ``scipy.ndimage`` indexes); ``grid_sample``'s
    border padding is ``nearest``, and the other fill modes fold the grid in pixel units first.
    """
    x = images.unsqueeze(-1) if images.ndim == 3 else images
    batch, height, width, channels = x.shape
    half = torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=x.dtype, device=x.device)
    matrices = affine_matrices(params).to(device=x.device, dtype=x.dtype)
    # pixel p = half * (u + 1): u_in = half^-1 A half u_out + half^-1 b (the centre cancels)
    linear = matrices[:, :, :2] * half.view(1, 1, 2) / half.view(1, 2, 1)
    theta = torch.cat([linear, matrices[:, :, 2:] / half.view(1, 2, 1)], dim=-1)
    grid = torch.nn.functional.affine_grid(theta, [batch, channels, height, width],
                                           align_corners=True)  # fmt: skip
    outside = None
    if fill_mode != "nearest":
        pixels = (grid + 1) * half
        sx, outside_x = _fold(pixels[..., 0], width, fill_mode)
        sy, outside_y = _fold(pixels[..., 1], height, fill_mode)
        grid = torch.stack([sx, sy], dim=-1) / half - 1
        outside = outside_x | outside_y
    out = torch.nn.functional.grid_sample(
        x.permute(0, 3, 1, 2), grid, mode=interpolation, padding_mode="border", align_corners=True
    )
    if fill_mode == "constant" and outside is not None:
        out = out.masked_fill(outside.unsqueeze(1), cval)
    return out.permute(0, 2, 3, 1).reshape(images.shape)


def _fold(s: torch.Tensor, size: int, mode: FillMode) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates along one axis mapped into the image as ``scipy.ndimage`` extends it, and
    where they fell outside (for ``constant``); clamping (``nearest``) is grid_sample's border."""
    last = size - 1
    outside = (s < -BORDER_TOLERANCE) | (s > last + BORDER_TOLERANCE)
    if mode == "reflect":  # d c b a | a b c d | d c b a: period 2n about -0.5
        folded = torch.remainder(s + 0.5, 2 * size)
        s = torch.where(folded >= size, 2 * size - folded, folded) - 0.5
    elif mode == "wrap":  # scipy's 'wrap': the first and last pixel coincide
        s = torch.where(outside, torch.remainder(s, last), s)
    return s, outside


def _pixels(shift_range: float, size: int) -> float:
    """Keras's rule: a range below 1 is a fraction of the size, otherwise pixels."""
    return shift_range * size if shift_range < 1 else shift_range


class Augment:
    """The training-only :data:`~dlrun.training.batches.BatchTransform` for ``data.augment``.

    Example:
        >>> augment = Augment(AugmentConfig(rotation_range=40, horizontal_flip=True))
        >>> batch = {"x": torch.rand(8, 32, 32, 3)}
        >>> augment(batch, torch.Generator().manual_seed(0))["x"].shape
        torch.Size([8, 32, 32, 3])
    """

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config

    def check(self, shape: tuple[int, ...]) -> None:
        """Refuse, before training, samples that are not images (``shape`` excludes the batch)."""
        if len(shape) not in (2, 3) or min(shape[:2]) < 2:
            raise DataError(
                f"data.augment: the '{self.config.array}' samples have shape {list(shape)}; "
                "augmentation needs images (height, width[, channels]); reshape them first, "
                "e.g. preprocess: [reshape: [28, 28, 1]]"
            )

    def sample(self, batch: int, height: int, width: int, generator: torch.Generator) -> tuple[
        AffineParams, torch.Tensor, torch.Tensor
    ]:  # fmt: skip
        """Per-sample parameters, drawn as ``ImageDataGenerator.get_random_transform`` draws
        them (uniform ranges, zoom per axis, flips with probability 1/2), plus the flip masks."""
        c = self.config
        u = torch.rand(batch, 8, generator=generator, device=generator.device)
        symmetric = u[:, :4] * 2 - 1
        low, high = c.zoom_bounds
        params = AffineParams(
            theta=symmetric[:, 0] * c.rotation_range,
            tx=symmetric[:, 1] * _pixels(c.width_shift_range, width),
            ty=symmetric[:, 2] * _pixels(c.height_shift_range, height),
            shear=symmetric[:, 3] * c.shear_range,
            zx=low + (high - low) * u[:, 4],
            zy=low + (high - low) * u[:, 5],
        )
        flip_h = (u[:, 6] < 0.5) & c.horizontal_flip
        flip_v = (u[:, 7] < 0.5) & c.vertical_flip
        return params, flip_h, flip_v

    def __call__(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        c = self.config
        images = batch[c.array]  # there and images: checked before training (check_augment)
        if not images.is_floating_point():
            images = images.to(torch.float32)
        params, flip_h, flip_v = self.sample(len(images), images.shape[1], images.shape[2],
                                             generator)  # fmt: skip
        if c.geometric:
            images = warp(images, params, c.fill_mode, c.cval, c.interpolation)
        ones = (1,) * (images.ndim - 1)
        if c.horizontal_flip:  # after the warp, as Keras flips after its affine transform
            images = torch.where(flip_h.view(-1, *ones), images.flip(2), images)
        if c.vertical_flip:
            images = torch.where(flip_v.view(-1, *ones), images.flip(1), images)
        return {**batch, c.array: images}
