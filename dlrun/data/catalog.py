"""What the dataset registry offers and where each file is: behind ``dlrun datasets``."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import dlrun.components  # noqa: F401  (fills the dataset registry)
from dlrun.data.base import DATASETS
from dlrun.data.base import DataSource
from dlrun.data.download import Resource
from dlrun.data.download import cached_path
from dlrun.data.download import fetch
from dlrun.data.download import sha256_of
from dlrun.data.glove import GLOVE
from dlrun.data.locate import local_copy
from dlrun.data.locate import mirror_copies
from dlrun.errors import DataError


@dataclass(frozen=True)
class FileStatus:
    resource: Resource
    path: Path | None  # the local copy in use, if any
    where: str  # "mirror", "cache" or "missing"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    summary: str
    files: list[FileStatus]

    @property
    def size(self) -> int | None:
        sizes = [f.resource.size for f in self.files if f.resource.variant == ""]
        return sum(s for s in sizes if s) if sizes and all(sizes) else None

    @property
    def source(self) -> str:
        if not self.files:
            return "built in or your own files"
        return self.files[0].resource.url.split("/")[2]

    @property
    def local(self) -> str:
        if not self.files:
            return "-"
        wheres = {f.where for f in self.files if f.resource.variant == ""} or {"missing"}
        return "/".join(sorted(wheres))


def _status(name: str, resource: Resource) -> FileStatus:
    found = local_copy(name, resource)
    if found is None:
        return FileStatus(resource, None, "missing")
    return FileStatus(
        resource, found, "cache" if found == cached_path(name, resource) else "mirror"
    )


# Files that are not training datasets but serve them (pre-trained word vectors).
EMBEDDINGS: dict[str, tuple[Resource, str]] = {
    "glove": (GLOVE, "GloVe 6B word vectors, 50-300 dims (embedding file; see datasets embed)."),
}


def source_class(name: str) -> type[DataSource]:
    return DATASETS.get(name)


def resources_of(name: str) -> tuple[Resource, ...]:
    if name in EMBEDDINGS:
        return (EMBEDDINGS[name][0],)
    return source_class(name).resources


def info(name: str) -> DatasetInfo:
    if name in EMBEDDINGS:
        resource, summary = EMBEDDINGS[name]
        return DatasetInfo(name, summary, [_status(name, resource)])
    source = source_class(name)
    summary = (inspect.getdoc(source) or "").split("\n\n")[0].replace("\n", " ")
    return DatasetInfo(name, summary, [_status(name, r) for r in source.resources])


def catalog() -> list[DatasetInfo]:
    return [info(name) for name in sorted([*DATASETS.names(), *EMBEDDINGS])]


def download(name: str, variant: str | None = None) -> list[Path]:
    """Fetch a dataset's default files (or one ``variant``, e.g. ``raw``) into the cache."""
    resources = resources_of(name)
    wanted = [r for r in resources if r.variant == (variant or "")]
    if not resources:
        raise DataError(f"dataset {name} needs no download (it is bundled or generated)")
    if not wanted:
        variants = sorted({r.variant for r in resources if r.variant})
        raise DataError(f"dataset {name} has no variant '{variant}'; variants: {variants}")
    return [local_copy(name, r) or fetch(name, r) for r in wanted]


@dataclass(frozen=True)
class Verification:
    dataset: str
    path: Path
    verdict: str  # ok | mismatch (deleted) | differs from the canonical file | no checksum


def verify() -> list[Verification]:
    """Re-hash every local copy. A corrupt cached file is deleted (the cache is dlrun's);
    a mirror file that differs is reported only, since it belongs to the user."""
    checked = []
    for name in [*DATASETS.names(), *EMBEDDINGS]:
        for resource in resources_of(name):
            for path, in_cache in _copies(name, resource):
                if resource.sha256 is None:
                    verdict = "no published checksum"
                elif sha256_of(path) == resource.sha256:
                    verdict = "ok"
                elif in_cache:
                    path.unlink()
                    verdict = "MISMATCH: deleted from the cache"
                else:
                    verdict = "differs from the canonical file (mirror copy kept)"
                checked.append(Verification(name, path, verdict))
    return checked


def _copies(name: str, resource: Resource) -> list[tuple[Path, bool]]:
    copies = [(path, False) for path in mirror_copies(name, resource)]
    cached = cached_path(name, resource)
    return copies + ([(cached, True)] if cached.is_file() else [])
