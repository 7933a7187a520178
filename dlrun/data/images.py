"""Images in class sub-directories, and the DLwP 5.2 Dogs-vs-Cats subset builder.

``image_folder`` reads ``<root>/<class>/*.jpg`` (classes in alphabetical order, as Keras's
``flow_from_directory``) resized to ``target_size`` with nearest-neighbour sampling (Keras's
``load_img`` default). A root holding ``train/``, ``validation/`` and ``test/`` keeps that split:
validation images come first in the training part, so ``evaluation.validation.first`` set to
their count reproduces it exactly, and ``test/`` becomes the sealed test split.

Images are uint8 ``(height, width, channels)`` and stay uint8 in memory: a ``rescale`` step
runs on the device, per batch. With ``data.in_memory: false`` nothing is decoded up front: the
images are :class:`ImageFiles` (paths) that DataLoader workers decode a batch at a time, so
the 25,000 Dogs-vs-Cats pictures never sit in memory together.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import Literal

import numpy as np
from pydantic import Field
from pydantic import field_validator

from dlrun.config.base import FilePath
from dlrun.data.base import DATASETS
from dlrun.data.base import Arrays
from dlrun.data.base import DataSource
from dlrun.data.base import LoadContext
from dlrun.data.base import LoadedData
from dlrun.data.base import SplitConfig
from dlrun.data.base import split_off_test
from dlrun.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def read_image(path: Path, size: tuple[int, int], mode: str) -> np.ndarray:
    from PIL import Image
    from PIL import UnidentifiedImageError

    try:
        with Image.open(path) as image:
            resized = image.convert(mode).resize((size[1], size[0]), Image.Resampling.NEAREST)
            array = np.asarray(resized, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None
    return array if array.ndim == 3 else array[..., None]


def class_dirs(root: Path) -> list[Path]:
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise DataError(f"{root} has no class sub-directories")
    return dirs


class ImageFiles(np.ndarray):
    """Images not yet decoded: one path per row (an object array that splits and subsets like
    any per-sample array), with the size and colour mode every row decodes to."""

    image_size: tuple[int, int]
    color_mode: str

    def __new__(cls, paths: Sequence[str], size: tuple[int, int], mode: str) -> ImageFiles:
        array = np.empty(len(paths), dtype=object)
        array[:] = list(paths)
        out = array.view(cls)
        out.image_size, out.color_mode = size, mode
        return out

    def __array_finalize__(self, obj: Any) -> None:
        self.image_size = getattr(obj, "image_size", (0, 0))
        self.color_mode = getattr(obj, "color_mode", "RGB")

    def __reduce__(self) -> tuple[Any, ...]:  # keep size and mode when sent to a worker
        return (ImageFiles, (list(self), self.image_size, self.color_mode))

    def decode(self) -> np.ndarray:
        """These rows as uint8 ``(rows, height, width, channels)``."""
        size, mode = self.image_size, self.color_mode
        if not len(self):
            return np.empty((0, *size, 3 if mode == "RGB" else 1), dtype=np.uint8)
        return np.stack([read_image(Path(path), size, mode) for path in self])


def decoded(arrays: Arrays) -> Arrays:
    """``arrays`` with any :class:`ImageFiles` decoded (only the rows it holds)."""
    lazy = {k: v.decode() for k, v in arrays.fields.items() if isinstance(v, ImageFiles)}
    return arrays.replace(**lazy) if lazy else arrays


def list_split(root: Path, classes: list[str]) -> tuple[list[str], list[int]]:
    """Every image file under ``root/<class>/`` (sorted) and its class number."""
    files, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise DataError(f"{root} lacks the class directory {name}/ (classes: {classes})")
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                files.append(str(file))
                labels.append(label)
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    return files, labels


def image_arrays(files: list[str], labels: list[int], size: tuple[int, int], mode: str,
                 lazy: bool) -> Arrays:  # fmt: skip
    """The images (decoded now, or :class:`ImageFiles` when ``lazy``) and their labels."""
    images = ImageFiles(files, size, mode)
    return Arrays(images if lazy else images.decode(), np.array(labels, dtype=np.int64))


@DATASETS.register("image_folder")
class ImageFolder(DataSource):
    """Images sorted into one sub-directory per class (optionally under train/validation/test)."""

    class Config(SplitConfig):
        path: FilePath
        target_size: list[int] = Field(default=[150, 150], min_length=2, max_length=2)
        color: Literal["rgb", "grayscale"] = "rgb"

        @field_validator("target_size")
        @classmethod
        def _positive(cls, value: list[int]) -> list[int]:
            if min(value) <= 0:
                raise ValueError("target_size is [height, width], both positive")
            return value

    config: Config

    def load(self, context: LoadContext) -> LoadedData:
        c = self.config
        root = Path(c.path).expanduser()
        if not root.is_dir():
            raise DataError(f"image_folder: {c.path} is not a directory")
        size = (c.target_size[0], c.target_size[1])
        mode = "RGB" if c.color == "rgb" else "L"
        lazy = c.in_memory is False
        if (root / "train").is_dir():
            classes = [d.name for d in class_dirs(root / "train")]
            parts = [list_split(root / s, classes)
                     for s in ("validation", "train") if (root / s).is_dir()]  # fmt: skip
            files = [f for part in parts for f in part[0]]
            train = image_arrays(files, [n for part in parts for n in part[1]], size, mode, lazy)
            test = (
                image_arrays(*list_split(root / "test", classes), size, mode, lazy)
                if (root / "test").is_dir()
                else None
            )
            n_val = len(parts[0][0]) if len(parts) == 2 else 0
            layout = f"train/validation/test folders ({n_val} validation images first)"
        else:
            classes = [d.name for d in class_dirs(root)]
            everything = image_arrays(*list_split(root, classes), size, mode, lazy)
            train, test = split_off_test(everything.x, everything.y, c, context)
            layout = "one folder per class"
        description = (f"image_folder {root}: {len(classes)} classes, {len(train)} train / "
                       f"{0 if test is None else len(test)} test, {layout}")  # fmt: skip
        return LoadedData(train, test, description, None, classes)


def build_subset(source: Path, target: Path, sizes: dict[str, int]) -> dict[str, int]:
    """DLwP 5.2: copy ``<class>.<n>.jpg`` files from the Kaggle folder into
    ``target/{train,validation,test}/<class>s/``: the first ``sizes['train']`` numbers of each
    class train, the next ones validate, the next ones test. Returns the count per class."""
    if target.exists():
        raise DataError(f"{target} already exists; choose a new directory")
    if not source.is_dir():
        raise DataError(f"{source} is not a directory")
    files: dict[str, dict[int, Path]] = {}
    for file in sorted(source.iterdir()):
        parts = file.name.split(".")
        if len(parts) == 3 and parts[1].isdigit() and file.suffix.lower() in IMAGE_SUFFIXES:
            files.setdefault(parts[0], {})[int(parts[1])] = file
    if not files:
        raise DataError(f"{source} holds no <class>.<number>.jpg files (the Kaggle train folder)")
    needed = sum(sizes.values())
    for name, numbered in files.items():
        missing = [n for n in range(needed) if n not in numbered]
        if missing:
            raise DataError(f"{source}: class {name} lacks {name}.{missing[0]}.jpg "
                            f"({needed} per class needed)")  # fmt: skip
    scratch = target.with_name(f".{target.name}.partial")
    shutil.rmtree(scratch, ignore_errors=True)
    start = 0
    for split, count in sizes.items():
        for name, numbered in files.items():
            folder = scratch / split / f"{name}s"
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(start, start + count):
                shutil.copy2(numbered[n], folder / numbered[n].name)
        start += count
    scratch.rename(target)
    return {name: needed for name in files}
