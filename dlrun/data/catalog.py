"""What the dataset registry offers and where each file is: behind ``dlrun datasets``."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import dlrun.components  # noqa: F401  (fills the dataset registry)
from dlrun.data.base import DATASETS
from dlrun.data.base import DataSource
from dlrun.data.checksums import Match
from dlrun.data.checksums import compare
from dlrun.data.download import Resource
from dlrun.data.download import cached_path
from dlrun.data.glove import GLOVE
from dlrun.data.locate import local_copy
from dlrun.data.locate import mirror_copies
from dlrun.data.locate import obtain
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
        """Where the default files are, then each variant that has a local copy, e.g.
        ``missing; raw: mirror`` for IMDB with only the review tarball in a mirror."""
        if not self.files:
            return "-"
        wheres: dict[str, set[str]] = {}
        for f in self.files:
            wheres.setdefault(f.resource.variant, set()).add(f.where)
        default = "/".join(sorted(wheres.pop("", {"missing"})))
        variants = [
            f"{v}: {'/'.join(sorted(w - {'missing'}))}"
            for v, w in sorted(wheres.items())
            if w != {"missing"}
        ]
        return "; ".join([default, *variants])


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
    return DatasetInfo(name, summary_of(source), [_status(name, r) for r in source.resources])


def summary_of(source: type[DataSource]) -> str:
    """The first paragraph of the class's *own* docstring (an inherited one, such as ABC's,
    would describe the base class, not the data)."""
    own = vars(source).get("__doc__")
    if not own:
        return "(no description: give the dataset class a docstring)"
    return inspect.cleandoc(own).split("\n\n")[0].replace("\n", " ")


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
    return [local_copy(name, r) or obtain(name, r) for r in wanted]


@dataclass(frozen=True)
class Verification:
    dataset: str
    path: Path
    verdict: str
    corrupt: bool = False  # differs from the registered file and from every known repackaging


def verify() -> list[Verification]:
    """Re-hash every local copy. A corrupt cached file is deleted (the cache is dlrun's); a
    mirror file that differs is reported only, since it belongs to the user."""
    checked = []
    for name in [*DATASETS.names(), *EMBEDDINGS]:
        for resource in resources_of(name):
            for path, in_cache in _copies(name, resource):
                checked.append(_verdict(name, resource, path, in_cache))
    return checked


def _verdict(name: str, resource: Resource, path: Path, in_cache: bool) -> Verification:
    result = compare(resource, path)
    if result.match is Match.CANONICAL:
        return Verification(name, path, "ok")
    if result.match is Match.UNPUBLISHED:
        return Verification(name, path, "no published checksum; accepted as it is")
    if result.match is Match.REPACKAGED:
        verdict = f"ok: a known different packaging of the same data ({result.repackaging})"
        return Verification(name, path, verdict)
    found = f"SHA-256 {result.digest}, registered {resource.sha256}"
    if in_cache:
        path.unlink()
        again = f"dlrun datasets download {name}" + (
            f" --variant {resource.variant}" if resource.variant else ""
        )
        verdict = f"CORRUPT ({found}): deleted from the cache; {again} fetches it again"
    else:
        verdict = (f"CORRUPT or a different file ({found}, and no known repackaging of it): the "
                   f"mirror copy is kept; replace it with {resource.url}")  # fmt: skip
    return Verification(name, path, verdict, corrupt=True)


def _copies(name: str, resource: Resource) -> list[tuple[Path, bool]]:
    copies = [(path, False) for path in mirror_copies(name, resource)]
    cached = cached_path(name, resource)
    return copies + ([(cached, True)] if cached.is_file() else [])
