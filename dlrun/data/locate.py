"""Find a dataset's canonical file: explicit path, offline mirrors, the cache, then download.

Order: ``data.path`` (the file itself, or a directory holding it); each ``DLRUN_DATA_PATH``
directory under ``<dataset>/``; the download cache; a download (skipped when ``DLRUN_OFFLINE``
is set). A ``data.path`` or mirror file is used as given, with a note when it differs from the
registered checksum (:mod:`dlrun.data.checksums`). Without a copy and without network the error
names the file, where to put it and the URL to fetch it from.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from dlrun.data.checksums import check_local_file
from dlrun.data.download import Resource
from dlrun.data.download import cached_path
from dlrun.data.download import fetch
from dlrun.errors import DataNotHere


def mirror_dirs(dataset: str) -> list[Path]:
    roots = [p for p in os.environ.get("DLRUN_DATA_PATH", "").split(os.pathsep) if p]
    return [Path(root).expanduser() / dataset for root in roots]


_LOCAL_ONLY: ContextVar[str | None] = ContextVar("dlrun_local_only", default=None)


@contextlib.contextmanager
def local_copies_only(why: str) -> Iterator[None]:
    """Inside: no download, and ``why`` is what a missing file's error gives as the reason."""
    token = _LOCAL_ONLY.set(why)
    try:
        yield
    finally:
        _LOCAL_ONLY.reset(token)


def offline() -> str | None:
    """Why nothing may be downloaded now (``DLRUN_OFFLINE``, or a caller's reason), if so."""
    if os.environ.get("DLRUN_OFFLINE", "") not in ("", "0"):
        return "DLRUN_OFFLINE is set"
    return _LOCAL_ONLY.get()


def mirror_copies(dataset: str, resource: Resource) -> list[Path]:
    """Copies in the mirrors: ``<dir>/<dataset>/<file>``, or ``<dir>/<file>`` at a mirror's top."""
    candidates = [
        c for d in mirror_dirs(dataset) for c in (d / resource.name, d.parent / resource.name)
    ]
    return [c for c in candidates if c.is_file()]


def local_copy(dataset: str, resource: Resource) -> Path | None:
    """The first mirror copy, or the cached one, without downloading."""
    copies = mirror_copies(dataset, resource)
    if copies:
        return copies[0]
    cached = cached_path(dataset, resource)
    return cached if cached.is_file() else None


def locate(dataset: str, resource: Resource, explicit: str | None = None) -> Path:
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.is_file():
            return check_local_file(dataset, resource, path)
        if (path / resource.name).is_file():
            return check_local_file(dataset, resource, path / resource.name)
        raise DataNotHere(f"dataset {dataset}: data.path {explicit} is not {resource.name} "
                          "or a directory holding it")  # fmt: skip
    copies = mirror_copies(dataset, resource)
    if copies:
        return check_local_file(dataset, resource, copies[0])
    return obtain(dataset, resource)


def obtain(dataset: str, resource: Resource) -> Path:
    """The cached copy, downloading it first unless ``DLRUN_OFFLINE`` is set; no network and
    offline give the same one-line error naming the file, where to put it and its URL."""
    cached = cached_path(dataset, resource)
    if cached.is_file():
        return cached
    why = offline()
    if why is not None:
        raise missing(dataset, resource, why)
    try:
        return fetch(dataset, resource)
    except ConnectionError as exc:
        raise missing(dataset, resource, str(exc)) from None


def missing(dataset: str, resource: Resource, why: str) -> DataNotHere:
    return DataNotHere(
        f"dataset {dataset}: file {resource.name} not found and not downloadable ({why}); "
        f"put it in <dir>/{dataset}/ and set DLRUN_DATA_PATH=<dir>, or set data.path to it; "
        f"it is published at {resource.url}"
    )
